//! The live grants, in memory: an immutable [`Snapshot`] swapped atomically after every
//! committed write. Checks read the snapshot only: no lock, no disk.
//!
//! Publishing is one mechanism whatever the writer: read the change feed after the snapshot's
//! revision, re-read the grants of the hashes it names, and swap. A second replica (or a
//! restarted one) converges the same way.
//!
//! Readers that only need the snapshot (the gRPC services) hold a [`SnapshotHandle`]: it names
//! no store backend.
//!
//! May use: the store trait and the core crate. Never the service, HTTP or gRPC layers.

use crate::model::Change;
use crate::store::{AnyStore, Store, StoreError, TokenGrant};
use arc_swap::ArcSwap;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tollgate_core::membership::Membership;
use tollgate_core::{Grant, TokenHash};

/// Changes read per round while catching up.
const CATCH_UP_BATCH: u64 = 10_000;

/// Changes kept apart from the base before it is rebuilt with them: at least this many, and at
/// least an eighth of the base (so rebuilding costs O(1) amortised per change).
const COMPACT_MIN: usize = 4096;

/// The live grants: a compact base built at load (and rebuilt now and then), and the changes
/// published since, in a persistent map.
///
/// Why not one persistent map: imbl's HAMT took ~380 bytes per token at a million tokens (its
/// nodes are sparse), five times the 64-byte entries themselves. The base is a flat array.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    revision: u64,
    base: Arc<Base>,
    // Publishing a change copies O(log n) nodes of this, never the base. `None`: not live
    // (revoked since the base was built).
    changes: imbl::HashMap<TokenHash, Option<TokenGrant>>,
    len: usize,
}

impl Snapshot {
    fn from_grants(revision: u64, grants: Vec<(TokenHash, TokenGrant)>) -> Snapshot {
        let base = Base::build(grants);
        Snapshot {
            revision,
            len: base.entries.len(),
            base: Arc::new(base),
            changes: imbl::HashMap::new(),
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The token's grant, built from its compact entry (reference counts only, no copy).
    pub fn get(&self, hash: &TokenHash) -> Option<Grant> {
        self.entry(hash).map(TokenGrant::grant)
    }

    fn entry(&self, hash: &TokenHash) -> Option<&TokenGrant> {
        match self.changes.get(hash) {
            Some(change) => change.as_ref(),
            None => self.base.get(hash),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live token.
    fn entries(&self) -> impl Iterator<Item = (&TokenHash, &TokenGrant)> {
        let base = self
            .base
            .entries
            .iter()
            .filter(|(hash, _)| !self.changes.contains_key(hash))
            .map(|(hash, grant)| (hash, grant));
        let changed = self
            .changes
            .iter()
            .filter_map(|(hash, grant)| Some((hash, grant.as_ref()?)));
        base.chain(changed)
    }

    /// Sets what `hash` grants (`None`: not live).
    fn apply(&mut self, hash: TokenHash, grant: Option<TokenGrant>) {
        let was = self.entry(&hash).is_some();
        let is = grant.is_some();
        if grant.is_none() && self.base.get(&hash).is_none() {
            self.changes.remove(&hash);
        } else {
            self.changes.insert(hash, grant);
        }
        self.len = self.len.saturating_sub(usize::from(was)) + usize::from(is);
    }

    /// Folds the changes into a new base once they are many (see [`COMPACT_MIN`]).
    fn compact_if_due(&mut self) {
        if self.changes.len() < COMPACT_MIN.max(self.base.entries.len() / 8) {
            return;
        }
        let grants = self
            .entries()
            .map(|(hash, grant)| (*hash, grant.clone()))
            .collect();
        *self = Snapshot::from_grants(self.revision, grants);
    }

    /// The membership filter of every live token in this snapshot.
    pub fn membership(&self) -> Membership {
        // Room for a quarter more tokens before the false-positive rate climbs (it is rebuilt
        // now and then, see the Watch service).
        let len = self.len;
        Membership::build(
            len.saturating_add(len / 4),
            self.entries().map(|(hash, _)| hash),
        )
    }

    /// Per tenant, the earliest expiry (Unix seconds) among its live tokens that expire after
    /// `now`: what an alert on tokens about to lapse needs. Tenants whose tokens never expire
    /// are absent.
    pub fn next_expiry_by_tenant(&self, now: u64) -> std::collections::BTreeMap<String, u64> {
        let mut soonest = std::collections::BTreeMap::new();
        for (_, grant) in self.entries() {
            let Some(at) = grant.expires_at.filter(|at| *at > now) else {
                continue;
            };
            soonest
                .entry(grant.account().tenant.to_string())
                .and_modify(|s: &mut u64| *s = (*s).min(at))
                .or_insert(at);
        }
        soonest
    }
}

/// Grants in a flat array sorted by the first 8 bytes of their hash, with a radix index on
/// those bytes' top bits: 64 bytes per token plus 8 per index slot (about one per token), and
/// a lookup reads one index slot and about one entry. (SHA-256 hashes are uniform, so the
/// buckets are even.)
struct Base {
    entries: Box<[(TokenHash, TokenGrant)]>,
    /// `starts[b]..starts[b + 1]`: the entries whose prefix's top `bits` bits are `b`.
    starts: Box<[usize]>,
    bits: u32,
}

impl Base {
    fn build(mut grants: Vec<(TokenHash, TokenGrant)>) -> Base {
        grants.sort_unstable_by_key(|(hash, _)| prefix(hash));
        let bits = grants.len().next_power_of_two().trailing_zeros();
        let mut starts = vec![0usize; (1usize << bits) + 1];
        for (hash, _) in &grants {
            if let Some(count) = starts.get_mut(bucket(prefix(hash), bits) + 1) {
                *count += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        Base {
            entries: grants.into_boxed_slice(),
            starts: starts.into_boxed_slice(),
            bits,
        }
    }

    fn get(&self, hash: &TokenHash) -> Option<&TokenGrant> {
        let b = bucket(prefix(hash), self.bits);
        let (Some(&from), Some(&to)) = (self.starts.get(b), self.starts.get(b + 1)) else {
            return None;
        };
        self.entries
            .get(from..to)?
            .iter()
            .find(|(candidate, _)| candidate == hash)
            .map(|(_, grant)| grant)
    }
}

impl Default for Base {
    fn default() -> Base {
        Base::build(Vec::new())
    }
}

impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Base")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn prefix(hash: &TokenHash) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = *hash.as_bytes();
    u64::from_be_bytes([a, b, c, d, e, f, g, h])
}

/// The top `bits` bits of `prefix`.
fn bucket(prefix: u64, bits: u32) -> usize {
    prefix.checked_shr(64 - bits).unwrap_or(0) as usize
}

/// The snapshot and the store it is published from. `S` defaults to the [`AnyStore`] that
/// `serve` opens; tests and tools may hold a backend directly.
pub struct Directory<S = AnyStore> {
    store: S,
    snapshot: ArcSwap<Snapshot>,
    publish: Mutex<()>,
    /// Set when a refresh failed: the snapshot may miss a committed revocation, so checks must
    /// fail (UNAVAILABLE) rather than trust it. Cleared by the next successful refresh.
    stale: AtomicBool,
    /// The revision of the last published snapshot, for those who push changes as they land.
    published: tokio::sync::watch::Sender<u64>,
    /// What each push stream has sent, so that a write can wait until it was pushed.
    pushes: Arc<Pushes>,
}

impl<S: Store> Directory<S> {
    /// Loads every live grant from the store.
    pub async fn open(store: S) -> Result<Directory<S>, StoreError> {
        let set = store.load_grants().await?;
        Ok(Directory {
            store,
            snapshot: ArcSwap::from_pointee(Snapshot::from_grants(set.revision, set.grants)),
            publish: Mutex::new(()),
            stale: AtomicBool::new(false),
            published: tokio::sync::watch::Sender::new(set.revision),
            pushes: Arc::default(),
        })
    }

    /// Whether the snapshot may be behind the store (the last refresh failed).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Refreshes every `interval` until the task is dropped: picks up writes of other replicas
    /// and heals a snapshot marked stale.
    pub async fn refresh_loop(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = self.refresh().await {
                tracing::error!(error = %err, "snapshot refresh failed; checks answer UNAVAILABLE until it succeeds");
            }
        }
    }

    /// Wakes on every published revision (and on a failed refresh, see [`Self::is_stale`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The push streams of this server and what each has sent.
    pub fn pushes(&self) -> &Arc<Pushes> {
        &self.pushes
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The current snapshot. Cheap; never blocks.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Brings the snapshot up to the store's latest revision and returns it. Called after every
    /// committed write; safe to call concurrently (publishes are serialised).
    pub async fn refresh(&self) -> Result<u64, StoreError> {
        let _guard = self.publish.lock().await;
        let result = self.catch_up().await;
        self.stale.store(result.is_err(), Ordering::Release);
        match &result {
            Ok(revision) => {
                self.published.send_if_modified(|published| {
                    let moved = *published != *revision;
                    *published = *revision;
                    moved
                });
            }
            // Wake the watchers: they end their streams while the snapshot may be stale.
            Err(_) => self.published.send_modify(|_| {}),
        }
        result
    }

    async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut next = Snapshot::clone(&self.snapshot.load());
        loop {
            let changes = self
                .store
                .changes_since(next.revision, CATCH_UP_BATCH)
                .await?;
            let Some(last) = changes.last() else { break };
            let last_revision = last.revision;
            let mut seen = HashSet::with_capacity(changes.len());
            let hashes: Vec<TokenHash> = changes
                .into_iter()
                .map(|change| change.hash)
                .filter(|hash| seen.insert(*hash))
                .collect();
            for hash in &hashes {
                next.apply(*hash, None);
            }
            for (hash, grant) in self.store.grants_for(hashes).await? {
                next.apply(hash, Some(grant));
            }
            next.revision = last_revision;
        }
        next.compact_if_due();
        let revision = next.revision;
        self.snapshot.store(Arc::new(next));
        Ok(revision)
    }
}

/// Reads the live snapshot: a [`Directory`], a [`SnapshotHandle`], or an `Arc` of either.
pub trait LiveSnapshot {
    /// The current snapshot. Cheap; never blocks.
    fn current(&self) -> Arc<Snapshot>;
}

impl<S: Store> LiveSnapshot for Directory<S> {
    fn current(&self) -> Arc<Snapshot> {
        self.snapshot()
    }
}

impl<T: LiveSnapshot + ?Sized> LiveSnapshot for Arc<T> {
    fn current(&self) -> Arc<Snapshot> {
        T::current(self)
    }
}

type ChangesFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Change>, StoreError>> + Send + 'a>>;

/// What a [`SnapshotHandle`] reads, with the store's type erased.
trait Source: Send + Sync {
    fn snapshot(&self) -> Arc<Snapshot>;
    fn is_stale(&self) -> bool;
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    fn pushes(&self) -> Arc<Pushes>;
    fn changes_since(&self, revision: u64, limit: u64) -> ChangesFuture<'_>;
}

impl<S: Store> Source for Directory<S> {
    fn snapshot(&self) -> Arc<Snapshot> {
        Directory::snapshot(self)
    }

    fn is_stale(&self) -> bool {
        Directory::is_stale(self)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        Directory::subscribe(self)
    }

    fn pushes(&self) -> Arc<Pushes> {
        self.pushes.clone()
    }

    fn changes_since(&self, revision: u64, limit: u64) -> ChangesFuture<'_> {
        Box::pin(self.store.changes_since(revision, limit))
    }
}

/// What the gRPC services read: the live snapshot, whether it may be stale, and the change feed
/// it is published from. Cheap to clone; not generic over the store.
#[derive(Clone)]
pub struct SnapshotHandle {
    source: Arc<dyn Source>,
}

impl SnapshotHandle {
    /// The current snapshot. Cheap; never blocks.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.source.snapshot()
    }

    /// Whether the snapshot may be behind the store (the last refresh failed).
    pub fn is_stale(&self) -> bool {
        self.source.is_stale()
    }

    /// Wakes on every published revision and on a failed refresh.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.source.subscribe()
    }

    /// The push streams' register (see [`Pushes`]).
    pub fn pushes(&self) -> Arc<Pushes> {
        self.source.pushes()
    }

    /// The store's change feed after `revision`, at most `limit` changes (see
    /// [`Store::changes_since`]).
    pub async fn changes_since(
        &self,
        revision: u64,
        limit: u64,
    ) -> Result<Vec<Change>, StoreError> {
        self.source.changes_since(revision, limit).await
    }
}

impl LiveSnapshot for SnapshotHandle {
    fn current(&self) -> Arc<Snapshot> {
        self.snapshot()
    }
}

impl<S: Store> From<Arc<Directory<S>>> for SnapshotHandle {
    fn from(directory: Arc<Directory<S>>) -> SnapshotHandle {
        SnapshotHandle { source: directory }
    }
}

/// The push streams (gRPC Watch) of this server and the revision each has sent. A write waits
/// here after publishing, so that when the admin API answers, every connected filter has been
/// sent the change: a token is never used before its VM learned it exists (the membership
/// filter would refuse it), and a revocation is on its way before the caller hears "done".
#[derive(Default)]
pub struct Pushes {
    sent: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    next_id: std::sync::atomic::AtomicU64,
    progress: tokio::sync::Notify,
}

impl Pushes {
    /// Registers a stream that has sent nothing yet.
    pub fn register(self: &Arc<Self>) -> PushSlot {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, 0);
        PushSlot {
            pushes: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u64>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until every open stream has sent `revision` (or closed), at most `within`;
    /// `false` if some had not by then.
    pub async fn delivered(&self, revision: u64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().values().all(|sent| *sent >= revision) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// One stream's entry in [`Pushes`]; removed when the stream ends.
pub struct PushSlot {
    pushes: Arc<Pushes>,
    id: u64,
}

impl PushSlot {
    pub fn sent(&self, revision: u64) {
        self.pushes.lock().insert(self.id, revision);
        self.pushes.progress.notify_waiters();
    }
}

impl Drop for PushSlot {
    fn drop(&mut self) {
        self.pushes.lock().remove(&self.id);
        self.pushes.progress.notify_waiters();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn grant(account: &Arc<Grant>, token_id: i64) -> TokenGrant {
        TokenGrant::new(token_id, Some(1_900_000_000), account.clone())
    }

    fn hash(i: u64) -> TokenHash {
        // Uniform like SHA-256, and reproducible.
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(i.to_le_bytes()).into();
        TokenHash::try_from(digest.as_slice()).unwrap()
    }

    /// The base and its changes answer like one map, across changes and compactions.
    #[test]
    fn snapshot_matches_a_plain_map() {
        let account = Arc::new(Grant {
            token_id: 0,
            account_id: 7,
            account: "ci".into(),
            tenant: "acme".into(),
            role: "viewer".into(),
            scopes: tollgate_core::Role::Viewer.scopes(),
            policy: tollgate_core::Policy::parse("").unwrap(),
            expires_at: None,
            all_tenants: false,
            read_tenants: Default::default(),
            hide_policy_labels: false,
        });
        let mut reference = std::collections::HashMap::new();
        let loaded: Vec<_> = (0..10_000)
            .map(|i| (hash(i), grant(&account, i as i64)))
            .collect();
        for (h, g) in &loaded {
            reference.insert(*h, g.clone());
        }
        let mut snapshot = Snapshot::from_grants(1, loaded);
        // Revoke every third, add new ones, re-add some revoked: enough to compact twice.
        for round in 0..3u64 {
            for i in (0..10_000).step_by(3) {
                snapshot.apply(hash(i), None);
                reference.remove(&hash(i));
            }
            for i in 0..6_000 {
                let i = 10_000 + round * 6_000 + i;
                snapshot.apply(hash(i), Some(grant(&account, i as i64)));
                reference.insert(hash(i), grant(&account, i as i64));
            }
            for i in (0..10_000).step_by(6) {
                snapshot.apply(hash(i), Some(grant(&account, -(i as i64))));
                reference.insert(hash(i), grant(&account, -(i as i64)));
            }
            snapshot.compact_if_due();
            assert_eq!(snapshot.len(), reference.len());
            for i in 0..40_000 {
                let got = snapshot.get(&hash(i)).map(|g| g.token_id);
                let want = reference.get(&hash(i)).map(|g| g.token_id);
                assert_eq!(got, want, "token {i} in round {round}");
            }
            assert_eq!(snapshot.entries().count(), reference.len());
            let member = snapshot.membership();
            assert!(reference.keys().all(|h| member.may_contain(h)));
        }
        assert!(Snapshot::default().get(&hash(1)).is_none());
        assert!(Snapshot::from_grants(1, vec![]).is_empty());
    }
}
