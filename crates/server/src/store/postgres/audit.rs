//! The audit log: a row per action, written in the action's own transaction (or on its own for
//! actions that failed before reaching the store).

use super::error::PgResult;
use super::rows::to_i64;
use crate::model::{AuditEntry, AuditQuery, AuditRecord, Page};
use crate::store::StoreError;
use sqlx::{PgPool, Postgres, Row, Transaction};

pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Postgres>,
    audit: &AuditRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (at, actor, tenant, action, target, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(audit.at)
    .bind(&audit.actor)
    .bind(&audit.tenant)
    .bind(&audit.action)
    .bind(&audit.target)
    .bind(&audit.outcome)
    .execute(&mut **tx)
    .await
    .pg()?;
    Ok(())
}

pub(super) async fn list_audit(
    pool: &PgPool,
    query: AuditQuery,
) -> Result<Page<AuditEntry>, StoreError> {
    // A target also matches the targets under it (`serviceaccount/3` and its tokens).
    let filter = "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR actor = $2) \
         AND ($3::text IS NULL OR target = $3 OR left(target, length($3) + 1) = $3 || '/')";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit {filter}"))
        .bind(&query.tenant)
        .bind(&query.actor)
        .bind(&query.target)
        .fetch_one(pool)
        .await
        .pg()?;
    let rows = sqlx::query(&format!(
        "SELECT id, at, actor, tenant, action, target, outcome FROM audit {filter} \
         ORDER BY id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(&query.tenant)
    .bind(&query.actor)
    .bind(&query.target)
    .bind(to_i64(query.limit))
    .bind(to_i64(query.offset))
    .fetch_all(pool)
    .await
    .pg()?;
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
