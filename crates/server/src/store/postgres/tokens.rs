//! Tokens: create (one or many), list, rename, regenerate, revoke and last-used times. Every
//! change to a live hash goes to the change feed in the same transaction.

use super::PostgresStore;
use super::accounts::account_in;
use super::audit::insert_audit;
use super::changes::record_change;
use super::error::{PgResult, conflict};
use super::rows::{TOKEN_COLUMNS, hash_from_row, to_i64, token_from_row};
use crate::model::{AuditRecord, ChangeKind, Name, NewToken, Page, TokenQuery, TokenRecord};
use crate::store::{Protected, StoreError};
use sqlx::{Postgres, Row, Transaction};
use tollgate_core::TokenHash;

async fn token_in(
    tx: &mut Transaction<'_, Postgres>,
    account_id: i64,
    token_id: i64,
) -> Result<(TokenRecord, TokenHash), StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS}, hash FROM tokens WHERE id = $1 AND account_id = $2"
    ))
    .bind(token_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await
    .pg()?
    .ok_or(StoreError::NotFound { what: "token" })?;
    Ok((token_from_row(&row)?, hash_from_row(&row)?))
}

pub(super) async fn insert_token(
    tx: &mut Transaction<'_, Postgres>,
    account_id: i64,
    token: &NewToken,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO tokens (account_id, name, hash, hint, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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

pub(super) async fn create(
    store: &PostgresStore,
    account_id: i64,
    token: NewToken,
    audit: AuditRecord,
) -> Result<TokenRecord, StoreError> {
    let mut tx = store.write(true).await?;
    account_in(&mut tx, account_id).await?;
    let id = insert_token(&mut tx, account_id, &token).await?;
    insert_audit(&mut tx, &audit).await?;
    let (record, _) = token_in(&mut tx, account_id, id).await?;
    tx.commit().await.pg()?;
    Ok(record)
}

pub(super) async fn create_many(
    store: &PostgresStore,
    account_id: i64,
    tokens: Vec<NewToken>,
    audit: AuditRecord,
) -> Result<u64, StoreError> {
    let mut tx = store.write(true).await?;
    account_in(&mut tx, account_id).await?;
    let mut created = 0;
    for token in &tokens {
        insert_token(&mut tx, account_id, token).await?;
        created += 1;
    }
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.pg()?;
    Ok(created)
}

pub(super) async fn list(
    store: &PostgresStore,
    query: TokenQuery,
) -> Result<Page<TokenRecord>, StoreError> {
    let filter = "WHERE account_id = $1 \
         AND ($2::bigint IS NULL OR (expires_at > $2 AND expires_at <= $3))";
    let (valid_at, until) = query.expiring.unzip();
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM tokens {filter}"))
        .bind(query.account_id)
        .bind(valid_at)
        .bind(until)
        .fetch_one(&store.pool)
        .await
        .pg()?;
    let rows = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens {filter} ORDER BY id LIMIT $4 OFFSET $5"
    ))
    .bind(query.account_id)
    .bind(valid_at)
    .bind(until)
    .bind(to_i64(query.limit))
    .bind(to_i64(query.offset))
    .fetch_all(&store.pool)
    .await
    .pg()?;
    Ok(Page {
        items: rows.iter().map(token_from_row).collect::<Result<_, _>>()?,
        total: total.max(0) as u64,
    })
}

pub(super) async fn rename(
    store: &PostgresStore,
    account_id: i64,
    token_id: i64,
    name: Name,
    audit: AuditRecord,
) -> Result<TokenRecord, StoreError> {
    let mut tx = store.write(false).await?;
    token_in(&mut tx, account_id, token_id).await?;
    sqlx::query("UPDATE tokens SET name = $1 WHERE id = $2")
        .bind(name.as_str())
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .map_err(conflict("token", name.as_str()))?;
    insert_audit(&mut tx, &audit).await?;
    let (record, _) = token_in(&mut tx, account_id, token_id).await?;
    tx.commit().await.pg()?;
    Ok(record)
}

pub(super) async fn regenerate(
    store: &PostgresStore,
    account_id: i64,
    token_id: i64,
    hash: TokenHash,
    hint: String,
    audit: AuditRecord,
) -> Result<TokenRecord, StoreError> {
    let mut tx = store.write(true).await?;
    let (_, old_hash) = token_in(&mut tx, account_id, token_id).await?;
    sqlx::query("UPDATE tokens SET hash = $1, hint = $2, last_used_at = NULL WHERE id = $3")
        .bind(hash.as_bytes().as_slice())
        .bind(&hint)
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .pg()?;
    record_change(&mut tx, &old_hash, ChangeKind::Revoked).await?;
    record_change(&mut tx, &hash, ChangeKind::Added).await?;
    insert_audit(&mut tx, &audit).await?;
    let (record, _) = token_in(&mut tx, account_id, token_id).await?;
    tx.commit().await.pg()?;
    Ok(record)
}

/// Refuses to revoke `revoked`, a token of the all-tenant admin `account_id`, unless another
/// of its tokens is live at `now` and expires no sooner. Runs in the revocation's write
/// transaction after the account row was locked (`account_in`), so two concurrent revocations,
/// on any replicas, cannot each count the other's token.
async fn keep_a_survivor(
    tx: &mut Transaction<'_, Postgres>,
    account_id: i64,
    revoked: &TokenRecord,
    now: i64,
) -> Result<(), StoreError> {
    let until = |expires_at: Option<i64>| expires_at.unwrap_or(i64::MAX);
    let others: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT expires_at FROM tokens WHERE account_id = $1 AND id <> $2")
            .bind(account_id)
            .bind(revoked.id)
            .fetch_all(&mut **tx)
            .await
            .pg()?;
    let survivor = others.into_iter().any(|expires_at| {
        until(expires_at) >= until(revoked.expires_at) && until(expires_at) > now
    });
    if survivor {
        Ok(())
    } else {
        Err(StoreError::Protected(Protected::LastToken))
    }
}

pub(super) async fn delete(
    store: &PostgresStore,
    account_id: i64,
    token_id: i64,
    audit: AuditRecord,
) -> Result<(), StoreError> {
    let mut tx = store.write(true).await?;
    // The account row first: it is what serialises revocations of one account's tokens.
    let account = account_in(&mut tx, account_id).await;
    let (record, hash) = token_in(&mut tx, account_id, token_id).await?;
    if account?.all_tenants {
        keep_a_survivor(&mut tx, account_id, &record, audit.at).await?;
    }
    sqlx::query("DELETE FROM tokens WHERE id = $1")
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .pg()?;
    record_change(&mut tx, &hash, ChangeKind::Revoked).await?;
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.pg()?;
    Ok(())
}

pub(super) async fn touch(
    store: &PostgresStore,
    mut uses: Vec<(i64, i64)>,
) -> Result<(), StoreError> {
    // In token order: two replicas flushing at once lock the same rows in the same order.
    uses.sort_unstable();
    let mut tx = store.write(false).await?;
    for (token_id, at) in uses {
        sqlx::query(
            "UPDATE tokens SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $1) \
             WHERE id = $2",
        )
        .bind(at)
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .pg()?;
    }
    tx.commit().await.pg()?;
    Ok(())
}
