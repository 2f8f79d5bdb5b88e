//! Grants: what the snapshot is built from, at start and for the hashes the feed names.

use super::PostgresStore;
use super::changes::current_revision;
use super::error::PgResult;
use super::rows::{
    AccountParts, GRANT_ACCOUNTS_SELECT, GRANT_SELECT, GRANT_TOKENS_SELECT, grant_from_row,
};
use crate::store::{GrantSet, StoreError, TokenGrant};
use futures_util::TryStreamExt;
use tollgate_core::TokenHash;

pub(super) async fn load(store: &PostgresStore) -> Result<GrantSet, StoreError> {
    // One repeatable-read (snapshot) transaction, so the revision matches the grants exactly.
    // Rows are streamed: materialising a million rows first would double the memory at start.
    let mut tx = store
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .pg()?;
    let revision = current_revision(&mut tx).await?;
    let mut accounts = AccountParts::default();
    {
        let mut rows = sqlx::query(GRANT_ACCOUNTS_SELECT).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.pg()? {
            accounts.add(&row)?;
        }
    }
    // Tokens of disabled accounts (absent from `accounts`) are left out as the rows come.
    let mut grants = Vec::new();
    {
        let mut rows = sqlx::query(GRANT_TOKENS_SELECT).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.pg()? {
            grants.extend(accounts.token_grant(&row)?);
        }
    }
    tx.commit().await.pg()?;
    Ok(GrantSet { revision, grants })
}

pub(super) async fn for_hashes(
    store: &PostgresStore,
    hashes: Vec<TokenHash>,
) -> Result<Vec<(TokenHash, TokenGrant)>, StoreError> {
    // One round trip for the whole batch: the database may be across a network.
    let keys: Vec<Vec<u8>> = hashes.iter().map(|hash| hash.as_bytes().to_vec()).collect();
    let rows = sqlx::query(&format!("{GRANT_SELECT} AND t.hash = ANY($1)"))
        .bind(keys)
        .fetch_all(&store.pool)
        .await
        .pg()?;
    let mut accounts = AccountParts::default();
    let mut grants = Vec::with_capacity(rows.len());
    for row in &rows {
        grants.extend(grant_from_row(row, &mut accounts)?);
    }
    Ok(grants)
}
