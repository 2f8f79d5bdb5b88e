//! Schema and migrations, versioned by `PRAGMA user_version`, and the clear errors of a store
//! that cannot be opened (locked, unwritable).

use super::SqliteStore;
use super::error::{BUSY, CANTOPEN, LOCKED, READONLY, primary_code};
use crate::store::StoreError;
use std::path::Path;
use std::time::Duration;

/// Schema migrations, applied in order; `user_version` is the number applied.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // 2: the tenants' own roles; the tenants an account may read besides its own.
    r#"
CREATE TABLE roles (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
ALTER TABLE accounts ADD COLUMN read_tenants TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN hide_policy_labels INTEGER NOT NULL DEFAULT 0;
CREATE INDEX accounts_role ON accounts (tenant, role);
"#,
];

/// How long a statement waits for another connection's (or process's) lock before failing.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies the migrations this binary knows, in one write transaction. A failure names the
/// store `file` and its cause (see [`open_error`]).
pub(super) async fn migrate(store: &SqliteStore, file: &Path) -> Result<(), StoreError> {
    let db = |err| open_error(file, err);
    let _guard = store.write_lock.lock().await;
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    // Fails on a file that is not a database, or one another writer holds past busy_timeout.
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for migration in MIGRATIONS.iter().skip(version as usize) {
        sqlx::raw_sql(migration)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    // Written even when unchanged: SQLite opens a write-protected file read-only without a
    // word, and a server must not start on a store that would refuse every write later.
    sqlx::raw_sql(&format!("PRAGMA user_version = {supported}"))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// Turns a failure to open or migrate the store into a clear error: locked (SQLITE_BUSY or
/// SQLITE_LOCKED after the busy timeout), or unwritable with the operating system's reason
/// (SQLite's own message, "unable to open database file", does not say why).
pub(super) fn open_error(file: &Path, err: sqlx::Error) -> StoreError {
    let path = file.display().to_string();
    match primary_code(&err) {
        Some(BUSY | LOCKED) => StoreError::Locked {
            path,
            waited_secs: BUSY_TIMEOUT.as_secs(),
        },
        Some(READONLY | CANTOPEN) => match why_unwritable(file) {
            Some(cause) => StoreError::Unwritable { path, cause },
            None => StoreError::from(err),
        },
        _ => StoreError::from(err),
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
