//! Where HLS segment bytes live while they are in a playlist window: in memory, or in files.
//!
//! In memory, every stream holds `window × renditions × segment size` bytes of its own heap: about
//! 9 MiB for a 2 Mbps stream with two source-sized renditions and a window of 6. With a segment
//! directory (`hls_dir`, as nginx-rtmp writes its HLS fragments) each segment is written once to a
//! file and read back per request: the bytes sit in the kernel's page cache, which the kernel can
//! reclaim under pressure, not in the node's resident memory. A file is removed when its segment
//! leaves the window and the last request reading it is done (reference-counted), and the
//! broadcaster's own subdirectory is removed when it stops; a subdirectory per broadcaster keeps
//! several sharing a directory apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Where segments are kept.
#[derive(Debug)]
pub struct SegmentStore {
    /// This broadcaster's own subdirectory, when segments go to files.
    dir: Option<PathBuf>,
    next_file: AtomicU64,
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

impl SegmentStore {
    /// Segments in memory.
    pub fn memory() -> Self {
        Self {
            dir: None,
            next_file: AtomicU64::new(0),
        }
    }

    /// Segments in files under `parent/broadcaster-<pid>-<n>`, `n` counting the stores of this
    /// process (created now, emptied first if a crashed process with the same pid left it).
    pub fn files(parent: &Path) -> std::io::Result<Self> {
        static STORES: AtomicU64 = AtomicU64::new(0);
        let dir = parent.join(format!(
            "broadcaster-{}-{}",
            std::process::id(),
            STORES.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir: Some(dir),
            next_file: AtomicU64::new(0),
        })
    }

    /// Keeps `data`. A file that cannot be written (disk full, directory removed) keeps the
    /// segment in memory instead: serving it matters more than where it sits.
    pub fn keep(&self, data: Bytes) -> SegmentBody {
        let Some(dir) = &self.dir else {
            return SegmentBody::Memory(data);
        };
        let path = dir.join(format!(
            "{}.ts",
            self.next_file.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::write(&path, &data) {
            Ok(()) => SegmentBody::File(Arc::new(SpilledSegment {
                path,
                len: data.len(),
            })),
            Err(e) => {
                tracing::warn!(
                    "cannot write segment {}: {e}; kept in memory",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                SegmentBody::Memory(data)
            }
        }
    }

    /// Removes this broadcaster's segment files (at shutdown: the streams may outlive it in
    /// tasks still winding down, and an exiting process runs no destructors).
    pub fn remove_all(&self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for SegmentStore {
    fn drop(&mut self) {
        self.remove_all();
    }
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

    #[tokio::test]
    async fn files_hold_the_bytes_until_the_last_holder_goes() {
        let parent = tempfile::tempdir().unwrap();
        let store = SegmentStore::files(parent.path()).unwrap();
        let body = store.keep(Bytes::from_static(b"segment bytes"));
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
        let body = SegmentStore::memory().keep(Bytes::from_static(b"x"));
        assert!(matches!(body, SegmentBody::Memory(_)));
        let parent = tempfile::tempdir().unwrap();
        let store = SegmentStore::files(parent.path()).unwrap();
        std::fs::remove_dir_all(store.dir.as_ref().unwrap()).unwrap();
        let body = store.keep(Bytes::from_static(b"still served"));
        assert!(matches!(body, SegmentBody::Memory(_)));
        assert_eq!(
            body.bytes().await.unwrap(),
            Bytes::from_static(b"still served")
        );
    }
}
