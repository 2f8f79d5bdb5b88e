//! The authoritative store: a trait, so that SQLite (embedded default) and PostgreSQL (several
//! replicas on one database) share the service code and one conformance suite.
//!
//! Every write is one transaction that also appends the token hashes it affects to the change
//! feed and its row to the audit log, so a crash leaves either all of it or none.
//!
//! This module is backend-neutral: errors are a [`StoreErrorKind`] plus whether they are
//! transient, and no backend's types appear here. Each backend maps its own errors in its own
//! folder (`sqlite/`, `postgres/`). [`open`] turns a store URL into one [`AnyStore`], so the server names no
//! backend.
//!
//! May use: the domain types ([`crate::model`]), the core crate and the backends' own crates
//! (sqlx), each inside its folder. Never the service, the snapshot or any HTTP or gRPC type.

#[cfg(test)]
mod conformance;
mod postgres;
mod rows;
mod sqlite;

pub use postgres::{ChangeListener, PostgresStore};
pub use sqlite::SqliteStore;

use crate::model::{
    Account, AccountPatch, AccountQuery, AuditEntry, AuditQuery, AuditRecord, Change, NewAccount,
    NewRole, NewToken, Page, RolePatch, RoleRecord, TenantSummary, TokenQuery, TokenRecord,
};
use std::future::Future;
use tollgate_core::{Grant, TokenHash};

/// What went wrong, whatever the backend: what callers decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The account or token does not exist (or not where it was looked for).
    NotFound,
    /// A name is taken.
    Conflict,
    /// The write would break an invariant the store guards (see [`Protected`]); nothing changed.
    Refused,
    /// The store holds data this binary cannot read (an invalid row, not a database).
    Corrupt,
    /// The store URL or the stored schema is not one this binary supports.
    Unsupported,
    /// The store cannot be reached, locked, or cannot be written.
    Unavailable,
}

/// A change the store refuses because it would lock every administrator out: the all-tenant
/// admin is the one account that manages every tenant and cannot be re-created. Checked inside
/// the write transaction, so it holds however many writers (or replicas) race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    /// Deleting the all-tenant admin.
    Delete,
    /// Disabling it, or changing its role or label policy.
    Demote,
    /// Revoking one of its tokens when no other live token of it lasts as long.
    LastToken,
}

impl Protected {
    fn what(self) -> &'static str {
        match self {
            Protected::Delete => "deleted",
            Protected::Demote => "disabled, or its role or label policy changed",
            Protected::LastToken => {
                "left without a live token that lasts as long (regenerate it instead)"
            }
        }
    }
}

impl std::fmt::Display for Protected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the all-tenant admin account cannot be {}: it is the only account that manages every tenant",
            self.what()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{what} \"{name}\" already exists")]
    Conflict { what: &'static str, name: String },
    #[error("{0}")]
    Protected(Protected),
    /// A role that accounts still use cannot be deleted.
    #[error(
        "role \"{name}\" is used by {accounts} service account(s); give them another role first"
    )]
    RoleInUse { name: String, accounts: u64 },
    /// `url` has its password removed (see [`redact_url`]).
    #[error(
        "store URL \"{url}\" is not supported (expected sqlite://PATH or postgres://USER@HOST/DATABASE)"
    )]
    UnsupportedUrl { url: String },
    /// A supported scheme with settings this binary cannot use; `url` has its password removed.
    #[error("store URL \"{url}\" is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
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
    /// Any other failure of the backend, with its message; `transient` when trying again may
    /// succeed (a busy database, a connection lost or timed out).
    #[error("store backend error: {detail}")]
    Backend {
        kind: StoreErrorKind,
        detail: String,
        transient: bool,
    },
}

impl StoreError {
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::NotFound { .. } => StoreErrorKind::NotFound,
            StoreError::Conflict { .. } => StoreErrorKind::Conflict,
            StoreError::Protected(_) | StoreError::RoleInUse { .. } => StoreErrorKind::Refused,
            StoreError::UnsupportedUrl { .. }
            | StoreError::InvalidUrl { .. }
            | StoreError::SchemaTooNew { .. } => StoreErrorKind::Unsupported,
            StoreError::Corrupt { .. } => StoreErrorKind::Corrupt,
            StoreError::Locked { .. } | StoreError::Unwritable { .. } => {
                StoreErrorKind::Unavailable
            }
            StoreError::Backend { kind, .. } => *kind,
        }
    }

    /// Whether the same operation may succeed if tried again later, unchanged.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Locked { .. } => true,
            StoreError::Backend { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// `url` fit for a message or a log: the password of its user information (`user:password@`)
/// and any `password` query parameter are replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                    let masked = if userinfo.contains(':') { ":***" } else { "" };
                    format!("{scheme}://{user}{masked}@{host}{path}")
                }
                None => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Opens the store named by `url` (`sqlite://PATH`, `postgres://…` or `postgresql://…`),
/// applying migrations. An unsupported URL is an error that names the URL without its password.
pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
    if url.starts_with("sqlite://") {
        return Ok(AnyStore::Sqlite(SqliteStore::open(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(AnyStore::Postgres(PostgresStore::open(url).await?));
    }
    Err(StoreError::UnsupportedUrl {
        url: redact_url(url),
    })
}

/// The live grants and the revision they reflect.
pub struct GrantSet {
    pub revision: u64,
    pub grants: Vec<(TokenHash, TokenGrant)>,
}

/// One live token's grant as the snapshot keeps it: what is the token's own, and its account's
/// part, shared by every token of the account. A million tokens of a few accounts then cost 32
/// bytes each here, not a `Grant` of their own; [`TokenGrant::grant`] builds the full grant
/// when a request needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGrant {
    pub token_id: i64,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<u64>,
    /// The account's part: every field but `token_id` and `expires_at`, which are 0 and `None`
    /// here.
    account: std::sync::Arc<Grant>,
}

impl TokenGrant {
    /// `account` is the account's part of the grant (its own `token_id` and `expires_at` are
    /// not read).
    pub fn new(token_id: i64, expires_at: Option<u64>, account: std::sync::Arc<Grant>) -> Self {
        TokenGrant {
            token_id,
            expires_at,
            account,
        }
    }

    /// The token's full grant. Clones the account's shared parts (reference counts only).
    pub fn grant(&self) -> Grant {
        Grant {
            token_id: self.token_id,
            expires_at: self.expires_at,
            ..Grant::clone(&self.account)
        }
    }

    /// The account's part (its `token_id` and `expires_at` are not this token's).
    pub fn account(&self) -> &Grant {
        &self.account
    }
}

/// The authoritative store. Every method is one transaction.
///
/// # The change feed
///
/// Every write that changes which tokens are live, or what they grant, appends one [`Change`]
/// per affected token hash in the same transaction. Revisions are positive and increasing, and
/// the contract every backend must keep is:
///
/// **A reader never skips a committed change.** Revisions are assigned so that a reader that has
/// seen revision N never later sees a committed change below N: once a change with revision N is
/// visible to [`Store::changes_since`], every change with a lower revision that will ever commit
/// is already visible. A backend whose revisions are handed out before commit (a sequence) must
/// serialise their allocation inside the write transaction, or show readers only what lies below
/// the oldest revision still in flight. [`Store::load_grants`] reports a revision consistent
/// with its grants in the same sense.
///
/// So a reader that remembers the last revision it saw and asks for what came after it receives
/// every committed change exactly once, in order (the conformance suite checks this with
/// concurrent writers).
///
/// # Invariants checked inside the write
///
/// Rules that must hold however many writers race, in this process or in other replicas, are
/// checked in the write transaction itself, never by the caller beforehand: unique names
/// ([`StoreError::Conflict`]) and the protection of the all-tenant admin
/// ([`StoreError::Protected`]). A refused write changes nothing. The admin service's ceiling
/// rules read several rows and are checked before the write, so it runs those writes one at
/// a time across replicas instead ([`Store::serialize_checked_writes`]).
pub trait Store: Send + Sync + 'static {
    /// Creates the account, or `Conflict` when its name is taken in its tenant. A role that is
    /// not built in must exist in the account's tenant (`NotFound`), checked in the transaction.
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

    /// Applies the patch. An all-tenant admin cannot be disabled or have its role or label
    /// policy changed: `Protected(Demote)`.
    fn update_account(
        &self,
        id: i64,
        patch: AccountPatch,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<Account, StoreError>> + Send;

    /// Deletes the account and revokes every token of it. An all-tenant admin cannot be
    /// deleted: `Protected(Delete)`.
    fn delete_account(
        &self,
        id: i64,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The tenant's own roles (every tenant's with `None`), by tenant and name.
    fn list_roles(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = Result<Vec<RoleRecord>, StoreError>> + Send;

    fn get_role(
        &self,
        tenant: &str,
        name: &str,
    ) -> impl Future<Output = Result<RoleRecord, StoreError>> + Send;

    /// `Conflict` when the tenant has a role of that name. Built-in names are the caller's to
    /// refuse.
    fn create_role(
        &self,
        role: NewRole,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<RoleRecord, StoreError>> + Send;

    /// Changing the scopes records a change for every token of the accounts holding the role.
    fn update_role(
        &self,
        tenant: &str,
        name: &str,
        patch: RolePatch,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<RoleRecord, StoreError>> + Send;

    /// `RoleInUse` while an account holds it, checked in the transaction: an account created
    /// concurrently with the role's deletion either sees the role or makes the deletion fail.
    fn delete_role(
        &self,
        tenant: &str,
        name: &str,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every tenant with its account and token counts, by name.
    fn list_tenants(&self) -> impl Future<Output = Result<Vec<TenantSummary>, StoreError>> + Send;

    /// Deletes every account and role of `tenant` and revokes their tokens, in one transaction; the
    /// number of accounts deleted. The all-tenant admin's tenant cannot be deleted:
    /// `Protected(Delete)`. An unknown tenant is `NotFound`.
    fn delete_tenant(
        &self,
        tenant: &str,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

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

    /// A page of one account's tokens, ordered by id, with the total the query matches. An
    /// unknown account has no tokens (the service checks the account first).
    fn list_tokens(
        &self,
        query: TokenQuery,
    ) -> impl Future<Output = Result<Page<TokenRecord>, StoreError>> + Send;

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

    /// Revokes the token. A token of an all-tenant admin is revoked only if another token of
    /// that account is live at the time of the action (`audit.at`) and expires no sooner,
    /// else `Protected(LastToken)`: the account would be locked out when the survivor expires.
    /// Two concurrent revocations cannot both count the other's token as the survivor.
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

    /// Every live token's grant (tokens of enabled accounts), with the revision they reflect:
    /// every change up to it is in the grants, and none after it.
    fn load_grants(&self) -> impl Future<Output = Result<GrantSet, StoreError>> + Send;

    /// The grants of the given hashes that are live; absent hashes are not live.
    fn grants_for(
        &self,
        hashes: Vec<TokenHash>,
    ) -> impl Future<Output = Result<Vec<(TokenHash, TokenGrant)>, StoreError>> + Send;

    /// Committed changes after `revision`, oldest first, at most `limit`. Never skips one (see
    /// the trait's docs): asking again after the last revision returned picks up exactly where
    /// this answer ended.
    fn changes_since(
        &self,
        revision: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Change>, StoreError>> + Send;

    /// Whether the one-time bootstrap has run.
    fn is_bootstrapped(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Waits until no other replica runs a checked write, and keeps it so until the answer is
    /// released: see [`CheckedWrites`]. A backend only one server uses (SQLite) answers at
    /// once; the admin service serialises its own writers.
    fn serialize_checked_writes(
        &self,
    ) -> impl Future<Output = Result<CheckedWrites, StoreError>> + Send;

    /// Creates the bootstrap admin and its token and marks the store bootstrapped, in one
    /// transaction; `false` (and no change) when the store was already bootstrapped.
    fn bootstrap(
        &self,
        account: NewAccount,
        token: NewToken,
        audit: AuditRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Held while a checked write runs: a write whose rules read other rows than the one it writes
/// (a caller's ceiling against an account's role and policy, a role's widening against every
/// holder). Two such writes must not interleave, or each could pass its checks on what the
/// other is about to change (a role widened while an account is created with it: the account
/// ends up past both callers' ceilings). For PostgreSQL, a transaction holding an advisory
/// lock that every replica takes for these writes; released by ending it, or, should the
/// holder be dropped, by the connection's rollback.
pub struct CheckedWrites(Option<sqlx::Transaction<'static, sqlx::Postgres>>);

impl CheckedWrites {
    /// Nothing to hold beyond the admin service's own lock (one server per store).
    pub(crate) fn in_process() -> CheckedWrites {
        CheckedWrites(None)
    }

    pub(crate) fn holding(lock: sqlx::Transaction<'static, sqlx::Postgres>) -> CheckedWrites {
        CheckedWrites(Some(lock))
    }

    /// Lets the next checked write go.
    pub async fn release(self) {
        if let Some(lock) = self.0
            && let Err(err) = lock.rollback().await
        {
            // The connection is then closed, which releases the lock as well.
            tracing::warn!(error = %err, "could not end the checked-write lock's transaction");
        }
    }
}

/// The store `serve` runs on, whichever backend [`open`] chose: implements [`Store`] by
/// delegating to it.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Notifications of other replicas' writes, for a backend that several replicas share;
    /// `None` for SQLite (one server per file: the periodic catch-up suffices).
    pub fn listen(&self) -> Option<ChangeListener> {
        match self {
            AnyStore::Sqlite(_) => None,
            AnyStore::Postgres(store) => Some(store.listen()),
        }
    }

    /// Whether [`AnyStore::listen`]'s listener is connected; `None` for SQLite (none needed).
    pub fn is_listening(&self) -> Option<bool> {
        match self {
            AnyStore::Sqlite(_) => None,
            AnyStore::Postgres(store) => Some(store.is_listening()),
        }
    }
}

/// Forwards each listed [`Store`] method to the backend behind an [`AnyStore`].
macro_rules! delegate {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl Store for AnyStore {
            $(
                async fn $method(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                    match self {
                        AnyStore::Sqlite(store) => store.$method($($arg),*).await,
                        AnyStore::Postgres(store) => store.$method($($arg),*).await,
                    }
                }
            )*
        }
    };
}

delegate! {
    create_account(account: NewAccount, audit: AuditRecord) -> Account;
    get_account(id: i64) -> Account;
    find_account(tenant: &str, name: &str) -> Account;
    list_accounts(query: AccountQuery) -> Page<Account>;
    update_account(id: i64, patch: AccountPatch, audit: AuditRecord) -> Account;
    delete_account(id: i64, audit: AuditRecord) -> ();
    list_roles(tenant: Option<&str>) -> Vec<RoleRecord>;
    get_role(tenant: &str, name: &str) -> RoleRecord;
    create_role(role: NewRole, audit: AuditRecord) -> RoleRecord;
    update_role(tenant: &str, name: &str, patch: RolePatch, audit: AuditRecord) -> RoleRecord;
    delete_role(tenant: &str, name: &str, audit: AuditRecord) -> ();
    list_tenants() -> Vec<TenantSummary>;
    delete_tenant(tenant: &str, audit: AuditRecord) -> u64;
    create_token(account_id: i64, token: NewToken, audit: AuditRecord) -> TokenRecord;
    create_tokens(account_id: i64, tokens: Vec<NewToken>, audit: AuditRecord) -> u64;
    list_tokens(query: TokenQuery) -> Page<TokenRecord>;
    rename_token(account_id: i64, token_id: i64, name: crate::model::Name, audit: AuditRecord)
        -> TokenRecord;
    regenerate_token(
        account_id: i64,
        token_id: i64,
        hash: TokenHash,
        hint: String,
        audit: AuditRecord
    ) -> TokenRecord;
    delete_token(account_id: i64, token_id: i64, audit: AuditRecord) -> ();
    touch_tokens(uses: Vec<(i64, i64)>) -> ();
    record_audit(audit: AuditRecord) -> ();
    list_audit(query: AuditQuery) -> Page<AuditEntry>;
    load_grants() -> GrantSet;
    grants_for(hashes: Vec<TokenHash>) -> Vec<(TokenHash, TokenGrant)>;
    changes_since(revision: u64, limit: u64) -> Vec<Change>;
    is_bootstrapped() -> bool;
    serialize_checked_writes() -> CheckedWrites;
    bootstrap(account: NewAccount, token: NewToken, audit: AuditRecord) -> bool;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        for (url, want) in [
            (
                "sqlite:///var/lib/tollgate.db",
                "sqlite:///var/lib/tollgate.db",
            ),
            ("sqlite://a@b.db", "sqlite://a@b.db"),
            (
                "postgres://tollgate:s3cret@db:5432/tollgate",
                "postgres://tollgate:***@db:5432/tollgate",
            ),
            ("postgres://tollgate@db/tg", "postgres://tollgate@db/tg"),
            ("postgres://u:p@ss@db/tg", "postgres://u:***@db/tg"),
            (
                "postgres://db/tg?sslmode=require&password=s3cret",
                "postgres://db/tg?sslmode=require&password=***",
            ),
            ("mysql://:s3cret@db", "mysql://:***@db"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[tokio::test]
    async fn an_unsupported_url_is_refused_without_its_password() {
        let err = open("mysql://tollgate:s3cret@db/tollgate")
            .await
            .err()
            .expect("unsupported");
        assert_eq!(err.kind(), StoreErrorKind::Unsupported);
        let message = err.to_string();
        assert!(message.contains("not supported"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.contains("mysql://tollgate:***@db/tollgate"),
            "{message}"
        );
        // A PostgreSQL URL this build cannot use is refused before connecting, redacted too.
        for url in [
            "postgres://tollgate:s3cret@db/tollgate?sslmode=require",
            "postgresql://tollgate:s3cret@db:notaport/tollgate",
        ] {
            let err = open(url).await.err().expect("invalid");
            assert_eq!(err.kind(), StoreErrorKind::Unsupported, "{err}");
            let message = err.to_string();
            assert!(message.contains("is invalid"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }
}
