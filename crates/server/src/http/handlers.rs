//! The handlers: each turns a request into one [`Admin`](crate::service::Admin) call and its
//! answer into a DTO. No rule is decided here beyond the shape of the request.

use super::AppState;
use super::dto::{
    AccessReviewBody, AccessReviewDto, AccountDto, AccountPageDto, AccountRef, AuditPageDto,
    AuditParams, CreateAccountBody, CreateParams, CreateTokenBody, CreatedAccountDto,
    DeletedTenantDto, ErrorBody, IssuedTokenDto, ListParams, PatchAccountBody, PolicyValidationDto,
    RenameTokenBody, TenantDto, TokenDto, TokenListParams, TokenPageDto, ValidatePolicyBody,
    WhoAmIDto,
};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::service::{AccountChanges, AccountSpec, Caller, ExpirySpec, ReviewSubject};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

type Shared = State<Arc<AppState>>;

/// Create a service account, optionally with its first token.
#[utoipa::path(post, path = "/api/v1/serviceaccounts", tag = "serviceaccounts", params(CreateParams), request_body = CreateAccountBody,
    responses((status = 201, body = CreatedAccountDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_account(
    State(state): Shared,
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
        read_tenants: body.read_tenants,
        hide_policy_labels: body.hide_policy_labels,
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
pub(super) async fn list_accounts(
    State(state): Shared,
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
        (Some(name), None) => {
            state
                .admin
                .accounts_named(&caller, name, offset, limit)
                .await?
        }
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

#[utoipa::path(get, path = "/api/v1/serviceaccounts/{id}", tag = "serviceaccounts", params(("id" = i64, Path)),
    responses((status = 200, body = AccountDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_account(
    State(state): Shared,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AccountDto>, ApiError> {
    Ok(Json(state.admin.get_account(&caller, id).await?.into()))
}

/// Rename, re-describe, change the role (within the caller's ceiling), label policy or disable.
#[utoipa::path(patch, path = "/api/v1/serviceaccounts/{id}", tag = "serviceaccounts", params(("id" = i64, Path)), request_body = PatchAccountBody,
    responses((status = 200, body = AccountDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn update_account(
    State(state): Shared,
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
        read_tenants: body.read_tenants,
        hide_policy_labels: body.hide_policy_labels,
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
pub(super) async fn delete_account(
    State(state): Shared,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.admin.delete_account(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every tenant with its account and token counts (all-tenant admins only).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantDto>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_tenants(
    State(state): Shared,
    caller: Caller,
) -> Result<Json<Vec<TenantDto>>, ApiError> {
    let tenants = state.admin.list_tenants(&caller).await?;
    Ok(Json(tenants.into_iter().map(Into::into).collect()))
}

/// Delete a tenant: every account of it, every token revoked; audited (all-tenant admins only).
#[utoipa::path(delete, path = "/api/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)),
    responses((status = 200, body = DeletedTenantDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_tenant(
    State(state): Shared,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DeletedTenantDto>, ApiError> {
    let deleted_accounts = state.admin.delete_tenant(&caller, &name).await?;
    Ok(Json(DeletedTenantDto {
        tenant: name,
        deleted_accounts,
    }))
}

/// Create a token; its value is in this response only.
#[utoipa::path(post, path = "/api/v1/serviceaccounts/{id}/tokens", tag = "tokens", params(("id" = i64, Path)), request_body = CreateTokenBody,
    responses((status = 201, body = IssuedTokenDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_token(
    State(state): Shared,
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

/// List token metadata (never values), a page at a time.
#[utoipa::path(get, path = "/api/v1/serviceaccounts/{id}/tokens", tag = "tokens", params(("id" = i64, Path), TokenListParams),
    responses((status = 200, body = TokenPageDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_tokens(
    State(state): Shared,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(params): ApiQuery<TokenListParams>,
) -> Result<Json<TokenPageDto>, ApiError> {
    let (page, page_size, offset, limit) = paging(params.page, params.page_size)?;
    let within = params
        .expiring_within
        .as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(|err| {
            ApiError::bad_request("invalid_parameter", format!("expiringWithin: {err}"))
        })?;
    let result = state
        .admin
        .list_tokens(&caller, id, within, offset, limit)
        .await?;
    Ok(Json(TokenPageDto {
        total_count: result.total,
        page,
        page_size,
        tokens: result.items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(patch, path = "/api/v1/serviceaccounts/{id}/tokens/{tokenId}", tag = "tokens", params(("id" = i64, Path), ("tokenId" = i64, Path)), request_body = RenameTokenBody,
    responses((status = 200, body = TokenDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn rename_token(
    State(state): Shared,
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
pub(super) async fn delete_token(
    State(state): Shared,
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
pub(super) async fn regenerate_token(
    State(state): Shared,
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
pub(super) async fn access_review(
    State(state): Shared,
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
pub(super) async fn audit_log(
    State(state): Shared,
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

/// The caller: its account, the token of this request and its scopes.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "access",
    responses((status = 200, body = WhoAmIDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn whoami(
    State(state): Shared,
    caller: Caller,
) -> Result<Json<WhoAmIDto>, ApiError> {
    Ok(Json(state.admin.whoami(&caller).await?.into()))
}

/// Check a label policy with the server's own parser and limits, as an account write would:
/// canonical form and matchers, or the reason, message and position of the error. Always 200
/// for a well-formed request; nothing is stored.
#[utoipa::path(post, path = "/api/v1/labelpolicies/validate", tag = "access", request_body = ValidatePolicyBody,
    responses((status = 200, body = PolicyValidationDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn validate_policy(
    State(state): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<ValidatePolicyBody>,
) -> Json<PolicyValidationDto> {
    let validation = state.admin.validate_policy(&caller, &body.policy);
    Json(PolicyValidationDto::new(
        validation,
        &body.policy,
        &caller.policy,
        state.admin.policy_limits(),
    ))
}
