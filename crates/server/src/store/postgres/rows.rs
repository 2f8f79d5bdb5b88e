//! The columns and grant query this backend reads; the readers that turn its rows into domain
//! values are shared with the other backend (`store/rows.rs`).

use crate::model::{Account, RoleRecord, TokenRecord};
use crate::store::{StoreError, TokenGrant};
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::sync::Arc;
use tollgate_core::{Grant, Policy, ReadTenants, Role, ScopeSet, TokenHash};

pub(super) const ACCOUNT_COLUMNS: &str = "id, tenant, name, display_name, description, \
     owner_email, role, label_policy, disabled, all_tenants, read_tenants, hide_policy_labels, \
     created_at, created_by";
pub(super) const ROLE_COLUMNS: &str = "tenant, name, description, scopes, created_at, created_by";
pub(super) const TOKEN_COLUMNS: &str =
    "id, account_id, name, created_at, expires_at, last_used_at, hint";
pub(super) const GRANT_SELECT: &str = "SELECT t.hash, t.id AS token_id, t.expires_at, \
     a.id AS account_id, a.name, a.tenant, a.role, a.label_policy, a.all_tenants, \
     a.read_tenants, a.hide_policy_labels, r.scopes AS role_scopes \
     FROM tokens t JOIN accounts a ON a.id = t.account_id \
     LEFT JOIN roles r ON r.tenant = a.tenant AND r.name = a.role WHERE NOT a.disabled";

/// The grant query in two parts for loading every grant, as in the SQLite backend: the account
/// columns once per account, then four columns per token.
pub(super) const GRANT_ACCOUNTS_SELECT: &str = "SELECT a.id AS account_id, a.name, a.tenant, \
     a.role, a.label_policy, a.all_tenants, a.read_tenants, a.hide_policy_labels, \
     r.scopes AS role_scopes FROM accounts a \
     LEFT JOIN roles r ON r.tenant = a.tenant AND r.name = a.role WHERE NOT a.disabled \
     AND EXISTS (SELECT 1 FROM tokens t WHERE t.account_id = a.id)";
pub(super) const GRANT_TOKENS_SELECT: &str =
    "SELECT t.hash, t.id AS token_id, t.expires_at, t.account_id FROM tokens t";

crate::store::rows::row_readers!(PgRow);
