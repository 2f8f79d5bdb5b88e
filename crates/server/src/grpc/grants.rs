//! `tollgate.v1.Grants`: what the proxy-wasm filter asks on a cache miss (Resolve, by token
//! hash) and polls for evictions (Changes).
//!
//! Both answer from the live snapshot's revision, and Changes never reports past it: a grant the
//! filter resolved can therefore never be older than the feed cursor it holds, so no revocation
//! falls between the two.

use crate::directory::SnapshotHandle;
use crate::model::ChangeKind;
use tollgate_core::TokenHash;
use tollgate_proto::grant_to_wire;
use tollgate_proto::v1::{self, grants_server::Grants};

/// Changes answered per call at most.
pub const MAX_CHANGES: u32 = 10_000;
const DEFAULT_CHANGES: u32 = 1_000;

pub struct GrantsService {
    snapshots: SnapshotHandle,
}

impl GrantsService {
    /// `snapshots`: a [`SnapshotHandle`], or the `Arc<Directory>` to take one from.
    pub fn new(snapshots: impl Into<SnapshotHandle>) -> GrantsService {
        GrantsService {
            snapshots: snapshots.into(),
        }
    }

    fn fresh(&self) -> Result<(), tonic::Status> {
        if self.snapshots.is_stale() {
            Err(tonic::Status::unavailable(
                "the grant snapshot may be stale: the store is unavailable",
            ))
        } else {
            Ok(())
        }
    }
}

#[tonic::async_trait]
impl Grants for GrantsService {
    async fn resolve(
        &self,
        request: tonic::Request<v1::ResolveRequest>,
    ) -> Result<tonic::Response<v1::ResolveResponse>, tonic::Status> {
        self.fresh()?;
        let hash = TokenHash::try_from(request.get_ref().token_hash.as_slice())
            .map_err(|_| tonic::Status::invalid_argument("token_hash must be 32 bytes"))?;
        let snapshot = self.snapshots.snapshot();
        Ok(tonic::Response::new(v1::ResolveResponse {
            grant: snapshot.get(&hash).map(|grant| grant_to_wire(grant)),
            revision: snapshot.revision(),
        }))
    }

    async fn changes(
        &self,
        request: tonic::Request<v1::ChangesRequest>,
    ) -> Result<tonic::Response<v1::ChangesResponse>, tonic::Status> {
        self.fresh()?;
        let current = self.snapshots.snapshot().revision();
        let request = request.into_inner();
        let Some(since) = request.since else {
            return Ok(tonic::Response::new(v1::ChangesResponse {
                revision: current,
                ..Default::default()
            }));
        };
        if since > current {
            // A cursor from a store this server does not have: the caller must start over.
            return Ok(tonic::Response::new(v1::ChangesResponse {
                revision: current,
                resync: true,
                ..Default::default()
            }));
        }
        let limit = match request.limit {
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
        Ok(tonic::Response::new(v1::ChangesResponse {
            revision,
            changes,
            more,
            resync: false,
        }))
    }
}
