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

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    revision: u64,
    // A persistent map: publishing a change copies O(log n) nodes, not the whole map. Values
    // are compact (the account's part shared): a million tokens fit in memory.
    grants: imbl::HashMap<TokenHash, TokenGrant>,
}

impl Snapshot {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The token's grant, built from its compact entry (reference counts only, no copy).
    pub fn get(&self, hash: &TokenHash) -> Option<Grant> {
        self.grants.get(hash).map(TokenGrant::grant)
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The membership filter of every live token in this snapshot.
    pub fn membership(&self) -> Membership {
        // Room for a quarter more tokens before the false-positive rate climbs (it is rebuilt
        // now and then, see the Watch service).
        let len = self.grants.len();
        Membership::build(len.saturating_add(len / 4), self.grants.keys())
    }

    /// Per tenant, the earliest expiry (Unix seconds) among its live tokens that expire after
    /// `now`: what an alert on tokens about to lapse needs. Tenants whose tokens never expire
    /// are absent.
    pub fn next_expiry_by_tenant(&self, now: u64) -> std::collections::BTreeMap<String, u64> {
        let mut soonest = std::collections::BTreeMap::new();
        for grant in self.grants.values() {
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
        let grants = set.grants.into_iter().collect();
        Ok(Directory {
            store,
            snapshot: ArcSwap::from_pointee(Snapshot {
                revision: set.revision,
                grants,
            }),
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
                next.grants.remove(hash);
            }
            for (hash, grant) in self.store.grants_for(hashes).await? {
                next.grants.insert(hash, grant);
            }
            next.revision = last_revision;
        }
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
