//! PostgreSQL backend: several `tollgate serve` replicas share one database.
//!
//! Same layout as `sqlite/`: `schema` (versioned migrations under an advisory lock), `error`
//! (SQLSTATEs in the store's terms), `rows`, `accounts`, `tokens`, `grants`, `changes` (the
//! change feed, and why its revisions come from a locked counter row) and `audit`; `listen` is
//! the LISTEN/NOTIFY task that tells this replica about other replicas' writes. This file holds
//! the pool, the write path every write takes, and the [`Store`] implementation.
//!
//! Connection settings come from the URL, then the `PG*` environment variables (`PGPASSWORD`,
//! ...) and the password file (`PGPASSFILE`, `~/.pgpass`), as libpq reads them. TLS is not built
//! in: `sslmode=require`, `verify-ca` and `verify-full` are refused at start with a clear error.

mod accounts;
mod audit;
mod changes;
mod error;
mod grants;
mod listen;
mod roles;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod tokens;

pub use listen::ChangeListener;

use crate::model::{
    Account, AccountPatch, AccountQuery, AuditEntry, AuditQuery, AuditRecord, Change, Name,
    NewAccount, NewRole, NewToken, Page, RolePatch, RoleRecord, TenantSummary, TokenQuery,
    TokenRecord,
};
use crate::store::{CheckedWrites, GrantSet, Store, StoreError, TokenGrant, redact_url};
use error::PgResult;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tollgate_core::TokenHash;

/// How long a query waits for a connection: when PostgreSQL is down, an admin write answers
/// 503 after this, and a snapshot refresh fails (checks then fail closed) after this.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per replica: admin writes are rare and checks never touch the database.
const MAX_CONNECTIONS: u32 = 8;
/// The advisory lock every replica takes around a checked write ([`CheckedWrites`]): the
/// migrations' lock ("tollgate" in ASCII) plus one, so the two never meet.
const CHECKED_WRITES_LOCK: i64 = 0x746f_6c6c_6761_7466;

pub struct PostgresStore {
    pool: PgPool,
    /// Whether this replica's change listener is connected (for `/healthz`).
    listening: Arc<AtomicBool>,
}

/// The connection options of `url`, or a clear error naming the URL without its password.
fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    // sqlx's parse errors name the part that is wrong, never the URL itself.
    let options = PgConnectOptions::from_str(url).map_err(|err| invalid(err.to_string()))?;
    match options.get_ssl_mode() {
        PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer => Ok(options),
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => Err(invalid(
            "this build has no TLS client: use sslmode=disable or prefer, and encrypt the \
             connection outside (a mesh sidecar, a tunnel)"
                .into(),
        )),
    }
}

impl PostgresStore {
    /// Connects to `postgres://` or `postgresql://` `url` and applies migrations.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let options = connect_options(url)?;
        // One direct connection first: a pool that cannot connect says only that it timed out,
        // where this says why (refused, unknown host, password authentication failed).
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| StoreError::Backend {
                kind: crate::store::StoreErrorKind::Unavailable,
                detail: format!("PostgreSQL: no connection within {ACQUIRE_TIMEOUT:?}"),
                transient: true,
            })?
            .pg()?;
        probe.close().await.pg()?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        schema::migrate(&pool).await?;
        Ok(PostgresStore {
            pool,
            listening: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Starts listening for other replicas' writes (see [`ChangeListener`]).
    pub fn listen(&self) -> ChangeListener {
        ChangeListener::spawn(self.pool.clone(), self.listening.clone())
    }

    /// Whether a listener of this store is connected, receiving other replicas' notifications.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Begins a write transaction. `feed`: the write may record a change, so it first takes the
    /// change feed's lock (see `changes.rs`), which orders it after every other such write on
    /// every replica.
    async fn write(&self, feed: bool) -> Result<Transaction<'_, Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.pg()?;
        if feed {
            changes::lock_feed(&mut tx).await?;
        }
        Ok(tx)
    }
}

impl Store for PostgresStore {
    async fn create_account(
        &self,
        account: NewAccount,
        audit: AuditRecord,
    ) -> Result<Account, StoreError> {
        accounts::create(self, account, audit).await
    }

    async fn get_account(&self, id: i64) -> Result<Account, StoreError> {
        accounts::get(self, id).await
    }

    async fn find_account(&self, tenant: &str, name: &str) -> Result<Account, StoreError> {
        accounts::find(self, tenant, name).await
    }

    async fn list_accounts(&self, query: AccountQuery) -> Result<Page<Account>, StoreError> {
        accounts::list(self, query).await
    }

    async fn update_account(
        &self,
        id: i64,
        patch: AccountPatch,
        audit: AuditRecord,
    ) -> Result<Account, StoreError> {
        accounts::update(self, id, patch, audit).await
    }

    async fn delete_account(&self, id: i64, audit: AuditRecord) -> Result<(), StoreError> {
        accounts::delete(self, id, audit).await
    }

    async fn list_roles(&self, tenant: Option<&str>) -> Result<Vec<RoleRecord>, StoreError> {
        roles::list(self, tenant).await
    }

    async fn get_role(&self, tenant: &str, name: &str) -> Result<RoleRecord, StoreError> {
        roles::get(self, tenant, name).await
    }

    async fn create_role(
        &self,
        role: NewRole,
        audit: AuditRecord,
    ) -> Result<RoleRecord, StoreError> {
        roles::create(self, role, audit).await
    }

    async fn update_role(
        &self,
        tenant: &str,
        name: &str,
        patch: RolePatch,
        audit: AuditRecord,
    ) -> Result<RoleRecord, StoreError> {
        roles::update(self, tenant, name, patch, audit).await
    }

    async fn delete_role(
        &self,
        tenant: &str,
        name: &str,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        roles::delete(self, tenant, name, audit).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantSummary>, StoreError> {
        accounts::list_tenants(self).await
    }

    async fn delete_tenant(&self, tenant: &str, audit: AuditRecord) -> Result<u64, StoreError> {
        accounts::delete_tenant(self, tenant, audit).await
    }

    async fn create_token(
        &self,
        account_id: i64,
        token: NewToken,
        audit: AuditRecord,
    ) -> Result<TokenRecord, StoreError> {
        tokens::create(self, account_id, token, audit).await
    }

    async fn create_tokens(
        &self,
        account_id: i64,
        tokens: Vec<NewToken>,
        audit: AuditRecord,
    ) -> Result<u64, StoreError> {
        tokens::create_many(self, account_id, tokens, audit).await
    }

    async fn list_tokens(&self, query: TokenQuery) -> Result<Page<TokenRecord>, StoreError> {
        tokens::list(self, query).await
    }

    async fn rename_token(
        &self,
        account_id: i64,
        token_id: i64,
        name: Name,
        audit: AuditRecord,
    ) -> Result<TokenRecord, StoreError> {
        tokens::rename(self, account_id, token_id, name, audit).await
    }

    async fn regenerate_token(
        &self,
        account_id: i64,
        token_id: i64,
        hash: TokenHash,
        hint: String,
        audit: AuditRecord,
    ) -> Result<TokenRecord, StoreError> {
        tokens::regenerate(self, account_id, token_id, hash, hint, audit).await
    }

    async fn delete_token(
        &self,
        account_id: i64,
        token_id: i64,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        tokens::delete(self, account_id, token_id, audit).await
    }

    async fn touch_tokens(&self, uses: Vec<(i64, i64)>) -> Result<(), StoreError> {
        tokens::touch(self, uses).await
    }

    async fn record_audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.write(false).await?;
        audit::insert_audit(&mut tx, &audit).await?;
        tx.commit().await.pg()?;
        Ok(())
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<Page<AuditEntry>, StoreError> {
        audit::list_audit(&self.pool, query).await
    }

    async fn load_grants(&self) -> Result<GrantSet, StoreError> {
        grants::load(self).await
    }

    async fn grants_for(
        &self,
        hashes: Vec<TokenHash>,
    ) -> Result<Vec<(TokenHash, TokenGrant)>, StoreError> {
        grants::for_hashes(self, hashes).await
    }

    async fn changes_since(&self, revision: u64, limit: u64) -> Result<Vec<Change>, StoreError> {
        changes::changes_since(&self.pool, revision, limit).await
    }

    async fn is_bootstrapped(&self) -> Result<bool, StoreError> {
        accounts::is_bootstrapped(self).await
    }

    async fn serialize_checked_writes(&self) -> Result<CheckedWrites, StoreError> {
        let mut lock = self.pool.begin().await.pg()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHECKED_WRITES_LOCK)
            .execute(&mut *lock)
            .await
            .pg()?;
        Ok(CheckedWrites::holding(lock))
    }

    async fn bootstrap(
        &self,
        account: NewAccount,
        token: NewToken,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        accounts::bootstrap(self, account, token, audit).await
    }
}
