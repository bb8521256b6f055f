//! Generated images kept for `media = "url"`: bounded by count and age so a long run or a
//! hostile client cannot grow the worker's memory without limit.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use axum::body::Bytes;

pub const MAX_ITEMS: usize = 256;
pub const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
pub struct MediaStore {
    items: VecDeque<(String, Instant, Bytes)>,
    next: u64,
}

impl MediaStore {
    /// Keeps `png` and returns its id.
    pub fn insert(&mut self, png: Bytes) -> String {
        self.prune();
        if self.items.len() >= MAX_ITEMS {
            self.items.pop_front();
        }
        self.next += 1;
        // The random half keeps ids unguessable across restarts on the same port.
        let salt = std::collections::hash_map::RandomState::new().hash_one(self.next) as u32;
        let id = format!("{:08x}{salt:08x}", self.next);
        self.items.push_back((id.clone(), Instant::now(), png));
        id
    }

    pub fn get(&mut self, id: &str) -> Option<Bytes> {
        self.prune();
        self.items
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, _, png)| png.clone())
    }

    fn prune(&mut self) {
        while self
            .items
            .front()
            .is_some_and(|(_, at, _)| at.elapsed() >= TTL)
        {
            self.items.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count() {
        let mut store = MediaStore::default();
        let first = store.insert(Bytes::from_static(&[1]));
        assert_eq!(store.get(&first).unwrap().as_ref(), &[1]);
        for i in 0..MAX_ITEMS {
            store.insert(Bytes::from(vec![i as u8]));
        }
        assert!(store.get(&first).is_none());
        assert_eq!(store.items.len(), MAX_ITEMS);
        assert!(store.get("nope").is_none());
    }
}
