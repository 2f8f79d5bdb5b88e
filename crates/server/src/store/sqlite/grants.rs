//! Grants: what the snapshot is built from, at start and for the hashes the feed names.

use super::SqliteStore;
use super::changes::current_revision;
use super::rows::{
    AccountParts, GRANT_ACCOUNTS_SELECT, GRANT_SELECT, GRANT_TOKENS_SELECT, grant_from_row,
};
use crate::store::{GrantSet, StoreError, TokenGrant};
use futures_util::TryStreamExt;
use tollgate_core::TokenHash;

pub(super) async fn load(store: &SqliteStore) -> Result<GrantSet, StoreError> {
    // One read transaction, so the revision matches the grants exactly. Rows are streamed:
    // materialising a million rows first would double the memory at start.
    let mut tx = store.pool.begin().await?;
    let revision = current_revision(&mut tx).await?;
    let mut accounts = AccountParts::default();
    {
        let mut rows = sqlx::query(GRANT_ACCOUNTS_SELECT).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            accounts.add(&row)?;
        }
    }
    // Tokens of disabled accounts (absent from `accounts`) are left out as the rows come.
    let mut grants = Vec::new();
    {
        let mut rows = sqlx::query(GRANT_TOKENS_SELECT).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            grants.extend(accounts.token_grant(&row)?);
        }
    }
    tx.commit().await?;
    Ok(GrantSet { revision, grants })
}

pub(super) async fn for_hashes(
    store: &SqliteStore,
    hashes: Vec<TokenHash>,
) -> Result<Vec<(TokenHash, TokenGrant)>, StoreError> {
    let mut grants = Vec::with_capacity(hashes.len());
    let mut accounts = AccountParts::default();
    let mut conn = store.pool.acquire().await?;
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
