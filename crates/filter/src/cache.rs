//! The bounded grant cache of one Envoy worker: token hash to grant, and apart from it, hashes
//! the server called unknown (briefly). Two LRUs, so that a flood of unknown tokens evicts only
//! other unknown ones, never a live grant.

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
    grants: LruCache<TokenHash, Entry>,
    /// Unknown hashes, with when the server said so (ms).
    unknown: LruCache<TokenHash, u64>,
}

impl GrantCache {
    /// Room for `capacity` grants and as many unknown hashes.
    pub fn new(capacity: usize) -> GrantCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        GrantCache {
            grants: LruCache::new(capacity),
            unknown: LruCache::new(capacity),
        }
    }

    pub fn get(&mut self, hash: &TokenHash) -> Option<Entry> {
        if let Some(entry) = self.grants.get(hash) {
            return Some(entry.clone());
        }
        self.unknown.get(hash).map(|fetched_ms| Entry {
            grant: None,
            fetched_ms: *fetched_ms,
        })
    }

    pub fn insert(&mut self, hash: TokenHash, entry: Entry) {
        match entry.grant {
            Some(_) => {
                self.unknown.pop(&hash);
                self.grants.put(hash, entry);
            }
            None => {
                self.grants.pop(&hash);
                self.unknown.put(hash, entry.fetched_ms);
            }
        }
    }

    /// Evicts a hash the feed reported (added, changed or revoked: re-resolve on next use).
    pub fn evict(&mut self, hash: &TokenHash) -> bool {
        let grant = self.grants.pop(hash).is_some();
        self.unknown.pop(hash).is_some() || grant
    }

    pub fn clear(&mut self) {
        self.grants.clear();
        self.unknown.clear();
    }

    /// Grants held (unknown hashes are not counted).
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hash(i: u8) -> TokenHash {
        TokenHash::from_bytes([i; 32])
    }

    #[test]
    fn unknown_hashes_never_evict_grants() {
        let mut cache = GrantCache::new(2);
        let grant = Entry {
            grant: Some(Rc::new(
                tollgate_proto::grant_from_wire(tollgate_proto::v1::Grant {
                    account: "a".into(),
                    tenant: "t".into(),
                    role: "viewer".into(),
                    scopes: vec!["metrics:read".into()],
                    ..Default::default()
                })
                .unwrap(),
            )),
            fetched_ms: 1,
        };
        cache.insert(hash(1), grant.clone());
        cache.insert(hash(2), grant);
        for i in 10..100 {
            cache.insert(
                hash(i),
                Entry {
                    grant: None,
                    fetched_ms: 2,
                },
            );
        }
        assert!(cache.get(&hash(1)).unwrap().grant.is_some());
        assert!(cache.get(&hash(2)).unwrap().grant.is_some());
        assert!(cache.get(&hash(99)).unwrap().grant.is_none());
        assert!(
            cache.get(&hash(10)).is_none(),
            "oldest unknown hash evicted"
        );
        assert!(cache.evict(&hash(99)) && cache.get(&hash(99)).is_none());
    }
}
