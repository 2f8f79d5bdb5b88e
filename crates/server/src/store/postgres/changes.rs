//! The change feed: one row per affected token hash, appended in the write's own transaction,
//! and a notification to the other replicas when it commits.
//!
//! # Why a counter row and not a sequence
//!
//! A sequence hands out values at insert, not at commit: a writer holding revision 41 can commit
//! after revision 42 has been read, and a reader that moved past 42 would never see 41. Here a
//! revision comes from `UPDATE revision SET value = value + n RETURNING value` on the single row
//! of `revision`. The row lock it takes is held to commit (or rollback), so a second writer,
//! on any replica, waits at that row and reads the counter only after the first has committed:
//! revisions become visible strictly in order, and a reader that has seen revision N never later
//! finds a committed change below N (the contract of [`crate::store::Store`]). Writes that may
//! record a change take this lock first (`PostgresStore::write`), before any other row lock, so
//! they also cannot deadlock on each other. Admin writes are rare, so serialising them costs
//! nothing a user sees; reads never take the lock.
//!
//! The "read only below the oldest revision in flight" alternative keeps writers parallel but
//! needs a horizon every reader agrees on; not worth it for this write rate.

use super::error::PgResult;
use super::rows::{hash_from_row, to_i64};
use crate::model::{Change, ChangeKind};
use crate::store::StoreError;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tollgate_core::TokenHash;

/// The channel replicas LISTEN on. The payload is empty: PostgreSQL folds identical
/// notifications of one transaction into one, and listeners read the feed anyway.
pub(super) const CHANNEL: &str = "tollgate_changes";

/// Takes the counter's row lock without moving it: the first statement of every write that may
/// record a change (see the module docs).
pub(super) async fn lock_feed(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT value FROM revision FOR UPDATE")
        .fetch_one(&mut **tx)
        .await
        .pg()?;
    Ok(())
}

pub(super) async fn record_change(
    tx: &mut Transaction<'_, Postgres>,
    hash: &TokenHash,
    kind: ChangeKind,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH r AS (UPDATE revision SET value = value + 1 RETURNING value), \
         c AS (INSERT INTO changes (revision, hash, kind) SELECT value, $1, $2 FROM r \
         RETURNING revision) \
         SELECT pg_notify($3, '') FROM c",
    )
    .bind(hash.as_bytes().as_slice())
    .bind(kind.as_str())
    .bind(CHANNEL)
    .fetch_all(&mut **tx)
    .await
    .pg()?;
    Ok(())
}

/// Records `kind` for every token of an account, one revision each, in token order.
pub(super) async fn record_account_change(
    tx: &mut Transaction<'_, Postgres>,
    account_id: i64,
    kind: ChangeKind,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH h AS (SELECT hash, row_number() OVER (ORDER BY id) AS n FROM tokens \
         WHERE account_id = $1), \
         cnt AS (SELECT count(*) AS total FROM h), \
         r AS (UPDATE revision SET value = value + (SELECT total FROM cnt) RETURNING value), \
         c AS (INSERT INTO changes (revision, hash, kind) \
         SELECT r.value - cnt.total + h.n, h.hash, $2 FROM r, cnt, h RETURNING revision) \
         SELECT pg_notify($3, '') FROM c",
    )
    .bind(account_id)
    .bind(kind.as_str())
    .bind(CHANNEL)
    .fetch_all(&mut **tx)
    .await
    .pg()?;
    Ok(())
}

/// The highest revision committed, 0 for none; read in `tx` so that it matches what else `tx`
/// reads (a repeatable-read transaction: one snapshot).
pub(super) async fn current_revision(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<u64, StoreError> {
    let revision: i64 = sqlx::query_scalar("SELECT value FROM revision")
        .fetch_one(&mut **tx)
        .await
        .pg()?;
    Ok(revision.max(0) as u64)
}

pub(super) async fn changes_since(
    pool: &PgPool,
    revision: u64,
    limit: u64,
) -> Result<Vec<Change>, StoreError> {
    let rows = sqlx::query(
        "SELECT revision, hash, kind FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
    )
    .bind(to_i64(revision))
    .bind(to_i64(limit))
    .fetch_all(pool)
    .await
    .pg()?;
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
