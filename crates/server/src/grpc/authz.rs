//! `envoy.service.auth.v3.Authorization/Check`: Envoy's ext_authz (and Istio's CUSTOM provider)
//! asks here. Decides with the core crate against the in-memory snapshot only: no lock, no disk.
//!
//! Wire types are turned into a [`CheckInput`] in one place ([`CheckInput::from_request`]) and a
//! decision into a response in one place ([`respond`]).

use crate::directory::{LiveSnapshot, SnapshotHandle};
use crate::metrics::{CheckMetrics, Outcome};
use crate::model::now_secs;
use crate::usage::UsageRecorder;
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue,
    HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse, QueryParameter,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tollgate_core::decision::BodyView;
use tollgate_core::promql::ParamRewrite;
use tollgate_core::write::WriteLimits;
use tollgate_core::{
    Allow, Authorization, Deny, DenyReason, GrantLookup, RequestView, RouteTable, authorize, form,
    headers,
};

/// Namespace of the dynamic metadata Envoy stores for access logs.
const METADATA_NAMESPACE: &str = "tollgate";

/// The parts of a CheckRequest a decision needs, borrowed from it.
#[derive(Debug)]
pub struct CheckInput<'a> {
    pub view: RequestView<'a>,
    pub body: &'a [u8],
    /// False when the request carries a body Envoy did not forward in full.
    pub body_complete: bool,
}

/// Every `header_map` value (`encode_raw_headers`), in order, as text: `value`, or `raw_value`
/// read as Envoy reads values into `headers` and as the filter reads them (each byte that
/// breaks UTF-8 as `!`, `headers::sanitize_utf8`). Borrowed unless a raw value is not UTF-8;
/// held here for a [`CheckInput`] to borrow.
pub struct HeaderMapValues<'a>(Vec<Cow<'a, str>>);

impl<'a> HeaderMapValues<'a> {
    pub fn of(http: &'a HttpRequest) -> HeaderMapValues<'a> {
        HeaderMapValues(
            header_map_entries(http)
                .map(|h| match std::str::from_utf8(&h.raw_value) {
                    _ if h.raw_value.is_empty() => Cow::Borrowed(h.value.as_str()),
                    Ok(value) => Cow::Borrowed(value),
                    Err(_) => {
                        Cow::Owned(tollgate_core::headers::sanitize_utf8(h.raw_value.clone()))
                    }
                })
                .collect(),
        )
    }
}

fn header_map_entries(http: &HttpRequest) -> impl Iterator<Item = &HeaderValue> {
    http.header_map.iter().flat_map(|map| &map.headers)
}

impl<'a> CheckInput<'a> {
    /// Reads headers from `headers` and, with `encode_raw_headers`, from `header_map`
    /// (`map_values`: `HeaderMapValues::of(http)`).
    pub fn from_request(
        http: &'a HttpRequest,
        map_values: &'a HeaderMapValues<'a>,
    ) -> CheckInput<'a> {
        let map_entries = header_map_entries(http)
            .zip(&map_values.0)
            .map(|(h, value)| (h.key.as_str(), value.as_ref()));
        let entries: Vec<(&str, &str)> = http
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(map_entries)
            .collect();

        let mut view = RequestView::new(&http.method, &http.path);
        let mut partial = false;
        let mut declared_length: Option<u64> = None;
        let mut chunked = false;
        for (name, value) in entries {
            view.observe_header(name, value);
            if name.eq_ignore_ascii_case("x-envoy-auth-partial-body") {
                partial |= value.eq_ignore_ascii_case("true");
            } else if name.eq_ignore_ascii_case("content-length") {
                declared_length = value.trim().parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
        }
        let body: &[u8] = if http.raw_body.is_empty() {
            http.body.as_bytes()
        } else {
            &http.raw_body
        };
        let body_len = body.len() as u64;
        // A body exists but was not forwarded (no with_request_body), or only in part.
        let missing = match declared_length {
            Some(len) => len != body_len,
            None => chunked && body.is_empty(),
        };
        CheckInput {
            view,
            body,
            body_complete: !partial && !missing,
        }
    }
}

/// An allowed request: what to change on its way upstream, and who it is for access logs.
#[derive(Debug)]
pub struct Allowed {
    pub allow: Allow,
    pub rewrite: ParamRewrite,
    pub role: std::sync::Arc<str>,
}

/// What a Check answers, before it becomes a wire response.
#[derive(Debug)]
pub enum Verdict {
    Allow(Box<Allowed>),
    Deny(Deny),
}

/// Decides one request: token, grant, route, scope, tenant, labels, then PromQL enforcement.
pub fn evaluate(
    snapshots: &impl LiveSnapshot,
    routes: &RouteTable,
    write_limits: &WriteLimits,
    input: &CheckInput<'_>,
    now: u64,
    usage: Option<&UsageRecorder>,
) -> Verdict {
    let snapshot = snapshots.current();
    let lookup = |hash: &_| match snapshot.get(hash) {
        Some(grant) => GrantLookup::Found(grant),
        None => GrantLookup::Unknown,
    };
    let authorized = match authorize(&input.view, lookup, routes, now) {
        Authorization::Allowed(authorized) => authorized,
        Authorization::Denied(deny) => return Verdict::Deny(deny),
        // The snapshot answers for every token: it never says "not here".
        Authorization::NotHere(_) => return Verdict::Deny(Deny::unknown_token()),
    };
    if let Some(usage) = usage {
        usage.record(authorized.grant.token_id);
    }
    // Envoy's ext_authz cannot change an answer: an account whose answers must lose its policy
    // labels reads only through the filter. Refused, never passed on unfiltered.
    if authorized.allow.answer.is_some() {
        return Verdict::Deny(Deny::new(
            DenyReason::LabelsNotEnforceable,
            "this account hides its policy labels from answers, which only the Tollgate filter can do: ext_authz cannot change answers",
        ));
    }
    let body = BodyView {
        content_type: input.view.content_type,
        content_encoding: input.view.content_encoding,
        bytes: input.body,
        complete: input.body_complete,
    };
    if let Err(deny) = authorized.check_body(&body, write_limits) {
        return Verdict::Deny(deny);
    }
    Verdict::Allow(Box::new(Allowed {
        role: authorized.grant.role.clone(),
        allow: authorized.allow,
        rewrite: authorized.query,
    }))
}

fn header(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..HeaderValue::default()
        }),
        append_action: action as i32,
        ..HeaderValueOption::default()
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// Turns a verdict into Envoy's CheckResponse. `view` is the request it answers.
pub fn respond(verdict: Verdict, view: &RequestView<'_>) -> CheckResponse {
    match verdict {
        Verdict::Allow(allowed) => allow_response(*allowed, view),
        Verdict::Deny(deny) => deny_response(&deny),
    }
}

/// An OK response: headers to set and remove, the query rewrite, and access-log metadata.
fn allow_response(allowed: Allowed, view: &RequestView<'_>) -> CheckResponse {
    let Allowed {
        allow,
        mut rewrite,
        role,
    } = allowed;
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
    let mut headers: Vec<HeaderValueOption> = allow
        .set_headers
        .iter()
        .map(|(k, v)| header(k, v, overwrite))
        .collect();
    if rewrite.has_repeated_key() {
        // Envoy keeps one value per key in query_parameters_to_set (measured on 1.40):
        // replace the whole query string instead, so no value is silently dropped.
        let path = format!("{}?{}", view.path, rewrite.apply(view.query));
        headers.push(header(":path", &path, overwrite));
        rewrite = ParamRewrite::default();
    }
    let ok = OkHttpResponse {
        headers,
        headers_to_remove: allow.remove_headers.clone(),
        // Envoy inserts values raw: encode them, or a `&` would inject parameters.
        query_parameters_to_set: rewrite
            .set
            .iter()
            .map(|(key, value)| QueryParameter {
                key: key.clone(),
                value: form::encode(value),
            })
            .collect(),
        query_parameters_to_remove: rewrite.remove_raw.clone(),
        ..OkHttpResponse::default()
    };
    let mut fields = HashMap::new();
    for (name, value) in &allow.set_headers {
        match *name {
            headers::ACCOUNT => fields.insert("account".to_owned(), string_value(value)),
            headers::TENANT => fields.insert("tenant".to_owned(), string_value(value)),
            _ => None,
        };
    }
    fields.insert("role".to_owned(), string_value(&role));
    let mut outer = HashMap::new();
    outer.insert(
        METADATA_NAMESPACE.to_owned(),
        Value {
            kind: Some(Kind::StructValue(Struct { fields })),
        },
    );
    CheckResponse {
        status: Some(rpc::Status {
            code: tonic::Code::Ok as i32,
            ..rpc::Status::default()
        }),
        dynamic_metadata: Some(Struct { fields: outer }),
        http_response: Some(HttpResponse::OkResponse(ok)),
    }
}

/// A denied response: the status, headers and JSON body of the one denial table.
fn deny_response(deny: &Deny) -> CheckResponse {
    let response = deny.response();
    let headers = response
        .headers
        .iter()
        .map(|(name, value)| header(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: response.grpc_code as i32,
            message: deny.reason.as_str().to_owned(),
            ..rpc::Status::default()
        }),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(response.status),
            }),
            headers,
            body: response.body,
        })),
    }
}

pub struct AuthzService {
    snapshots: SnapshotHandle,
    routes: Arc<RouteTable>,
    write_limits: WriteLimits,
    metrics: Arc<CheckMetrics>,
    usage: UsageRecorder,
}

impl AuthzService {
    /// `snapshots`: a [`SnapshotHandle`], or the `Arc<Directory>` to take one from.
    pub fn new(
        snapshots: impl Into<SnapshotHandle>,
        routes: Arc<RouteTable>,
        metrics: Arc<CheckMetrics>,
        usage: UsageRecorder,
    ) -> AuthzService {
        AuthzService {
            snapshots: snapshots.into(),
            routes,
            write_limits: WriteLimits::default(),
            metrics,
            usage,
        }
    }

    /// Bounds on the write bodies Check reads (the defaults otherwise).
    pub fn with_write_limits(mut self, write_limits: WriteLimits) -> AuthzService {
        self.write_limits = write_limits;
        self
    }

    /// The whole Check: input mapping, decision, response; also counted and timed.
    pub fn check(&self, request: &CheckRequest) -> Result<CheckResponse, tonic::Status> {
        let started = Instant::now();
        if self.snapshots.is_stale() {
            self.metrics.record(Outcome::Error, started.elapsed());
            return Err(tonic::Status::unavailable(
                "the grant snapshot may be stale: the store is unavailable",
            ));
        }
        let Some(http) = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
        else {
            self.metrics.record(Outcome::Error, started.elapsed());
            return Err(tonic::Status::invalid_argument(
                "CheckRequest has no attributes.request.http",
            ));
        };
        let map_values = HeaderMapValues::of(http);
        let input = CheckInput::from_request(http, &map_values);
        let now = u64::try_from(now_secs()).unwrap_or(0);
        let verdict = evaluate(
            &self.snapshots,
            &self.routes,
            &self.write_limits,
            &input,
            now,
            Some(&self.usage),
        );
        let outcome = match &verdict {
            Verdict::Allow(..) => Outcome::Allowed,
            Verdict::Deny(deny) => {
                // No path: a client may put anything, a token included, in it.
                tracing::debug!(
                    reason = deny.reason.as_str(),
                    method = input.view.method,
                    "denied"
                );
                Outcome::Denied(deny.reason)
            }
        };
        let response = respond(verdict, &input.view);
        self.metrics.record(outcome, started.elapsed());
        Ok(response)
    }
}

#[tonic::async_trait]
impl envoy_types::ext_authz::v3::pb::Authorization for AuthzService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        AuthzService::check(self, request.get_ref()).map(tonic::Response::new)
    }
}
