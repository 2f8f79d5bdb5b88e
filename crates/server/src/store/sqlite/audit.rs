//! The audit log: a row per action, written in the action's own transaction (or on its own for
//! actions that failed before reaching the store).

use super::rows::to_i64;
use crate::model::{AuditEntry, AuditQuery, AuditRecord, Page};
use crate::store::StoreError;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

pub(super) async fn insert_audit(
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

pub(super) async fn list_audit(
    pool: &SqlitePool,
    query: AuditQuery,
) -> Result<Page<AuditEntry>, StoreError> {
    // A target also matches the targets under it (`serviceaccount/3` and its tokens).
    let filter = "WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR actor = ?2) \
         AND (?3 IS NULL OR target = ?3 OR substr(target, 1, length(?3) + 1) = ?3 || '/')";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit {filter}"))
        .bind(&query.tenant)
        .bind(&query.actor)
        .bind(&query.target)
        .fetch_one(pool)
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
    .fetch_all(pool)
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
