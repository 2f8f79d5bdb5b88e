//! Roles: the four built-ins, present in every tenant, and each tenant's own named scope sets.
//! Defining or changing a role is held to the caller's scopes (the role ceiling), so no one
//! defines a role wider than themselves; accounts holding a role follow its changes.

use super::fields::{MAX_DESCRIPTION_CHARS, check_text, parse_name};
use super::{Admin, Caller, ServiceError, now_secs};
use crate::model::{AccountQuery, NewRole, RolePatch};

/// Accounts read per round while checking who holds a role that is being widened.
const HOLDERS_BATCH: u64 = 1000;
use crate::store::{Store, StoreError};
use tollgate_core::{Role, Scope, ScopeSet};

/// A role as the API shows it: built in (no tenant) or a tenant's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    pub name: String,
    /// `None` for a built-in role.
    pub tenant: Option<String>,
    pub description: String,
    pub scopes: ScopeSet,
}

impl RoleView {
    pub fn builtin(&self) -> bool {
        self.tenant.is_none()
    }
}

fn builtin_view(role: Role) -> RoleView {
    let description = match role {
        Role::Viewer => "Read all telemetry.",
        Role::Editor => "Read and write all telemetry.",
        Role::Admin => "Read and write all telemetry, and manage service accounts.",
        Role::Writer => "Write telemetry only: for collectors.",
    };
    RoleView {
        name: role.as_str().to_owned(),
        tenant: None,
        description: description.to_owned(),
        scopes: role.scopes(),
    }
}

fn record_view(record: crate::model::RoleRecord) -> RoleView {
    RoleView {
        name: record.name,
        tenant: Some(record.tenant),
        description: record.description,
        scopes: record.scopes,
    }
}

/// Scope names from the API: known, at least one.
fn parse_scopes(names: &[String]) -> Result<ScopeSet, ServiceError> {
    let scopes = names
        .iter()
        .map(|name| name.parse::<Scope>())
        .collect::<Result<ScopeSet, _>>()
        .map_err(|err| super::fields::field_error("scopes", err))?;
    if scopes.is_empty() {
        return Err(super::fields::field_error(
            "scopes",
            "a role needs at least one scope",
        ));
    }
    Ok(scopes)
}

impl Admin {
    /// The scopes of role `name` in `tenant`: a built-in role's, or the tenant's own role's.
    pub(super) async fn role_scopes(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ScopeSet, ServiceError> {
        if let Some(role) = Role::builtin(name) {
            return Ok(role.scopes());
        }
        match self.store().get_role(tenant, name).await {
            Ok(record) => Ok(record.scopes),
            Err(StoreError::NotFound { .. }) => Err(ServiceError::UnknownRole {
                role: name.to_owned(),
                tenant: tenant.to_owned(),
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// The built-in roles, then the tenants' own: the caller's tenant, `tenant` for an
    /// all-tenant admin (every tenant when `None`).
    pub async fn list_roles(
        &self,
        caller: &Caller,
        tenant: Option<String>,
    ) -> Result<Vec<RoleView>, ServiceError> {
        let tenant = match tenant {
            Some(tenant) => {
                caller.check_tenant(&tenant)?;
                Some(tenant)
            }
            None => (!caller.all_tenants).then(|| caller.tenant.clone()),
        };
        let mut roles: Vec<RoleView> = Role::ALL.into_iter().map(builtin_view).collect();
        let own = self.store().list_roles(tenant.as_deref()).await?;
        roles.extend(own.into_iter().map(record_view));
        Ok(roles)
    }

    pub async fn get_role(
        &self,
        caller: &Caller,
        tenant: Option<String>,
        name: &str,
    ) -> Result<RoleView, ServiceError> {
        if let Some(role) = Role::builtin(name) {
            return Ok(builtin_view(role));
        }
        let tenant = tenant.unwrap_or_else(|| caller.tenant.clone());
        caller.check_tenant(&tenant)?;
        Ok(record_view(self.store().get_role(&tenant, name).await?))
    }

    pub async fn create_role(
        &self,
        caller: &Caller,
        tenant: Option<String>,
        name: &str,
        description: Option<String>,
        scopes: &[String],
    ) -> Result<RoleView, ServiceError> {
        let tenant = tenant.unwrap_or_else(|| caller.tenant.clone());
        let audit = self.audit(
            caller,
            &tenant,
            "role.create",
            format!("role/{tenant}/{name}"),
        );
        let result = async {
            let tenant = parse_name("tenant", &tenant)?;
            let name = parse_name("name", name)?;
            if Role::builtin(name.as_str()).is_some() {
                return Err(ServiceError::BuiltinRole(name.to_string()));
            }
            let description = description.unwrap_or_default();
            check_text("description", &description, MAX_DESCRIPTION_CHARS)?;
            let scopes = parse_scopes(scopes)?;
            caller.check_tenant(tenant.as_str())?;
            caller.check_scopes(name.as_str(), scopes)?;
            let role = NewRole {
                tenant,
                name,
                description,
                scopes,
                created_at: now_secs(),
                created_by: caller.actor.clone(),
            };
            Ok(record_view(
                self.store().create_role(role, audit.clone()).await?,
            ))
        }
        .await;
        self.audited(audit, result).await
    }

    /// Changing the scopes is held to the caller's scopes for both the old and the new set
    /// (no one narrows or widens a role above them), and changes every holder's grants.
    pub async fn update_role(
        &self,
        caller: &Caller,
        tenant: Option<String>,
        name: &str,
        description: Option<String>,
        scopes: Option<&[String]>,
    ) -> Result<RoleView, ServiceError> {
        let tenant = tenant.unwrap_or_else(|| caller.tenant.clone());
        let audit = self.audit(
            caller,
            &tenant,
            "role.update",
            format!("role/{tenant}/{name}"),
        );
        let result = self
            .checked_write(async {
                if Role::builtin(name).is_some() {
                    return Err(ServiceError::BuiltinRole(name.to_owned()));
                }
                caller.check_tenant(&tenant)?;
                if let Some(text) = &description {
                    check_text("description", text, MAX_DESCRIPTION_CHARS)?;
                }
                let scopes = scopes.map(parse_scopes).transpose()?;
                let before = self.store().get_role(&tenant, name).await?;
                caller.check_scopes(name, before.scopes)?;
                if let Some(scopes) = scopes {
                    caller.check_scopes(name, scopes)?;
                    if !scopes.without(before.scopes).is_empty() {
                        self.check_holders(caller, &tenant, name).await?;
                    }
                }
                let patch = RolePatch {
                    description,
                    scopes,
                };
                Ok(record_view(
                    self.store()
                        .update_role(&tenant, name, patch, audit.clone())
                        .await?,
                ))
            })
            .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    /// Widening a role widens every account holding it: the caller must be allowed to manage
    /// each of them (as for an edit of the account itself), or it would give an account above
    /// its ceiling (another tenant's reader, a wider label policy, the all-tenant admin) more.
    async fn check_holders(
        &self,
        caller: &Caller,
        tenant: &str,
        role: &str,
    ) -> Result<(), ServiceError> {
        let mut offset = 0;
        loop {
            let page = self
                .store()
                .list_accounts(AccountQuery {
                    tenant: Some(tenant.to_owned()),
                    search: None,
                    offset,
                    limit: HOLDERS_BATCH,
                })
                .await?;
            let read = page.items.len() as u64;
            for holder in page.items.iter().filter(|a| a.role == role) {
                if holder.all_tenants && !caller.all_tenants {
                    return Err(ServiceError::AllTenantsCeiling);
                }
                if !holder.read_tenants.is_home_only() && !caller.all_tenants {
                    return Err(ServiceError::AllTenantsOnly(
                        "widen a role held by an account that reads other tenants",
                    ));
                }
                let policy = super::accounts::stored_policy(holder)?;
                if !caller.policy.contains(&policy) {
                    return Err(ServiceError::LabelPolicyCeiling {
                        policy: policy.to_string(),
                        ceiling: caller.policy.to_string(),
                    });
                }
            }
            offset += read;
            if read == 0 || offset >= page.total {
                return Ok(());
            }
        }
    }

    /// 409 `role_in_use` while an account holds the role.
    pub async fn delete_role(
        &self,
        caller: &Caller,
        tenant: Option<String>,
        name: &str,
    ) -> Result<(), ServiceError> {
        let tenant = tenant.unwrap_or_else(|| caller.tenant.clone());
        let audit = self.audit(
            caller,
            &tenant,
            "role.delete",
            format!("role/{tenant}/{name}"),
        );
        let result = async {
            if Role::builtin(name).is_some() {
                return Err(ServiceError::BuiltinRole(name.to_owned()));
            }
            caller.check_tenant(&tenant)?;
            let before = self.store().get_role(&tenant, name).await?;
            caller.check_scopes(name, before.scopes)?;
            Ok(self
                .store()
                .delete_role(&tenant, name, audit.clone())
                .await?)
        }
        .await;
        self.audited(audit, result).await
    }
}
