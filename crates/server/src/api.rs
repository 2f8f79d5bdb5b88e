//! The admin REST API (axum, JSON, camelCase), `/openapi.json`, `/metrics` and `/healthz`.
//! Handlers only translate between HTTP and [`Admin`] calls.

use crate::admin::{
    AccountChanges, AccountSpec, Admin, Caller, ExpirySpec, IssuedToken, ReviewAnswer,
    ReviewSubject,
};
use crate::error::ApiError;
use crate::metrics::CheckMetrics;
use crate::model::{Account, AuditEntry, Page, TokenRecord};
use crate::store::Store;
use crate::usage::UsageRecorder;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_core::Role;
use utoipa::{OpenApi, ToSchema};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

pub struct AppState<S> {
    pub admin: Admin<S>,
    checks: Arc<CheckMetrics>,
    usage: UsageRecorder,
    /// Responses by status code, for `/metrics`.
    responses: Mutex<BTreeMap<u16, u64>>,
}

impl<S: Store> AppState<S> {
    pub fn new(admin: Admin<S>, checks: Arc<CheckMetrics>, usage: UsageRecorder) -> AppState<S> {
        AppState {
            admin,
            checks,
            usage,
            responses: Mutex::new(BTreeMap::new()),
        }
    }
}

// ---- extractors that answer bad input with our JSON error shape --------------------------------

/// Largest admin request body: far above any valid one (a description is at most 400
/// characters, a label policy a few selectors), and far below what could hurt the server.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body; a body that does not deserialise is a 400 naming the field, one larger than
/// [`MAX_BODY_BYTES`] a 413, one that is not `application/json` a 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Err(ApiError::new(
                    rejection.status(),
                    "unsupported_media_type",
                    rejection.body_text(),
                ))
            }
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
                ))
            }
            Err(rejection) => Err(ApiError::bad_request("invalid_body", rejection.body_text())),
        }
    }
}

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))
    }
}

pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))
    }
}

impl<S: Store> FromRequestParts<Arc<AppState<S>>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState<S>>,
    ) -> Result<Self, Self::Rejection> {
        let authorizations = parts
            .headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|value| {
                value.to_str().map_err(|_| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "malformed_token",
                        "Authorization header is not ASCII",
                    )
                })
            })
            .collect::<Result<Vec<&str>, ApiError>>()?;
        let caller =
            state
                .admin
                .authenticate(&authorizations, parts.method.as_str(), parts.uri.path())?;
        state.usage.record(caller.token_id);
        Ok(caller)
    }
}

// ---- wire types -------------------------------------------------------------------------------

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

fn parse_rfc3339(field: &'static str, value: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|err| {
            ApiError::bad_request(
                "invalid_field",
                format!("{field}: not an RFC 3339 time: {err}"),
            )
        })
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
#[derive(Serialize, Deserialize, ToSchema)]
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
#[derive(Serialize, Deserialize, ToSchema)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// Same as the body's withToken.
    pub with_token: Option<bool>,
}

/// Page and page size to offset and limit.
fn paging(page: Option<u64>, page_size: Option<u64>) -> Result<(u64, u64, u64, u64), ApiError> {
    let page = page.unwrap_or(1);
    let size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "page: must be at least 1",
        ));
    }
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("pageSize: must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok((page, size, (page - 1).saturating_mul(size), size))
}

fn expiry(expires_at: Option<&str>, ttl_seconds: Option<u64>) -> Result<ExpirySpec, ApiError> {
    Ok(ExpirySpec {
        expires_at: expires_at
            .map(|v| parse_rfc3339("expiresAt", v))
            .transpose()?,
        ttl_seconds,
    })
}

// ---- handlers ---------------------------------------------------------------------------------

type Shared<S> = State<Arc<AppState<S>>>;

/// Create a service account, optionally with its first token.
#[utoipa::path(post, path = "/api/v1/serviceaccounts", tag = "serviceaccounts", params(CreateParams), request_body = CreateAccountBody,
    responses((status = 201, body = CreatedAccountDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_account<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CreateParams>,
    ApiJson(body): ApiJson<CreateAccountBody>,
) -> Result<(StatusCode, Json<CreatedAccountDto>), ApiError> {
    let first_token = if params.with_token.or(body.with_token).unwrap_or(false) {
        Some((
            body.token_name.clone().unwrap_or_else(|| "default".into()),
            expiry(body.expires_at.as_deref(), body.ttl_seconds)?,
        ))
    } else {
        if body.expires_at.is_some() || body.ttl_seconds.is_some() || body.token_name.is_some() {
            return Err(ApiError::bad_request(
                "invalid_field",
                "tokenName, expiresAt and ttlSeconds need withToken=true",
            ));
        }
        None
    };
    let spec = AccountSpec {
        tenant: body.tenant,
        name: body.name,
        display_name: body.display_name,
        description: body.description,
        owner_email: body.owner_email,
        role: body.role,
        label_policy: body.label_policy,
    };
    let (account, token) = state
        .admin
        .create_account(&caller, spec, first_token)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccountDto {
            account: account.into(),
            token: token.map(Into::into),
        }),
    ))
}

/// List service accounts of the caller's tenant (all tenants for an all-tenant admin).
#[utoipa::path(get, path = "/api/v1/serviceaccounts", tag = "serviceaccounts", params(ListParams),
    responses((status = 200, body = AccountPageDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_accounts<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<AccountPageDto>, ApiError> {
    let (page, page_size, offset, limit) = paging(params.page, params.page_size)?;
    let result = match (params.name, params.search) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "name and search: give one or the other",
            ));
        }
        (Some(name), None) => accounts_named(&state.admin, &caller, name, offset, limit).await?,
        (None, search) => {
            state
                .admin
                .list_accounts(&caller, search, offset, limit)
                .await?
        }
    };
    Ok(Json(AccountPageDto {
        total_count: result.total,
        page,
        page_size,
        service_accounts: result.items.into_iter().map(Into::into).collect(),
    }))
}

/// The page `offset`, `limit` of the accounts named exactly `name` that the caller sees. The
/// store filters by substring, so this reads every substring match (in pages of
/// [`MAX_PAGE_SIZE`]) and keeps the exact ones: an account is found however many others
/// contain its name.
async fn accounts_named<S: Store>(
    admin: &Admin<S>,
    caller: &Caller,
    name: String,
    offset: u64,
    limit: u64,
) -> Result<Page<Account>, ApiError> {
    let mut named = Vec::new();
    let mut scanned = 0;
    loop {
        let page = admin
            .list_accounts(caller, Some(name.clone()), scanned, MAX_PAGE_SIZE)
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

#[utoipa::path(get, path = "/api/v1/serviceaccounts/{id}", tag = "serviceaccounts", params(("id" = i64, Path)),
    responses((status = 200, body = AccountDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_account<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AccountDto>, ApiError> {
    Ok(Json(state.admin.get_account(&caller, id).await?.into()))
}

/// Rename, re-describe, change the role (within the caller's ceiling), label policy or disable.
#[utoipa::path(patch, path = "/api/v1/serviceaccounts/{id}", tag = "serviceaccounts", params(("id" = i64, Path)), request_body = PatchAccountBody,
    responses((status = 200, body = AccountDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_account<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PatchAccountBody>,
) -> Result<Json<AccountDto>, ApiError> {
    let changes = AccountChanges {
        name: body.name,
        display_name: body.display_name,
        description: body.description,
        owner_email: body.owner_email,
        role: body.role,
        label_policy: body.label_policy,
        disabled: body.disabled,
    };
    Ok(Json(
        state
            .admin
            .update_account(&caller, id, changes)
            .await?
            .into(),
    ))
}

/// Delete a service account; every token of it is revoked.
#[utoipa::path(delete, path = "/api/v1/serviceaccounts/{id}", tag = "serviceaccounts", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_account<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.admin.delete_account(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a token; its value is in this response only.
#[utoipa::path(post, path = "/api/v1/serviceaccounts/{id}/tokens", tag = "tokens", params(("id" = i64, Path)), request_body = CreateTokenBody,
    responses((status = 201, body = IssuedTokenDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_token<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> Result<(StatusCode, Json<IssuedTokenDto>), ApiError> {
    let spec = expiry(body.expires_at.as_deref(), body.ttl_seconds)?;
    let issued = state
        .admin
        .create_token(&caller, id, body.name, spec)
        .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// List token metadata (never values).
#[utoipa::path(get, path = "/api/v1/serviceaccounts/{id}/tokens", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<TokenDto>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_tokens<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<TokenDto>>, ApiError> {
    let tokens = state.admin.list_tokens(&caller, id).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

#[utoipa::path(patch, path = "/api/v1/serviceaccounts/{id}/tokens/{tokenId}", tag = "tokens", params(("id" = i64, Path), ("tokenId" = i64, Path)), request_body = RenameTokenBody,
    responses((status = 200, body = TokenDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rename_token<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath((id, token_id)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<RenameTokenBody>,
) -> Result<Json<TokenDto>, ApiError> {
    Ok(Json(
        state
            .admin
            .rename_token(&caller, id, token_id, body.name)
            .await?
            .into(),
    ))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/serviceaccounts/{id}/tokens/{tokenId}", tag = "tokens", params(("id" = i64, Path), ("tokenId" = i64, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_token<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath((id, token_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state.admin.delete_token(&caller, id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give the token a new value; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/serviceaccounts/{id}/tokens/{tokenId}/regenerate", tag = "tokens", params(("id" = i64, Path), ("tokenId" = i64, Path)),
    responses((status = 200, body = IssuedTokenDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn regenerate_token<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiPath((id, token_id)): ApiPath<(i64, i64)>,
) -> Result<Json<IssuedTokenDto>, ApiError> {
    Ok(Json(
        state
            .admin
            .regenerate_token(&caller, id, token_id)
            .await?
            .into(),
    ))
}

/// "Can I?": would this account or token be allowed METHOD PATH, and why.
#[utoipa::path(post, path = "/api/v1/access-review", tag = "access", request_body = AccessReviewBody,
    responses((status = 200, body = AccessReviewDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
async fn access_review<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiJson(body): ApiJson<AccessReviewBody>,
) -> Result<Json<AccessReviewDto>, ApiError> {
    let subject = match (body.account, body.token) {
        (Some(AccountRef::Id(id)), None) => ReviewSubject::AccountId(id),
        (Some(AccountRef::Name(name)), None) => ReviewSubject::AccountName {
            tenant: body.tenant,
            name,
        },
        (None, Some(token)) => ReviewSubject::Token(token),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "give exactly one of account and token",
            ));
        }
    };
    if body.method.is_empty() || !body.method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "method: must be an upper-case HTTP method such as GET",
        ));
    }
    let answer = state
        .admin
        .access_review(
            &caller,
            subject,
            &body.method,
            &body.path,
            body.labels.as_deref(),
        )
        .await?;
    Ok(Json(answer.into()))
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPageDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn audit_log<S: Store>(
    State(state): Shared<S>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPageDto>, ApiError> {
    let (page, page_size, offset, limit) = paging(params.page, params.page_size)?;
    let result = state
        .admin
        .audit_log(&caller, params.actor, params.target, offset, limit)
        .await?;
    Ok(Json(AuditPageDto {
        total_count: result.total,
        page,
        page_size,
        entries: result.items.into_iter().map(Into::into).collect(),
    }))
}

async fn healthz<S: Store>(State(state): Shared<S>) -> Response {
    let snapshot = state.admin.directory().snapshot();
    match state.admin.directory().store().is_bootstrapped().await {
        Ok(_) => Json(serde_json::json!({"status": "ok", "revision": snapshot.revision(), "liveTokens": snapshot.len()})).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn metrics<S: Store>(State(state): Shared<S>) -> Response {
    let snapshot = state.admin.directory().snapshot();
    let mut out = String::new();
    out.push_str(
        "# HELP tollgate_snapshot_revision Change-feed revision of the live grant snapshot.\n",
    );
    out.push_str("# TYPE tollgate_snapshot_revision gauge\n");
    out.push_str(&format!(
        "tollgate_snapshot_revision {}\n",
        snapshot.revision()
    ));
    out.push_str("# HELP tollgate_live_tokens Tokens in the live grant snapshot.\n");
    out.push_str("# TYPE tollgate_live_tokens gauge\n");
    out.push_str(&format!("tollgate_live_tokens {}\n", snapshot.len()));
    out.push_str("# HELP tollgate_admin_responses_total Admin API responses by status code.\n");
    out.push_str("# TYPE tollgate_admin_responses_total counter\n");
    if let Ok(responses) = state.responses.lock() {
        for (code, count) in responses.iter() {
            out.push_str(&format!(
                "tollgate_admin_responses_total{{code=\"{code}\"}} {count}\n"
            ));
        }
    }
    state.checks.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn count_responses<S: Store>(
    State(state): Shared<S>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if let Ok(mut responses) = state.responses.lock() {
        *responses.entry(response.status().as_u16()).or_default() += 1;
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate admin API", description = "Service accounts, tokens, access review and audit."),
    paths(create_account, list_accounts, get_account, update_account, delete_account, create_token, list_tokens, rename_token, delete_token, regenerate_token, access_review, audit_log),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router<S: Store>(state: Arc<AppState<S>>) -> Router {
    let openapi = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    Router::new()
        .route(
            "/api/v1/serviceaccounts",
            post(create_account::<S>).get(list_accounts::<S>),
        )
        .route(
            "/api/v1/serviceaccounts/{id}",
            get(get_account::<S>)
                .patch(update_account::<S>)
                .delete(delete_account::<S>),
        )
        .route(
            "/api/v1/serviceaccounts/{id}/tokens",
            post(create_token::<S>).get(list_tokens::<S>),
        )
        .route(
            "/api/v1/serviceaccounts/{id}/tokens/{token_id}",
            axum::routing::patch(rename_token::<S>).delete(delete_token::<S>),
        )
        .route(
            "/api/v1/serviceaccounts/{id}/tokens/{token_id}/regenerate",
            post(regenerate_token::<S>),
        )
        .route("/api/v1/access-review", post(access_review::<S>))
        .route("/api/v1/audit", get(audit_log::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_responses::<S>,
        ))
        .with_state(state)
}
