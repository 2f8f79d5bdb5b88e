//! `/openapi.json`: the document generated from the handlers' annotations.

use super::handlers;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate admin API", description = "Service accounts, tokens, tenants, access review and audit."),
    paths(handlers::create_account, handlers::list_accounts, handlers::whoami, handlers::get_account, handlers::update_account, handlers::delete_account, handlers::create_token, handlers::list_tokens, handlers::rename_token, handlers::delete_token, handlers::regenerate_token, handlers::access_review, handlers::audit_log, handlers::list_tenants, handlers::delete_tenant),
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
