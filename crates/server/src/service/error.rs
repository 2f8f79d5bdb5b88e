//! What an admin operation can fail with, typed. The HTTP layer maps each variant to a status;
//! [`ServiceError::code`] is the machine code both the audit log's `outcome` and the API's
//! `reason` carry.

use crate::store::StoreError;
use tollgate_core::{Deny, ScopeSet};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The credential was refused, or it may not call this route: the core pipeline's denial.
    #[error("{}", .0.message)]
    Denied(Deny),
    /// A field of the request is malformed; the message names it.
    #[error("{0}")]
    InvalidField(String),
    /// A well-formed label policy with a regex the upstream would read differently.
    #[error("{0}")]
    LabelPolicyRegex(String),
    /// A label policy that provably selects nothing.
    #[error("{0}")]
    LabelPolicyEmpty(String),
    /// A label policy over the configured size limits.
    #[error("{0}")]
    LabelPolicyLimit(String),
    #[error("expiry must be in the future")]
    ExpiryInPast,
    /// Past the configured maximum lifetime, or the year 9999.
    #[error("{0}")]
    ExpiryTooLate(String),
    /// A maximum lifetime is configured and the request gave no expiry.
    #[error("{0}")]
    ExpiryRequired(String),
    /// The caller may not act on this tenant.
    #[error("caller may not act on tenant \"{0}\"")]
    TenantForbidden(String),
    /// What the caller named by id belongs to a tenant it may not act on. Unlike
    /// `TenantForbidden` the tenant came from the store, so the message does not name it.
    #[error("caller may not act on that tenant")]
    OtherTenant,
    /// The caller does not hold every scope of the role it would grant (or define).
    #[error("caller does not hold every scope of role {role} (lacks {})", .missing.to_text())]
    RoleCeiling { role: String, missing: ScopeSet },
    /// A role name that is neither built in nor one of the tenant's roles.
    #[error(
        "role: \"{role}\" is not a role of tenant \"{tenant}\" (built in: viewer, editor, admin, writer; see GET /api/v1/roles)"
    )]
    UnknownRole { role: String, tenant: String },
    /// Built-in roles cannot be created, changed or deleted.
    #[error("role \"{0}\" is built in and cannot be created, changed or deleted")]
    BuiltinRole(String),
    /// The label policy it would grant is wider than the caller's own.
    #[error("label policy \"{policy}\" is not within the caller's policy \"{ceiling}\"")]
    LabelPolicyCeiling { policy: String, ceiling: String },
    /// Only an all-tenant admin may manage the all-tenant admin account.
    #[error("only an all-tenant admin may manage the all-tenant admin account")]
    AllTenantsCeiling,
    /// What only an all-tenant admin may do; the text says what.
    #[error("only an all-tenant admin may {0}")]
    AllTenantsOnly(&'static str),
    #[error("service account {0} is disabled")]
    AccountDisabled(i64),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    /// The machine code: the audit row's outcome and the API's `reason`. Codes are part of the
    /// API: never change one.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Denied(deny) => deny.reason.as_str(),
            ServiceError::InvalidField(_) => "invalid_field",
            ServiceError::LabelPolicyRegex(_) => "label_policy_regex",
            ServiceError::LabelPolicyEmpty(_) => "label_policy_empty",
            ServiceError::LabelPolicyLimit(_) => "label_policy_limit",
            ServiceError::ExpiryInPast => "expiry_in_past",
            ServiceError::ExpiryTooLate(_) => "expiry_too_late",
            ServiceError::ExpiryRequired(_) => "expiry_required",
            ServiceError::TenantForbidden(_) | ServiceError::OtherTenant => "tenant_forbidden",
            ServiceError::RoleCeiling { .. } => "role_ceiling",
            ServiceError::UnknownRole { .. } => "unknown_role",
            ServiceError::BuiltinRole(_) => "builtin_role",
            ServiceError::LabelPolicyCeiling { .. } => "label_policy_ceiling",
            ServiceError::AllTenantsCeiling => "all_tenants_ceiling",
            ServiceError::AllTenantsOnly(_) => "all_tenants_only",
            ServiceError::AccountDisabled(_) => "account_disabled",
            ServiceError::Internal(_) => "internal",
            ServiceError::Store(StoreError::NotFound { .. }) => "not_found",
            ServiceError::Store(StoreError::Conflict { .. }) => "already_exists",
            // The all-tenant admin is the one account that manages every tenant and cannot be
            // re-created: the store refuses what would lock every administrator out.
            ServiceError::Store(StoreError::Protected(_)) => "all_tenants_admin_protected",
            ServiceError::Store(StoreError::RoleInUse { .. }) => "role_in_use",
            ServiceError::Store(_) => "store_unavailable",
        }
    }

    /// The store failed (not a refusal): nothing was decided, and nothing is audited.
    pub fn is_unavailable(&self) -> bool {
        self.code() == "store_unavailable"
    }
}

impl From<Deny> for ServiceError {
    fn from(deny: Deny) -> ServiceError {
        ServiceError::Denied(deny)
    }
}
