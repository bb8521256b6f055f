//! One of a test binary's own ignored tests run as a separate process, for tests that must
//! SIGKILL a node (a crash is what they test) while the node crates cannot see the `lpt` binary.
//!
//! The child is the same test binary started with `--exact <test> --ignored`; it reads its
//! parameters from the environment and, first thing, calls [`exit_with_parent`], so that it ends
//! when the parent's end of its stdin closes, however the parent ends.

use std::ffi::OsStr;
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running child test process; SIGKILLed when dropped.
pub struct TestProcess {
    child: Child,
}

impl TestProcess {
    /// Runs `test` (its path in this binary, e.g. `failover::orchestrator_process`) with `env`
    /// added to its environment, its output discarded.
    pub fn spawn<K, V>(test: &str, env: impl IntoIterator<Item = (K, V)>) -> TestProcess
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        Self::start(test, env, Stdio::null()).0
    }

    /// As [`spawn`](Self::spawn), with the child's stdout to read (what it announces).
    pub fn spawn_reading<K, V>(
        test: &str,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> (TestProcess, ChildStdout)
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let (process, stdout) = Self::start(test, env, Stdio::piped());
        (process, stdout.expect("stdout is piped"))
    }

    fn start<K, V>(
        test: &str,
        env: impl IntoIterator<Item = (K, V)>,
        stdout: Stdio,
    ) -> (TestProcess, Option<ChildStdout>)
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the test binary runs again as {test}: {e}"));
        let stdout = child.stdout.take();
        (TestProcess { child }, stdout)
    }

    /// SIGKILL, and the exit reaped.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child: exits the process once the parent's end of stdin closes.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
}
