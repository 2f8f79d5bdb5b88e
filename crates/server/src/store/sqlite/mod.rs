//! SQLite backend: one file, WAL, `synchronous=FULL`, schema versioned by `PRAGMA user_version`.

use super::{GrantSet, Store, StoreError};
use crate::model::{
    Account, AccountPatch, AccountQuery, AuditEntry, AuditQuery, AuditRecord, Change, ChangeKind,
    Name, NewAccount, NewToken, Page, TokenRecord,
};
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tollgate_core::{Grant, Policy, Role, TokenHash};

/// Schema migrations, applied in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    owner_email TEXT NOT NULL,
    role TEXT NOT NULL,
    label_policy TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    all_tenants INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (tenant, name)
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER,
    UNIQUE (account_id, name)
);
CREATE TABLE changes (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL,
    kind TEXT NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_actor ON audit (actor);
CREATE INDEX audit_target ON audit (target);
CREATE INDEX audit_tenant ON audit (tenant);
"#];

const ACCOUNT_COLUMNS: &str = "id, tenant, name, display_name, description, owner_email, role, \
     label_policy, disabled, all_tenants, created_at, created_by";
const TOKEN_COLUMNS: &str = "id, account_id, name, created_at, expires_at, last_used_at, hint";
const GRANT_SELECT: &str = "SELECT t.hash, t.id AS token_id, t.expires_at, a.id AS account_id, \
     a.name, a.tenant, a.role, a.label_policy, a.all_tenants \
     FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE a.disabled = 0";

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer; taking this first avoids `SQLITE_BUSY` on lock upgrades between
    /// this process's own connections.
    write_lock: Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `sqlite://PATH` and applies migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let Some(path) = url.strip_prefix("sqlite://") else {
            return Err(StoreError::UnsupportedUrl {
                url: url.to_owned(),
            });
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let file = options.get_filename().to_owned();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|err| open_error(&file, err))?;
        let store = SqliteStore {
            pool,
            write_lock: Mutex::new(()),
        };
        store.migrate().await.map_err(|err| match err {
            StoreError::Backend(err) => open_error(&file, err),
            other => other,
        })?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Fails on a file that is not a database, or one another writer holds past busy_timeout.
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported,
            });
        }
        for migration in MIGRATIONS.iter().skip(version as usize) {
            sqlx::raw_sql(migration).execute(&mut *tx).await?;
        }
        // Written even when unchanged: SQLite opens a write-protected file read-only without a
        // word, and a server must not start on a store that would refuse every write later.
        sqlx::raw_sql(&format!("PRAGMA user_version = {supported}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Transaction<'_, Sqlite>), StoreError> {
        let guard = self.write_lock.lock().await;
        // IMMEDIATE takes the write lock up front, waiting (busy_timeout) for a connection whose
        // failed transaction is still rolling back. A deferred transaction that read first would
        // instead get SQLITE_BUSY at once when it tried to write.
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((guard, tx))
    }
}

/// How long a statement waits for another connection's (or process's) lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's primary result code of a database error (the low byte of the extended code).
fn primary_code(err: &sqlx::Error) -> Option<i64> {
    let code = err.as_database_error()?.code()?;
    code.parse::<i64>().ok().map(|code| code & 0xff)
}

/// Turns a failure to open or migrate the store into a clear error: locked (SQLITE_BUSY or
/// SQLITE_LOCKED after the busy timeout), or unwritable with the operating system's reason
/// (SQLite's own message, "unable to open database file", does not say why).
fn open_error(file: &Path, err: sqlx::Error) -> StoreError {
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const READONLY: i64 = 8;
    const CANTOPEN: i64 = 14;
    let path = file.display().to_string();
    match primary_code(&err) {
        Some(BUSY | LOCKED) => StoreError::Locked {
            path,
            waited_secs: BUSY_TIMEOUT.as_secs(),
        },
        Some(READONLY | CANTOPEN) => match why_unwritable(file) {
            Some(cause) => StoreError::Unwritable { path, cause },
            None => StoreError::Backend(err),
        },
        _ => StoreError::Backend(err),
    }
}

/// Why `file`, or the `-wal` and `-shm` files SQLite keeps next to it, cannot be written, as the
/// operating system says it. Only called after SQLite failed; a probe file it creates (where
/// SQLite would have created one) is removed at once.
fn why_unwritable(file: &Path) -> Option<String> {
    use std::fs::OpenOptions;
    use std::io::ErrorKind;
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_dir() => return Some("it is a directory".to_owned()),
        Err(err) if err.kind() != ErrorKind::NotFound => return Some(err.to_string()),
        _ => {}
    }
    ["", "-wal", "-shm"].into_iter().find_map(|suffix| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let path = Path::new(&name);
        let exists = path.exists();
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(!exists)
            .open(path)
        {
            Ok(_) => {
                if !exists {
                    let _ = std::fs::remove_file(path);
                }
                None
            }
            Err(err) if suffix.is_empty() && exists => Some(err.to_string()),
            Err(err) if exists => Some(format!("cannot write {}: {err}", path.display())),
            Err(err) => Some(format!("cannot create {}: {err}", path.display())),
        }
    })
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

fn conflict(what: &'static str, name: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    let name = name.to_owned();
    move |err| {
        if is_unique_violation(&err) {
            StoreError::Conflict { what, name }
        } else {
            StoreError::Backend(err)
        }
    }
}

fn account_from_row(row: &SqliteRow) -> Result<Account, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Account {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        description: row.try_get("description")?,
        owner_email: row.try_get("owner_email")?,
        role: role.parse().map_err(|_| StoreError::Corrupt {
            detail: format!("account role \"{role}\""),
        })?,
        label_policy: row.try_get("label_policy")?,
        disabled: row.try_get("disabled")?,
        all_tenants: row.try_get("all_tenants")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        hint: row.try_get("hint")?,
    })
}

fn hash_from_row(row: &SqliteRow) -> Result<TokenHash, StoreError> {
    let bytes: Vec<u8> = row.try_get("hash")?;
    TokenHash::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt {
        detail: format!("token hash of {} bytes", bytes.len()),
    })
}

/// Account-level parts of grants, built once per account: a million tokens of a few thousand
/// accounts share their names and parsed policies. `None`: the account's stored policy no longer
/// parses (a regex a newer version refuses), so its tokens are left out of the grants.
#[derive(Default)]
struct AccountParts {
    by_id: std::collections::HashMap<i64, Option<AccountPart>>,
}

#[derive(Clone)]
struct AccountPart {
    account: Arc<str>,
    tenant: Arc<str>,
    role: Role,
    policy: Policy,
    all_tenants: bool,
}

impl AccountParts {
    fn get(&mut self, row: &SqliteRow) -> Result<Option<AccountPart>, StoreError> {
        let account_id: i64 = row.try_get("account_id")?;
        if let Some(parts) = self.by_id.get(&account_id) {
            return Ok(parts.clone());
        }
        let role_text: String = row.try_get("role")?;
        let role: Role = role_text.parse().map_err(|_| StoreError::Corrupt {
            detail: format!("account role \"{role_text}\""),
        })?;
        let policy_text: String = row.try_get("label_policy")?;
        let name: String = row.try_get("name")?;
        let policy = match Policy::parse(&policy_text) {
            Ok(policy) => policy,
            // Fail closed for this account only: one old policy must not stop every other
            // account's tokens from working.
            Err(err) => {
                tracing::error!(
                    account_id,
                    account = %name,
                    error = %err,
                    "the account's stored label policy is no longer accepted; its tokens are refused until an admin sets a new policy"
                );
                self.by_id.insert(account_id, None);
                return Ok(None);
            }
        };
        let tenant: String = row.try_get("tenant")?;
        let parts = AccountPart {
            account: Arc::from(name),
            tenant: Arc::from(tenant),
            role,
            policy,
            all_tenants: row.try_get("all_tenants")?,
        };
        self.by_id.insert(account_id, Some(parts.clone()));
        Ok(Some(parts))
    }
}

/// `None` when the account's policy is no longer accepted (see [`AccountParts`]).
fn grant_from_row(
    row: &SqliteRow,
    accounts: &mut AccountParts,
) -> Result<Option<(TokenHash, Grant)>, StoreError> {
    let Some(AccountPart {
        account,
        tenant,
        role,
        policy,
        all_tenants,
    }) = accounts.get(row)?
    else {
        return Ok(None);
    };
    let expires_at: Option<i64> = row.try_get("expires_at")?;
    let grant = Grant {
        token_id: row.try_get("token_id")?,
        account_id: row.try_get("account_id")?,
        account,
        tenant,
        role,
        scopes: role.scopes(),
        policy,
        expires_at: expires_at.map(|at| at.max(0) as u64),
        all_tenants,
    };
    Ok(Some((hash_from_row(row)?, grant)))
}

async fn insert_audit(
    tx: &mut Transaction<'_, Sqlite>,
    audit: &AuditRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (at, actor, tenant, action, target, outcome) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(audit.at)
    .bind(&audit.actor)
    .bind(&audit.tenant)
    .bind(&audit.action)
    .bind(&audit.target)
    .bind(&audit.outcome)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn record_change(
    tx: &mut Transaction<'_, Sqlite>,
    hash: &TokenHash,
    kind: ChangeKind,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO changes (hash, kind) VALUES (?, ?)")
        .bind(hash.as_bytes().as_slice())
        .bind(kind.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records `kind` for every token of an account.
async fn record_account_change(
    tx: &mut Transaction<'_, Sqlite>,
    account_id: i64,
    kind: ChangeKind,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO changes (hash, kind) SELECT hash, ? FROM tokens WHERE account_id = ?")
        .bind(kind.as_str())
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn account_in(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<Account, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound {
        what: "service account",
    })?;
    account_from_row(&row)
}

async fn token_in(
    tx: &mut Transaction<'_, Sqlite>,
    account_id: i64,
    token_id: i64,
) -> Result<(TokenRecord, TokenHash), StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS}, hash FROM tokens WHERE id = ? AND account_id = ?"
    ))
    .bind(token_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound { what: "token" })?;
    Ok((token_from_row(&row)?, hash_from_row(&row)?))
}

async fn insert_account(
    tx: &mut Transaction<'_, Sqlite>,
    new: &NewAccount,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO accounts (tenant, name, display_name, description, owner_email, role, \
         label_policy, all_tenants, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(new.tenant.as_str())
    .bind(new.name.as_str())
    .bind(&new.display_name)
    .bind(&new.description)
    .bind(&new.owner_email)
    .bind(new.role.as_str())
    .bind(&new.label_policy)
    .bind(new.all_tenants)
    .bind(new.created_at)
    .bind(&new.created_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(conflict("service account", new.name.as_str()))?;
    Ok(row.try_get("id")?)
}

async fn insert_token(
    tx: &mut Transaction<'_, Sqlite>,
    account_id: i64,
    token: &NewToken,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO tokens (account_id, name, hash, hint, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(account_id)
    .bind(token.name.as_str())
    .bind(token.hash.as_bytes().as_slice())
    .bind(&token.hint)
    .bind(token.created_at)
    .bind(token.expires_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(conflict("token", token.name.as_str()))?;
    record_change(tx, &token.hash, ChangeKind::Added).await?;
    Ok(row.try_get("id")?)
}

/// `LIKE` pattern matching `needle` literally anywhere.
fn like_pattern(needle: &str) -> String {
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    async fn create_account(
        &self,
        account: NewAccount,
        audit: AuditRecord,
    ) -> Result<Account, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let id = insert_account(&mut tx, &account).await?;
        insert_audit(&mut tx, &audit).await?;
        let created = account_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_account(&self, id: i64) -> Result<Account, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            what: "service account",
        })?;
        account_from_row(&row)
    }

    async fn find_account(&self, tenant: &str, name: &str) -> Result<Account, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE tenant = ? AND name = ?"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound {
            what: "service account",
        })?;
        account_from_row(&row)
    }

    async fn list_accounts(&self, query: AccountQuery) -> Result<Page<Account>, StoreError> {
        let filter = "WHERE (?1 IS NULL OR tenant = ?1) \
             AND (?2 IS NULL OR name LIKE ?2 ESCAPE '\\' OR display_name LIKE ?2 ESCAPE '\\')";
        let search = query.search.as_deref().map(like_pattern);
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM accounts {filter}"))
            .bind(&query.tenant)
            .bind(&search)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts {filter} ORDER BY id LIMIT ?3 OFFSET ?4"
        ))
        .bind(&query.tenant)
        .bind(&search)
        .bind(to_i64(query.limit))
        .bind(to_i64(query.offset))
        .fetch_all(&self.pool)
        .await?;
        Ok(Page {
            items: rows
                .iter()
                .map(account_from_row)
                .collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
        })
    }

    async fn update_account(
        &self,
        id: i64,
        patch: AccountPatch,
        audit: AuditRecord,
    ) -> Result<Account, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let before = account_in(&mut tx, id).await?;
        let name = patch
            .name
            .as_ref()
            .map_or(before.name.as_str(), Name::as_str)
            .to_owned();
        sqlx::query(
            "UPDATE accounts SET name = ?, display_name = ?, description = ?, owner_email = ?, \
             role = ?, label_policy = ?, disabled = ? WHERE id = ?",
        )
        .bind(&name)
        .bind(patch.display_name.as_ref().unwrap_or(&before.display_name))
        .bind(patch.description.as_ref().unwrap_or(&before.description))
        .bind(patch.owner_email.as_ref().unwrap_or(&before.owner_email))
        .bind(patch.role.unwrap_or(before.role).as_str())
        .bind(patch.label_policy.as_ref().unwrap_or(&before.label_policy))
        .bind(patch.disabled.unwrap_or(before.disabled))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(conflict("service account", &name))?;
        if patch.touches_grants() {
            let disabled = patch.disabled.unwrap_or(before.disabled);
            let kind = match (before.disabled, disabled) {
                (false, true) => ChangeKind::Revoked,
                (true, false) => ChangeKind::Added,
                _ => ChangeKind::Changed,
            };
            if !(before.disabled && disabled) {
                record_account_change(&mut tx, id, kind).await?;
            }
        }
        insert_audit(&mut tx, &audit).await?;
        let after = account_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn delete_account(&self, id: i64, audit: AuditRecord) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        account_in(&mut tx, id).await?;
        record_account_change(&mut tx, id, ChangeKind::Revoked).await?;
        sqlx::query("DELETE FROM accounts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_token(
        &self,
        account_id: i64,
        token: NewToken,
        audit: AuditRecord,
    ) -> Result<TokenRecord, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        account_in(&mut tx, account_id).await?;
        let id = insert_token(&mut tx, account_id, &token).await?;
        insert_audit(&mut tx, &audit).await?;
        let (record, _) = token_in(&mut tx, account_id, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn create_tokens(
        &self,
        account_id: i64,
        tokens: Vec<NewToken>,
        audit: AuditRecord,
    ) -> Result<u64, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        account_in(&mut tx, account_id).await?;
        let mut created = 0;
        for token in &tokens {
            insert_token(&mut tx, account_id, token).await?;
            created += 1;
        }
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_tokens(&self, account_id: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE account_id = ? ORDER BY id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn rename_token(
        &self,
        account_id: i64,
        token_id: i64,
        name: Name,
        audit: AuditRecord,
    ) -> Result<TokenRecord, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        token_in(&mut tx, account_id, token_id).await?;
        sqlx::query("UPDATE tokens SET name = ? WHERE id = ?")
            .bind(name.as_str())
            .bind(token_id)
            .execute(&mut *tx)
            .await
            .map_err(conflict("token", name.as_str()))?;
        insert_audit(&mut tx, &audit).await?;
        let (record, _) = token_in(&mut tx, account_id, token_id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn regenerate_token(
        &self,
        account_id: i64,
        token_id: i64,
        hash: TokenHash,
        hint: String,
        audit: AuditRecord,
    ) -> Result<TokenRecord, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let (_, old_hash) = token_in(&mut tx, account_id, token_id).await?;
        sqlx::query("UPDATE tokens SET hash = ?, hint = ?, last_used_at = NULL WHERE id = ?")
            .bind(hash.as_bytes().as_slice())
            .bind(&hint)
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        record_change(&mut tx, &old_hash, ChangeKind::Revoked).await?;
        record_change(&mut tx, &hash, ChangeKind::Added).await?;
        insert_audit(&mut tx, &audit).await?;
        let (record, _) = token_in(&mut tx, account_id, token_id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn delete_token(
        &self,
        account_id: i64,
        token_id: i64,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let (_, hash) = token_in(&mut tx, account_id, token_id).await?;
        sqlx::query("DELETE FROM tokens WHERE id = ?")
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        record_change(&mut tx, &hash, ChangeKind::Revoked).await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn touch_tokens(&self, uses: Vec<(i64, i64)>) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        for (token_id, at) in uses {
            sqlx::query(
                "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
            )
            .bind(at)
            .bind(token_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write().await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<Page<AuditEntry>, StoreError> {
        // A target also matches the targets under it (`serviceaccount/3` and its tokens).
        let filter = "WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR actor = ?2) \
             AND (?3 IS NULL OR target = ?3 OR substr(target, 1, length(?3) + 1) = ?3 || '/')";
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit {filter}"))
            .bind(&query.tenant)
            .bind(&query.actor)
            .bind(&query.target)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT id, at, actor, tenant, action, target, outcome FROM audit {filter} \
             ORDER BY id DESC LIMIT ?4 OFFSET ?5"
        ))
        .bind(&query.tenant)
        .bind(&query.actor)
        .bind(&query.target)
        .bind(to_i64(query.limit))
        .bind(to_i64(query.offset))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    record: AuditRecord {
                        at: row.try_get("at")?,
                        actor: row.try_get("actor")?,
                        tenant: row.try_get("tenant")?,
                        action: row.try_get("action")?,
                        target: row.try_get("target")?,
                        outcome: row.try_get("outcome")?,
                    },
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page {
            items,
            total: total.max(0) as u64,
        })
    }

    async fn load_grants(&self) -> Result<GrantSet, StoreError> {
        // One read transaction, so the revision matches the grants exactly. Rows are streamed:
        // materialising a million rows first would double the memory at start.
        let mut tx = self.pool.begin().await?;
        let revision: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await?;
        let mut accounts = AccountParts::default();
        let mut grants = Vec::new();
        {
            let mut rows = sqlx::query(GRANT_SELECT).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                grants.extend(grant_from_row(&row, &mut accounts)?);
            }
        }
        tx.commit().await?;
        Ok(GrantSet {
            revision: revision.max(0) as u64,
            grants,
        })
    }

    async fn grants_for(
        &self,
        hashes: Vec<TokenHash>,
    ) -> Result<Vec<(TokenHash, Grant)>, StoreError> {
        let mut grants = Vec::with_capacity(hashes.len());
        let mut accounts = AccountParts::default();
        let mut conn = self.pool.acquire().await?;
        for hash in hashes {
            if let Some(row) = sqlx::query(&format!("{GRANT_SELECT} AND t.hash = ?"))
                .bind(hash.as_bytes().as_slice())
                .fetch_optional(&mut *conn)
                .await?
            {
                grants.extend(grant_from_row(&row, &mut accounts)?);
            }
        }
        Ok(grants)
    }

    async fn changes_since(&self, revision: u64, limit: u64) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(
            "SELECT revision, hash, kind FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(to_i64(revision))
        .bind(to_i64(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let revision: i64 = row.try_get("revision")?;
                Ok(Change {
                    revision: revision.max(0) as u64,
                    hash: hash_from_row(row)?,
                    kind: ChangeKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                        detail: format!("change kind \"{kind}\""),
                    })?,
                })
            })
            .collect()
    }

    async fn is_bootstrapped(&self) -> Result<bool, StoreError> {
        let done: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'bootstrapped'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(done.is_some())
    }

    async fn bootstrap(
        &self,
        account: NewAccount,
        token: NewToken,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        let (_guard, mut tx) = self.write().await?;
        let inserted =
            sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('bootstrapped', ?)")
                .bind(account.created_at.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let id = insert_account(&mut tx, &account).await?;
        insert_token(&mut tx, id, &token).await?;
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::conformance::conformance_suite;
    use tollgate_core::Token;

    async fn open_temp() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (SqliteStore::open(&url).await.unwrap(), dir)
    }

    conformance_suite!(conformance, open_temp());

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
                    role: Role::Admin,
                    label_policy: String::new(),
                    all_tenants: true,
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
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
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
