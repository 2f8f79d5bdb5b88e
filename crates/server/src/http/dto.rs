//! The API's wire types (JSON, camelCase): response DTOs, request bodies and query
//! parameters. The CLI reads and writes the same types.

use crate::model::{Account, AuditEntry, TokenRecord};
use crate::service::{IssuedToken, ReviewAnswer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// A scope's name in the documents: the strings `Scope` parses, listed from `Scope::ALL` so that
/// the OpenAPI enum cannot drift from what the server accepts.
pub struct ScopeName;

impl utoipa::PartialSchema for ScopeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(tollgate_core::Scope::ALL.iter().map(|s| s.as_str())))
            .into()
    }
}

impl ToSchema for ScopeName {}

/// `{"error": "...", "reason": "<machine code>"}`
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub reason: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDto {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub owner_email: String,
    pub role: String,
    /// Canonical selector; empty for unrestricted.
    pub label_policy: String,
    pub disabled: bool,
    /// Only the bootstrap admin manages every tenant.
    pub all_tenants: bool,
    /// Tenants its tokens may read besides its own (`*`: every tenant); empty for none.
    pub read_tenants: Vec<String>,
    /// Answers leave out the labels its policy fixes (filter mode only).
    pub hide_policy_labels: bool,
    pub created_at: String,
    pub created_by: String,
}

impl From<Account> for AccountDto {
    fn from(a: Account) -> AccountDto {
        let Account {
            id,
            tenant,
            name,
            display_name,
            description,
            owner_email,
            role,
            label_policy,
            disabled,
            all_tenants,
            read_tenants,
            hide_policy_labels,
            created_at,
            created_by,
        } = a;
        AccountDto {
            id,
            tenant,
            name,
            display_name,
            description,
            owner_email,
            role,
            label_policy,
            disabled,
            all_tenants,
            read_tenants: read_tenants.names(),
            hide_policy_labels,
            created_at: rfc3339(created_at),
            created_by,
        }
    }
}

/// A tenant with its counts.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDto {
    pub name: String,
    pub accounts: u64,
    pub tokens: u64,
}

impl From<crate::model::TenantSummary> for TenantDto {
    fn from(t: crate::model::TenantSummary) -> TenantDto {
        TenantDto {
            name: t.name,
            accounts: t.accounts,
            tokens: t.tokens,
        }
    }
}

/// What deleting a tenant did.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedTenantDto {
    pub tenant: String,
    pub deleted_accounts: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenDto {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Non-secret: the prefix and the last four checksum characters.
    pub hint: String,
}

impl From<TokenRecord> for TokenDto {
    fn from(t: TokenRecord) -> TokenDto {
        let TokenRecord {
            id,
            account_id: _,
            name,
            created_at,
            expires_at,
            last_used_at,
            hint,
        } = t;
        TokenDto {
            id,
            name,
            created_at: rfc3339(created_at),
            expires_at: expires_at.map(rfc3339),
            last_used_at: last_used_at.map(rfc3339),
            hint,
        }
    }
}

/// A token with its value: returned once, by the call that created or regenerated it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedTokenDto {
    #[serde(flatten)]
    pub metadata: TokenDto,
    /// The bearer token. Store it now: it is never shown again.
    pub token: String,
}

impl From<IssuedToken> for IssuedTokenDto {
    fn from(issued: IssuedToken) -> IssuedTokenDto {
        IssuedTokenDto {
            token: issued.token.expose_secret().to_owned(),
            metadata: issued.record.into(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAccountDto {
    #[serde(flatten)]
    pub account: AccountDto,
    /// Present when the request asked for a first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<IssuedTokenDto>,
}

// Request bodies and query parameters are read by the server and written by the CLI, which
// leaves out every `None` (`skip_serializing_if`): it sends what a user would write by hand.

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "ci-prometheus", "role": "viewer", "labelPolicy": "{kube_namespace=\"prometheus\"}", "withToken": true, "ttlSeconds": 2592000}))]
pub struct CreateAccountBody {
    /// Defaults to the caller's tenant; only an all-tenant admin may name another.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Lower-case ASCII: letters, digits, '.', '_' and '-'.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub name: String,
    #[schema(max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// At most 400 characters.
    #[schema(max_length = 400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(max_length = 254)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    /// A built-in role (viewer, editor, admin, writer) or one of the tenant's own roles.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub role: String,
    /// A selector such as `{kube_namespace="prometheus"}`; empty or absent for unrestricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_policy: Option<String>,
    /// Tenants its tokens may also read (`["*"]` for every tenant), named in `X-Scope-OrgID`
    /// as `a|b`. Only an all-tenant admin may set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_tenants: Option<Vec<String>>,
    /// Remove the labels the policy fixes from every answer (filter mode; through ext_authz
    /// such an account's reads are refused, since ext_authz cannot change answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_policy_labels: Option<bool>,
    /// Also create a first token and return it once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_token: Option<bool>,
    /// Name of the first token (default `default`).
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// Expiry of the first token (RFC 3339).
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Lifetime of the first token in seconds (instead of expiresAt).
    #[schema(minimum = 1)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"labelPolicy": "{kube_namespace=~\"prometheus|loki\"}"}))]
pub struct PatchAccountBody {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[schema(max_length = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[schema(max_length = 400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(max_length = 254)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Replaces the tenants it may also read (`[]` for none). All-tenant admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_tenants: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_policy_labels: Option<bool>,
}

/// A role: built in (no tenant) or a tenant's own named set of scopes.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RoleDto {
    pub name: String,
    /// The tenant of a tenant's own role; absent for a built-in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub description: String,
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<String>,
    pub builtin: bool,
}

impl From<crate::service::RoleView> for RoleDto {
    fn from(role: crate::service::RoleView) -> RoleDto {
        RoleDto {
            builtin: role.builtin(),
            scopes: role.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            name: role.name,
            tenant: role.tenant,
            description: role.description,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleListDto {
    pub items: Vec<RoleDto>,
    pub total: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "sa-manager", "description": "manages accounts, reads no telemetry", "scopes": ["accounts:read", "accounts:write"]}))]
pub struct CreateRoleBody {
    /// Defaults to the caller's tenant; only an all-tenant admin may name another.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Not a built-in role's name.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub name: String,
    #[schema(max_length = 400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// At least one; each one the caller holds.
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"scopes": ["metrics:read", "logs:read"]}))]
pub struct PatchRoleBody {
    #[schema(max_length = 400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces the scopes (at least one); the role's accounts follow at once.
    #[schema(value_type = Option<Vec<ScopeName>>, min_items = 1)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// `?tenant=`: a tenant's roles (all-tenant admins may name any tenant).
#[derive(Serialize, Deserialize, utoipa::IntoParams, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoleParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "ci", "ttlSeconds": 2592000}))]
pub struct CreateTokenBody {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub name: String,
    /// RFC 3339; absent for the server's default lifetime.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[schema(minimum = 1)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "ci-2026"}))]
pub struct RenameTokenBody {
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub name: String,
}

/// An account by id (number) or by name (string).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AccountRef {
    Id(i64),
    Name(String),
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"account": "ci-prometheus", "method": "GET", "path": "/api/v1/query?query=up"}))]
pub struct AccessReviewBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRef>,
    /// Tenant of `account` when given by name (default: the caller's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A token value, instead of `account`. Never logged or stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// An upper-case HTTP method such as GET.
    #[schema(pattern = "^[A-Z]+$")]
    pub method: String,
    pub path: String,
    /// A narrowing selector, as a client would send in `x-tollgate-labels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessReviewDto {
    pub allowed: bool,
    /// The scope the route needs; null when no route matches.
    pub scope: Option<String>,
    /// `allowed`, or the machine reason of the denial.
    pub reason: String,
    pub message: String,
}

impl From<ReviewAnswer> for AccessReviewDto {
    fn from(a: ReviewAnswer) -> AccessReviewDto {
        AccessReviewDto {
            allowed: a.allowed,
            scope: a.scope,
            reason: a.reason,
            message: a.message,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditDto {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub tenant: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
}

impl From<AuditEntry> for AuditDto {
    fn from(e: AuditEntry) -> AuditDto {
        let r = e.record;
        AuditDto {
            id: e.id,
            at: rfc3339(r.at),
            actor: r.actor,
            tenant: r.tenant,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountPageDto {
    pub total_count: u64,
    pub page: u64,
    pub page_size: u64,
    pub service_accounts: Vec<AccountDto>,
}

/// A page of one account's tokens, shaped as the account list is.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPageDto {
    pub total_count: u64,
    pub page: u64,
    pub page_size: u64,
    pub tokens: Vec<TokenDto>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPageDto {
    pub total_count: u64,
    pub page: u64,
    pub page_size: u64,
    pub entries: Vec<AuditDto>,
}

#[derive(Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Substring of the name or display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Exactly this name, in every tenant the caller sees; not together with `search`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1-based.
    #[param(minimum = 1, maximum = 9223372036854775807_u64)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
}

#[derive(Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// `<tenant>/<account name>` of the caller who acted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// A target such as `serviceaccount/3`; also matches targets under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// 1-based.
    #[param(minimum = 1, maximum = 9223372036854775807_u64)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
}

#[derive(Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenListParams {
    /// Only tokens that are still valid and expire within this period: `7d`, `12h`, `90m`,
    /// `3600` (seconds).
    #[param(pattern = r"^0*[1-9][0-9]{0,11}[smhd]?$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiring_within: Option<String>,
    /// 1-based.
    #[param(minimum = 1, maximum = 9223372036854775807_u64)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Same as the body's withToken.
    pub with_token: Option<bool>,
}

/// The caller: its account, the token it called with, and the scopes its role holds.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmIDto {
    pub account: AccountDto,
    /// The token of this request (metadata only); null if it was revoked meanwhile.
    pub token: Option<TokenDto>,
    /// What the caller may do, and may grant.
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<String>,
}

impl From<crate::service::Identity> for WhoAmIDto {
    fn from(identity: crate::service::Identity) -> WhoAmIDto {
        let crate::service::Identity {
            account,
            token,
            scopes,
        } = identity;
        WhoAmIDto {
            account: account.into(),
            token: token.map(Into::into),
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"policy": "{kube_namespace=\"prometheus\", team=~\"a|b\"}"}))]
pub struct ValidatePolicyBody {
    /// A label policy as an account would hold it; empty for unrestricted.
    pub policy: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMatcherDto {
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// One `{...}` of a policy: matchers that must all hold.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySelectorDto {
    pub matchers: Vec<PolicyMatcherDto>,
}

/// The bounds every stored label policy is held to.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLimitsDto {
    pub max_selectors: usize,
    pub max_matchers_per_selector: usize,
    /// Whether a selector may name a label in one matcher only.
    pub unique_label_names: bool,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
}

impl From<&tollgate_core::PolicyLimits> for PolicyLimitsDto {
    fn from(limits: &tollgate_core::PolicyLimits) -> PolicyLimitsDto {
        let tollgate_core::PolicyLimits {
            max_selectors,
            max_matchers_per_selector,
            unique_label_names,
        } = limits;
        PolicyLimitsDto {
            max_selectors: *max_selectors,
            max_matchers_per_selector: *max_matchers_per_selector,
            unique_label_names: *unique_label_names,
            max_label_name_bytes: tollgate_core::selector::MAX_LABEL_NAME_LEN,
            max_label_value_bytes: tollgate_core::selector::MAX_LABEL_VALUE_LEN,
        }
    }
}

/// The server's reading of a label policy: canonical form and matchers when valid, the error
/// an account write would get (reason code, message, position) when not.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyValidationDto {
    pub valid: bool,
    /// The canonical text an account would store; empty for unrestricted. Null when invalid.
    pub canonical: Option<String>,
    /// Selectors OR-ed together; empty when unrestricted or invalid.
    pub selectors: Vec<PolicySelectorDto>,
    /// Whether the caller may grant this policy (it lies inside the caller's own). Null when
    /// invalid.
    pub within_ceiling: Option<bool>,
    /// The caller's own policy (canonical; empty for unrestricted).
    pub ceiling: String,
    /// The machine reason an account write would be refused with (`invalid_field`,
    /// `label_policy_regex`, `label_policy_empty`, `label_policy_limit`).
    pub reason: Option<String>,
    pub error: Option<String>,
    /// Byte offset of the error in the text, when the parser knows where.
    pub position: Option<usize>,
    /// The same place as a 1-based character column.
    pub column: Option<usize>,
    pub limits: PolicyLimitsDto,
}

impl PolicyValidationDto {
    /// The answer for `text`, checked for a caller whose own policy is `ceiling`.
    pub fn new(
        validation: crate::service::PolicyValidation,
        text: &str,
        ceiling: &tollgate_core::Policy,
        limits: &tollgate_core::PolicyLimits,
    ) -> PolicyValidationDto {
        let mut dto = PolicyValidationDto {
            valid: false,
            canonical: None,
            selectors: Vec::new(),
            within_ceiling: None,
            ceiling: ceiling.to_string(),
            reason: None,
            error: None,
            position: None,
            column: None,
            limits: limits.into(),
        };
        match validation {
            crate::service::PolicyValidation::Valid {
                policy,
                within_ceiling,
            } => {
                dto.valid = true;
                dto.canonical = Some(policy.to_string());
                dto.within_ceiling = Some(within_ceiling);
                dto.selectors = policy
                    .selectors()
                    .iter()
                    .map(|selector| PolicySelectorDto {
                        matchers: selector
                            .matchers()
                            .iter()
                            .map(|m| PolicyMatcherDto {
                                name: m.name().as_str().to_owned(),
                                op: m.op().as_str().to_owned(),
                                value: m.value().to_owned(),
                            })
                            .collect(),
                    })
                    .collect();
            }
            crate::service::PolicyValidation::Invalid { error, position } => {
                dto.reason = Some(error.code().to_owned());
                // The text is the client's own, but may hold something token-shaped.
                dto.error = Some(tollgate_core::token::redact(&error.to_string()).into_owned());
                dto.position = position;
                dto.column = position
                    .map(|at| text.get(..at).map_or(at, |before| before.chars().count()) + 1);
            }
        }
        dto
    }
}
