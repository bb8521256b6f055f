//! The result of scoring: per-frame scores, pooled statistics, alignment counts, and writers.
//!
//! The report is data first (serialisable, everything the summary shows is in the JSON), and
//! rendering second: CSV of per-frame scores, JSON of the whole report, and a short human-readable
//! summary for the terminal.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::QualityError;
use crate::align::{AlignmentCounts, Pairing};
use crate::options::VmafModelVersion;

/// Scores of one scored frame pair.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FrameScore {
    /// Position in the scored sequence (libvmaf's frame index).
    pub index: u32,
    /// The reference frame: its stamp's frame number under stamp pairing, its presentation
    /// position otherwise.
    pub reference_frame: u64,
    /// The distorted frame's presentation position in its file.
    pub distorted_frame: u64,
    pub vmaf: f64,
    pub psnr_y: Option<f64>,
    pub psnr_cb: Option<f64>,
    pub psnr_cr: Option<f64>,
    pub ssim: Option<f64>,
}

/// A metric pooled over the scored frames.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Pooled {
    pub frames: usize,
    pub mean: f64,
    /// libvmaf's harmonic mean: `1 / mean(1 / (x + 1)) - 1`, which weighs bad frames more.
    pub harmonic_mean: f64,
    pub min: f64,
    pub max: f64,
    /// 5th percentile (nearest rank): 95 % of frames score at least this.
    pub p5: f64,
}

impl Pooled {
    /// Pools `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Pooled> {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let harmonic_mean = n as f64 / sorted.iter().map(|x| 1.0 / (x + 1.0)).sum::<f64>() - 1.0;
        let rank = ((0.05 * n as f64).ceil() as usize).clamp(1, n);
        Some(Pooled {
            frames: n,
            mean,
            harmonic_mean,
            min: sorted[0],
            max: sorted[n - 1],
            p5: sorted[rank - 1],
        })
    }
}

/// Pooled statistics of every metric computed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PooledScores {
    pub vmaf: Pooled,
    pub psnr_y: Option<Pooled>,
    pub ssim: Option<Pooled>,
}

impl PooledScores {
    pub fn of(frames: &[FrameScore]) -> Option<PooledScores> {
        Some(PooledScores {
            vmaf: Pooled::of(frames.iter().map(|f| f.vmaf))?,
            psnr_y: Pooled::of(frames.iter().filter_map(|f| f.psnr_y)),
            ssim: Pooled::of(frames.iter().filter_map(|f| f.ssim)),
        })
    }
}

/// Everything scoring one distorted video against a reference produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QualityReport {
    pub reference: PathBuf,
    pub distorted: PathBuf,
    pub model: VmafModelVersion,
    pub libvmaf_version: String,
    pub pairing: Pairing,
    pub counts: AlignmentCounts,
    /// Packets or frames the decoder rejected, per input (the rest was still scored).
    pub reference_decode_errors: u64,
    pub distorted_decode_errors: u64,
    /// The scored area: the reference's width, and its rows above the stamp band.
    pub scored_width: u32,
    pub scored_height: u32,
    /// Rows left out at the bottom (the stamp band and below); 0 when nothing was cropped.
    pub excluded_rows: u32,
    /// Whether distorted pictures were scaled to the reference size.
    pub distorted_scaled: bool,
    pub subsample: u32,
    pub frames: Vec<FrameScore>,
    pub pooled: PooledScores,
}

impl QualityReport {
    /// A few lines for a terminal: what was paired and how, and the pooled scores.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "reference: {}", self.reference.display());
        let _ = writeln!(out, "distorted: {}", self.distorted.display());
        let _ = writeln!(out, "paired by {}: {}", self.pairing, self.counts);
        let _ = writeln!(
            out,
            "scored {} frames ({}x{}{}{}{}), model {}, libvmaf {}",
            self.pooled.vmaf.frames,
            self.scored_width,
            self.scored_height,
            if self.excluded_rows > 0 {
                format!(", {} stamp-band rows excluded", self.excluded_rows)
            } else {
                String::new()
            },
            if self.distorted_scaled {
                ", distorted scaled bicubic"
            } else {
                ""
            },
            if self.subsample > 1 {
                format!(", every {}th frame", self.subsample)
            } else {
                String::new()
            },
            self.model,
            self.libvmaf_version
        );
        if self.reference_decode_errors + self.distorted_decode_errors > 0 {
            let _ = writeln!(
                out,
                "decode errors: {} in reference, {} in distorted",
                self.reference_decode_errors, self.distorted_decode_errors
            );
        }
        let _ = writeln!(
            out,
            "{:<8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "metric", "mean", "harmonic", "min", "p5", "max"
        );
        let mut line = |name: &str, p: &Pooled| {
            let _ = writeln!(
                out,
                "{name:<8} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                p.mean, p.harmonic_mean, p.min, p.p5, p.max
            );
        };
        line("vmaf", &self.pooled.vmaf);
        if let Some(p) = &self.pooled.psnr_y {
            line("psnr_y", p);
        }
        if let Some(p) = &self.pooled.ssim {
            line("ssim", p);
        }
        out
    }

    /// Writes one CSV row per scored frame; absent metrics are empty cells.
    pub fn write_csv(&self, writer: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            writer,
            "index,reference_frame,distorted_frame,vmaf,psnr_y,psnr_cb,psnr_cr,ssim"
        )?;
        let cell = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        for f in &self.frames {
            writeln!(
                writer,
                "{},{},{},{:.6},{},{},{},{}",
                f.index,
                f.reference_frame,
                f.distorted_frame,
                f.vmaf,
                cell(f.psnr_y),
                cell(f.psnr_cb),
                cell(f.psnr_cr),
                cell(f.ssim)
            )?;
        }
        Ok(())
    }

    /// Writes the whole report (per-frame scores, pooled scores, counts) as JSON.
    pub fn write_json(&self, writer: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *writer, self)?;
        writeln!(writer)
    }

    /// [`write_csv`](Self::write_csv) to a file.
    pub fn write_csv_file(&self, path: &Path) -> Result<(), QualityError> {
        write_file(path, |w| self.write_csv(w))
    }

    /// [`write_json`](Self::write_json) to a file.
    pub fn write_json_file(&self, path: &Path) -> Result<(), QualityError> {
        write_file(path, |w| self.write_json(w))
    }
}

fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), QualityError> {
    let error = |source| QualityError::Write {
        path: path.to_owned(),
        source,
    };
    let mut writer = BufWriter::new(File::create(path).map_err(error)?);
    write(&mut writer).map_err(error)?;
    writer.flush().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_matches_hand_computed_values() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let p = Pooled::of(values.iter().copied()).unwrap();
        assert_eq!(p.frames, 20);
        assert!((p.mean - 10.5).abs() < 1e-12);
        assert_eq!(p.min, 1.0);
        assert_eq!(p.max, 20.0);
        assert_eq!(p.p5, 1.0, "nearest rank ceil(0.05 * 20) = 1");
        let expected = 20.0 / values.iter().map(|x| 1.0 / (x + 1.0)).sum::<f64>() - 1.0;
        assert!((p.harmonic_mean - expected).abs() < 1e-12);
        assert!(p.harmonic_mean < p.mean);
        assert_eq!(Pooled::of(std::iter::empty()), None);
    }

    #[test]
    fn fifth_percentile_of_a_hundred_frames_is_the_fifth_worst() {
        let p = Pooled::of((0..100).rev().map(f64::from)).unwrap();
        assert_eq!(p.p5, 4.0);
    }
}
