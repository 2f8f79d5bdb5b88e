//! `/api/v1/roles`: the built-in roles and each tenant's own.

use super::AppState;
use super::dto::{CreateRoleBody, ErrorBody, PatchRoleBody, RoleDto, RoleListDto, RoleParams};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::Caller;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

type Shared = State<Arc<AppState>>;

/// The built-in roles, then the tenant's own (every tenant's for an all-tenant admin, unless
/// `tenant` names one).
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", params(RoleParams),
    responses((status = 200, body = RoleListDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_roles(
    State(state): Shared,
    caller: Caller,
    ApiQuery(params): ApiQuery<RoleParams>,
) -> Result<Json<RoleListDto>, ApiError> {
    let roles = state.admin.list_roles(&caller, params.tenant).await?;
    Ok(Json(RoleListDto {
        total: roles.len() as u64,
        items: roles.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path), RoleParams),
    responses((status = 200, body = RoleDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_role(
    State(state): Shared,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<RoleParams>,
) -> Result<Json<RoleDto>, ApiError> {
    let role = state.admin.get_role(&caller, params.tenant, &name).await?;
    Ok(Json(role.into()))
}

/// Define a role: a named set of scopes, each held by the caller (403 `role_ceiling`).
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = CreateRoleBody,
    responses((status = 201, body = RoleDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_role(
    State(state): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRoleBody>,
) -> Result<(StatusCode, Json<RoleDto>), ApiError> {
    let role = state
        .admin
        .create_role(
            &caller,
            body.tenant,
            &body.name,
            body.description,
            &body.scopes,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// Change a role's description or scopes; every account holding it follows at once. Built-in
/// roles cannot be changed (409 `builtin_role`).
#[utoipa::path(patch, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path), RoleParams), request_body = PatchRoleBody,
    responses((status = 200, body = RoleDto), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn update_role(
    State(state): Shared,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<RoleParams>,
    ApiJson(body): ApiJson<PatchRoleBody>,
) -> Result<Json<RoleDto>, ApiError> {
    let role = state
        .admin
        .update_role(
            &caller,
            params.tenant,
            &name,
            body.description,
            body.scopes.as_deref(),
        )
        .await?;
    Ok(Json(role.into()))
}

/// Delete a role; 409 `role_in_use` while an account holds it, 409 `builtin_role` for a
/// built-in one.
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path), RoleParams),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_role(
    State(state): Shared,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<RoleParams>,
) -> Result<StatusCode, ApiError> {
    state
        .admin
        .delete_role(&caller, params.tenant, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
