//! The admin service: operations on service accounts and tokens, with the rules that keep them
//! safe (tenant isolation, the role and label-policy ceilings, expiry limits) and an audit row
//! for every outcome.
//!
//! May use: the store ([`crate::store`]), the live snapshot ([`crate::directory`]), the domain
//! types ([`crate::model`]) and the core crate. Never axum, tonic or HTTP status codes: failures
//! are a [`ServiceError`], which the HTTP layer maps to a status and reason code.
//!
//! One file per concern: [`callers`] (who is calling, and their ceilings), [`fields`] (input
//! validation), [`accounts`], [`roles`], [`tokens`], [`review`] ("can I?"), [`tenants`],
//! [`audit`] and [`bootstrap`].

pub mod accounts;
pub mod audit;
pub mod bootstrap;
pub mod callers;
pub mod error;
pub mod fields;
pub mod review;
pub mod roles;
pub mod tenants;
pub mod tokens;

pub use crate::model::now_secs;
pub use accounts::{AccountChanges, AccountSpec};
pub use callers::{Caller, Identity};
pub use error::ServiceError;
pub use fields::{
    MAX_DESCRIPTION_CHARS, MAX_DISPLAY_NAME_CHARS, MAX_EMAIL_CHARS, PolicyValidation,
};
pub use review::{ReviewAnswer, ReviewSubject};
pub use roles::RoleView;
pub use tokens::{ExpirySpec, IssuedToken};

use crate::directory::Directory;
use crate::store::{AnyStore, Store};
use std::sync::Arc;
use std::time::Duration;
use tollgate_core::{PolicyLimits, RouteTable};

/// How long a write waits for the change streams to take its change before answering anyway
/// (a stalled Envoy must not stall the admin API).
const PUSH_WAIT: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Lifetime of a token created without an expiry; `None` means it never expires.
    pub default_token_lifetime: Option<Duration>,
    /// Longest lifetime a token may have; `None` for no limit.
    pub max_token_lifetime: Option<Duration>,
    pub policy_limits: PolicyLimits,
}

/// The admin service over the live directory. Every write goes to the store first, then
/// publishes a new snapshot.
pub struct Admin {
    directory: Arc<Directory>,
    config: AdminConfig,
    /// The admin API's own routes: who may call what here.
    admin_routes: RouteTable,
    /// What Envoy enforces in front of upstreams, for access reviews.
    upstream_routes: Arc<RouteTable>,
    /// This process's checked writers, one at a time (see [`Admin::checked_write`]).
    checked_writes: tokio::sync::Mutex<()>,
}

impl Admin {
    pub fn new(
        directory: Arc<Directory>,
        config: AdminConfig,
        upstream_routes: Arc<RouteTable>,
    ) -> Admin {
        Admin {
            directory,
            config,
            admin_routes: RouteTable::admin(),
            upstream_routes,
            checked_writes: tokio::sync::Mutex::new(()),
        }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    fn store(&self) -> &AnyStore {
        self.directory.store()
    }

    /// Runs `write` (its checks, then the store write they allow) while no other checked write
    /// runs, in this process or another replica: a write whose rules read other rows (ceilings
    /// against an account's role, a widening against the role's holders) must not pass them on
    /// what a concurrent write is about to change. Local writers queue on a mutex first, so a
    /// replica holds at most one connection waiting for PostgreSQL's lock.
    async fn checked_write<T>(
        &self,
        write: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let _in_process = self.checked_writes.lock().await;
        let serial = self.store().serialize_checked_writes().await?;
        let result = write.await;
        serial.release().await;
        result
    }

    /// Whether the store answers (for `/healthz`).
    pub async fn store_ready(&self) -> Result<(), ServiceError> {
        self.store().is_bootstrapped().await?;
        Ok(())
    }

    /// Publishes a committed write to the snapshot, then waits (briefly) until every connected
    /// filter was pushed the change. The write is durable already; a failure here is logged and
    /// repaired by the next refresh.
    async fn publish(&self) {
        match self.directory.refresh().await {
            Ok(revision) => {
                if !self.directory.pushes().delivered(revision, PUSH_WAIT).await {
                    tracing::warn!(
                        revision,
                        "a change stream did not take the change within {PUSH_WAIT:?}; answering anyway"
                    );
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "snapshot refresh failed after a committed write")
            }
        }
    }
}
