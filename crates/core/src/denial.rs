//! The one table from a denial to what each interface answers: the filter's local reply,
//! ext_authz's denied CheckResponse and the admin API's error all read it, so a reason means the
//! same everywhere. Reasons themselves ([`DenyReason`]) carry no protocol numbers.

use crate::decision::{Deny, DenyReason};

/// `WWW-Authenticate` for a credential that is missing, malformed, unknown or expired (RFC 6750).
pub const WWW_AUTHENTICATE_INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

/// The gRPC status codes a denial uses (`google.rpc.Code`), as numbers: the core builds for wasm
/// and does not depend on tonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum GrpcCode {
    InvalidArgument = 3,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenialCodes {
    pub http_status: u16,
    pub grpc_code: GrpcCode,
    /// Whether the answer carries [`WWW_AUTHENTICATE_INVALID_TOKEN`].
    pub invalid_token: bool,
}

/// 401 when the credential is the problem (the client should get a new token), 400 for a
/// request no server should accept, 403 when the credential is fine but not enough, 500 when
/// our own rewrite failed its check, 503 when nothing can answer.
pub const fn codes(reason: DenyReason) -> DenialCodes {
    use DenyReason::*;
    let (http_status, grpc_code) = match reason {
        MissingToken | MalformedToken | UnknownToken | ExpiredToken => {
            (401, GrpcCode::Unauthenticated)
        }
        InvalidPath | InvalidLabels | InvalidQuery | InvalidBody => {
            (400, GrpcCode::InvalidArgument)
        }
        BodyTooLarge => (413, GrpcCode::ResourceExhausted),
        UnsupportedMediaType => (415, GrpcCode::InvalidArgument),
        RouteNotAllowed | MissingScope | TenantMismatch | LabelPolicyViolation
        | LabelsNotEnforceable | QueryNotAllowed | BodyUnavailable => {
            (403, GrpcCode::PermissionDenied)
        }
        RewriteFailed => (500, GrpcCode::Internal),
        AuthorizerUnavailable => (503, GrpcCode::Unavailable),
    };
    DenialCodes {
        http_status,
        grpc_code,
        invalid_token: http_status == 401,
    }
}

/// A denial as an HTTP answer: status, headers, JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialResponse {
    pub status: u16,
    pub grpc_code: GrpcCode,
    pub headers: Vec<(&'static str, &'static str)>,
    /// `{"error": message, "reason": code}`, or the Prometheus API's error shape for PromQL
    /// requests (see [`Deny::json_body`]).
    pub body: String,
}

impl Deny {
    pub fn codes(&self) -> DenialCodes {
        codes(self.reason)
    }

    pub fn status(&self) -> u16 {
        self.codes().http_status
    }

    /// Everything an interface sends for this denial.
    pub fn response(&self) -> DenialResponse {
        let codes = self.codes();
        let mut headers = vec![("content-type", "application/json")];
        if codes.invalid_token {
            headers.push(("www-authenticate", WWW_AUTHENTICATE_INVALID_TOKEN));
        }
        DenialResponse {
            status: codes.http_status,
            grpc_code: codes.grpc_code,
            headers,
            body: self.json_body(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_row() {
        for reason in DenyReason::ALL {
            let row = codes(reason);
            assert!(
                [400, 401, 403, 413, 415, 500, 503].contains(&row.http_status),
                "{reason:?}"
            );
            let response = Deny::new(reason, "m").response();
            assert_eq!(response.status, row.http_status);
            assert_eq!(
                response
                    .headers
                    .iter()
                    .any(|(name, _)| *name == "www-authenticate"),
                row.http_status == 401,
                "{reason:?}"
            );
            let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
            assert_eq!(body["reason"], reason.as_str());
        }
        assert_eq!(codes(DenyReason::ExpiredToken).http_status, 401);
        assert_eq!(
            codes(DenyReason::LabelPolicyViolation).grpc_code,
            GrpcCode::PermissionDenied
        );
    }
}
