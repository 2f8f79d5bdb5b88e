//! The HTTP layer (axum): the admin REST API (JSON, camelCase), `/openapi.json`, `/metrics` and
//! `/healthz`; the web console's files ([`crate::console`]) are merged into the same router.
//!
//! May use: axum, serde, utoipa, the admin service ([`crate::service`]) and the live snapshot
//! (read-only, for health and metrics). Never the store: every operation goes through
//! [`Admin`]. Service errors become a status and reason code in [`error`] only.
//!
//! [`extract`] authenticates the caller and reads bodies, [`handlers`] call the service,
//! [`dto`] holds the wire types, [`openapi`] the generated document.

pub mod dto;
pub mod error;
pub mod extract;
mod handlers;
pub mod openapi;
mod roles;

pub use dto::*;
pub use extract::{ApiJson, ApiPath, ApiQuery, MAX_BODY_BYTES};
pub use openapi::ApiDoc;

use crate::metrics::{CheckMetrics, GrantsMetrics};
use crate::service::Admin;
use crate::usage::UsageRecorder;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use error::ApiError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use utoipa::OpenApi;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

pub struct AppState {
    pub admin: Admin,
    checks: Arc<CheckMetrics>,
    grants: Arc<GrantsMetrics>,
    usage: UsageRecorder,
    /// Responses by status code, for `/metrics`.
    responses: Mutex<BTreeMap<u16, u64>>,
}

impl AppState {
    pub fn new(
        admin: Admin,
        checks: Arc<CheckMetrics>,
        grants: Arc<GrantsMetrics>,
        usage: UsageRecorder,
    ) -> AppState {
        AppState {
            admin,
            checks,
            grants,
            usage,
            responses: Mutex::new(BTreeMap::new()),
        }
    }
}

type Shared = State<Arc<AppState>>;

async fn healthz(State(state): Shared) -> Response {
    let snapshot = state.admin.directory().snapshot();
    match state.admin.store_ready().await {
        Ok(_) => {
            let mut body = serde_json::json!({"status": "ok", "revision": snapshot.revision(), "liveTokens": snapshot.len()});
            // PostgreSQL: whether other replicas' writes are pushed, or (reconnecting) arrive
            // by the periodic catch-up only.
            if let Some(listening) = state.admin.directory().store().is_listening() {
                body["changeNotifications"] = (if listening {
                    "connected"
                } else {
                    "reconnecting"
                })
                .into();
            }
            Json(body).into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn metrics(State(state): Shared) -> Response {
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
    out.push_str(
        "# HELP tollgate_tokens_expiring_seconds Seconds until the tenant's next live token expires (alert below your rotation lead time).\n",
    );
    out.push_str("# TYPE tollgate_tokens_expiring_seconds gauge\n");
    let now = u64::try_from(crate::model::now_secs()).unwrap_or(0);
    for (tenant, at) in snapshot.next_expiry_by_tenant(now) {
        out.push_str(&format!(
            "tollgate_tokens_expiring_seconds{{tenant=\"{}\"}} {}\n",
            label_value(&tenant),
            at - now
        ));
    }
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
    state.grants.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// A label value in the text exposition format: backslash, quote and newline escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn count_responses(
    State(state): Shared,
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
pub fn router(state: Arc<AppState>) -> Router {
    let openapi = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    Router::new()
        .route("/api/v1/tenants", get(handlers::list_tenants))
        .route(
            "/api/v1/tenants/{name}",
            axum::routing::delete(handlers::delete_tenant),
        )
        .route(
            "/api/v1/serviceaccounts",
            post(handlers::create_account).get(handlers::list_accounts),
        )
        // The router prefers the literal segment: `me` is never read as an `{id}`.
        .route(
            "/api/v1/serviceaccounts/{id}",
            get(handlers::get_account)
                .patch(handlers::update_account)
                .delete(handlers::delete_account),
        )
        .route(
            "/api/v1/serviceaccounts/{id}/tokens",
            post(handlers::create_token).get(handlers::list_tokens),
        )
        .route(
            "/api/v1/serviceaccounts/{id}/tokens/{token_id}",
            axum::routing::patch(handlers::rename_token).delete(handlers::delete_token),
        )
        .route(
            "/api/v1/serviceaccounts/{id}/tokens/{token_id}/regenerate",
            post(handlers::regenerate_token),
        )
        .route(
            "/api/v1/roles",
            get(roles::list_roles).post(roles::create_role),
        )
        .route(
            "/api/v1/roles/{name}",
            get(roles::get_role)
                .patch(roles::update_role)
                .delete(roles::delete_role),
        )
        .route("/api/v1/access-review", post(handlers::access_review))
        .route("/api/v1/audit", get(handlers::audit_log))
        .route("/api/v1/whoami", get(handlers::whoami))
        .route(
            "/api/v1/labelpolicies/validate",
            post(handlers::validate_policy),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi) }),
        )
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .with_state(state)
}
