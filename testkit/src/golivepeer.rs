//! go-livepeer's own Go packages as a peer: `go test` in `interop/golivepeer` (a Go test module
//! pinned to go-livepeer in its go.mod), for the interop tests and the benches that measure
//! go-livepeer beside us.
//!
//! `$GO` names the Go tool (default `go`); `ci/setup` checks its version and downloads the pinned
//! modules, so a missing tool or module is a broken environment and panics with that advice.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Go test module, `interop/golivepeer`.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/golivepeer")
}

fn go() -> String {
    std::env::var("GO").unwrap_or_else(|_| "go".into())
}

fn run(command: &mut Command, what: &str) -> Output {
    command.output().unwrap_or_else(|e| {
        panic!("cannot run {what} in interop/golivepeer ({e}): install Go >= 1.26 and run ci/setup, which downloads the pinned go-livepeer modules")
    })
}

fn log(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// Runs the named tests of `interop/golivepeer` with `envs` added to the environment and
/// returns their verbose log; every one must pass.
pub fn go_test<K, V>(tests: &[&str], envs: impl IntoIterator<Item = (K, V)>) -> String
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let pattern = format!("^({})$", tests.join("|"));
    let output = run(
        Command::new(go())
            .args(["test", "-count=1", "-v", "-run", &pattern, "./..."])
            .current_dir(interop_dir())
            .envs(envs),
        "`go test`",
    );
    let log = log(&output);
    assert!(
        output.status.success(),
        "go-livepeer's checks failed:\n{log}"
    );
    for test in tests {
        assert!(
            log.contains(&format!("--- PASS: {test}")),
            "{test} did not pass:\n{log}"
        );
    }
    log
}

/// The test binary of `interop/golivepeer`, compiled once (`go test -c`) into a temporary
/// directory that lives as long as this value, for a caller that runs a Go test many times
/// without relinking each time.
pub struct TestBinary {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TestBinary {
    /// Compiles the module's tests; panics with Go's log when they do not compile.
    pub fn compile() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("golivepeer.test");
        let output = run(
            Command::new(go())
                .args(["test", "-c", "-o"])
                .arg(&path)
                .arg(".")
                .current_dir(interop_dir()),
            "`go test -c`",
        );
        assert!(
            output.status.success(),
            "interop/golivepeer does not compile:\n{}",
            log(&output)
        );
        Self { _dir: dir, path }
    }

    /// A command running the one test named `test`, verbosely, in `interop/golivepeer`.
    pub fn test(&self, test: &str) -> Command {
        let mut command = Command::new(&self.path);
        command
            .args(["-test.run", &format!("^{test}$"), "-test.v"])
            .current_dir(interop_dir());
        command
    }
}
