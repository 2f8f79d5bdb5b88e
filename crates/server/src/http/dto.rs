//! The API's wire types (JSON, camelCase): response DTOs, request bodies and query
//! parameters. The CLI reads and writes the same types.

use crate::model::{Account, AuditEntry, TokenRecord};
use crate::service::{IssuedToken, ReviewAnswer};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_core::Role;
use utoipa::ToSchema;

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

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
            role: role.to_string(),
            label_policy,
            disabled,
            all_tenants,
            created_at: rfc3339(created_at),
            created_by,
        }
    }
}

/// The caller: its account, and the token this request authenticated with.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoamiDto {
    #[serde(flatten)]
    pub account: AccountDto,
    pub token_id: i64,
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

// `R` is how the role is held: `Role` where the server reads a body (an unknown role is a 400
// naming the field), the text a user typed where the CLI writes one for the server to judge.
// (Comments, not doc comments, which would change the OpenAPI schema.)
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(bound = "")]
pub struct CreateAccountBody<R = Role> {
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
    /// viewer, editor, admin or writer.
    #[schema(value_type = String, pattern = "^(viewer|editor|admin|writer)$")]
    pub role: R,
    /// A selector such as `{kube_namespace="prometheus"}`; empty or absent for unrestricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_policy: Option<String>,
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

// `R` as in `CreateAccountBody`.
#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(bound = "")]
pub struct PatchAccountBody<R = Role> {
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
    #[schema(value_type = Option<String>, pattern = "^(viewer|editor|admin|writer)$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<R>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    #[param(minimum = 1)]
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
    #[param(minimum = 1)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiring_within: Option<String>,
    /// 1-based.
    #[param(minimum = 1)]
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
