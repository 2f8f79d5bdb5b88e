//! The ext_authz Check service: called directly and over real gRPC, with the same table; every
//! denial reason; PromQL rewriting; bodies; and no token in any response or log line.

use crate::harness::TestServer;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tollgate_server::authz::AuthzService;
use tollgate_server::directory::Directory;
use tollgate_server::metrics::CheckMetrics;
use tollgate_server::store::SqliteStore;
use tollgate_server::usage::UsageRecorder;

const NS: &str = r#"{kube_namespace="prometheus"}"#;

pub(crate) fn check_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> CheckRequest {
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if !body.is_empty() {
        map.insert("content-length".into(), body.len().to_string());
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    protocol: "HTTP/1.1".into(),
                    method: method.into(),
                    path: path.into(),
                    headers: map,
                    body: body.into(),
                    size: body.len() as i64,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// What a test looks at in a CheckResponse.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    reason: String,
    set: Vec<(String, String)>,
    removed: Vec<String>,
    params: Vec<(String, String)>,
    body: String,
    headers: Vec<(String, String)>,
}

fn seen(response: &CheckResponse) -> Seen {
    match response.http_response.as_ref().unwrap() {
        HttpResponse::OkResponse(ok) => {
            assert_eq!(response.status.as_ref().unwrap().code, 0);
            // Access-log metadata: `tollgate` {account, tenant, role}, as the headers say.
            let metadata = response.dynamic_metadata.as_ref().unwrap();
            let Some(Kind::StructValue(fields)) = metadata.fields["tollgate"].kind.as_ref() else {
                panic!("tollgate metadata is a struct: {metadata:?}")
            };
            let text = |name: &str| match fields.fields.get(name).and_then(|v| v.kind.as_ref()) {
                Some(Kind::StringValue(text)) => text.clone(),
                other => panic!("metadata {name}: {other:?}"),
            };
            let header = |name: &str| {
                ok.headers
                    .iter()
                    .filter_map(|h| h.header.as_ref())
                    .find(|h| h.key == name)
                    .map(|h| h.value.clone())
                    .unwrap()
            };
            assert_eq!(text("account"), header(tollgate_core::headers::ACCOUNT));
            assert_eq!(text("tenant"), header(tollgate_core::headers::TENANT));
            assert!(!text("role").is_empty());
            assert_eq!(fields.fields.len(), 3, "{fields:?}");
            Seen {
                status: 200,
                reason: "allowed".into(),
                set: ok
                    .headers
                    .iter()
                    .map(|h| {
                        assert_eq!(
                            h.append_action,
                            HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                            "{h:?}"
                        );
                        let hv = h.header.as_ref().unwrap();
                        (hv.key.clone(), hv.value.clone())
                    })
                    .collect(),
                removed: ok.headers_to_remove.clone(),
                params: ok
                    .query_parameters_to_set
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
                body: String::new(),
                headers: vec![],
            }
        }
        HttpResponse::DeniedResponse(denied) => {
            let body: Value = serde_json::from_str(&denied.body).unwrap();
            Seen {
                status: denied.status.as_ref().unwrap().code as u16,
                reason: body["reason"].as_str().unwrap().to_owned(),
                set: vec![],
                removed: vec![],
                params: vec![],
                body: denied.body.clone(),
                headers: denied
                    .headers
                    .iter()
                    .map(|h| {
                        let hv = h.header.as_ref().unwrap();
                        (hv.key.clone(), hv.value.clone())
                    })
                    .collect(),
            }
        }
        HttpResponse::ErrorResponse(_) => panic!("unexpected error response"),
    }
}

struct Fixture {
    server: TestServer,
    viewer: String,
    writer: String,
    editor: String,
    expired: String,
    or_policy: String,
    other_tenant: String,
}

async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    let (_, viewer) = server
        .account_with_token(json!({"name": "dash", "role": "viewer", "labelPolicy": NS}))
        .await;
    let (_, writer) = server
        .account_with_token(
            json!({"name": "collector", "role": "writer", "labelPolicy": "{team=\"a\"}"}),
        )
        .await;
    let (_, editor) = server
        .account_with_token(json!({"name": "ops", "role": "editor"}))
        .await;
    let (_, expired) = server
        .account_with_token(json!({"name": "brief", "role": "viewer", "ttlSeconds": 1}))
        .await;
    let (_, or_policy) = server.account_with_token(json!({"name": "two-teams", "role": "viewer", "labelPolicy": "{ns=\"a\"} or {team=\"b\"}"})).await;
    let (_, other_tenant) = server
        .account_with_token(json!({"tenant": "globex", "name": "g", "role": "viewer"}))
        .await;
    // Let the short-lived token expire.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    Fixture {
        server,
        viewer,
        writer,
        editor,
        expired,
        or_policy,
        other_tenant,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// (why, method, path, headers, body, status, reason)
type Case = (
    &'static str,
    &'static str,
    String,
    Vec<(&'static str, String)>,
    String,
    u16,
    &'static str,
);

fn table(f: &Fixture) -> Vec<Case> {
    let v = bearer(&f.viewer);
    let form = "application/x-www-form-urlencoded".to_owned();
    let within = format!(
        "query={}",
        tollgate_core::form::encode(r#"up{kube_namespace="prometheus"}"#)
    );
    vec![
        (
            "allowed query",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![("authorization", v.clone())],
            String::new(),
            200,
            "allowed",
        ),
        (
            "missing token",
            "GET",
            "/api/v1/query".into(),
            vec![],
            String::new(),
            401,
            "missing_token",
        ),
        (
            "malformed token",
            "GET",
            "/api/v1/query".into(),
            vec![("authorization", "Bearer tgsa_nope".into())],
            String::new(),
            401,
            "malformed_token",
        ),
        (
            "unknown token",
            "GET",
            "/api/v1/query".into(),
            vec![(
                "authorization",
                bearer(tollgate_core::Token::generate().unwrap().expose_secret()),
            )],
            String::new(),
            401,
            "unknown_token",
        ),
        (
            "expired token",
            "GET",
            "/api/v1/query".into(),
            vec![("authorization", bearer(&f.expired))],
            String::new(),
            401,
            "expired_token",
        ),
        (
            "dot segments",
            "GET",
            "/loki/../api/v1/query".into(),
            vec![("authorization", v.clone())],
            String::new(),
            400,
            "invalid_path",
        ),
        (
            "unknown route",
            "GET",
            "/api/v1/status/tsdb".into(),
            vec![("authorization", v.clone())],
            String::new(),
            403,
            "route_not_allowed",
        ),
        (
            "viewer cannot write",
            "POST",
            "/api/v1/write".into(),
            vec![("authorization", v.clone())],
            String::new(),
            403,
            "missing_scope",
        ),
        (
            "writer cannot read",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![("authorization", bearer(&f.writer))],
            String::new(),
            403,
            "missing_scope",
        ),
        (
            "other tenant header",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", v.clone()),
                ("x-scope-orgid", "globex".into()),
            ],
            String::new(),
            403,
            "tenant_mismatch",
        ),
        (
            "forwarded tenant header",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", v.clone()),
                ("x-forwarded-tenant-id", "globex".into()),
            ],
            String::new(),
            403,
            "tenant_mismatch",
        ),
        (
            "own tenant header",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", v.clone()),
                ("x-scope-orgid", "default".into()),
            ],
            String::new(),
            200,
            "allowed",
        ),
        (
            "bad labels header",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", v.clone()),
                ("x-tollgate-labels", "{".into()),
            ],
            String::new(),
            400,
            "invalid_labels",
        ),
        (
            "widening labels",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", v.clone()),
                ("x-tollgate-labels", "{kube_namespace=~\".+\"}".into()),
            ],
            String::new(),
            403,
            "label_policy_violation",
        ),
        (
            "narrowing labels",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", v.clone()),
                (
                    "x-tollgate-labels",
                    "{kube_namespace=\"prometheus\",job=\"x\"}".into(),
                ),
            ],
            String::new(),
            200,
            "allowed",
        ),
        (
            "loki path without LogQL enforcement, restricted",
            "GET",
            "/loki/api/v1/format_query?query=x".into(),
            vec![("authorization", v.clone())],
            String::new(),
            403,
            "labels_not_enforceable",
        ),
        (
            "loki read confined",
            "GET",
            format!(
                "/loki/api/v1/query_range?query={}",
                tollgate_core::form::encode(r#"sum(rate({app="x"} |= "{a=\"b\"}" [5m]))"#)
            ),
            vec![("authorization", v.clone())],
            String::new(),
            200,
            "allowed",
        ),
        (
            "loki query contradicting the policy",
            "GET",
            format!(
                "/loki/api/v1/query?query={}",
                tollgate_core::form::encode(r#"{kube_namespace="other"}"#)
            ),
            vec![("authorization", v.clone())],
            String::new(),
            403,
            "query_not_allowed",
        ),
        (
            "loki query unparsable",
            "GET",
            "/loki/api/v1/query_range?query=x".into(),
            vec![("authorization", v.clone())],
            String::new(),
            400,
            "invalid_query",
        ),
        (
            "loki post body within",
            "POST",
            "/loki/api/v1/query_range".into(),
            vec![("authorization", v.clone()), ("content-type", form.clone())],
            format!(
                "query={}",
                tollgate_core::form::encode(r#"{kube_namespace="prometheus"} |= "x""#)
            ),
            200,
            "allowed",
        ),
        (
            "loki post body outside",
            "POST",
            "/loki/api/v1/query_range".into(),
            vec![("authorization", v.clone()), ("content-type", form.clone())],
            format!(
                "query={}",
                tollgate_core::form::encode(r#"{app="x"} |= "{kube_namespace=\"prometheus\"}""#)
            ),
            403,
            "query_not_allowed",
        ),
        (
            "unparsable query",
            "GET",
            "/api/v1/query?query=sum(".into(),
            vec![("authorization", v.clone())],
            String::new(),
            400,
            "invalid_query",
        ),
        (
            "conflicting query",
            "GET",
            format!(
                "/api/v1/query?query={}",
                tollgate_core::form::encode(r#"up{kube_namespace="dd-trace-example"}"#)
            ),
            vec![("authorization", v.clone())],
            String::new(),
            403,
            "query_not_allowed",
        ),
        (
            "post body within",
            "POST",
            "/api/v1/query".into(),
            vec![("authorization", v.clone()), ("content-type", form.clone())],
            within.clone(),
            200,
            "allowed",
        ),
        (
            "post body outside",
            "POST",
            "/api/v1/query".into(),
            vec![("authorization", v.clone()), ("content-type", form.clone())],
            "query=up".into(),
            403,
            "query_not_allowed",
        ),
        (
            "post body not forwarded",
            "POST",
            "/api/v1/query".into(),
            vec![
                ("authorization", v.clone()),
                ("content-type", form.clone()),
                ("content-length", "20".into()),
            ],
            String::new(),
            403,
            "body_unavailable",
        ),
        (
            "partial body",
            "POST",
            "/api/v1/query".into(),
            vec![
                ("authorization", v.clone()),
                ("content-type", form.clone()),
                ("x-envoy-auth-partial-body", "true".into()),
            ],
            within,
            403,
            "body_unavailable",
        ),
        (
            "or policy differing in two labels",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![("authorization", bearer(&f.or_policy))],
            String::new(),
            403,
            "query_not_allowed",
        ),
        (
            "or policy narrowed to one branch",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", bearer(&f.or_policy)),
                ("x-tollgate-labels", "{ns=\"a\"}".into()),
            ],
            String::new(),
            200,
            "allowed",
        ),
        (
            "restricted writer writes something other than remote write 1.0: refused, a header is not enforcement",
            "POST",
            "/api/v1/write".into(),
            vec![("authorization", bearer(&f.writer))],
            String::new(),
            415,
            "unsupported_media_type",
        ),
        (
            "unrestricted editor",
            "GET",
            "/api/v1/series".into(),
            vec![("authorization", bearer(&f.editor))],
            String::new(),
            200,
            "allowed",
        ),
        (
            "other tenant's token in its tenant",
            "GET",
            "/api/v1/query?query=up".into(),
            vec![
                ("authorization", bearer(&f.other_tenant)),
                ("x-scope-orgid", "globex".into()),
            ],
            String::new(),
            200,
            "allowed",
        ),
    ]
}

async fn direct_service(server: &TestServer) -> AuthzService {
    let store = SqliteStore::open(&format!("sqlite://{}", server.store_path.display()))
        .await
        .unwrap();
    let directory = Arc::new(Directory::open(store).await.unwrap());
    let (usage, _task) =
        UsageRecorder::spawn(directory.clone(), std::time::Duration::from_secs(60));
    AuthzService::new(
        directory,
        Arc::new(tollgate_core::RouteTable::default()),
        Arc::new(CheckMetrics::default()),
        usage,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_table_directly_and_over_grpc() {
    let f = fixture().await;
    let direct = direct_service(&f.server).await;
    let mut client = AuthorizationClient::connect(format!("http://{}", f.server.grpc_addr))
        .await
        .unwrap();
    for (why, method, path, headers, body, status, reason) in table(&f) {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = check_request(method, &path, &headers, &body);
        let by_call = seen(&direct.check(&request).unwrap().decode().unwrap());
        let by_grpc = seen(&client.check(request).await.unwrap().into_inner());
        assert_eq!(
            (by_call.status, by_call.reason.as_str()),
            (status, reason),
            "{why}: {}",
            by_call.body
        );
        assert_eq!(by_call, by_grpc, "{why}: direct and gRPC agree");
        if status == 401 {
            assert!(
                by_call.headers.contains(&(
                    "www-authenticate".into(),
                    "Bearer error=\"invalid_token\"".into()
                )),
                "{why}"
            );
        }
        if reason == "invalid_query"
            || reason == "query_not_allowed"
            || reason == "body_unavailable"
        {
            let body: Value = serde_json::from_str(&by_call.body).unwrap();
            assert_eq!(body["status"], "error", "{why}: Prometheus error shape");
            assert!(body["errorType"].is_string());
        }
    }
    f.server.stop().await;
}

#[tokio::test]
async fn allow_sets_identity_rewrites_promql_and_strips_spoofing() {
    let f = fixture().await;
    let direct = direct_service(&f.server).await;
    let query = "sum by (job) (rate(http_requests_total[5m])) or up";
    let path = format!(
        "/api/v1/query_range?query={}&start=1&match%5B%5D=x",
        tollgate_core::form::encode(query)
    );
    let request = check_request(
        "GET",
        &path,
        &[
            ("authorization", &bearer(&f.viewer)),
            ("x-tollgate-account", "admin"),
            ("x-tollgate-debug", "1"),
        ],
        "",
    );
    let got = seen(&direct.check(&request).unwrap().decode().unwrap());
    assert_eq!(got.status, 200);
    let set: HashMap<&str, &str> = got
        .set
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(set["x-tollgate-account"], "dash");
    assert_eq!(set["x-tollgate-tenant"], "default");
    assert_eq!(set["x-scope-orgid"], "default");
    assert_eq!(set["x-tollgate-labels"], NS);
    assert_eq!(got.removed, ["authorization", "x-tollgate-debug"]);
    let [(key, value)] = got.params.as_slice() else {
        panic!("one parameter: {:?}", got.params)
    };
    assert_eq!(key, "query");
    assert!(
        !value.contains(['&', ' ', '"', '{']),
        "the value is percent-encoded for Envoy: {value}"
    );
    let decoded = tollgate_core::form::decode(value).unwrap();
    let want = r#"sum by (job) (rate(http_requests_total{kube_namespace="prometheus"}[5m])) or up{kube_namespace="prometheus"}"#;
    assert_eq!(
        promql_parser::parser::parse(&decoded).unwrap().to_string(),
        promql_parser::parser::parse(want).unwrap().to_string()
    );

    // encode_raw_headers: headers arrive in header_map with raw values.
    let mut raw = check_request("GET", "/api/v1/series", &[], "");
    let http = raw
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "authorization".into(),
            raw_value: bearer(&f.viewer).into_bytes(),
            ..HeaderValue::default()
        }],
    });
    let got = seen(&direct.check(&raw).unwrap().decode().unwrap());
    assert_eq!(got.status, 200, "token read from header_map");
    assert_eq!(
        got.params,
        [("match[]".to_owned(), tollgate_core::form::encode(NS))],
        "series without match[] gets the policy"
    );

    // A raw value that is not UTF-8 reads as Envoy puts it in `headers` and as the filter
    // reads it: each byte that breaks UTF-8 as `!`.
    let mut obs_text = raw.clone();
    if let Some(map) = obs_text
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .and_then(|h| h.header_map.as_mut())
    {
        map.headers.push(HeaderValue {
            key: "x-scope-orgid".into(),
            raw_value: b"d\xe9fault".to_vec(),
            ..HeaderValue::default()
        });
    }
    let got = seen(&direct.check(&obs_text).unwrap().decode().unwrap());
    assert_eq!((got.status, got.reason.as_str()), (403, "tenant_mismatch"));
    assert!(got.body.contains("d!fault"), "{}", got.body);

    // Two credentials are ambiguous.
    let mut twice = raw.clone();
    let http = twice
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.headers
        .insert("authorization".into(), bearer(&f.editor));
    assert_eq!(
        seen(&direct.check(&twice).unwrap().decode().unwrap()).reason,
        "malformed_token"
    );

    // A CheckRequest without HTTP attributes is an invalid argument, not a decision.
    let empty = CheckRequest::default();
    assert_eq!(
        direct.check(&empty).unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    f.server.stop().await;
}

#[tokio::test]
async fn loki_reads_are_rewritten_and_carry_the_label_policy() {
    let f = fixture().await;
    let (_, two_namespaces) = f
        .server
        .account_with_token(
            json!({"name": "two-ns", "role": "viewer", "labelPolicy": "{ns=\"a\"} or {ns=\"b\"}"}),
        )
        .await;
    let direct = direct_service(&f.server).await;
    let query = r#"count_over_time({app="x"} | label_format ns=app [5m]) or vector(0)"#;
    let path = format!(
        "/loki/api/v1/query_range?query={}&limit=5",
        tollgate_core::form::encode(query)
    );
    let request = check_request(
        "GET",
        &path,
        &[
            ("authorization", &bearer(&two_namespaces)),
            ("x-prom-label-policy", "default:%7B%7D"),
            ("x_prom_label_policy", "default:%7B%7D"),
        ],
        "",
    );
    let response = direct.check(&request).unwrap().decode().unwrap();
    let got = seen(&response);
    assert_eq!(got.status, 200, "{}", got.body);
    let policies: Vec<&str> = got
        .set
        .iter()
        .filter(|(k, _)| k == "x-prom-label-policy")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        policies,
        ["default:%7Bns%3D%22a%22%7D,default:%7Bns%3D%22b%22%7D"],
        "one element per selector of the OR, in one field line that replaces the client's"
    );
    assert!(got.removed.contains(&"x_prom_label_policy".to_owned()));
    assert!(!got.removed.contains(&"x-prom-label-policy".to_owned()));
    let [(key, value)] = got.params.as_slice() else {
        panic!("one parameter: {:?}", got.params)
    };
    assert_eq!(key, "query");
    assert_eq!(
        tollgate_core::form::decode(value).unwrap(),
        r#"count_over_time({app="x", ns=~"a|b"} | label_format ns=app [5m]) or vector(0)"#,
        "the OR in one label becomes a regex union in the selector; the rest as sent"
    );

    // Series: match[] added when absent; the unrestricted editor sends no policy header.
    let request = check_request(
        "GET",
        "/loki/api/v1/series",
        &[("authorization", &bearer(&f.viewer))],
        "",
    );
    let got = seen(&direct.check(&request).unwrap().decode().unwrap());
    assert_eq!(
        got.params,
        [("match[]".to_owned(), tollgate_core::form::encode(NS))]
    );
    let request = check_request(
        "GET",
        "/loki/api/v1/query?query=%7Ba%3D%22b%22%7D",
        &[
            ("authorization", &bearer(&f.editor)),
            ("x-prom-label-policy", "default:%7B%7D"),
        ],
        "",
    );
    let got = seen(&direct.check(&request).unwrap().decode().unwrap());
    assert!(got.params.is_empty(), "unrestricted: as sent");
    assert!(got.set.iter().all(|(k, _)| k != "x-prom-label-policy"));
    assert!(got.removed.contains(&"x-prom-label-policy".to_owned()));
    f.server.stop().await;
}

/// The Check service is served by hand (`grpc::wire`), not by tonic's generated server: what a
/// client of the generated one would see must hold. Another method of the service and an
/// oversized request are refused with the generated server's codes.
#[tokio::test]
async fn the_check_service_refuses_what_the_generated_server_refused() {
    use tonic::codegen::http::uri::PathAndQuery;
    let server = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let call = |path: &'static str, request: CheckRequest| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        async move {
            grpc.ready().await.unwrap();
            grpc.unary(
                tonic::Request::new(request),
                PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::<CheckRequest, CheckResponse>::default(),
            )
            .await
        }
    };
    let request = check_request("GET", "/api/v1/query?query=up", &[], "");
    let other = call(
        "/envoy.service.auth.v3.Authorization/Other",
        request.clone(),
    )
    .await;
    assert_eq!(other.unwrap_err().code(), tonic::Code::Unimplemented);
    let answered = call("/envoy.service.auth.v3.Authorization/Check", request).await;
    let denied = answered.unwrap().into_inner();
    assert_eq!(seen(&denied).reason, "missing_token");

    // A body at the write limit (4 MiB by default) is read and answered; past the limit and
    // the headers' room (1 MiB), the request is refused before it is decoded.
    let mut client = AuthorizationClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let at_limit = check_request("POST", "/api/v1/query", &[], &"x".repeat(4 << 20));
    let answered = client.check(at_limit).await.unwrap().into_inner();
    assert_eq!(seen(&answered).reason, "missing_token");
    let big = check_request("POST", "/api/v1/query", &[], &"x".repeat(6 << 20));
    let oversized = client.check(big).await.unwrap_err();
    assert_eq!(oversized.code(), tonic::Code::OutOfRange, "{oversized:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_last_used() {
    let f = fixture().await;
    let mut client = AuthorizationClient::connect(format!("http://{}", f.server.grpc_addr))
        .await
        .unwrap();
    for _ in 0..3 {
        let request = check_request(
            "GET",
            "/api/v1/query?query=up",
            &[("authorization", &bearer(&f.viewer))],
            "",
        );
        client.check(request).await.unwrap();
    }
    client
        .check(check_request("GET", "/api/v1/query", &[], ""))
        .await
        .unwrap();
    let metrics = f
        .server
        .call(None, Method::GET, "/metrics", None)
        .await
        .text;
    assert!(
        metrics.contains(r#"tollgate_checks_total{decision="allow",reason="allowed"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"tollgate_checks_total{decision="deny",reason="missing_token"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_check_duration_seconds_count 4"),
        "{metrics}"
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", f.server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Last-used is written in batches, off the Check path: it shows up after a flush.
    let store_url = format!("sqlite://{}", f.server.store_path.display());
    let dir = f.server.store_path.parent().unwrap().to_owned();
    f.server.stop_keep_dir().await;
    let store = SqliteStore::open(&store_url).await.unwrap();
    use tollgate_server::store::Store;
    let account = store.find_account("default", "dash").await.unwrap();
    let tokens = store
        .list_tokens(tollgate_server::model::TokenQuery::all(account.id))
        .await
        .unwrap()
        .items;
    assert!(tokens[0].last_used_at.is_some(), "flushed at shutdown");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_store_failure_fails_closed_and_heals() {
    let f = fixture().await;
    let store = SqliteStore::open(&format!("sqlite://{}", f.server.store_path.display()))
        .await
        .unwrap();
    let directory = Arc::new(Directory::open(store).await.unwrap());
    let (usage, _task) =
        UsageRecorder::spawn(directory.clone(), std::time::Duration::from_secs(60));
    let service = AuthzService::new(
        directory.clone(),
        Arc::new(tollgate_core::RouteTable::default()),
        Arc::new(CheckMetrics::default()),
        usage,
    );
    let request = check_request(
        "GET",
        "/api/v1/query?query=up",
        &[("authorization", &bearer(&f.viewer))],
        "",
    );
    assert_eq!(
        seen(&service.check(&request).unwrap().decode().unwrap()).status,
        200
    );

    // Break the change feed underneath the server: the snapshot can no longer be trusted.
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", f.server.store_path.display()))
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE changes RENAME TO changes_away")
        .execute(&raw)
        .await
        .unwrap();
    assert!(directory.refresh().await.is_err());
    let err = service.check(&request).unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::Unavailable,
        "never turned into an allow"
    );

    sqlx::raw_sql("ALTER TABLE changes_away RENAME TO changes")
        .execute(&raw)
        .await
        .unwrap();
    directory.refresh().await.unwrap();
    assert_eq!(
        seen(&service.check(&request).unwrap().decode().unwrap()).status,
        200,
        "heals on the next refresh"
    );
    f.server.stop().await;
}

/// Runs the real binary at debug level through a scenario and searches all of its output (and
/// every response) for every token it issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_in_any_log_line_or_response() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bootstrap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .arg(format!(
            "--store=sqlite://{}",
            dir.path().join("t.db").display()
        ))
        .env("TOLLGATE_BOOTSTRAP_TOKEN_FILE", &token_file)
        .env("TOLLGATE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let (mut http, mut grpc) = (None, None);
    while http.is_none() || grpc.is_none() {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("server started");
        let addr = line
            .split("addr=")
            .nth(1)
            .map(|a| a.split_whitespace().next().unwrap_or("").to_owned());
        if line.contains("admin API listening") {
            http = addr.clone();
        }
        if line.contains("gRPC") && line.contains("listening") {
            grpc = addr;
        }
        log.push(line);
    }
    let http = format!("http://{}", http.unwrap());
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let client = reqwest::Client::new();
    let mut responses = String::new();
    let created: Value = client
        .post(format!("{http}/api/v1/serviceaccounts"))
        .bearer_auth(&admin)
        .json(&json!({"name": "leaky", "role": "viewer", "labelPolicy": NS, "withToken": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"]["token"].as_str().unwrap().to_owned();
    let mut grpc_client = AuthorizationClient::connect(format!("http://{}", grpc.unwrap()))
        .await
        .unwrap();
    let in_path = format!("/api/v1/query?query=up&token={token}");
    let requests = [
        check_request(
            "GET",
            "/api/v1/query?query=up",
            &[("authorization", &bearer(&token))],
            "",
        ),
        check_request("GET", &in_path, &[("authorization", &bearer(&token))], ""),
        check_request(
            "GET",
            &format!("/nope/{token}"),
            &[("authorization", &bearer(&token))],
            "",
        ),
        check_request(
            "GET",
            "/api/v1/query",
            &[("authorization", &format!("Bearer {token}x"))],
            "",
        ),
        check_request(
            "GET",
            "/api/v1/query",
            &[
                ("authorization", &bearer(&token)),
                ("x-scope-orgid", &token),
            ],
            "",
        ),
        check_request(
            "GET",
            "/api/v1/query",
            &[
                ("authorization", &bearer(&token)),
                ("x-tollgate-labels", &format!("{{a=\"{token}\"}}")),
            ],
            "",
        ),
    ];
    for request in requests {
        let response = grpc_client.check(request).await.unwrap().into_inner();
        responses.push_str(&format!("{response:?}"));
    }
    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/serviceaccounts?search={token}"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/serviceaccounts".to_owned(),
            Some(json!({"name": token, "role": "viewer"})),
        ),
        (
            Method::POST,
            "/api/v1/access-review".to_owned(),
            Some(json!({"token": token, "method": "GET", "path": format!("/x/{token}")})),
        ),
        (Method::GET, "/api/v1/audit".to_owned(), None),
        (Method::GET, "/metrics".to_owned(), None),
    ] {
        let mut request = client
            .request(method, format!("{http}{path}"))
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        responses.push_str(&request.send().await.unwrap().text().await.unwrap());
    }
    // A bad credential that carries a real token must not be logged either.
    let _ = client
        .get(format!("{http}/api/v1/audit"))
        .bearer_auth(format!("{token} junk"))
        .send()
        .await
        .unwrap();

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
    reader.join().unwrap();
    log.extend(rx.try_iter());
    let log = log.join("\n");
    assert!(log.contains("DEBUG"), "the scenario ran at debug level");
    for secret in [&token, &admin] {
        let secret_part = &secret[5..37];
        assert!(
            !log.contains(secret_part),
            "a token leaked into the log:\n{log}"
        );
        assert!(
            !responses.contains(secret_part),
            "a token leaked into a response: {responses}"
        );
    }
}
