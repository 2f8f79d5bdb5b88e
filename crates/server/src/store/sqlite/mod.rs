//! SQLite backend: one file, WAL, `synchronous=FULL`, schema versioned by `PRAGMA user_version`.
//!
//! Split by concern: `schema` (migrations, opening errors), `error` (SQLite's errors in the
//! store's terms), `rows` (rows to domain values), `accounts`, `tokens`, `grants`, `changes`
//! (the change feed) and `audit`. This file holds the connection pool, the write path every
//! write takes, and the [`Store`] implementation that forwards to those modules.

mod accounts;
mod audit;
mod changes;
mod error;
mod grants;
mod roles;
mod rows;
mod schema;
mod tokens;

use crate::model::{
    Account, AccountPatch, AccountQuery, AuditEntry, AuditQuery, AuditRecord, Change, Name,
    NewAccount, NewRole, NewToken, Page, RolePatch, RoleRecord, TenantSummary, TokenQuery,
    TokenRecord,
};
use crate::store::{CheckedWrites, GrantSet, Store, StoreError, TokenGrant, redact_url};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use tokio::sync::{Mutex, MutexGuard};
use tollgate_core::TokenHash;

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer; taking this first avoids `SQLITE_BUSY` on lock upgrades between
    /// this process's own connections. Not what makes writes safe across processes: every
    /// write transaction begins `IMMEDIATE`, which SQLite serialises for all of them.
    write_lock: Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `sqlite://PATH` and applies migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let Some(path) = url.strip_prefix("sqlite://") else {
            return Err(StoreError::UnsupportedUrl {
                url: redact_url(url),
            });
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(schema::BUSY_TIMEOUT);
        let file = options.get_filename().to_owned();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|err| schema::open_error(&file, err))?;
        let store = SqliteStore {
            pool,
            write_lock: Mutex::new(()),
        };
        schema::migrate(&store, &file).await?;
        Ok(store)
    }

    /// Begins a write transaction. Every write goes through here, so writes are serialised and
    /// the invariants a write checks (in its transaction) cannot race another writer.
    async fn write(&self) -> Result<(MutexGuard<'_, ()>, Transaction<'_, Sqlite>), StoreError> {
        let guard = self.write_lock.lock().await;
        // IMMEDIATE takes the write lock up front, waiting (busy_timeout) for a connection whose
        // failed transaction is still rolling back. A deferred transaction that read first would
        // instead get SQLITE_BUSY at once when it tried to write.
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((guard, tx))
    }
}

impl Store for SqliteStore {
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
        let (_guard, mut tx) = self.write().await?;
        audit::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
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
        Ok(CheckedWrites::in_process())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::schema::MIGRATIONS;
    use super::*;
    use crate::store::StoreErrorKind;
    use crate::store::conformance::{conformance_suite, replica_suite};
    use tollgate_core::Token;

    async fn open_temp() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (SqliteStore::open(&url).await.unwrap(), dir)
    }

    conformance_suite!(conformance, async { Some(open_temp().await) });

    /// Two stores on one file: what two processes on one SQLite file would be.
    async fn open_pair() -> Option<(SqliteStore, SqliteStore, tempfile::TempDir)> {
        let (first, dir) = open_temp().await;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Some((first, SqliteStore::open(&url).await.unwrap(), dir))
    }

    replica_suite!(replicas, open_pair());

    #[tokio::test]
    async fn data_survives_reopen_and_schema_is_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let token = Token::generate().unwrap();
        store
            .bootstrap(
                NewAccount {
                    tenant: Name::parse("default").unwrap(),
                    name: Name::parse("admin").unwrap(),
                    display_name: String::new(),
                    description: String::new(),
                    owner_email: String::new(),
                    role: Name::parse("admin").unwrap(),
                    label_policy: String::new(),
                    all_tenants: true,
                    read_tenants: Default::default(),
                    hide_policy_labels: false,
                    created_at: 1,
                    created_by: "t".into(),
                },
                NewToken {
                    name: Name::parse("b").unwrap(),
                    hash: token.hash(),
                    hint: token.hint(),
                    created_at: 1,
                    expires_at: None,
                },
                AuditRecord {
                    at: 1,
                    actor: "t".into(),
                    tenant: "default".into(),
                    action: "bootstrap".into(),
                    target: "x".into(),
                    outcome: "ok".into(),
                },
            )
            .await
            .unwrap();
        store.pool.close().await;
        let reopened = SqliteStore::open(&url).await.unwrap();
        assert!(reopened.is_bootstrapped().await.unwrap());
        assert_eq!(
            reopened.load_grants().await.unwrap().grants[0].0,
            token.hash()
        );
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&reopened.pool)
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&reopened.pool)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[tokio::test]
    async fn bad_store_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
        let err = SqliteStore::open(&format!("sqlite://{}", garbage.display()))
            .await
            .err()
            .expect("corrupt file");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("not a database"), "{err}");

        let err = SqliteStore::open("postgres://x")
            .await
            .err()
            .expect("unsupported");
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }));

        let missing_dir = dir.path().join("no/such/dir/t.db");
        assert!(
            SqliteStore::open(&format!("sqlite://{}", missing_dir.display()))
                .await
                .is_err()
        );

        let newer = dir.path().join("newer.db");
        let store = SqliteStore::open(&format!("sqlite://{}", newer.display()))
            .await
            .unwrap();
        sqlx::raw_sql("PRAGMA user_version = 99")
            .execute(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;
        let err = SqliteStore::open(&format!("sqlite://{}", newer.display()))
            .await
            .err()
            .expect("newer schema");
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }));
    }
}
