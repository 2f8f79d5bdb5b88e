//! The change feed: one row per affected token hash, appended in the write's own transaction.
//!
//! Revisions come from `AUTOINCREMENT` inside write transactions, and SQLite has one writer at a
//! time (every write begins `IMMEDIATE`): a transaction's revisions are allocated and committed
//! before the next write can allocate any. So revisions become visible in order, and a reader
//! that has seen revision N never later finds a committed change below N (the contract of
//! [`crate::store::Store`]).

use super::rows::{hash_from_row, to_i64};
use crate::model::{Change, ChangeKind};
use crate::store::StoreError;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tollgate_core::TokenHash;

pub(super) async fn record_change(
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
pub(super) async fn record_account_change(
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

/// The highest revision committed, 0 for none; read in `tx` so that it matches what else `tx`
/// reads.
pub(super) async fn current_revision(tx: &mut Transaction<'_, Sqlite>) -> Result<u64, StoreError> {
    let revision: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
        .fetch_one(&mut **tx)
        .await?;
    Ok(revision.max(0) as u64)
}

pub(super) async fn changes_since(
    pool: &SqlitePool,
    revision: u64,
    limit: u64,
) -> Result<Vec<Change>, StoreError> {
    let rows = sqlx::query(
        "SELECT revision, hash, kind FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
    )
    .bind(to_i64(revision))
    .bind(to_i64(limit))
    .fetch_all(pool)
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
