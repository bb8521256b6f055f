//! Child processes of the embedded stack: started, awaited until ready, and never orphaned.
//!
//! Each part of the stack is a child process (`lpt node …`) that binds its own ports (port 0, so
//! there is no race for free ports) and announces itself with one JSON line on stdout:
//! `{"event":"ready", ...}`. The supervisor waits for that line with a deadline and reports a part
//! that did not come up by name, with the tail of its log. Children die with their parent: they get
//! `PR_SET_PDEATHSIG` (Linux), and dropping a [`Child`] sends SIGTERM, then SIGKILL after a grace
//! period — so neither Ctrl-C nor a panic leaves processes behind.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child as TokioChild, Command};

/// A running part of the stack.
pub struct Child {
    name: String,
    process: Option<TokioChild>,
    log_path: PathBuf,
    /// How it was started, so a chaos event can start it again the same way.
    launch: Launch,
    /// What the part announced when it became ready.
    pub ready: Value,
}

/// A part's command line, environment and log directory.
#[derive(Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    deadline: Duration,
    /// The mount namespace it runs in (see [`super::storage`]); `None`: lpt's own.
    mount_namespace: Option<Arc<OwnedFd>>,
}

/// How long a stopping child gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long dropping a [`Child`] waits after SIGTERM before the SIGKILL of `kill_on_drop`.
const DROP_GRACE: Duration = Duration::from_millis(500);

impl Child {
    /// Starts `program args…` with `env` added to its environment (how secrets reach a child:
    /// never as command-line arguments, which other users of the machine can read), and waits up
    /// to `deadline` for its ready line. Its stderr and any further stdout go to
    /// `log_dir/<name>.log`.
    pub async fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        env: &[(&str, String)],
        log_dir: &Path,
        deadline: Duration,
    ) -> anyhow::Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::spawn_in(None, name, program, args, env, log_dir, deadline).await
    }

    /// [`spawn`](Self::spawn) in `mount_namespace` (a restart too), where the part's data
    /// directory is a filesystem of its own ([`super::storage`]).
    pub async fn spawn_in<I, S>(
        mount_namespace: Option<Arc<OwnedFd>>,
        name: &str,
        program: &Path,
        args: I,
        env: &[(&str, String)],
        log_dir: &Path,
        deadline: Duration,
    ) -> anyhow::Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let launch = Launch {
            program: program.to_owned(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            log_dir: log_dir.to_owned(),
            deadline,
            mount_namespace,
        };
        Self::launch(name, launch, false).await
    }

    /// SIGKILLs the part, as a crash or a power cut would end it, and reaps it.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill().await;
        }
    }

    /// Whether the part is running (not killed, and not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| matches!(p.try_wait(), Ok(None)))
    }

    /// Starts the part again as it was first started (it must be down: see [`kill`](Self::kill)),
    /// appending to its log, and waits for its new ready line.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Err(anyhow!("{} is still running", self.name));
        }
        let again = Self::launch(&self.name, self.launch.clone(), true).await?;
        *self = again;
        Ok(())
    }

    async fn launch(name: &str, launch: Launch, append_log: bool) -> anyhow::Result<Child> {
        let log_path = launch.log_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append_log)
            .truncate(!append_log)
            .open(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: the hook only calls prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(protocol::chain::die_with_parent);
        }
        if let Some(namespace) = launch.mount_namespace.clone() {
            // Joining a mount namespace moves the working directory to its root: go back, as
            // the part's relative paths are relative to ours.
            let cwd = std::env::current_dir().context("cannot read the working directory")?;
            let cwd = std::ffi::CString::new(cwd.as_os_str().as_encoded_bytes())
                .context("the working directory's path holds a NUL byte")?;
            // SAFETY: the hook calls only setns and chdir, which are async-signal-safe, on a
            // descriptor and a string that outlive the fork.
            unsafe {
                command.pre_exec(move || {
                    use std::os::fd::AsRawFd;
                    if libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNS) != 0
                        || libc::chdir(cwd.as_ptr()) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut process = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", launch.program.display()))?;
        let stdout = process.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();

        let deadline = launch.deadline;
        let waited = tokio::time::timeout(deadline, async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(value) = serde_json::from_str::<Value>(&line)
                    && value["event"] == "ready"
                {
                    return Ok(Some(value));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let mut child = Child {
            name: name.to_owned(),
            process: Some(process),
            log_path,
            launch,
            ready: Value::Null,
        };
        match waited {
            Ok(Ok(Some(ready))) => {
                child.ready = ready;
                // Keep draining stdout into nothing so the child never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(child)
            }
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait_exit(Duration::from_secs(2)).await;
                Err(anyhow!(
                    "{name} exited before it was ready ({status}); last lines of {}:\n{}",
                    child.log_path.display(),
                    child.log_tail()
                ))
            }
            Err(_) => Err(anyhow!(
                "{name} was not ready within {deadline:?}; last lines of {}:\n{}",
                child.log_path.display(),
                child.log_tail()
            )),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.id())
    }

    /// A field of the ready line as a string (e.g. `service_uri`).
    pub fn ready_str(&self, key: &str) -> anyhow::Result<&str> {
        self.ready[key].as_str().ok_or_else(|| {
            anyhow!(
                "{} announced no `{key}` in its ready line: {}",
                self.name,
                self.ready
            )
        })
    }

    async fn wait_exit(&mut self, timeout: Duration) -> String {
        let Some(process) = self.process.as_mut() else {
            return "not running".into();
        };
        match tokio::time::timeout(timeout, process.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(error)) => format!("unknown ({error})"),
            Err(_) => "still running".into(),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if tail.is_empty() {
            "  (empty)".into()
        } else {
            tail.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }

    /// SIGTERM, then SIGKILL after a grace period; waits for the exit.
    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    async fn stop_in_place(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        if let Some(pid) = process.id() {
            // SAFETY: sending a signal to our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            if tokio::time::timeout(TERM_GRACE, process.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = process.kill().await;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(process) = self.process.as_mut()
            && let Some(pid) = process.id()
        {
            // SAFETY: signalling our own child. `kill_on_drop` follows with SIGKILL when the
            // handle drops, so a child that ignores SIGTERM still dies. Drop is the emergency
            // path (a panic, an early return): `stop()` is the graceful one, so the wait here
            // is short to avoid blocking a runtime thread.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + DROP_GRACE;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = process.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A zombie still has a /proc entry; check its state too.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    async fn shell(
        name: &str,
        script: &str,
        dir: &Path,
        deadline: Duration,
    ) -> anyhow::Result<Child> {
        Child::spawn(
            name,
            Path::new("/bin/sh"),
            ["-c", script],
            &[],
            dir,
            deadline,
        )
        .await
    }

    #[tokio::test]
    async fn waits_for_the_ready_line_and_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let child = shell(
            "part",
            r#"echo starting; echo '{"event":"ready","service_uri":"https://127.0.0.1:1"}'; exec sleep 60"#,
            dir.path(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(
            child.ready_str("service_uri").unwrap(),
            "https://127.0.0.1:1"
        );
        assert!(child.ready_str("missing").is_err());
        let pid = child.pid().unwrap();
        assert!(alive(pid));
        child.stop().await;
        assert!(!alive(pid));
    }

    /// Starts a part from `script` that must fail to get ready within `ready_within`, and asserts
    /// its error starts with `headline` and quotes `log` from what the part printed.
    async fn assert_start_fails(
        name: &str,
        script: &str,
        ready_within: Duration,
        headline: &str,
        log: &str,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let error = match shell(name, script, dir.path(), ready_within).await {
            Ok(_) => panic!("{name} got ready but must not"),
            Err(error) => error.to_string(),
        };
        assert!(error.starts_with(headline), "{error}");
        assert!(error.contains(log), "{error}");
    }

    #[tokio::test]
    async fn a_part_that_exits_early_or_never_gets_ready_is_named_with_its_log() {
        let cases = [
            (
                "broadcaster",
                "echo 'bind: address in use' >&2; exit 3",
                Duration::from_secs(10),
                "broadcaster exited before it was ready (exit status: 3)",
                "bind: address in use",
            ),
            (
                "orchestrator-1",
                "echo waiting >&2; exec sleep 60",
                Duration::from_millis(300),
                "orchestrator-1 was not ready within 300ms",
                "waiting",
            ),
        ];
        for (name, script, ready_within, headline, log) in cases {
            assert_start_fails(name, script, ready_within, headline, log).await;
        }
    }

    #[tokio::test]
    async fn a_killed_child_restarts_as_it_was_started_and_keeps_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Child::spawn(
            "orchestrator-0",
            Path::new("/bin/sh"),
            [
                "-c",
                r#"echo "started with $ARG" >&2; echo "{\"event\":\"ready\",\"pid\":$$}"; exec sleep 60"#,
            ],
            &[("ARG", "the secret".to_owned())],
            dir.path(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let first = child.pid().unwrap();
        assert!(child.is_running());
        assert!(
            child
                .restart()
                .await
                .unwrap_err()
                .to_string()
                .contains("still running")
        );
        child.kill().await;
        assert!(!child.is_running());
        assert!(!alive(first));
        child.restart().await.unwrap();
        let second = child.pid().unwrap();
        assert_ne!(first, second);
        assert_eq!(child.ready["pid"], second);
        let log = std::fs::read_to_string(dir.path().join("orchestrator-0.log")).unwrap();
        assert_eq!(log, "started with the secret\nstarted with the secret\n");
        child.stop().await;
        assert!(!alive(second));
    }

    #[tokio::test]
    async fn dropping_a_child_that_ignores_sigterm_still_kills_it() {
        let dir = tempfile::tempdir().unwrap();
        let child = shell(
            "stubborn",
            r#"trap '' TERM; echo '{"event":"ready"}'; while true; do sleep 0.1; done"#,
            dir.path(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let pid = child.pid().unwrap();
        drop(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "pid {pid} survived its handle");
    }
}
