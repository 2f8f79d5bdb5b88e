//! `envoy.service.auth.v3.Authorization/Check`: Envoy's ext_authz (and Istio's CUSTOM provider)
//! asks here. Decides with the core crate against the in-memory snapshot only: no lock, no disk.
//!
//! Wire types are turned into a [`CheckInput`] in one place ([`CheckInput::from_request`]) and a
//! decision into a response in one place ([`respond`]).

use super::wire::{CheckAnswer, ProtoWriter};
use crate::directory::{LiveSnapshot, SnapshotHandle};
use crate::metrics::{CheckMetrics, Outcome};
use crate::model::now_secs;
use crate::usage::UsageRecorder;
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue,
    HeaderValueOption, HttpResponse, HttpStatus,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use std::borrow::Cow;
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
        // Envoy adds x-envoy-auth-partial-body (dropping any copy a client sent) whenever it
        // buffered a body for the check, `true` for a part of one.
        let mut marked = false;
        let mut partial = false;
        let mut declared_length: Option<&str> = None;
        let mut chunked = false;
        for (name, value) in entries {
            view.observe_header(name, value);
            if name.eq_ignore_ascii_case("x-envoy-auth-partial-body") {
                marked = true;
                partial |= value.eq_ignore_ascii_case("true");
            } else if name.eq_ignore_ascii_case("content-length") {
                declared_length = Some(value);
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
        // A body exists but was not forwarded (no with_request_body), or only in part. HTTP/1.1
        // says so in its framing headers. HTTP/2 and 3 may send a body with neither: an empty
        // one without Envoy's marker may then be a body left out, and counts as missing (a
        // restricted account's POST with no body and no content-length is refused, never
        // passed on unread). A length that does not parse is missing too.
        let may_carry_body = matches!(http.method.as_str(), "POST" | "PUT" | "PATCH");
        let framed_by_headers = matches!(http.protocol.as_str(), "HTTP/1.0" | "HTTP/1.1");
        let missing = match declared_length.map(|len| len.trim().parse::<u64>()) {
            Some(Ok(len)) => len != body_len,
            Some(Err(_)) => true,
            None if chunked => body.is_empty(),
            None => body.is_empty() && !marked && may_carry_body && !framed_by_headers,
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

/// Turns a verdict into Envoy's CheckResponse, encoded. `view` is the request it answers.
pub fn respond(verdict: Verdict, view: &RequestView<'_>) -> CheckAnswer {
    match verdict {
        Verdict::Allow(allowed) => allow_answer(*allowed, view),
        Verdict::Deny(deny) => CheckAnswer::encode(&deny_response(&deny)),
    }
}

/// Field numbers of the messages an allowed answer is made of
/// (`envoy/service/auth/v3/external_auth.proto` and what it imports).
mod field {
    /// `CheckResponse`.
    pub const STATUS: u32 = 1;
    pub const OK_RESPONSE: u32 = 3;
    pub const DYNAMIC_METADATA: u32 = 4;
    /// `OkHttpResponse`.
    pub const HEADERS: u32 = 2;
    pub const HEADERS_TO_REMOVE: u32 = 5;
    pub const QUERY_PARAMETERS_TO_SET: u32 = 7;
    pub const QUERY_PARAMETERS_TO_REMOVE: u32 = 8;
    /// `HeaderValueOption`, `HeaderValue` and `QueryParameter`.
    pub const OPTION_HEADER: u32 = 1;
    pub const OPTION_APPEND_ACTION: u32 = 3;
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
    /// `google.protobuf.Struct` (a map: entries of `KEY` and `VALUE`) and `Value`.
    pub const STRUCT_FIELDS: u32 = 1;
    pub const STRING_VALUE: u32 = 3;
    pub const STRUCT_VALUE: u32 = 5;
}

/// An OK answer: headers to set and remove, the query rewrite, and access-log metadata
/// (`tollgate`: `account`, `tenant`, `role`), written field by field (see [`wire`](super::wire)).
fn allow_answer(allowed: Allowed, view: &RequestView<'_>) -> CheckAnswer {
    let Allowed {
        allow,
        mut rewrite,
        role,
    } = allowed;
    let mut path = None;
    if rewrite.has_repeated_key() {
        // Envoy keeps one value per key in query_parameters_to_set (measured on 1.40):
        // replace the whole query string instead, so no value is silently dropped.
        path = Some(format!("{}?{}", view.path, rewrite.apply(view.query)));
        rewrite = ParamRewrite::default();
    }
    // Room for a typical answer (a few hundred bytes) without growing.
    let mut answer = ProtoWriter::with_capacity(512);
    // Status OK: every field of it at its default.
    answer.message(field::STATUS, |_| {});
    answer.message(field::OK_RESPONSE, |ok| {
        let path = path.as_deref().map(|path| (":path", path));
        let set = allow.set_headers.iter().map(|(k, v)| (*k, v.as_str()));
        for (key, value) in set.chain(path) {
            ok.message(field::HEADERS, |option| {
                option.message(field::OPTION_HEADER, |header| {
                    header.string(field::KEY, key);
                    header.string(field::VALUE, value);
                });
                option.int32(
                    field::OPTION_APPEND_ACTION,
                    HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                );
            });
        }
        for name in &allow.remove_headers {
            ok.string(field::HEADERS_TO_REMOVE, name);
        }
        for (key, value) in &rewrite.set {
            ok.message(field::QUERY_PARAMETERS_TO_SET, |parameter| {
                parameter.string(field::KEY, key);
                // Envoy inserts values raw: encode them, or a `&` would inject parameters.
                parameter.string(field::VALUE, &form::encode(value));
            });
        }
        for key in &rewrite.remove_raw {
            ok.string(field::QUERY_PARAMETERS_TO_REMOVE, key);
        }
    });
    answer.message(field::DYNAMIC_METADATA, |metadata| {
        struct_field(metadata, METADATA_NAMESPACE, |value| {
            value.message(field::STRUCT_VALUE, |fields| {
                for (name, value) in &allow.set_headers {
                    let key = match *name {
                        headers::ACCOUNT => "account",
                        headers::TENANT => "tenant",
                        _ => continue,
                    };
                    struct_field(fields, key, |v| v.string(field::STRING_VALUE, value));
                }
                struct_field(fields, "role", |v| v.string(field::STRING_VALUE, &role));
            });
        });
    });
    CheckAnswer::from_written(answer)
}

/// One entry of a `google.protobuf.Struct`: `key` and the `Value` that `value` writes.
fn struct_field(fields: &mut ProtoWriter, key: &str, value: impl FnOnce(&mut ProtoWriter)) {
    fields.message(field::STRUCT_FIELDS, |entry| {
        entry.string(field::KEY, key);
        entry.message(field::VALUE, value);
    });
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

    pub fn write_limits(&self) -> &WriteLimits {
        &self.write_limits
    }

    /// The whole Check: input mapping, decision, response; also counted and timed.
    pub fn check(&self, request: &CheckRequest) -> Result<CheckAnswer, tonic::Status> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use envoy_types::ext_authz::v3::pb::{OkHttpResponse, QueryParameter};
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
    use tollgate_core::route::LabelEnforcement;
    use tollgate_core::{Policy, Scope};

    fn allowed(set_headers: Vec<(&'static str, String)>, rewrite: ParamRewrite) -> Verdict {
        Verdict::Allow(Box::new(Allowed {
            allow: Allow {
                scope: Scope::MetricsRead,
                set_headers,
                remove_headers: vec!["authorization".into(), "x-tollgate-labels".into()],
                effective_policy: Policy::unrestricted(),
                labels: LabelEnforcement::PromqlQuery,
                answer: None,
            },
            rewrite,
            role: "viewer".into(),
        }))
    }

    fn text(value: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(value.to_owned())),
        }
    }

    /// The answer as prost builds it: what the hand-written bytes must decode to.
    fn expected(
        headers: &[(&str, &str)],
        parameters: &[(&str, &str)],
        remove_raw: &[&str],
    ) -> CheckResponse {
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd;
        let fields = [
            ("account", text("ci")),
            ("tenant", text("acme")),
            ("role", text("viewer")),
        ];
        let fields = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let namespace = Value {
            kind: Some(Kind::StructValue(Struct { fields })),
        };
        CheckResponse {
            status: Some(rpc::Status::default()),
            dynamic_metadata: Some(Struct {
                fields: [("tollgate".to_owned(), namespace)].into_iter().collect(),
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: headers
                    .iter()
                    .map(|(k, v)| header(k, v, overwrite))
                    .collect(),
                headers_to_remove: vec!["authorization".into(), "x-tollgate-labels".into()],
                query_parameters_to_set: parameters
                    .iter()
                    .map(|(key, value)| QueryParameter {
                        key: (*key).to_owned(),
                        value: (*value).to_owned(),
                    })
                    .collect(),
                query_parameters_to_remove: remove_raw.iter().map(|k| (*k).to_owned()).collect(),
                ..OkHttpResponse::default()
            })),
        }
    }

    /// Whether a request's body counts as complete: (protocol, method, headers, body).
    fn body_complete(protocol: &str, method: &str, headers: &[(&str, &str)], body: &str) -> bool {
        let http = HttpRequest {
            protocol: protocol.into(),
            method: method.into(),
            path: "/api/v1/query".into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
            ..HttpRequest::default()
        };
        let values = HeaderMapValues::of(&http);
        CheckInput::from_request(&http, &values).body_complete
    }

    #[test]
    fn a_body_left_out_of_the_check_is_missing_whatever_the_protocol() {
        let length = [("content-length", "20")];
        let marker = [("x-envoy-auth-partial-body", "false")];
        let partial = [("x-envoy-auth-partial-body", "true")];
        for (protocol, method, headers, body, complete) in [
            // HTTP/1.1: the framing headers say whether a body exists.
            ("HTTP/1.1", "POST", &[][..], "", true),
            ("HTTP/1.1", "POST", &length[..], "", false),
            (
                "HTTP/1.1",
                "POST",
                &[("transfer-encoding", "chunked")][..],
                "",
                false,
            ),
            (
                "HTTP/1.1",
                "POST",
                &[("content-length", "20, 20")][..],
                "",
                false,
            ),
            ("HTTP/1.1", "POST", &partial[..], "query=up", false),
            // HTTP/2 and 3: a body may come without content-length; without Envoy's marker an
            // empty one may have been left out.
            ("HTTP/2", "POST", &[][..], "", false),
            ("HTTP/3", "PUT", &[][..], "", false),
            ("HTTP/2", "POST", &marker[..], "query=up", true),
            ("HTTP/2", "POST", &[][..], "query=up", true),
            ("HTTP/2", "POST", &length[..], "", false),
            ("HTTP/2", "POST", &[("content-length", "0")][..], "", true),
            ("HTTP/2", "GET", &[][..], "", true),
            ("", "POST", &[][..], "", false),
        ] {
            assert_eq!(
                body_complete(protocol, method, headers, body),
                complete,
                "{protocol} {method} {headers:?} {body:?}"
            );
        }
    }

    #[test]
    fn an_allowed_answer_decodes_as_prost_builds_it() {
        // Lengths across one-byte and two-byte message lengths (127, 128) and a long value.
        for length in [0, 1, 90, 127, 128, 300, 20_000] {
            let long = "x".repeat(length);
            let set = vec![
                (headers::ACCOUNT, "ci".to_owned()),
                (headers::TENANT, "acme".to_owned()),
                (headers::LABELS, long.clone()),
            ];
            let rewrite = ParamRewrite {
                set: vec![("query".into(), format!("up{{a=\"{long}\"}}&x"))],
                remove_raw: vec!["quer%79".into()],
            };
            let view = RequestView::new("GET", "/api/v1/query?query=up");
            let answer = respond(allowed(set, rewrite), &view);
            let encoded = form::encode(&format!("up{{a=\"{long}\"}}&x"));
            let want = expected(
                &[
                    (headers::ACCOUNT, "ci"),
                    (headers::TENANT, "acme"),
                    (headers::LABELS, &long),
                ],
                &[("query", &encoded)],
                &["quer%79"],
            );
            assert_eq!(answer.decode().unwrap(), want, "length {length}");
        }
    }

    #[test]
    fn a_repeated_key_replaces_the_path() {
        let set = vec![
            (headers::ACCOUNT, "ci".to_owned()),
            (headers::TENANT, "acme".to_owned()),
        ];
        let rewrite = ParamRewrite {
            set: vec![
                ("match[]".into(), "up{a=\"1\"}".into()),
                ("match[]".into(), "down{a=\"1\"}".into()),
            ],
            remove_raw: vec![],
        };
        let view = RequestView::new("GET", "/api/v1/series?match[]=up&match[]=down&limit=5");
        let answer = respond(allowed(set, rewrite.clone()), &view);
        let path = format!("/api/v1/series?{}", rewrite.apply(view.query));
        let want = expected(
            &[
                (headers::ACCOUNT, "ci"),
                (headers::TENANT, "acme"),
                (":path", &path),
            ],
            &[],
            &[],
        );
        assert_eq!(answer.decode().unwrap(), want);
    }
}
