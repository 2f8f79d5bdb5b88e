//! `tollgate.v1.Grants`: what the proxy-wasm filter asks on a cache miss (Resolve, by token
//! hash), and the evictions it is pushed (Watch) or polls for while the push is down (Changes).
//!
//! Both answer from the live snapshot's revision, and Changes never reports past it: a grant the
//! filter resolved can therefore never be older than the feed cursor it holds, so no revocation
//! falls between the two.

use crate::directory::{PushSlot, Snapshot, SnapshotHandle};
use crate::metrics::GrantsMetrics;
use crate::model::ChangeKind;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tollgate_core::TokenHash;
use tollgate_proto::grant_to_wire;
use tollgate_proto::v1::{self, grants_server::Grants};

/// Changes answered per call at most.
pub const MAX_CHANGES: u32 = 10_000;
const DEFAULT_CHANGES: u32 = 1_000;

/// Watch messages at least this often, whatever the caller asks.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
const MAX_HEARTBEAT: Duration = Duration::from_secs(60);
/// A Watch stream's membership filter is rebuilt this often: revocations leave their bits set
/// (a Bloom filter cannot remove), and additions raise the false-positive rate.
const MEMBERSHIP_REFRESH: Duration = Duration::from_secs(300);

pub struct GrantsService {
    snapshots: SnapshotHandle,
    memberships: MembershipCache,
    metrics: Arc<GrantsMetrics>,
    /// Becomes `true` when the server stops: Watch streams end, or a graceful shutdown
    /// would wait for them forever.
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

impl GrantsService {
    /// `snapshots`: a [`SnapshotHandle`], or the `Arc<Directory>` to take one from.
    pub fn new(snapshots: impl Into<SnapshotHandle>) -> GrantsService {
        GrantsService {
            snapshots: snapshots.into(),
            memberships: MembershipCache::default(),
            metrics: Arc::default(),
            stopping: None,
        }
    }

    /// Ends every Watch stream once `stopping` turns `true`.
    pub fn with_shutdown(mut self, stopping: tokio::sync::watch::Receiver<bool>) -> GrantsService {
        self.stopping = Some(stopping);
        self
    }

    /// Counts calls into `metrics` (shown on `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<GrantsMetrics>) -> GrantsService {
        self.metrics = metrics;
        self
    }

    fn fresh(&self) -> Result<(), tonic::Status> {
        fresh(&self.snapshots)
    }
}

#[tonic::async_trait]
impl Grants for GrantsService {
    async fn resolve(
        &self,
        request: tonic::Request<v1::ResolveRequest>,
    ) -> Result<tonic::Response<v1::ResolveResponse>, tonic::Status> {
        self.metrics.resolves.fetch_add(1, Ordering::Relaxed);
        self.fresh()?;
        let hash = TokenHash::try_from(request.get_ref().token_hash.as_slice())
            .map_err(|_| tonic::Status::invalid_argument("token_hash must be 32 bytes"))?;
        let snapshot = self.snapshots.snapshot();
        Ok(tonic::Response::new(v1::ResolveResponse {
            grant: snapshot.get(&hash).map(|grant| grant_to_wire(&grant)),
            revision: snapshot.revision(),
        }))
    }

    async fn changes(
        &self,
        request: tonic::Request<v1::ChangesRequest>,
    ) -> Result<tonic::Response<v1::ChangesResponse>, tonic::Status> {
        self.metrics.polls.fetch_add(1, Ordering::Relaxed);
        self.fresh()?;
        let request = request.into_inner();
        let feed = Feed {
            snapshots: &self.snapshots,
            memberships: None,
        };
        Ok(tonic::Response::new(
            feed.after(request.since, request.limit).await?,
        ))
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<v1::ChangesResponse, tonic::Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: tonic::Request<v1::WatchRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        self.metrics.streams_opened.fetch_add(1, Ordering::Relaxed);
        self.fresh()?;
        let request = request.into_inner();
        let watcher = Watcher {
            _open: OpenStream::new(self.metrics.clone()),
            slot: self.snapshots.pushes().register(),
            stopping: self.stopping.clone(),
            snapshots: self.snapshots.clone(),
            published: self.snapshots.subscribe(),
            memberships: request.membership.then(|| self.memberships.clone()),
            since: request.since,
            heartbeat: Duration::from_millis(u64::from(request.heartbeat_ms))
                .clamp(MIN_HEARTBEAT, MAX_HEARTBEAT),
            next_membership: Instant::now(),
            wait: false,
            ended: false,
        };
        let stream = futures_util::stream::unfold(watcher, |mut watcher| async move {
            let message = watcher.next().await?;
            Some((message, watcher))
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

/// UNAVAILABLE while the snapshot may be stale (a refresh failed): it may miss a revocation.
fn fresh(snapshots: &SnapshotHandle) -> Result<(), tonic::Status> {
    if snapshots.is_stale() {
        Err(tonic::Status::unavailable(
            "the grant snapshot may be stale: the store is unavailable",
        ))
    } else {
        Ok(())
    }
}

/// Counts a Watch stream as open for as long as it lives.
struct OpenStream(Arc<GrantsMetrics>);

impl OpenStream {
    fn new(metrics: Arc<GrantsMetrics>) -> OpenStream {
        metrics.streams_open.fetch_add(1, Ordering::Relaxed);
        OpenStream(metrics)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One Watch stream: where it stands in the feed and when it next sends the membership filter.
struct Watcher {
    _open: OpenStream,
    /// Tells writers waiting for the push what this stream has sent.
    slot: PushSlot,
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
    snapshots: SnapshotHandle,
    published: tokio::sync::watch::Receiver<u64>,
    /// `Some` when the caller asked for the membership filter.
    memberships: Option<MembershipCache>,
    since: Option<u64>,
    heartbeat: Duration,
    next_membership: Instant,
    /// Wait for a new revision (or the heartbeat) before the next message; not before the
    /// first one, nor while the feed has more to send.
    wait: bool,
    ended: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<v1::ChangesResponse, tonic::Status>> {
        if self.ended {
            return None;
        }
        if self.wait {
            let stopping = async {
                match &mut self.stopping {
                    Some(stopping) => {
                        let _ = stopping.wait_for(|stop| *stop).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stopping => return None,
                published = tokio::time::timeout(self.heartbeat, self.published.changed()) => {
                    // The directory is gone: the server is stopping.
                    if let Ok(Err(_)) = published {
                        return None;
                    }
                }
            }
        }
        if self
            .stopping
            .as_ref()
            .is_some_and(|stopping| *stopping.borrow())
        {
            return None;
        }
        if let Err(stale) = fresh(&self.snapshots) {
            self.ended = true;
            return Some(Err(stale));
        }
        let feed = Feed {
            snapshots: &self.snapshots,
            memberships: self
                .memberships
                .as_ref()
                .filter(|_| Instant::now() >= self.next_membership),
        };
        match feed.after(self.since, MAX_CHANGES).await {
            Ok(response) => {
                if response.membership.is_some() {
                    self.next_membership = Instant::now() + MEMBERSHIP_REFRESH;
                }
                self.since = Some(response.revision);
                self.wait = !response.more;
                self.slot.sent(response.revision);
                Some(Ok(response))
            }
            Err(status) => {
                self.ended = true;
                Some(Err(status))
            }
        }
    }
}

/// The membership filter of the last snapshot one was built for, shared by every stream: one
/// build per revision, not one per VM.
type MembershipCache = Arc<Mutex<Option<(u64, v1::Membership)>>>;

/// The change feed as both Changes and Watch answer it.
struct Feed<'a> {
    snapshots: &'a SnapshotHandle,
    /// `Some`: attach the membership filter to an answer that reaches the snapshot's revision.
    memberships: Option<&'a MembershipCache>,
}

impl Feed<'_> {
    /// The changes after `since`, up to the live snapshot's revision and at most `limit`.
    async fn after(
        &self,
        since: Option<u64>,
        limit: u32,
    ) -> Result<v1::ChangesResponse, tonic::Status> {
        let snapshot = self.snapshots.snapshot();
        let current = snapshot.revision();
        // No cursor (a new cache needs no history), or nothing published since it (a heartbeat,
        // an idle poll: no store read), or a cursor from a store this server does not have (the
        // caller must start over): the current revision alone.
        let since = match since {
            Some(since) if since < current => since,
            since => {
                return Ok(v1::ChangesResponse {
                    revision: current,
                    resync: since.is_some_and(|since| since > current),
                    membership: self.membership(&snapshot),
                    ..Default::default()
                });
            }
        };
        let limit = match limit {
            0 => DEFAULT_CHANGES,
            n => n.min(MAX_CHANGES),
        };
        let rows = self
            .snapshots
            .changes_since(since, u64::from(limit))
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "change feed read failed");
                tonic::Status::unavailable("the store is unavailable")
            })?;
        let rows: Vec<_> = rows.into_iter().filter(|c| c.revision <= current).collect();
        let more =
            rows.len() == limit as usize && rows.last().is_some_and(|c| c.revision < current);
        let revision = if more {
            rows.last().map_or(current, |c| c.revision)
        } else {
            current
        };
        let changes = rows
            .into_iter()
            .map(|c| v1::Change {
                token_hash: c.hash.as_bytes().to_vec(),
                kind: match c.kind {
                    ChangeKind::Added => v1::change::Kind::Added,
                    ChangeKind::Changed => v1::change::Kind::Changed,
                    ChangeKind::Revoked => v1::change::Kind::Revoked,
                } as i32,
                revision: c.revision,
            })
            .collect();
        Ok(v1::ChangesResponse {
            revision,
            changes,
            more,
            resync: false,
            // The filter must hold exactly the snapshot at the answer's revision.
            membership: if more {
                None
            } else {
                self.membership(&snapshot)
            },
        })
    }

    fn membership(&self, snapshot: &Snapshot) -> Option<v1::Membership> {
        let cache = self.memberships?;
        let mut cached = cache.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((revision, membership)) if *revision == snapshot.revision() => {
                Some(membership.clone())
            }
            _ => {
                let filter = snapshot.membership();
                let membership = v1::Membership {
                    bits: filter.bits().to_vec(),
                    hashes: filter.probes(),
                };
                *cached = Some((snapshot.revision(), membership.clone()));
                Some(membership)
            }
        }
    }
}
