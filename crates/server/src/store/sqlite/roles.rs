//! The tenants' own roles: named scope sets that accounts of the tenant may hold. A role's
//! existence is checked in the transaction of every account write that names it, and its use in
//! the transaction that deletes it, so the two cannot race into an account without a role.

use super::SqliteStore;
use super::audit::insert_audit;
use super::changes::record_account_change;
use super::error::conflict;
use super::rows::{ROLE_COLUMNS, role_from_row};
use crate::model::{AuditRecord, ChangeKind, NewRole, RolePatch, RoleRecord};
use crate::store::StoreError;
use sqlx::{Sqlite, Transaction};
use tollgate_core::Role;

const NOT_FOUND: StoreError = StoreError::NotFound { what: "role" };

/// `NotFound` unless `role` is built in or one of `tenant`'s roles.
pub(super) async fn require_role(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &str,
    role: &str,
) -> Result<(), StoreError> {
    if Role::builtin(role).is_some() {
        return Ok(());
    }
    role_in(tx, tenant, role).await.map(drop)
}

async fn role_in(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &str,
    name: &str,
) -> Result<RoleRecord, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE tenant = ? AND name = ?"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(NOT_FOUND)?;
    role_from_row(&row)
}

pub(super) async fn list(
    store: &SqliteStore,
    tenant: Option<&str>,
) -> Result<Vec<RoleRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE (?1 IS NULL OR tenant = ?1) ORDER BY tenant, name"
    ))
    .bind(tenant)
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(role_from_row).collect()
}

pub(super) async fn get(
    store: &SqliteStore,
    tenant: &str,
    name: &str,
) -> Result<RoleRecord, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ROLE_COLUMNS} FROM roles WHERE tenant = ? AND name = ?"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_optional(&store.pool)
    .await?
    .ok_or(NOT_FOUND)?;
    role_from_row(&row)
}

pub(super) async fn create(
    store: &SqliteStore,
    role: NewRole,
    audit: AuditRecord,
) -> Result<RoleRecord, StoreError> {
    let (_guard, mut tx) = store.write().await?;
    sqlx::query(
        "INSERT INTO roles (tenant, name, description, scopes, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(role.tenant.as_str())
    .bind(role.name.as_str())
    .bind(&role.description)
    .bind(role.scopes.to_text())
    .bind(role.created_at)
    .bind(&role.created_by)
    .execute(&mut *tx)
    .await
    .map_err(conflict("role", role.name.as_str()))?;
    insert_audit(&mut tx, &audit).await?;
    let created = role_in(&mut tx, role.tenant.as_str(), role.name.as_str()).await?;
    tx.commit().await?;
    Ok(created)
}

pub(super) async fn update(
    store: &SqliteStore,
    tenant: &str,
    name: &str,
    patch: RolePatch,
    audit: AuditRecord,
) -> Result<RoleRecord, StoreError> {
    let (_guard, mut tx) = store.write().await?;
    let before = role_in(&mut tx, tenant, name).await?;
    let scopes = patch.scopes.unwrap_or(before.scopes);
    sqlx::query("UPDATE roles SET description = ?, scopes = ? WHERE tenant = ? AND name = ?")
        .bind(patch.description.as_ref().unwrap_or(&before.description))
        .bind(scopes.to_text())
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if scopes != before.scopes {
        // Every live token of the role's accounts now grants something else.
        let holders: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM accounts WHERE tenant = ? AND role = ? AND disabled = 0 ORDER BY id",
        )
        .bind(tenant)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        for id in holders {
            record_account_change(&mut tx, id, ChangeKind::Changed).await?;
        }
    }
    insert_audit(&mut tx, &audit).await?;
    let after = role_in(&mut tx, tenant, name).await?;
    tx.commit().await?;
    Ok(after)
}

pub(super) async fn delete(
    store: &SqliteStore,
    tenant: &str,
    name: &str,
    audit: AuditRecord,
) -> Result<(), StoreError> {
    let (_guard, mut tx) = store.write().await?;
    role_in(&mut tx, tenant, name).await?;
    let users: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE tenant = ? AND role = ?")
            .bind(tenant)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    if users > 0 {
        return Err(StoreError::RoleInUse {
            name: name.to_owned(),
            accounts: users.max(0) as u64,
        });
    }
    sqlx::query("DELETE FROM roles WHERE tenant = ? AND name = ?")
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(())
}
