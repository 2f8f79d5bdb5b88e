//! Service accounts: created (optionally with a first token), listed, read, edited and deleted,
//! each within the caller's tenant and ceiling.

use super::fields::{
    MAX_DESCRIPTION_CHARS, MAX_DISPLAY_NAME_CHARS, check_email, check_text, field_error, parse_name,
};
use super::tokens::{ExpirySpec, IssuedToken};
use super::{Admin, Caller, ServiceError, now_secs};
use crate::model::{Account, AccountPatch, AccountQuery, AuditRecord, NewAccount, Page};
use crate::store::{Store, StoreError};
use tollgate_core::{Policy, ReadTenants};

/// Accounts read per round while looking an account up by its exact name.
const NAME_SCAN_BATCH: u64 = 1000;

/// The fields of a new account as the API received them.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub tenant: Option<String>,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    /// A built-in role or one of the tenant's own.
    pub role: String,
    pub label_policy: Option<String>,
    /// Tenants its tokens may read besides its own (`*` for all); all-tenant admins only.
    pub read_tenants: Option<Vec<String>>,
    pub hide_policy_labels: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    pub role: Option<String>,
    pub label_policy: Option<String>,
    pub disabled: Option<bool>,
    pub read_tenants: Option<Vec<String>>,
    pub hide_policy_labels: Option<bool>,
}

/// Tenants to read besides the home tenant, as the API received them: only an all-tenant admin
/// grants any (a tenant admin must not open other tenants to an account of theirs).
fn parse_read_tenants(caller: &Caller, names: &[String]) -> Result<ReadTenants, ServiceError> {
    let read = ReadTenants::from_names(names).map_err(|err| field_error("readTenants", err))?;
    if !read.is_home_only() && !caller.all_tenants {
        return Err(ServiceError::AllTenantsOnly(
            "grant an account other tenants to read",
        ));
    }
    Ok(read)
}

/// The stored label policy of `account`; unreadable is a corrupt row.
pub(super) fn stored_policy(account: &Account) -> Result<Policy, StoreError> {
    Policy::parse(&account.label_policy).map_err(|err| StoreError::Corrupt {
        detail: format!("label policy of account {}: {err}", account.id),
    })
}

impl Admin {
    /// Loads an account the caller may see.
    pub(super) async fn visible_account(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Account, ServiceError> {
        let account = self.store().get_account(id).await?;
        caller.check_tenant_of(&account.tenant)?;
        Ok(account)
    }

    /// Loads an account the caller may manage: visible and within its ceiling. The all-tenant
    /// admin is above every tenant's ceiling: a tenant admin of its tenant must not mint its
    /// tokens (and so act on every tenant), nor edit, disable or delete it.
    pub(super) async fn managed_account(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<Account, ServiceError> {
        let account = self.visible_account(caller, id).await?;
        if account.all_tenants && !caller.all_tenants {
            return Err(ServiceError::AllTenantsCeiling);
        }
        // Its tokens read other tenants: minting or editing them is an all-tenant act.
        if !account.read_tenants.is_home_only() && !caller.all_tenants {
            return Err(ServiceError::AllTenantsOnly(
                "manage an account that reads other tenants",
            ));
        }
        let scopes = self.role_scopes(&account.tenant, &account.role).await?;
        caller.check_ceiling(&account.role, scopes, &stored_policy(&account)?)?;
        Ok(account)
    }

    /// Validates a new account's fields and holds them to the caller's tenant and ceiling.
    async fn new_account(
        &self,
        caller: &Caller,
        tenant: &str,
        spec: AccountSpec,
    ) -> Result<NewAccount, ServiceError> {
        let tenant = parse_name("tenant", tenant)?;
        let name = parse_name("name", &spec.name)?;
        let display_name = spec.display_name.unwrap_or_else(|| spec.name.clone());
        check_text("displayName", &display_name, MAX_DISPLAY_NAME_CHARS)?;
        let description = spec.description.unwrap_or_default();
        check_text("description", &description, MAX_DESCRIPTION_CHARS)?;
        let owner_email = spec.owner_email.unwrap_or_default();
        check_email(&owner_email)?;
        let policy = self.parse_policy(spec.label_policy.as_deref().unwrap_or(""))?;
        let role = parse_name("role", &spec.role)?;
        let read_tenants = parse_read_tenants(caller, spec.read_tenants.as_deref().unwrap_or(&[]))?;
        caller.check_tenant(tenant.as_str())?;
        let scopes = self.role_scopes(tenant.as_str(), role.as_str()).await?;
        caller.check_ceiling(role.as_str(), scopes, &policy)?;
        Ok(NewAccount {
            tenant,
            name,
            display_name,
            description,
            owner_email,
            role,
            label_policy: policy.to_string(),
            all_tenants: false,
            read_tenants,
            hide_policy_labels: spec.hide_policy_labels.unwrap_or(false),
            created_at: now_secs(),
            created_by: caller.actor.clone(),
        })
    }

    pub async fn create_account(
        &self,
        caller: &Caller,
        spec: AccountSpec,
        first_token: Option<(String, ExpirySpec)>,
    ) -> Result<(Account, Option<IssuedToken>), ServiceError> {
        let tenant = spec.tenant.clone().unwrap_or_else(|| caller.tenant.clone());
        let audit = self.audit(
            caller,
            &tenant,
            "serviceaccount.create",
            format!("serviceaccount/{}/{}", tenant, spec.name),
        );
        let result = self
            .checked_write(async {
                let new = self.new_account(caller, &tenant, spec).await?;
                let first = match first_token {
                    Some((token_name, expiry)) => Some((
                        parse_name("tokenName", &token_name)?,
                        self.resolve_expiry(expiry, new.created_at)?,
                    )),
                    None => None,
                };
                let account = self.store().create_account(new, audit.clone()).await?;
                let issued = match first {
                    Some((token_name, expires_at)) => {
                        let token_audit = AuditRecord {
                            action: "token.create".into(),
                            target: format!("serviceaccount/{}/token/{token_name}", account.id),
                            ..audit.clone()
                        };
                        Some(
                            self.issue_token(account.id, token_name, expires_at, token_audit)
                                .await?,
                        )
                    }
                    None => None,
                };
                Ok((account, issued))
            })
            .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn list_accounts(
        &self,
        caller: &Caller,
        search: Option<String>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Account>, ServiceError> {
        let tenant = (!caller.all_tenants).then(|| caller.tenant.clone());
        Ok(self
            .store()
            .list_accounts(AccountQuery {
                tenant,
                search: search.filter(|s| !s.is_empty()),
                offset,
                limit,
            })
            .await?)
    }

    /// The page `offset`, `limit` of the accounts named exactly `name` that the caller sees.
    /// The store filters by substring, so this reads every substring match (in batches) and
    /// keeps the exact ones: an account is found however many others contain its name.
    pub async fn accounts_named(
        &self,
        caller: &Caller,
        name: String,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Account>, ServiceError> {
        let mut named = Vec::new();
        let mut scanned = 0;
        loop {
            let page = self
                .list_accounts(caller, Some(name.clone()), scanned, NAME_SCAN_BATCH)
                .await?;
            let read = page.items.len() as u64;
            named.extend(page.items.into_iter().filter(|a| a.name == name));
            scanned += read;
            if read == 0 || scanned >= page.total {
                break;
            }
        }
        let total = named.len() as u64;
        let items = named
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        Ok(Page { items, total })
    }

    pub async fn get_account(&self, caller: &Caller, id: i64) -> Result<Account, ServiceError> {
        self.visible_account(caller, id).await
    }

    /// Validates a patch of `account` and holds its result to the caller's ceiling.
    async fn account_patch(
        &self,
        caller: &Caller,
        account: &Account,
        changes: AccountChanges,
    ) -> Result<AccountPatch, ServiceError> {
        let patch = AccountPatch {
            name: changes
                .name
                .as_deref()
                .map(|n| parse_name("name", n))
                .transpose()?,
            display_name: changes.display_name,
            description: changes.description,
            owner_email: changes.owner_email,
            role: changes
                .role
                .as_deref()
                .map(|r| parse_name("role", r))
                .transpose()?,
            label_policy: match changes.label_policy.as_deref() {
                Some(text) => Some(self.parse_policy(text)?.to_string()),
                None => None,
            },
            disabled: changes.disabled,
            read_tenants: changes
                .read_tenants
                .as_deref()
                .map(|names| parse_read_tenants(caller, names))
                .transpose()?,
            hide_policy_labels: changes.hide_policy_labels,
        };
        if let Some(text) = &patch.display_name {
            check_text("displayName", text, MAX_DISPLAY_NAME_CHARS)?;
        }
        if let Some(text) = &patch.description {
            check_text("description", text, MAX_DESCRIPTION_CHARS)?;
        }
        if let Some(email) = &patch.owner_email {
            check_email(email)?;
        }
        let role = patch
            .role
            .as_ref()
            .map_or(account.role.as_str(), |r| r.as_str());
        let scopes = self.role_scopes(&account.tenant, role).await?;
        let policy_text = patch
            .label_policy
            .as_deref()
            .unwrap_or(&account.label_policy);
        let policy = Policy::parse(policy_text).map_err(|err| field_error("labelPolicy", err))?;
        caller.check_ceiling(role, scopes, &policy)?;
        Ok(patch)
    }

    pub async fn update_account(
        &self,
        caller: &Caller,
        id: i64,
        changes: AccountChanges,
    ) -> Result<Account, ServiceError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "serviceaccount.update",
            format!("serviceaccount/{id}"),
        );
        let result = self
            .checked_write(async {
                let account = self.managed_account(caller, id).await?;
                let patch = self.account_patch(caller, &account, changes).await?;
                let audit = AuditRecord {
                    tenant: account.tenant.clone(),
                    ..audit.clone()
                };
                // The store refuses to demote the all-tenant admin, inside its write transaction
                // (409 all_tenants_admin_protected): a check here could race another replica.
                Ok(self.store().update_account(id, patch, audit).await?)
            })
            .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn delete_account(&self, caller: &Caller, id: i64) -> Result<(), ServiceError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "serviceaccount.delete",
            format!("serviceaccount/{id}"),
        );
        // A checked write too: a role's widening pages through its tenant's accounts, and a
        // delete in between would shift the pages under it and hide a holder.
        let result = self
            .checked_write(async {
                let account = self.managed_account(caller, id).await?;
                let audit = AuditRecord {
                    tenant: account.tenant.clone(),
                    ..audit.clone()
                };
                // The store refuses to delete the all-tenant admin (409, as above).
                Ok(self.store().delete_account(id, audit).await?)
            })
            .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }
}
