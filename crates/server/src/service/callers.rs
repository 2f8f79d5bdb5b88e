//! Who is calling: a bearer credential authenticated against the live snapshot with the admin
//! route table, and the ceilings every action of that caller is held to.

use super::{Admin, ServiceError};
use crate::model::{Account, TokenRecord};
use crate::store::Store;
use tollgate_core::{
    Authorization, Deny, Grant, GrantLookup, Policy, RequestView, ScopeSet, authorize,
};

/// An authenticated caller of the admin API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: i64,
    /// The token the caller authenticated with.
    pub token_id: i64,
    pub tenant: String,
    /// `<tenant>/<name>`, as recorded in the audit log.
    pub actor: String,
    pub scopes: ScopeSet,
    pub policy: Policy,
    pub all_tenants: bool,
}

impl Caller {
    fn from_grant(grant: &Grant) -> Caller {
        Caller {
            account_id: grant.account_id,
            token_id: grant.token_id,
            tenant: grant.tenant.to_string(),
            actor: format!("{}/{}", grant.tenant, grant.account),
            scopes: grant.scopes,
            policy: grant.policy.clone(),
            all_tenants: grant.all_tenants,
        }
    }

    pub(super) fn check_tenant(&self, tenant: &str) -> Result<(), ServiceError> {
        if self.all_tenants || self.tenant == tenant {
            Ok(())
        } else {
            Err(ServiceError::TenantForbidden(tenant.to_owned()))
        }
    }

    /// As `check_tenant`, for a tenant read from the store (the tenant of an account or token
    /// the caller named by id or value): a refusal does not tell the caller its name.
    pub(super) fn check_tenant_of(&self, tenant: &str) -> Result<(), ServiceError> {
        self.check_tenant(tenant)
            .map_err(|_| ServiceError::OtherTenant)
    }

    /// A caller may only grant, or act for, what it holds itself: no escalation through an
    /// account it creates, edits or mints tokens for.
    pub(super) fn check_ceiling(
        &self,
        role: &str,
        scopes: ScopeSet,
        policy: &Policy,
    ) -> Result<(), ServiceError> {
        self.check_scopes(role, scopes)?;
        if !self.policy.contains(policy) {
            return Err(ServiceError::LabelPolicyCeiling {
                policy: policy.to_string(),
                ceiling: self.policy.to_string(),
            });
        }
        Ok(())
    }

    /// The role ceiling alone: `scopes` (of role `role`) must be the caller's own.
    pub(super) fn check_scopes(&self, role: &str, scopes: ScopeSet) -> Result<(), ServiceError> {
        if self.scopes.is_superset_of(scopes) {
            return Ok(());
        }
        Err(ServiceError::RoleCeiling {
            role: role.to_owned(),
            missing: scopes.without(self.scopes),
        })
    }
}

/// Who a caller is, for `whoami`: its account, the token it called with and the scopes of its
/// role.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: Account,
    /// `None` when the token was revoked between authentication and this read.
    pub token: Option<TokenRecord>,
    pub scopes: ScopeSet,
}

impl Admin {
    /// The caller's own account and token. Reading oneself needs no tenant or ceiling check,
    /// and is not audited (a read).
    pub async fn whoami(&self, caller: &Caller) -> Result<Identity, ServiceError> {
        let account = self.store().get_account(caller.account_id).await?;
        let token = self
            .store()
            .list_tokens(crate::model::TokenQuery::all(caller.account_id))
            .await?
            .items
            .into_iter()
            .find(|token| token.id == caller.token_id);
        Ok(Identity {
            account,
            token,
            scopes: caller.scopes,
        })
    }

    /// Authenticates a bearer credential against the live snapshot and checks that it may call
    /// `method path` of the admin API, with the same route rules and decision as the proxy
    /// ([`tollgate_core::authorize`], with the admin route table).
    pub fn authenticate(
        &self,
        authorizations: &[&str],
        method: &str,
        path: &str,
    ) -> Result<Caller, ServiceError> {
        let mut view = RequestView::new(method, path);
        for value in authorizations {
            view.observe_header(tollgate_core::headers::AUTHORIZATION, value);
        }
        let snapshot = self.directory.snapshot();
        let lookup = |hash: &_| match snapshot.get(hash) {
            Some(grant) => GrantLookup::Found(grant),
            None => GrantLookup::Unknown,
        };
        let now = super::now_secs().max(0) as u64;
        match authorize(&view, lookup, &self.admin_routes, now) {
            Authorization::Allowed(authorized) => Ok(Caller::from_grant(&authorized.grant)),
            Authorization::Denied(deny) => Err(deny.into()),
            Authorization::NotHere(_) => Err(Deny::unknown_token().into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tollgate_core::{Role, Scope};

    fn caller(scopes: &[Scope], policy: &str) -> Caller {
        Caller {
            account_id: 1,
            token_id: 1,
            tenant: "acme".into(),
            actor: "acme/x".into(),
            scopes: ScopeSet::of(scopes),
            policy: Policy::parse(policy).unwrap(),
            all_tenants: false,
        }
    }

    #[test]
    fn ceilings() {
        use Scope::*;
        let accounts_only = caller(&[AccountsRead, AccountsWrite], "");
        let viewer_ceiling = caller(
            &[AccountsWrite, MetricsRead, LogsRead, TracesRead],
            r#"{team="a"}"#,
        );
        let team_a = Policy::parse(r#"{team="a"}"#).unwrap();
        let cases = [
            (
                &accounts_only,
                Role::Viewer,
                Policy::unrestricted(),
                Some("role_ceiling"),
                "cannot grant reads it lacks",
            ),
            (
                &accounts_only,
                Role::Writer,
                Policy::unrestricted(),
                Some("role_ceiling"),
                "cannot grant writes it lacks",
            ),
            (
                &viewer_ceiling,
                Role::Viewer,
                team_a.clone(),
                None,
                "may grant what it holds",
            ),
            (
                &viewer_ceiling,
                Role::Editor,
                team_a.clone(),
                Some("role_ceiling"),
                "editor exceeds viewer scopes",
            ),
            (
                &viewer_ceiling,
                Role::Viewer,
                Policy::unrestricted(),
                Some("label_policy_ceiling"),
                "unrestricted is wider",
            ),
            (
                &viewer_ceiling,
                Role::Viewer,
                Policy::parse(r#"{team="a", env="prod"}"#).unwrap(),
                None,
                "narrower policy",
            ),
        ];
        for (caller, role, policy, want, why) in cases {
            let got = caller
                .check_ceiling(role.as_str(), role.scopes(), &policy)
                .err()
                .map(|e| e.code());
            assert_eq!(got, want, "{why}");
        }
        assert!(accounts_only.check_tenant("acme").is_ok());
        assert_eq!(
            accounts_only.check_tenant("globex").unwrap_err().code(),
            "tenant_forbidden"
        );
    }
}
