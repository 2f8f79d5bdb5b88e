//! Service accounts: create, read, list, update and delete, the one-time bootstrap, and the
//! all-tenant admin's protection, checked inside each write's transaction (the account row is
//! read `FOR UPDATE`, so a check and the write it guards cannot interleave with another
//! replica's).

use super::PostgresStore;
use super::audit::insert_audit;
use super::changes::record_account_change;
use super::error::{PgResult, conflict};
use super::roles::require_role;
use super::rows::{ACCOUNT_COLUMNS, account_from_row, like_pattern, to_i64};
use super::tokens::insert_token;
use crate::model::{
    Account, AccountPatch, AccountQuery, AuditRecord, ChangeKind, Name, NewAccount, NewToken, Page,
    TenantSummary,
};
use crate::store::{Protected, StoreError};
use sqlx::{Postgres, Row, Transaction};

const NOT_FOUND: StoreError = StoreError::NotFound {
    what: "service account",
};

/// The account, its row locked until the transaction ends.
pub(super) async fn account_in(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
) -> Result<Account, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .pg()?
    .ok_or(NOT_FOUND)?;
    account_from_row(&row)
}

async fn insert_account(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewAccount,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO accounts (tenant, name, display_name, description, owner_email, role, \
         label_policy, all_tenants, created_at, created_by, read_tenants, hide_policy_labels) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
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
    .bind(new.read_tenants.to_text())
    .bind(new.hide_policy_labels)
    .fetch_one(&mut **tx)
    .await
    .map_err(conflict("service account", new.name.as_str()))?;
    Ok(row.try_get("id")?)
}

pub(super) async fn create(
    store: &PostgresStore,
    account: NewAccount,
    audit: AuditRecord,
) -> Result<Account, StoreError> {
    let mut tx = store.write(false).await?;
    require_role(&mut tx, account.tenant.as_str(), account.role.as_str()).await?;
    let id = insert_account(&mut tx, &account).await?;
    insert_audit(&mut tx, &audit).await?;
    let created = account_in(&mut tx, id).await?;
    tx.commit().await.pg()?;
    Ok(created)
}

pub(super) async fn get(store: &PostgresStore, id: i64) -> Result<Account, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await
    .pg()?
    .ok_or(NOT_FOUND)?;
    account_from_row(&row)
}

pub(super) async fn find(
    store: &PostgresStore,
    tenant: &str,
    name: &str,
) -> Result<Account, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE tenant = $1 AND name = $2"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_optional(&store.pool)
    .await
    .pg()?
    .ok_or(NOT_FOUND)?;
    account_from_row(&row)
}

pub(super) async fn list(
    store: &PostgresStore,
    query: AccountQuery,
) -> Result<Page<Account>, StoreError> {
    // ILIKE: SQLite's LIKE ignores ASCII case, and both backends answer the same.
    let filter = "WHERE ($1::text IS NULL OR tenant = $1) \
         AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR display_name ILIKE $2 ESCAPE '\\')";
    let search = query.search.as_deref().map(like_pattern);
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM accounts {filter}"))
        .bind(&query.tenant)
        .bind(&search)
        .fetch_one(&store.pool)
        .await
        .pg()?;
    let rows = sqlx::query(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts {filter} ORDER BY id LIMIT $3 OFFSET $4"
    ))
    .bind(&query.tenant)
    .bind(&search)
    .bind(to_i64(query.limit))
    .bind(to_i64(query.offset))
    .fetch_all(&store.pool)
    .await
    .pg()?;
    Ok(Page {
        items: rows
            .iter()
            .map(account_from_row)
            .collect::<Result<_, _>>()?,
        total: total.max(0) as u64,
    })
}

/// Whether `patch` disables `account` or changes its role or label policy.
fn demotes(account: &Account, patch: &AccountPatch) -> bool {
    patch.disabled == Some(true)
        || patch
            .role
            .as_ref()
            .is_some_and(|role| role.as_str() != account.role)
        || patch
            .label_policy
            .as_deref()
            .is_some_and(|policy| policy != account.label_policy)
}

pub(super) async fn update(
    store: &PostgresStore,
    id: i64,
    patch: AccountPatch,
    audit: AuditRecord,
) -> Result<Account, StoreError> {
    let mut tx = store.write(patch.touches_grants()).await?;
    let before = account_in(&mut tx, id).await?;
    if before.all_tenants && demotes(&before, &patch) {
        return Err(StoreError::Protected(Protected::Demote));
    }
    if let Some(role) = &patch.role {
        require_role(&mut tx, &before.tenant, role.as_str()).await?;
    }
    let name = patch
        .name
        .as_ref()
        .map_or(before.name.as_str(), Name::as_str)
        .to_owned();
    sqlx::query(
        "UPDATE accounts SET name = $1, display_name = $2, description = $3, owner_email = $4, \
         role = $5, label_policy = $6, disabled = $7, read_tenants = $8, hide_policy_labels = $9 \
         WHERE id = $10",
    )
    .bind(&name)
    .bind(patch.display_name.as_ref().unwrap_or(&before.display_name))
    .bind(patch.description.as_ref().unwrap_or(&before.description))
    .bind(patch.owner_email.as_ref().unwrap_or(&before.owner_email))
    .bind(
        patch
            .role
            .as_ref()
            .map_or(before.role.as_str(), Name::as_str),
    )
    .bind(patch.label_policy.as_ref().unwrap_or(&before.label_policy))
    .bind(patch.disabled.unwrap_or(before.disabled))
    .bind(
        patch
            .read_tenants
            .as_ref()
            .unwrap_or(&before.read_tenants)
            .to_text(),
    )
    .bind(
        patch
            .hide_policy_labels
            .unwrap_or(before.hide_policy_labels),
    )
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
    tx.commit().await.pg()?;
    Ok(after)
}

pub(super) async fn delete(
    store: &PostgresStore,
    id: i64,
    audit: AuditRecord,
) -> Result<(), StoreError> {
    let mut tx = store.write(true).await?;
    if account_in(&mut tx, id).await?.all_tenants {
        return Err(StoreError::Protected(Protected::Delete));
    }
    record_account_change(&mut tx, id, ChangeKind::Revoked).await?;
    sqlx::query("DELETE FROM accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .pg()?;
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.pg()?;
    Ok(())
}

pub(super) async fn is_bootstrapped(store: &PostgresStore) -> Result<bool, StoreError> {
    let done: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'bootstrapped'")
            .fetch_optional(&store.pool)
            .await
            .pg()?;
    Ok(done.is_some())
}

pub(super) async fn bootstrap(
    store: &PostgresStore,
    account: NewAccount,
    token: NewToken,
    audit: AuditRecord,
) -> Result<bool, StoreError> {
    let mut tx = store.write(true).await?;
    // Replicas starting at once on an empty database race here: the loser's insert waits for
    // the winner's commit on the key, then inserts nothing.
    let inserted = sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('bootstrapped', $1) ON CONFLICT (key) DO NOTHING",
    )
    .bind(account.created_at.to_string())
    .execute(&mut *tx)
    .await
    .pg()?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    let id = insert_account(&mut tx, &account).await?;
    insert_token(&mut tx, id, &token).await?;
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.pg()?;
    Ok(true)
}

/// Every tenant with its account and token counts.
pub(super) async fn list_tenants(store: &PostgresStore) -> Result<Vec<TenantSummary>, StoreError> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT a.tenant, COUNT(DISTINCT a.id), COUNT(t.id) FROM accounts a \
         LEFT JOIN tokens t ON t.account_id = a.id GROUP BY a.tenant ORDER BY a.tenant",
    )
    .fetch_all(&store.pool)
    .await
    .pg()?;
    Ok(rows
        .into_iter()
        .map(|(name, accounts, tokens)| TenantSummary {
            name,
            accounts: u64::try_from(accounts).unwrap_or(0),
            tokens: u64::try_from(tokens).unwrap_or(0),
        })
        .collect())
}

/// Deletes every account of `tenant` (revoking their tokens) in one transaction.
pub(super) async fn delete_tenant(
    store: &PostgresStore,
    tenant: &str,
    audit: AuditRecord,
) -> Result<u64, StoreError> {
    let mut tx = store.write(true).await?;
    let accounts: Vec<(i64, bool)> =
        sqlx::query_as("SELECT id, all_tenants FROM accounts WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await
            .pg()?;
    if accounts.is_empty() {
        return Err(StoreError::NotFound { what: "tenant" });
    }
    if accounts.iter().any(|(_, all_tenants)| *all_tenants) {
        return Err(StoreError::Protected(Protected::Delete));
    }
    for (id, _) in &accounts {
        record_account_change(&mut tx, *id, ChangeKind::Revoked).await?;
    }
    sqlx::query("DELETE FROM roles WHERE tenant = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .pg()?;
    sqlx::query("DELETE FROM accounts WHERE tenant = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .pg()?;
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.pg()?;
    Ok(accounts.len() as u64)
}
