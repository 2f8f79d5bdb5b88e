//! The admin API's error: a status, a machine reason and a message, rendered as
//! `{"error": message, "reason": reason}`; and the mapping of every [`ServiceError`] to one.

use crate::service::ServiceError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    /// The message is redacted: serde and validation errors may echo client input.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason,
            message: tollgate_core::token::redact(&message.into()).into_owned(),
        }
    }

    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason, message)
    }

    pub fn forbidden(reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, reason, message)
    }

    pub fn unprocessable(reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<ServiceError> for ApiError {
    /// The one place a service error gets its HTTP status; the reason is its
    /// [`ServiceError::code`].
    fn from(err: ServiceError) -> ApiError {
        let status = match &err {
            ServiceError::Denied(deny) => {
                StatusCode::from_u16(deny.status()).unwrap_or(StatusCode::FORBIDDEN)
            }
            ServiceError::InvalidField(_) | ServiceError::UnknownRole { .. } => {
                StatusCode::BAD_REQUEST
            }
            ServiceError::LabelPolicyRegex(_)
            | ServiceError::LabelPolicyEmpty(_)
            | ServiceError::LabelPolicyLimit(_)
            | ServiceError::ExpiryInPast
            | ServiceError::ExpiryTooLate(_)
            | ServiceError::ExpiryRequired(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::TenantForbidden(_)
            | ServiceError::OtherTenant
            | ServiceError::RoleCeiling { .. }
            | ServiceError::LabelPolicyCeiling { .. }
            | ServiceError::AllTenantsCeiling
            | ServiceError::AllTenantsOnly(_) => StatusCode::FORBIDDEN,
            ServiceError::BuiltinRole(_) => StatusCode::CONFLICT,
            ServiceError::AccountDisabled(_) => StatusCode::CONFLICT,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            ServiceError::Store(
                StoreError::Conflict { .. }
                | StoreError::Protected(_)
                | StoreError::RoleInUse { .. },
            ) => StatusCode::CONFLICT,
            ServiceError::Store(other) => {
                // The backend's message stays in the log: it may name paths or hosts.
                tracing::error!(error = %other, "store failure");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    err.code(),
                    "the store is unavailable; try again",
                );
            }
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        ServiceError::Store(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "reason": self.reason });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}
