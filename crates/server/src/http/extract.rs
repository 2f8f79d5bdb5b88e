//! Extractors: bad input is answered in the API's JSON error shape, and [`Caller`] is the
//! authenticated caller (the bearer credential checked by the core pipeline with the admin
//! route table, through [`Admin::authenticate`](crate::service::Admin::authenticate)).

use super::AppState;
use super::error::ApiError;
use crate::service::Caller;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use std::sync::Arc;

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

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
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
