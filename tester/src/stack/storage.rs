//! Data directories on filesystems of their own, so that a `disk_full` chaos event fills a real
//! filesystem: the node's writes fail with ENOSPC, as on a full disk, and nothing else on the
//! machine runs out of space.
//!
//! Each directory is a size-limited tmpfs mounted in a private mount namespace that the stack
//! makes, never in the machine's own mount table. A holder process (`sleep infinity`, which dies
//! with lpt) creates the namespace and mounts; the nodes that own the directories are started
//! inside it (`setns` before `exec`), so a node restarted by a chaos event finds its files again.
//! lpt reaches the files through the holder's root, `/proc/<holder>/root/<dir>`. The namespace
//! and its mounts end with the last process in it, however lpt ends; when the stack stops
//! normally, [`OwnFilesystems::copy_out`] first copies the files to the same paths in the run
//! directory, where they stay readable after the run.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

/// Each filesystem's size: far more than a test run's segment window or ticket journal holds
/// (tmpfs takes memory only for what is written), so only a `disk_full` event fills it.
pub const FILESYSTEM_BYTES: u64 = 512 << 20;

/// The file a `disk_full` event fills a filesystem with.
const FILLER: &str = ".lpt-disk-full";

/// Size-limited filesystems at given directories, in a mount namespace of their own.
pub struct OwnFilesystems {
    holder: std::process::Child,
    namespace: Arc<OwnedFd>,
    dirs: Vec<PathBuf>,
}

impl OwnFilesystems {
    /// Creates each of `dirs` (absolute paths) and mounts a tmpfs of `bytes` on it in a new
    /// mount namespace. Fails, saying why, where mount namespaces or tmpfs mounts are not
    /// permitted (they need CAP_SYS_ADMIN, e.g. root outside a restricted container).
    pub fn mount(dirs: &[PathBuf], bytes: u64) -> anyhow::Result<OwnFilesystems> {
        for dir in dirs {
            if !dir.is_absolute() {
                return Err(anyhow!("{} is not an absolute path", dir.display()));
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // Everything the hook needs is made before the fork: after it only syscalls may run.
        let targets: Vec<CString> = dirs
            .iter()
            .map(|dir| CString::new(dir.as_os_str().as_bytes()))
            .collect::<Result<_, _>>()
            .context("a data directory's path holds a NUL byte")?;
        let options = CString::new(format!("size={bytes},mode=0700")).expect("no NUL");
        let mut command = std::process::Command::new("sleep");
        command
            .arg("infinity")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: the hook calls only prctl, unshare and mount, which are async-signal-safe, on
        // memory allocated before the fork.
        unsafe {
            command.pre_exec(move || {
                protocol::chain::die_with_parent()?;
                make_namespace(&targets, &options)
            });
        }
        let holder = command.spawn().map_err(|error| {
            anyhow!(
                "cannot put the nodes' data directories on filesystems of their own (a tmpfs \
                 each, in a private mount namespace), which `disk_full` events fill: {error}; \
                 mount namespaces need CAP_SYS_ADMIN (run as root, or in a container started \
                 with --cap-add SYS_ADMIN)"
            )
        })?;
        let namespace = File::open(format!("/proc/{}/ns/mnt", holder.id()))
            .context("cannot open the data directories' mount namespace")?;
        Ok(OwnFilesystems {
            holder,
            namespace: Arc::new(namespace.into()),
            dirs: dirs.to_vec(),
        })
    }

    /// The mount namespace, for the nodes started in it ([`super::Child::spawn_in`]).
    pub fn namespace(&self) -> Arc<OwnedFd> {
        self.namespace.clone()
    }

    /// Whether `path` is one of these filesystems or inside one.
    pub fn holds(&self, path: &Path) -> bool {
        self.dirs.iter().any(|dir| path.starts_with(dir))
    }

    /// Where lpt reads `path` as the nodes in the namespace see it.
    pub fn inside(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(relative)
    }

    /// Where a [`Filler`] fills the filesystem at `dir`.
    pub fn filler_path(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        if !self.dirs.iter().any(|d| d == dir) {
            return Err(anyhow!("{} is not a filesystem of its own", dir.display()));
        }
        Ok(self.inside(dir).join(FILLER))
    }

    /// Copies the files of every directory out of the namespace to the same paths in lpt's own
    /// view (the directories' underlying, empty, copies), for reading after the run.
    pub fn copy_out(&self) -> anyhow::Result<()> {
        for dir in &self.dirs {
            copy_tree(&self.inside(dir), dir)
                .with_context(|| format!("cannot copy {} out", dir.display()))?;
        }
        Ok(())
    }
}

impl Drop for OwnFilesystems {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// How often a [`Filler`] takes back the space its node freed.
const KEEP_FULL_EVERY: Duration = Duration::from_millis(10);

/// What fills a filesystem and keeps it full: a node that deletes files (the broadcaster drops
/// segments that leave its window) finds the space taken again within [`KEEP_FULL_EVERY`], as
/// when another writer keeps a real disk full. [`release`](Self::release) (or dropping it)
/// removes the filler, and the space is free again.
pub struct Filler {
    path: PathBuf,
    /// What the first fill wrote, and how long it took.
    pub bytes: u64,
    pub took: Duration,
    stop: Arc<AtomicBool>,
    keeper: Option<std::thread::JoinHandle<u64>>,
}

impl Filler {
    /// Fills the filesystem that holds `path` (see [`OwnFilesystems::filler_path`]) to its last
    /// block with a file at `path`, and keeps it full from a thread of its own. Blocking: up to
    /// [`FILESYSTEM_BYTES`] are written.
    pub fn fill(path: PathBuf) -> anyhow::Result<Filler> {
        let started = Instant::now();
        let mut file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let bytes = match write_until_full(&mut file, 1 << 20)
            .and_then(|large| Ok(large + write_until_full(&mut file, 4096)?))
        {
            Ok(bytes) => bytes,
            Err(error) => {
                let _ = file.set_len(0);
                let _ = std::fs::remove_file(&path);
                return Err(error).context(format!("cannot write {}", path.display()));
            }
        };
        let took = started.elapsed();
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = std::thread::Builder::new()
            .name("lpt-disk-full".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let mut taken_back = 0;
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(KEEP_FULL_EVERY);
                        // A write that fails otherwise than ENOSPC: nothing more to take back.
                        taken_back += write_until_full(&mut file, 4096).unwrap_or(0);
                    }
                    // Truncated, the space is free at once, even while a process forked in the
                    // meantime (lpt starts nodes) still holds the descriptor until its exec.
                    let _ = file.set_len(0);
                    taken_back
                }
            })
            .context("cannot start the thread that keeps the disk full")?;
        Ok(Filler {
            path,
            bytes,
            took,
            stop,
            keeper: Some(keeper),
        })
    }

    /// Frees the space; returns how much the node had freed meanwhile and the filler took
    /// back.
    pub fn release(mut self) -> u64 {
        self.stop_keeping()
    }

    fn stop_keeping(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let taken_back = self
            .keeper
            .take()
            .and_then(|keeper| keeper.join().ok())
            .unwrap_or(0);
        let _ = std::fs::remove_file(&self.path);
        taken_back
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.stop_keeping();
    }
}

/// Writes `chunk`-sized blocks of zeros to `file` until the filesystem refuses one for want of
/// space; returns what was written.
fn write_until_full(file: &mut File, chunk: usize) -> std::io::Result<u64> {
    let zeros = vec![0u8; chunk];
    let mut bytes = 0;
    loop {
        match file.write(&zeros) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes += n as u64,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => return Ok(bytes),
            Err(error) => return Err(error),
        }
    }
}

/// In the forked child: a new mount namespace whose changes do not reach the machine's, with a
/// tmpfs on each target.
fn make_namespace(targets: &[CString], options: &CString) -> std::io::Result<()> {
    let check = |result: libc::c_int| {
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for target in targets {
            check(libc::mount(
                c"lpt-data".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            ))?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == FILLER {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_filesystem_refuses_writes_until_the_filler_goes_and_the_host_never_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let fs = OwnFilesystems::mount(std::slice::from_ref(&data), 1 << 20)
            .expect("mount namespaces are needed (run the tests as root)");
        let inside = fs.inside(&data);
        std::fs::write(inside.join("kept"), b"segment").unwrap();
        // The host's view of the directory is its own, empty one.
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);

        let filler = Filler::fill(fs.filler_path(&data).unwrap()).unwrap();
        // All but the page "kept" takes, give or take a page of the filesystem's own.
        let mib = 1u64 << 20;
        assert!(
            (mib - 3 * 4096..=mib - 4096).contains(&filler.bytes),
            "filled {} of 1 MiB",
            filler.bytes
        );
        let error = std::fs::write(inside.join("more"), vec![1u8; 8192]).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
        // Space the node frees is taken back: the disk stays full.
        std::fs::remove_file(inside.join("kept")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::write(inside.join("probe"), b"x").is_ok() {
            std::fs::remove_file(inside.join("probe")).unwrap();
            assert!(
                Instant::now() < deadline,
                "the freed page was not taken back"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(filler.release(), 4096);
        std::fs::write(inside.join("more"), vec![1u8; 8192]).unwrap();
        std::fs::write(inside.join("kept"), b"segment").unwrap();

        fs.copy_out().unwrap();
        assert_eq!(std::fs::read(data.join("kept")).unwrap(), b"segment");
        assert_eq!(std::fs::read(data.join("more")).unwrap().len(), 8192);
        assert!(!data.join(FILLER).exists());
        let holder = fs.holder.id();
        drop(fs);
        assert!(
            !Path::new(&format!("/proc/{holder}")).exists(),
            "holder {holder} lives on"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains("lpt-data"), "{mounts}");
    }
}
