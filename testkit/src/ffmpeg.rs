//! The `ffmpeg` and `ffprobe` tools (`ci/setup` installs them), as independent encoders and
//! decoders to check our media code against: run quietly, a failure asserted with the tool's
//! arguments and error output.

use std::path::Path;
use std::process::Command;

/// Runs `ffmpeg` quietly, overwriting outputs, and asserts it succeeded.
pub fn run(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args(args)
        .status()
        .expect("the ffmpeg tool runs");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// Writes `frames` frames of lavfi's `testsrc2` at `size` (`WIDTHxHEIGHT`), 30 fps, yuv420p, to
/// `output` (its extension picks the container, e.g. `.y4m`).
pub fn testsrc(output: impl AsRef<Path>, size: &str, frames: u32) {
    let output = output.as_ref().to_str().expect("a UTF-8 path");
    run(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
        "-frames:v",
        &frames.to_string(),
        "-pix_fmt",
        "yuv420p",
        output,
    ]);
}

/// Runs `ffprobe -of json` with `args` on the file or URL at `input` and returns its JSON.
pub fn probe_json(input: impl AsRef<Path>, args: &[&str]) -> serde_json::Value {
    let input = input.as_ref();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(input)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        input.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON")
}

/// [`probe_json`] of bytes, written to a temporary file named with `suffix` (its extension tells
/// ffprobe the container).
pub fn probe_bytes_json(data: &[u8], suffix: &str, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("probe.{suffix}"));
    std::fs::write(&path, data).expect("write the probed bytes");
    probe_json(&path, args)
}
