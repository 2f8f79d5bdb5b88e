//! Tokens: create (one or many), list, rename, regenerate, revoke and last-used times. Every
//! change to a live hash goes to the change feed in the same transaction.

use super::SqliteStore;
use super::accounts::account_in;
use super::audit::insert_audit;
use super::changes::record_change;
use super::error::conflict;
use super::rows::{TOKEN_COLUMNS, hash_from_row, to_i64, token_from_row};
use crate::model::{AuditRecord, ChangeKind, Name, NewToken, Page, TokenQuery, TokenRecord};
use crate::store::{Protected, StoreError};
use sqlx::{Row, Sqlite, Transaction};
use tollgate_core::TokenHash;

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

pub(super) async fn insert_token(
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

pub(super) async fn create(
    store: &SqliteStore,
    account_id: i64,
    token: NewToken,
    audit: AuditRecord,
) -> Result<TokenRecord, StoreError> {
    let (_guard, mut tx) = store.write().await?;
    account_in(&mut tx, account_id).await?;
    let id = insert_token(&mut tx, account_id, &token).await?;
    insert_audit(&mut tx, &audit).await?;
    let (record, _) = token_in(&mut tx, account_id, id).await?;
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn create_many(
    store: &SqliteStore,
    account_id: i64,
    tokens: Vec<NewToken>,
    audit: AuditRecord,
) -> Result<u64, StoreError> {
    let (_guard, mut tx) = store.write().await?;
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

pub(super) async fn list(
    store: &SqliteStore,
    query: TokenQuery,
) -> Result<Page<TokenRecord>, StoreError> {
    let filter = "WHERE account_id = ?1 \
         AND (?2 IS NULL OR (expires_at > ?2 AND expires_at <= ?3))";
    let (valid_at, until) = query.expiring.unzip();
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM tokens {filter}"))
        .bind(query.account_id)
        .bind(valid_at)
        .bind(until)
        .fetch_one(&store.pool)
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens {filter} ORDER BY id LIMIT ?4 OFFSET ?5"
    ))
    .bind(query.account_id)
    .bind(valid_at)
    .bind(until)
    .bind(to_i64(query.limit))
    .bind(to_i64(query.offset))
    .fetch_all(&store.pool)
    .await?;
    Ok(Page {
        items: rows.iter().map(token_from_row).collect::<Result<_, _>>()?,
        total: total.max(0) as u64,
    })
}

pub(super) async fn rename(
    store: &SqliteStore,
    account_id: i64,
    token_id: i64,
    name: Name,
    audit: AuditRecord,
) -> Result<TokenRecord, StoreError> {
    let (_guard, mut tx) = store.write().await?;
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

pub(super) async fn regenerate(
    store: &SqliteStore,
    account_id: i64,
    token_id: i64,
    hash: TokenHash,
    hint: String,
    audit: AuditRecord,
) -> Result<TokenRecord, StoreError> {
    let (_guard, mut tx) = store.write().await?;
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

/// Refuses to revoke `revoked`, a token of the all-tenant admin `account_id`, unless another
/// of its tokens is live at `now` and expires no sooner. Runs in the revocation's write
/// transaction, so two concurrent revocations cannot each count the other's token.
async fn keep_a_survivor(
    tx: &mut Transaction<'_, Sqlite>,
    account_id: i64,
    revoked: &TokenRecord,
    now: i64,
) -> Result<(), StoreError> {
    let until = |expires_at: Option<i64>| expires_at.unwrap_or(i64::MAX);
    let others: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT expires_at FROM tokens WHERE account_id = ? AND id <> ?")
            .bind(account_id)
            .bind(revoked.id)
            .fetch_all(&mut **tx)
            .await?;
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
    store: &SqliteStore,
    account_id: i64,
    token_id: i64,
    audit: AuditRecord,
) -> Result<(), StoreError> {
    let (_guard, mut tx) = store.write().await?;
    let (record, hash) = token_in(&mut tx, account_id, token_id).await?;
    if account_in(&mut tx, account_id).await?.all_tenants {
        keep_a_survivor(&mut tx, account_id, &record, audit.at).await?;
    }
    sqlx::query("DELETE FROM tokens WHERE id = ?")
        .bind(token_id)
        .execute(&mut *tx)
        .await?;
    record_change(&mut tx, &hash, ChangeKind::Revoked).await?;
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn touch(store: &SqliteStore, uses: Vec<(i64, i64)>) -> Result<(), StoreError> {
    let (_guard, mut tx) = store.write().await?;
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
