//! Where HLS segment bytes live while they are in a playlist window: in memory, or in files.
//!
//! In memory, every stream holds `window × renditions × segment size` bytes of its own heap: about
//! 9 MiB for a 2 Mbps stream with two source-sized renditions and a window of 6. With a segment
//! directory (`hls_dir`, as nginx-rtmp writes its HLS fragments) each segment is written once to a
//! file and read back per request: the bytes sit in the kernel's page cache, which the kernel can
//! reclaim under pressure, not in the node's resident memory. A file is removed when its segment
//! leaves the window and the last request reading it is done (reference-counted), and the
//! broadcaster's own subdirectory is removed when it stops.
//!
//! Files also carry a stream across a crash, as nginx-rtmp's `hls_continuous` playlists do: a
//! broadcaster killed mid-stream leaves its window's files, and the one started after it on the
//! same `hls_dir` lists them again and numbers on from them when the stream is published again
//! (see [`crate::stream`]), so a player polling the same URL never sees its numbers go back
//! (RFC 8216 §6.2.2). A file's name records what its playlist entry needs ([`SegmentName`]:
//! stream, rendition, sequence number, place, duration, discontinuity), and a file is written under
//! a temporary name and renamed, so a name is never seen before its bytes are whole. This
//! survives the process's death, not the machine's: nothing is synced to disk.
//!
//! Each broadcaster takes the first subdirectory `broadcaster-<n>` of `hls_dir` that no running
//! broadcaster holds, and holds it with an advisory lock (`flock`) for as long as it runs; the
//! kernel drops the lock when the process dies, however it dies. So several broadcasters can
//! share one `hls_dir`, and the one restarted after a crash takes the directory its predecessor
//! left (the lowest free one: with several crashed at once, each restarted one may take another's,
//! and then numbers its streams from 0 again). What a predecessor left and nobody published again
//! is removed once an ended stream would have been forgotten ([`SegmentStore::forget_left_after`]).

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hls::Place;

/// Broadcasters that can share one `hls_dir`.
const MAX_SLOTS: u32 = 1024;
/// Separates the fields of a file name: no manifest ID or rendition name has it.
const SEP: char = '~';

/// Where segments are kept.
#[derive(Debug)]
pub struct SegmentStore {
    /// This broadcaster's own subdirectory, when segments go to files.
    dir: Option<PathBuf>,
    /// The open directory whose `flock` marks it taken while this broadcaster runs.
    _lock: Option<File>,
    removed: AtomicBool,
    next_file: AtomicU64,
    /// Segments a crashed predecessor left, by stream, until published again or forgotten.
    left: Mutex<HashMap<String, Vec<LeftSegment>>>,
    opened: Instant,
}

/// One segment's bytes, wherever they are.
#[derive(Debug, Clone)]
pub enum SegmentBody {
    Memory(Bytes),
    File(Arc<SpilledSegment>),
}

/// A segment written to a file; the file goes when the last holder does.
#[derive(Debug)]
pub struct SpilledSegment {
    path: PathBuf,
    len: usize,
}

impl Drop for SpilledSegment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a segment file's name records: its playlist entry, enough to list it again after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    /// Manifest ID.
    pub stream: String,
    /// Rendition name.
    pub rendition: String,
    /// Stream sequence number (the segment's URI).
    pub seq: u64,
    /// Its place in the rendition's playlist.
    pub place: Place,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Preceded by `#EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
}

impl SegmentName {
    /// `<stream>~<rendition>~<seq>~<msn>~<dsn>~<duration>~<d|c>~<n>.ts`: `n` (the store's file
    /// counter) keeps a segment written again under the same number from replacing the file a
    /// reader still holds.
    fn file_name(&self, n: u64) -> String {
        format!(
            "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{n}.ts",
            self.stream,
            self.rendition,
            self.seq,
            self.place.media_sequence,
            self.place.discontinuity_sequence,
            self.duration_ms,
            if self.discontinuity { 'd' } else { 'c' },
        )
    }

    /// Reads a name [`file_name`](Self::file_name) wrote; anything else is `None`.
    fn parse(file_name: &str) -> Option<(SegmentName, u64)> {
        let fields: Vec<&str> = file_name.strip_suffix(".ts")?.split(SEP).collect();
        let [stream, rendition, seq, msn, dsn, duration, disc, n] = fields[..] else {
            return None;
        };
        let discontinuity = match disc {
            "d" => true,
            "c" => false,
            _ => return None,
        };
        if stream.is_empty() || rendition.is_empty() {
            return None;
        }
        let name = SegmentName {
            stream: stream.to_string(),
            rendition: rendition.to_string(),
            seq: seq.parse().ok()?,
            place: Place {
                media_sequence: msn.parse().ok()?,
                discontinuity_sequence: dsn.parse().ok()?,
            },
            duration_ms: duration.parse().ok()?,
            discontinuity,
        };
        Some((name, n.parse().ok()?))
    }
}

/// A segment file a crashed predecessor left.
#[derive(Debug)]
pub struct LeftSegment {
    /// Its playlist entry.
    pub name: SegmentName,
    /// Its bytes (the file is removed when this goes).
    pub body: SegmentBody,
}

impl SegmentStore {
    /// Segments in memory.
    pub fn memory() -> Self {
        Self {
            dir: None,
            _lock: None,
            removed: AtomicBool::new(false),
            next_file: AtomicU64::new(0),
            left: Mutex::new(HashMap::new()),
            opened: Instant::now(),
        }
    }

    /// Segments in files under `parent/broadcaster-<n>`, the first such directory no running
    /// broadcaster holds; whatever a crashed broadcaster left there is indexed for
    /// [`take_left`](Self::take_left).
    pub fn files(parent: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(parent)?;
        let mut slot = 0;
        while slot < MAX_SLOTS {
            let dir = parent.join(format!("broadcaster-{slot}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let lock = match File::open(&dir) {
                Ok(lock) => lock,
                // Removed by a broadcaster stopping just now: look at the same slot again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    slot += 1;
                    continue;
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
            if !still_at(&lock, &dir) {
                continue;
            }
            let (left, next_file) = index_left(&dir)?;
            return Ok(Self {
                dir: Some(dir),
                _lock: Some(lock),
                removed: AtomicBool::new(false),
                next_file: AtomicU64::new(next_file),
                left: Mutex::new(left),
                opened: Instant::now(),
            });
        }
        Err(std::io::Error::other(format!(
            "{MAX_SLOTS} broadcasters already keep segments in {}",
            parent.display()
        )))
    }

    /// Keeps `data` as the segment `name`. A file that cannot be written (disk full, directory
    /// removed) keeps the segment in memory instead: serving it matters more than where it sits.
    pub fn keep(&self, name: &SegmentName, data: Bytes) -> SegmentBody {
        let Some(dir) = &self.dir else {
            return SegmentBody::Memory(data);
        };
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(name.file_name(n));
        let part = dir.join(format!("{n}.part"));
        match std::fs::write(&part, &data).and_then(|()| std::fs::rename(&part, &path)) {
            Ok(()) => SegmentBody::File(Arc::new(SpilledSegment {
                path,
                len: data.len(),
            })),
            Err(e) => {
                tracing::warn!(
                    "cannot write segment {}: {e}; kept in memory",
                    path.display()
                );
                let _ = std::fs::remove_file(&part);
                SegmentBody::Memory(data)
            }
        }
    }

    /// The segments of `stream` a crashed predecessor left (each once: taking them hands their
    /// files to the caller).
    pub fn take_left(&self, stream: &str) -> Vec<LeftSegment> {
        self.left().remove(stream).unwrap_or_default()
    }

    /// Removes what a crashed predecessor left for streams not published again within `keep`
    /// of this store's opening (the time an ended stream stays playable).
    pub fn forget_left_after(&self, keep: Duration) {
        if self.opened.elapsed() >= keep {
            let forgotten = std::mem::take(&mut *self.left());
            drop(forgotten);
        }
    }

    fn left(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<LeftSegment>>> {
        self.left.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends this store as the death of its process would: the lock goes, every file stays.
    #[cfg(test)]
    pub(crate) fn crash(mut self) {
        self._lock = None;
        self.removed.store(true, Ordering::SeqCst);
        for segment in self.left().drain().flat_map(|(_, s)| s) {
            std::mem::forget(segment);
        }
    }

    /// Removes this broadcaster's segment files (at shutdown: the streams may outlive it in
    /// tasks still winding down, and an exiting process runs no destructors). Only once: after
    /// it, the directory's name may belong to the next broadcaster.
    pub fn remove_all(&self) {
        if let Some(dir) = &self.dir
            && !self.removed.swap(true, Ordering::SeqCst)
        {
            self.left().clear();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for SegmentStore {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Whether the locked directory is still the one at `dir` (not removed by a broadcaster that
/// stopped between our `open` and our lock).
fn still_at(lock: &File, dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (lock.metadata(), std::fs::metadata(dir)) {
            (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = lock;
        dir.is_dir()
    }
}

/// Indexes the segment files in `dir` by stream, removing what is not one (a write cut short by
/// the crash); returns them with the first file number not in use.
fn index_left(dir: &Path) -> std::io::Result<(HashMap<String, Vec<LeftSegment>>, u64)> {
    let mut left: HashMap<String, Vec<LeftSegment>> = HashMap::new();
    let mut next_file = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let parsed = entry.file_name().to_str().and_then(SegmentName::parse);
        let meta = entry.metadata()?;
        let (Some((name, n)), true) = (parsed, meta.is_file()) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        next_file = next_file.max(n + 1);
        let segment = LeftSegment {
            body: SegmentBody::File(Arc::new(SpilledSegment {
                path,
                len: meta.len() as usize,
            })),
            name,
        };
        left.entry(segment.name.stream.clone())
            .or_default()
            .push(segment);
    }
    Ok((left, next_file))
}

impl SegmentBody {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(data) => data.len(),
            Self::File(file) => file.len,
        }
    }

    /// Whether the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes (read from the file for a spilled segment).
    pub async fn bytes(&self) -> std::io::Result<Bytes> {
        match self {
            Self::Memory(data) => Ok(data.clone()),
            Self::File(file) => tokio::fs::read(&file.path).await.map(Bytes::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(stream: &str, rendition: &str, seq: u64) -> SegmentName {
        SegmentName {
            stream: stream.into(),
            rendition: rendition.into(),
            seq,
            place: Place {
                media_sequence: seq,
                discontinuity_sequence: 1,
            },
            duration_ms: 2000,
            discontinuity: seq == 3,
        }
    }

    #[test]
    fn a_name_records_the_entry_and_reads_back() {
        let n = name("cam-1.x_y", "P240p30fps16x9", 17);
        let file = n.file_name(4);
        assert_eq!(file, "cam-1.x_y~P240p30fps16x9~17~17~1~2000~c~4.ts");
        assert_eq!(SegmentName::parse(&file), Some((n, 4)));
        for foreign in [
            "3.part",
            "17.ts",
            "a~b~1~1~0~2000~x~0.ts",
            "a~b~1~1~0~2000~c~0",
            "~b~1~1~0~2000~c~0.ts",
        ] {
            assert_eq!(SegmentName::parse(foreign), None, "{foreign}");
        }
    }

    #[tokio::test]
    async fn files_hold_the_bytes_until_the_last_holder_goes() {
        let parent = tempfile::tempdir().unwrap();
        let store = SegmentStore::files(parent.path()).unwrap();
        let body = store.keep(
            &name("s", "source", 0),
            Bytes::from_static(b"segment bytes"),
        );
        let SegmentBody::File(file) = &body else {
            panic!("not spilled: {body:?}");
        };
        let path = file.path.clone();
        assert_eq!(body.len(), 13);
        assert_eq!(
            body.bytes().await.unwrap(),
            Bytes::from_static(b"segment bytes")
        );
        let reader = body.clone();
        drop(body);
        assert!(path.exists(), "a reader still holds it");
        drop(reader);
        assert!(!path.exists());
        let dir = path.parent().unwrap().to_owned();
        drop(store);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn memory_keeps_the_bytes_and_a_broken_directory_falls_back_to_memory() {
        let body = SegmentStore::memory().keep(&name("s", "source", 0), Bytes::from_static(b"x"));
        assert!(matches!(body, SegmentBody::Memory(_)));
        let parent = tempfile::tempdir().unwrap();
        let store = SegmentStore::files(parent.path()).unwrap();
        std::fs::remove_dir_all(store.dir.as_ref().unwrap()).unwrap();
        let body = store.keep(&name("s", "source", 0), Bytes::from_static(b"still served"));
        assert!(matches!(body, SegmentBody::Memory(_)));
        assert_eq!(
            body.bytes().await.unwrap(),
            Bytes::from_static(b"still served")
        );
    }

    #[test]
    fn running_broadcasters_each_hold_their_own_directory() {
        let parent = tempfile::tempdir().unwrap();
        let first = SegmentStore::files(parent.path()).unwrap();
        let second = SegmentStore::files(parent.path()).unwrap();
        assert_eq!(first.dir, Some(parent.path().join("broadcaster-0")));
        assert_eq!(second.dir, Some(parent.path().join("broadcaster-1")));
        drop(first);
        // A stopped broadcaster's directory is removed and free again.
        let third = SegmentStore::files(parent.path()).unwrap();
        assert_eq!(third.dir, Some(parent.path().join("broadcaster-0")));
        drop(second);
        drop(third);
    }

    #[tokio::test]
    async fn the_next_broadcaster_takes_what_a_crashed_one_left() {
        let parent = tempfile::tempdir().unwrap();
        let store = SegmentStore::files(parent.path()).unwrap();
        let dir = store.dir.clone().unwrap();
        let kept: Vec<SegmentBody> = (2..5)
            .map(|seq| store.keep(&name("cam", "source", seq), Bytes::from(vec![seq as u8; 9])))
            .collect();
        std::mem::forget(store.keep(&name("other", "source", 0), Bytes::from_static(b"o")));
        // A write the crash cut short.
        std::fs::write(dir.join("9.part"), b"half").unwrap();
        std::mem::forget(kept);
        store.crash();

        let next = SegmentStore::files(parent.path()).unwrap();
        assert_eq!(next.dir.as_ref(), Some(&dir), "the crashed one's directory");
        assert!(!dir.join("9.part").exists(), "a partial write is removed");
        let mut cam = next.take_left("cam");
        cam.sort_by_key(|s| s.name.seq);
        let seqs: Vec<u64> = cam.iter().map(|s| s.name.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
        assert_eq!(cam[1].name, name("cam", "source", 3));
        assert_eq!(
            cam[2].body.bytes().await.unwrap(),
            Bytes::from(vec![4u8; 9])
        );
        assert!(next.take_left("cam").is_empty(), "handed out once");
        // New files never take a name a left one has.
        let body = next.keep(&name("cam", "source", 5), Bytes::from_static(b"new"));
        let SegmentBody::File(file) = &body else {
            panic!("not spilled")
        };
        assert!(file.path.to_str().unwrap().ends_with("~4.ts"), "{file:?}");

        // Streams nobody published again are removed once the retention has passed.
        let other = dir.join("other~source~0~0~1~2000~c~3.ts");
        assert!(other.exists());
        next.forget_left_after(Duration::from_secs(3600));
        assert!(other.exists(), "still within the retention");
        next.forget_left_after(Duration::ZERO);
        assert!(!other.exists());
        drop(cam);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "only the new one"
        );
    }
}
