//! The authoritative store: a trait, so that SQLite (embedded default) and later PostgreSQL share
//! the service code and one conformance suite.
//!
//! Every write is one transaction that also appends the token hashes it affects to the change
//! feed and its row to the audit log, so a crash leaves either all of it or none.

#[cfg(test)]
mod conformance;
mod sqlite;

pub use sqlite::SqliteStore;

use crate::model::{
    Account, AccountPatch, AccountQuery, AuditEntry, AuditQuery, AuditRecord, Change, NewAccount,
    NewToken, Page, TokenRecord,
};
use std::future::Future;
use tollgate_core::{Grant, TokenHash};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{what} \"{name}\" already exists")]
    Conflict { what: &'static str, name: String },
    #[error("store URL \"{url}\" is not supported (expected sqlite://PATH)")]
    UnsupportedUrl { url: String },
    #[error("store schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("store holds an invalid row: {detail}")]
    Corrupt { detail: String },
    /// Another process holds a lock on the store past the busy timeout.
    #[error("store {path} is locked by another process (gave up after {waited_secs} s)")]
    Locked { path: String, waited_secs: u64 },
    /// The store file cannot be opened or created for writing; `cause` says why (from the OS).
    #[error("store {path} cannot be opened for writing: {cause}")]
    Unwritable { path: String, cause: String },
    /// Not `#[source]`: the message already carries the backend's, and an error chain printed
    /// with `{:#}` would repeat it.
    #[error("store backend error: {0}")]
    Backend(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        StoreError::Backend(err)
    }
}

/// The live grants and the revision they reflect.
pub struct GrantSet {
    pub revision: u64,
    pub grants: Vec<(TokenHash, Grant)>,
}

pub trait Store: Send + Sync + 'static {
    /// Creates the account, or `Conflict` when its name is taken in its tenant.
    fn create_account(
        &self,
        account: NewAccount,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<Account, StoreError>> + Send;

    fn get_account(&self, id: i64) -> impl Future<Output = Result<Account, StoreError>> + Send;

    fn find_account(
        &self,
        tenant: &str,
        name: &str,
    ) -> impl Future<Output = Result<Account, StoreError>> + Send;

    /// Ordered by id.
    fn list_accounts(
        &self,
        query: AccountQuery,
    ) -> impl Future<Output = Result<Page<Account>, StoreError>> + Send;

    fn update_account(
        &self,
        id: i64,
        patch: AccountPatch,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<Account, StoreError>> + Send;

    /// Deletes the account and revokes every token of it.
    fn delete_account(
        &self,
        id: i64,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn create_token(
        &self,
        account_id: i64,
        token: NewToken,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<TokenRecord, StoreError>> + Send;

    /// Creates many tokens for one account in one transaction (bulk provisioning, benchmarks).
    fn create_tokens(
        &self,
        account_id: i64,
        tokens: Vec<NewToken>,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn list_tokens(
        &self,
        account_id: i64,
    ) -> impl Future<Output = Result<Vec<TokenRecord>, StoreError>> + Send;

    fn rename_token(
        &self,
        account_id: i64,
        token_id: i64,
        name: crate::model::Name,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<TokenRecord, StoreError>> + Send;

    /// Replaces the token's hash: the old value stops working in the same transaction.
    fn regenerate_token(
        &self,
        account_id: i64,
        token_id: i64,
        hash: TokenHash,
        hint: String,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<TokenRecord, StoreError>> + Send;

    fn delete_token(
        &self,
        account_id: i64,
        token_id: i64,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the last use of tokens (batched by the caller).
    fn touch_tokens(
        &self,
        uses: Vec<(i64, i64)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends an audit row on its own, for actions that failed before reaching the store.
    fn record_audit(
        &self,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Newest first.
    fn list_audit(
        &self,
        query: AuditQuery,
    ) -> impl Future<Output = Result<Page<AuditEntry>, StoreError>> + Send;

    /// Every live token's grant (tokens of enabled accounts), with the current revision.
    fn load_grants(&self) -> impl Future<Output = Result<GrantSet, StoreError>> + Send;

    /// The grants of the given hashes that are live; absent hashes are not live.
    fn grants_for(
        &self,
        hashes: Vec<TokenHash>,
    ) -> impl Future<Output = Result<Vec<(TokenHash, Grant)>, StoreError>> + Send;

    /// Changes after `revision`, oldest first, at most `limit`.
    fn changes_since(
        &self,
        revision: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// Whether the one-time bootstrap has run.
    fn is_bootstrapped(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates the bootstrap admin and its token and marks the store bootstrapped, in one
    /// transaction; `false` (and no change) when the store was already bootstrapped.
    fn bootstrap(
        &self,
        account: NewAccount,
        token: NewToken,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
