//! In-memory object store for renditions (and for source segments handed to remote transcoders),
//! served by HTTP GET at the URLs put in `TranscodeResult`.
//!
//! Design: broadcasters download each rendition right after the result arrives, so a bounded,
//! first-in-first-out memory store is enough: entries leave when the total size passes a byte
//! budget or when they get older than a retention time, whichever comes first. Values are
//! `Bytes`, so serving a rendition clones a reference count, not the video.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A bounded FIFO of named byte blobs.
#[derive(Debug)]
pub struct ObjectStore {
    max_bytes: usize,
    max_age: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<String, Bytes>,
    order: VecDeque<(Instant, String)>,
    bytes: usize,
}

impl ObjectStore {
    /// A store holding at most `max_bytes` for at most `max_age`.
    pub fn new(max_bytes: usize, max_age: Duration) -> Self {
        Self {
            max_bytes,
            max_age,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Stores `data` under `name`, evicting the oldest entries beyond the budget.
    pub fn put(&self, name: String, data: Bytes) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.bytes += data.len();
        if let Some(old) = inner.objects.insert(name.clone(), data) {
            inner.bytes -= old.len();
        }
        inner.order.push_back((Instant::now(), name));
        self.evict(&mut inner);
    }

    /// The object under `name`, if still held.
    pub fn get(&self, name: &str) -> Option<Bytes> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.evict(&mut inner);
        inner.objects.get(name).cloned()
    }

    /// Removes `name`.
    pub fn remove(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.objects.remove(name) {
            inner.bytes -= old.len();
        }
    }

    /// Objects and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.objects.len(), inner.bytes)
    }

    fn evict(&self, inner: &mut Inner) {
        let now = Instant::now();
        while let Some((at, name)) = inner.order.front() {
            let too_big = inner.bytes > self.max_bytes;
            let too_old = now.duration_since(*at) > self.max_age;
            if !too_big && !too_old {
                break;
            }
            let name = name.clone();
            inner.order.pop_front();
            // A name re-put later has a newer order entry; only the newest one removes it.
            if inner.order.iter().any(|(_, n)| *n == name) {
                continue;
            }
            if let Some(old) = inner.objects.remove(&name) {
                inner.bytes -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_past_the_byte_budget() {
        let store = ObjectStore::new(10, Duration::from_secs(60));
        store.put("a".into(), Bytes::from_static(b"123456"));
        store.put("b".into(), Bytes::from_static(b"1234"));
        assert_eq!(store.usage(), (2, 10));
        store.put("c".into(), Bytes::from_static(b"12"));
        assert!(store.get("a").is_none());
        assert_eq!(store.get("b").unwrap(), Bytes::from_static(b"1234"));
        assert_eq!(store.usage(), (2, 6));
        store.remove("b");
        assert_eq!(store.usage(), (1, 2));
    }

    #[test]
    fn evicts_by_age() {
        let store = ObjectStore::new(100, Duration::ZERO);
        store.put("a".into(), Bytes::from_static(b"1"));
        assert!(store.get("a").is_none());
    }
}
