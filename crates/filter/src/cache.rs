//! The bounded grant cache of one Envoy worker: token hash to grant (or to "unknown", briefly).

use lru::LruCache;
use std::num::NonZeroUsize;
use std::rc::Rc;
use tollgate_core::{Grant, TokenHash};

#[derive(Debug, Clone)]
pub struct Entry {
    /// `None`: the server said the token is unknown (negative entry).
    pub grant: Option<Rc<Grant>>,
    /// When the server answered, in ms.
    pub fetched_ms: u64,
}

pub struct GrantCache {
    entries: LruCache<TokenHash, Entry>,
}

impl GrantCache {
    pub fn new(capacity: usize) -> GrantCache {
        GrantCache {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    pub fn get(&mut self, hash: &TokenHash) -> Option<Entry> {
        self.entries.get(hash).cloned()
    }

    pub fn insert(&mut self, hash: TokenHash, entry: Entry) {
        self.entries.put(hash, entry);
    }

    /// Evicts a hash the feed reported (added, changed or revoked: re-resolve on next use).
    pub fn evict(&mut self, hash: &TokenHash) -> bool {
        self.entries.pop(hash).is_some()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
