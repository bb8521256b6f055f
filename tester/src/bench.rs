//! `lpt bench`: how many live transcoding sessions this machine sustains in real time.
//!
//! A thin layer over `reference_transcoder::bench`: it turns command-line options into a bench
//! run, feeds every segment into the metrics registry (so the summary has the same shape as a
//! `lpt run`'s: `transcode_realtime_ratio` and `realtime_segments`, tagged with the session count),
//! prints a table per load, and writes `summary.json` with the bench's own summary under `bench`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use probes::clock::system_time_to_unix_ms;
use reference_transcoder::bench::{
    BenchMode, BenchOptions, BenchSummary, BenchedSegment, run_bench,
};
use reference_transcoder::input::BenchInput;
use reference_transcoder::ladder::{
    BENCH_LADDER, HardwarePreference, parse_json_profiles, parse_ladder,
};
use reference_transcoder::source::SourceConfig;

use crate::exit_code::{ExitCode, Failure, WithExitCode};
use crate::metrics::{Registry, tags};
use crate::output::Terminal;
use crate::summary::{ScenarioInfo, Summary};

/// `lpt bench` options, independent of clap.
#[derive(Debug, Clone)]
pub struct BenchCommand {
    /// A video file, an HLS playlist (path or URL), or `None` for the synthetic source.
    pub input: Option<String>,
    pub profiles: String,
    pub profiles_json: Option<PathBuf>,
    pub sessions: u32,
    pub find_capacity: bool,
    pub max_sessions: u32,
    pub step: u32,
    pub segments: Option<u32>,
    pub synthetic_seconds: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub preset: String,
    pub cpu_only: bool,
    pub no_pace: bool,
    pub realtime_target: f64,
    pub out: Option<PathBuf>,
    /// The command line as typed, recorded in the summary.
    pub command_line: String,
}

impl Default for BenchCommand {
    fn default() -> Self {
        BenchCommand {
            input: None,
            profiles: BENCH_LADDER.into(),
            profiles_json: None,
            sessions: 1,
            find_capacity: false,
            max_sessions: 32,
            step: 1,
            segments: None,
            synthetic_seconds: 20.0,
            width: 1280,
            height: 720,
            fps: 30,
            preset: "veryfast".into(),
            cpu_only: false,
            no_pace: false,
            realtime_target: 0.99,
            out: None,
            command_line: "lpt bench".into(),
        }
    }
}

fn options(command: &BenchCommand) -> anyhow::Result<BenchOptions> {
    let profiles = match &command.profiles_json {
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read profiles from {}", path.display()))?;
            parse_json_profiles(&json)?
        }
        None => parse_ladder(&command.profiles)?,
    };
    let input = match &command.input {
        None => BenchInput::Synthetic(SourceConfig {
            width: command.width,
            height: command.height,
            fps_num: command.fps,
            duration_secs: command.synthetic_seconds,
            ..SourceConfig::default()
        }),
        Some(text)
            if text.ends_with(".m3u8")
                || text.starts_with("http://")
                || text.starts_with("https://") =>
        {
            BenchInput::Hls(text.clone())
        }
        Some(path) => BenchInput::File {
            path: PathBuf::from(path),
            segment_secs: 2.0,
        },
    };
    let mode = if command.find_capacity {
        BenchMode::FindCapacity {
            start: command.sessions.max(1),
            step: command.step.max(1),
            max: command.max_sessions,
        }
    } else {
        BenchMode::Sessions(command.sessions)
    };
    let mut options = BenchOptions::new(input, profiles, mode);
    options.ladder.x264_preset = command.preset.clone();
    if command.cpu_only {
        options.ladder.hardware = HardwarePreference::Cpu;
    }
    options.segments_per_session = command.segments;
    options.real_time = !command.no_pace;
    options.realtime_target = command.realtime_target;
    Ok(options)
}

/// Runs the benchmark and writes its results; returns the exit code.
pub fn bench(command: &BenchCommand, terminal: Terminal) -> Result<ExitCode, Failure> {
    let options = options(command).exit_code(ExitCode::InvalidScenario)?;
    let run_dir = command.out.clone().unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace(':', "");
        Path::new("runs").join(format!("bench-{}", stamp.trim_end_matches('Z')))
    });
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))
        .exit_code(ExitCode::NotRun)?;

    let journal = reports::JournalWriter::in_run_dir(&run_dir)
        .context("cannot open the records journal")
        .exit_code(ExitCode::NotRun)?;
    let registry = Registry::new();
    let started = SystemTime::now();
    let encoder = reference_transcoder::ladder::choose_path(options.ladder.hardware)
        .0
        .encoder_name();
    let result = run_bench(&options, |record| {
        observe(&registry, record);
        let appended = journal.append(observation::record::BenchSegmentRecord {
            t_ms: system_time_to_unix_ms(started) + (record.started_secs * 1e3) as i64,
            sessions: record.load,
            session: record.session,
            seq: u64::from(record.seq),
            encoder: encoder.to_owned(),
            renditions: record.renditions.len() as u32,
            duration_s: record.source_duration_secs,
            transcode_ms: record.transcode_secs * 1e3,
            ok: record.error.is_none(),
            error: record.error.clone(),
        });
        // A write failure is sticky and reported once below; only other refusals warn here.
        if let Err(error) = appended
            && journal.failure().is_none()
        {
            tracing::warn!("cannot append to the records journal: {error}");
        }
    });
    if let Err(error) = journal.sync()
        && journal.failure().is_none()
    {
        tracing::warn!("the records journal could not be synced: {error}");
    }
    if let Some(failure) = journal.failure() {
        return Err(anyhow::anyhow!(
            "the records journal {} could not be written ({failure}); {} records were not \
             written; the journal holds only whole records",
            journal.path().display(),
            journal.dropped_records()
        ))
        .exit_code(ExitCode::NotRun);
    }
    let ended = SystemTime::now();
    let info = ScenarioInfo {
        name: "bench".into(),
        path: String::new(),
        description: Some(format!(
            "{} ladder: {}",
            command.command_line,
            options
                .profiles
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        source: command.command_line.clone(),
    };
    let (code, message, bench_json) = match &result {
        Ok(summary) => (
            ExitCode::Passed,
            headline(summary),
            serde_json::to_value(summary).ok(),
        ),
        Err(error) => (
            ExitCode::NotRun,
            format!("the benchmark could not run: {error}"),
            None,
        ),
    };
    let mut summary = Summary::new(
        info,
        started,
        ended,
        code,
        message,
        vec![],
        &registry,
        vec![],
    );
    summary.bench = bench_json;
    // A bench that ran gets its reports (and breakdowns in summary.json); one that could not run
    // has only its summary.
    let report = match &result {
        Ok(_) => crate::report::finish(&run_dir, &summary),
        Err(_) => observation::summary::write_summary(&run_dir, &summary).map(|_| None),
    }
    .with_context(|| format!("cannot write the summary into {}", run_dir.display()))
    .exit_code(ExitCode::NotRun)?;
    match result {
        Ok(bench_summary) => {
            print_table(&bench_summary, terminal);
            crate::report::announce(&run_dir, report.as_ref(), terminal);
            Ok(ExitCode::Passed)
        }
        Err(error) => Err(Failure::new(ExitCode::NotRun, error)),
    }
}

fn observe(registry: &Registry, record: &BenchedSegment) {
    let sessions = record.load.to_string();
    let tags = tags([("sessions", sessions.as_str())]);
    registry.add_bool(
        "realtime_segments",
        &tags,
        record.error.is_none() && record.realtime,
    );
    if record.error.is_none() {
        registry.add("transcode_realtime_ratio", &tags, record.realtime_ratio);
        registry.add("transcode_time", &tags, record.transcode_secs * 1e3);
    }
}

fn headline(summary: &BenchSummary) -> String {
    match (summary.capacity_sessions, summary.last_load()) {
        (Some(capacity), _) => format!(
            "capacity: {capacity} real-time session{} ({} of segments within their duration required)",
            if capacity == 1 { "" } else { "s" },
            percent(summary.realtime_target)
        ),
        (None, Some(load)) => format!(
            "{} session{}: {} of segments in real time, duration ratio {:.3}",
            load.sessions,
            if load.sessions == 1 { "" } else { "s" },
            percent(load.realtime_segment_fraction),
            load.realtime_duration_ratio
        ),
        (None, None) => "no load ran".into(),
    }
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

fn print_table(summary: &BenchSummary, terminal: Terminal) {
    if terminal.quiet {
        println!("{}", headline(summary));
        return;
    }
    println!(
        "\n{}  encoder {} ({}), {} cores, ladder {}",
        terminal.bold("lpt bench"),
        summary.encoder_path.encoder_name(),
        summary.encoder_path_reason,
        summary.cpu_cores,
        summary.profiles.join(",")
    );
    println!(
        "{:>8} {:>9} {:>7} {:>10} {:>10} {:>8} {:>8} {:>8} {:>12} {:>6}  held",
        "sessions",
        "segments",
        "failed",
        "real-time",
        "dur.ratio",
        "p50",
        "p95",
        "p99",
        "Mpixel/s",
        "cpu",
    );
    for load in &summary.loads {
        let held = if load.held {
            terminal.green("yes")
        } else {
            terminal.red("no")
        };
        println!(
            "{:>8} {:>9} {:>7} {:>10} {:>10.3} {:>8.3} {:>8.3} {:>8.3} {:>12.1} {:>5.0}%  {held}",
            load.sessions,
            load.segments,
            load.failed_segments,
            percent(load.realtime_segment_fraction),
            load.realtime_duration_ratio,
            load.ratio_p50,
            load.ratio_p95,
            load.ratio_p99,
            load.output_pixels_per_sec / 1e6,
            load.cpu_utilisation * 100.0
        );
    }
    println!("{}", terminal.bold(&headline(summary)));
}
