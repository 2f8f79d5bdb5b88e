//! Envoy with the Tollgate proxy-wasm filter (`envoy/filter.yaml`, V8) in front of an echo
//! upstream, the real server behind it: local decisions, rewrites, revocation, failure modes,
//! and parity with ext_authz mode.

use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use tollgate_core::form;
use tollgate_e2e::{EchoUpstream, Envoy, Mode, Through, Tollgate, bootstrap, send};

const NS: &str = r#"{kube_namespace="prometheus"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;

struct Stack {
    tollgate: Option<Tollgate>,
    _echo: EchoUpstream,
    envoy: Envoy,
    http: reqwest::Client,
}

impl Stack {
    async fn start(mode: Mode) -> Stack {
        let tollgate = Tollgate::start().await.unwrap();
        let echo = EchoUpstream::start().await.unwrap();
        let envoy =
            Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), echo.addr.port()).unwrap())
                .await
                .unwrap();
        Stack {
            tollgate: Some(tollgate),
            _echo: echo,
            envoy,
            http: reqwest::Client::new(),
        }
    }

    fn tollgate(&self) -> &Tollgate {
        self.tollgate.as_ref().unwrap()
    }

    async fn get(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Through {
        let mut request = self
            .http
            .get(format!("{}{path}", self.envoy.url()))
            .bearer_auth(token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        send(request).await
    }
}

fn canonical(query: &str) -> String {
    tollgate_core::promql::canonical(query).unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn param(query: &str, key: &str) -> Vec<String> {
    form::parse(query)
        .unwrap()
        .into_iter()
        .filter(|p| p.key == key)
        .map(|p| p.value)
        .collect()
}

#[tokio::test]
async fn the_bootstrap_validates_and_a_bad_configuration_is_refused() {
    Envoy::validate(&bootstrap(&Mode::Filter(FAST.into()), 9191, 9090).unwrap()).unwrap();
    let bad = bootstrap(
        &Mode::Filter(r#"{"cluster":"tollgate","colour":"red"}"#.into()),
        9191,
        9090,
    )
    .unwrap();
    let refused = Envoy::start(&bad).await;
    assert!(
        refused.is_err(),
        "Envoy must refuse a configuration the filter rejects"
    );
}

#[tokio::test]
async fn decisions_headers_and_rewrites_through_the_filter() {
    let s = Stack::start(Mode::Filter(FAST.into())).await;
    let (_, _, viewer) = s
        .tollgate()
        .account_with_token(json!({"name": "dash", "role": "viewer", "labelPolicy": NS}))
        .await;
    let (_, _, writer) = s
        .tollgate()
        .account_with_token(json!({"name": "collector", "role": "writer"}))
        .await;

    // Allowed, rewritten, identity set, credentials and spoofed headers gone.
    let query = "sum by (job) (rate(http_requests_total[5m]))";
    let reply = s
        .get(
            &format!("/api/v1/query?query={}&time=1", form::encode(query)),
            &viewer,
            &[("x-tollgate-account", "root"), ("x-tollgate-debug", "1")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let headers = &reply.json["headers"];
    assert_eq!(headers["x-tollgate-account"], json!(["dash"]));
    assert_eq!(headers["x-scope-orgid"], json!(["default"]));
    assert_eq!(headers["x-tollgate-labels"], json!([NS]));
    assert!(headers.get("authorization").is_none() && headers.get("x-tollgate-debug").is_none());
    let upstream = reply.json["query"].as_str().unwrap();
    assert_eq!(
        canonical(&param(upstream, "query")[0]),
        canonical(r#"sum by (job) (rate(http_requests_total{kube_namespace="prometheus"}[5m]))"#)
    );
    assert_eq!(param(upstream, "time"), ["1"]);

    // Several match[] all confined.
    let reply = s
        .get("/api/v1/series?match%5B%5D=up&match[]=down", &viewer, &[])
        .await;
    let values = param(reply.json["query"].as_str().unwrap(), "match[]");
    assert_eq!(values.len(), 2, "{}", reply.text);
    assert!(values.iter().all(|v| v.contains("kube_namespace")));

    // Narrowing accepted, widening denied.
    let narrow = s
        .get(
            "/api/v1/query?query=up",
            &viewer,
            &[(
                "x-tollgate-labels",
                r#"{kube_namespace="prometheus", job="x"}"#,
            )],
        )
        .await;
    assert_eq!(narrow.status, 200);
    assert_eq!(
        canonical(&param(narrow.json["query"].as_str().unwrap(), "query")[0]),
        canonical(r#"up{job="x", kube_namespace="prometheus"}"#)
    );
    let wide = s
        .get(
            "/api/v1/query?query=up",
            &viewer,
            &[("x-tollgate-labels", r#"{kube_namespace=~".+"}"#)],
        )
        .await;
    assert_eq!(
        (wide.status, wide.json["reason"].as_str()),
        (403, Some("label_policy_violation"))
    );

    // POST body rewritten, content-length right (the echo read exactly the new body).
    let body = format!("query={}&time=1", form::encode("rate(x[5m])"));
    let post = send(
        s.http
            .post(format!("{}/api/v1/query", s.envoy.url()))
            .bearer_auth(&viewer)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await;
    assert_eq!(post.status, 200, "{}", post.text);
    let sent = post.json["body"].as_str().unwrap();
    assert_eq!(
        canonical(&param(sent, "query")[0]),
        canonical(r#"rate(x{kube_namespace="prometheus"}[5m])"#)
    );
    assert_eq!(
        post.json["headers"]["content-length"],
        json!([sent.len().to_string()])
    );

    // Denials.
    let cases = [
        (s.get("/api/v1/query", "", &[]).await, 401, "missing_token"),
        (
            s.get("/api/v1/query", "tgsa_nope", &[]).await,
            401,
            "malformed_token",
        ),
        (
            s.get(
                "/api/v1/query",
                tollgate_core::Token::generate().unwrap().expose_secret(),
                &[],
            )
            .await,
            401,
            "unknown_token",
        ),
        (
            s.get("/api/v1/query?query=up", &writer, &[]).await,
            403,
            "missing_scope",
        ),
        (
            s.get("/api/v1/status/tsdb", &viewer, &[]).await,
            403,
            "route_not_allowed",
        ),
        (
            s.get(
                "/api/v1/query?query=up",
                &viewer,
                &[("x-scope-orgid", "globex")],
            )
            .await,
            403,
            "tenant_mismatch",
        ),
        (
            s.get(
                &format!(
                    "/api/v1/query?query={}",
                    form::encode(r#"up{kube_namespace="other"}"#)
                ),
                &viewer,
                &[],
            )
            .await,
            403,
            "query_not_allowed",
        ),
        (
            s.get("/api/v1/query?query=sum(", &viewer, &[]).await,
            400,
            "invalid_query",
        ),
        (
            s.get("/loki/api/v1/format_query?query=x", &viewer, &[])
                .await,
            403,
            "labels_not_enforceable",
        ),
    ];
    for (reply, status, reason) in cases {
        assert_eq!(
            (reply.status, reply.json["reason"].as_str()),
            (status, Some(reason)),
            "{}",
            reply.text
        );
        if status == 401 {
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer error=\"invalid_token\""
            );
        }
    }
    s.tollgate.unwrap().stop().await;
}

/// Revoke through the admin API, then time the first 401 through Envoy. The poll runs every
/// 10 s here, so a 401 within a second can only come from the pushed change.
#[tokio::test]
async fn revocation_is_pushed_to_envoy() {
    let s = Stack::start(Mode::Filter(
        r#"{"cluster":"tollgate","feed":{"intervalMs":10000}}"#.into(),
    ))
    .await;
    let mut samples = Vec::new();
    for i in 0..5 {
        let (id, token_id, token) = s
            .tollgate()
            .account_with_token(json!({"name": format!("r{i}"), "role": "viewer"}))
            .await;
        assert_eq!(
            s.get("/api/v1/query?query=up", &token, &[]).await.status,
            200,
            "cached"
        );
        s.tollgate()
            .admin(
                Method::DELETE,
                &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
                None,
            )
            .await;
        let answered = Instant::now();
        loop {
            let status = s.get("/api/v1/query?query=up", &token, &[]).await.status;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                answered.elapsed() < Duration::from_secs(2),
                "revocation not pushed within 2 s (the poll is every 10 s):\n{}",
                s.envoy.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(answered.elapsed());
    }
    println!("revocation, admin API answer to first 401 through Envoy (pushed): {samples:?}");
    assert!(watch_streams(s.tollgate()).await >= 1);
    s.tollgate.unwrap().stop().await;
}

/// Watch streams open at the server (one per filter VM: each Envoy worker, and the main thread).
async fn watch_streams(tollgate: &Tollgate) -> u64 {
    tollgate
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_grants_watch_streams "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Forged, well-formed tokens (the checksum is public) are refused inside Envoy by the
/// membership filter: no Resolve reaches the server, and a live token still passes. A token
/// created afterwards passes at once (its addition is pushed before the admin API answers).
#[tokio::test]
async fn forged_tokens_are_refused_without_asking_the_server() {
    let s = Stack::start(Mode::Filter(FAST.into())).await;
    let (_, _, live) = s
        .tollgate()
        .account_with_token(json!({"name": "live", "role": "viewer"}))
        .await;
    assert_eq!(
        s.get("/api/v1/query?query=up", &live, &[]).await.status,
        200
    );
    // Wait for the stream's first message (it carries the membership filter).
    let deadline = Instant::now() + Duration::from_secs(5);
    while watch_streams(s.tollgate()).await == 0 {
        assert!(Instant::now() < deadline, "no Watch stream opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resolves = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("tollgate_grants_calls_total{method=\"resolve\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = resolves(&s.tollgate().metrics().await);
    for _ in 0..200 {
        let forged = tollgate_core::Token::generate().unwrap();
        let reply = s
            .get("/api/v1/query?query=up", forged.expose_secret(), &[])
            .await;
        assert_eq!(
            (reply.status, reply.json["reason"].as_str()),
            (401, Some("unknown_token"))
        );
    }
    let after = resolves(&s.tollgate().metrics().await);
    // About 1 in 4 million forged tokens passes the membership filter; the margin is for a
    // stream that reconnects under load (then unknown tokens are resolved).
    assert!(
        after - before <= 10,
        "{} Resolve calls for 200 forged tokens",
        after - before
    );
    assert_eq!(
        s.get("/api/v1/query?query=up", &live, &[]).await.status,
        200
    );
    for i in 0..5 {
        let (_, _, fresh) = s
            .tollgate()
            .account_with_token(json!({"name": format!("fresh-{i}"), "role": "viewer"}))
            .await;
        assert_eq!(
            s.get("/api/v1/query?query=up", &fresh, &[]).await.status,
            200,
            "a token used right after its creation"
        );
    }
    s.tollgate.unwrap().stop().await;
}

#[tokio::test]
async fn server_down_fails_closed() {
    let mut s = Stack::start(Mode::Filter(FAST.into())).await;
    let (_, _, token) = s
        .tollgate()
        .account_with_token(json!({"name": "a", "role": "viewer"}))
        .await;
    assert_eq!(
        s.get("/api/v1/query?query=up", &token, &[]).await.status,
        200
    );
    s.tollgate.take().unwrap().stop().await;
    let unknown = tollgate_core::Token::generate().unwrap();
    let reply = s
        .get("/api/v1/query?query=up", unknown.expose_secret(), &[])
        .await;
    assert_eq!(
        (reply.status, reply.json["reason"].as_str()),
        (503, Some("authorizer_unavailable")),
        "a miss cannot be resolved"
    );
    // A cached grant holds only while the feed is alive: after the grace (3 s), 503.
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let reply = s.get("/api/v1/query?query=up", &token, &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
}

#[tokio::test]
async fn stale_if_error_is_bounded_and_honours_revocations() {
    let mut s = Stack::start(Mode::Filter(r#"{"cluster":"tollgate","feed":{"intervalMs":200},"failureMode":{"staleIfError":{"maxStalenessSeconds":10}}}"#.into())).await;
    let (_, _, kept) = s
        .tollgate()
        .account_with_token(json!({"name": "kept", "role": "viewer"}))
        .await;
    let (id, token_id, revoked) = s
        .tollgate()
        .account_with_token(json!({"name": "gone", "role": "viewer"}))
        .await;
    for token in [&kept, &revoked] {
        assert_eq!(
            s.get("/api/v1/query?query=up", token, &[]).await.status,
            200
        );
    }
    s.tollgate()
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await;
    let started = Instant::now();
    while s.get("/api/v1/query?query=up", &revoked, &[]).await.status != 401 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last good poll lies between a poll interval before the stop began and its end, so
    // the checks are placed against both ends: past deny mode's 3 s grace after the stop, well
    // inside the 10 s bound after its start, and past the bound after its end. A slow stop on
    // a loaded machine moves neither check to the wrong side.
    let stopping = Instant::now();
    s.tollgate.take().unwrap().stop().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        stopping.elapsed() < Duration::from_millis(9500),
        "the stop took too long to test the bound"
    );
    assert_eq!(
        s.get("/api/v1/query?query=up", &kept, &[]).await.status,
        200,
        "served stale within the bound"
    );
    assert_ne!(
        s.get("/api/v1/query?query=up", &revoked, &[]).await.status,
        200,
        "a received revocation wins"
    );
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(down.elapsed())).await;
    assert_eq!(
        s.get("/api/v1/query?query=up", &kept, &[]).await.status,
        503,
        "not beyond the bound"
    );
}

/// One decision table through both paths: the answers must be identical.
#[tokio::test]
async fn filter_and_ext_authz_decide_alike() {
    let filter = Stack::start(Mode::Filter(FAST.into())).await;
    let ext = Stack::start(Mode::ExtAuthz).await;
    let mut tokens = Vec::new();
    for stack in [&filter, &ext] {
        let (_, _, viewer) = stack
            .tollgate()
            .account_with_token(json!({"name": "dash", "role": "viewer", "labelPolicy": NS}))
            .await;
        let (_, _, writer) = stack
            .tollgate()
            .account_with_token(
                json!({"name": "w", "role": "writer", "labelPolicy": "{team=\"a\"}"}),
            )
            .await;
        let (_, _, editor) = stack
            .tollgate()
            .account_with_token(json!({"name": "ed", "role": "editor"}))
            .await;
        tokens.push((viewer, writer, editor));
    }
    let conflict = format!(
        "/api/v1/query?query={}",
        form::encode(r#"up{kube_namespace="x"}"#)
    );
    let table: Vec<(&str, &str, usize, Vec<(&str, &str)>)> = vec![
        ("GET", "/api/v1/query?query=up", 0, vec![]),
        (
            "GET",
            "/api/v1/query_range?query=rate(x%5B1m%5D)&start=1&end=2&step=1",
            0,
            vec![],
        ),
        ("GET", "/api/v1/series", 0, vec![]),
        ("GET", "/api/v1/label/job/values", 0, vec![]),
        ("GET", &conflict, 0, vec![]),
        ("GET", "/api/v1/query?query=sum(", 0, vec![]),
        ("POST", "/api/v1/write", 0, vec![]),
        ("POST", "/api/v1/write", 1, vec![]),
        ("GET", "/api/v1/query?query=up", 1, vec![]),
        ("GET", "/api/v1/query?query=up", 2, vec![]),
        ("GET", "/loki/api/v1/query?query=x", 0, vec![]),
        ("GET", "/loki/api/v1/query?query=x", 2, vec![]),
        ("GET", "/api/v1/status/tsdb", 2, vec![]),
        (
            "GET",
            "/api/v1/query?query=up",
            0,
            vec![("x-scope-orgid", "other")],
        ),
        (
            "GET",
            "/api/v1/query?query=up",
            0,
            vec![(
                "x-tollgate-labels",
                "{kube_namespace=\"prometheus\", job=\"a\"}",
            )],
        ),
        (
            "GET",
            "/api/v1/query?query=up",
            0,
            vec![("x-tollgate-labels", "{job=\"a\"}")],
        ),
        (
            "GET",
            "/api/v1/query?query=up",
            0,
            vec![("x-tollgate-labels", "{")],
        ),
        ("GET", "/loki/../api/v1/query", 0, vec![]),
    ];
    for (method, path, who, headers) in &table {
        let mut outcomes = Vec::new();
        for (stack, (viewer, writer, editor)) in [&filter, &ext].into_iter().zip(&tokens) {
            let token = [viewer, writer, editor][*who];
            let mut request = stack
                .http
                .request(
                    method.parse().unwrap(),
                    format!("{}{path}", stack.envoy.url()),
                )
                .bearer_auth(token);
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let reply = send(request).await;
            let upstream_query = reply.json["query"].as_str().map(|q| {
                let mut p: Vec<(String, String)> = form::parse(q)
                    .unwrap()
                    .into_iter()
                    .map(|p| {
                        (
                            p.key.clone(),
                            if p.key == "query" || p.key == "match[]" {
                                canonical(&p.value)
                            } else {
                                p.value
                            },
                        )
                    })
                    .collect();
                p.sort();
                p
            });
            outcomes.push((
                reply.status,
                reply.json["reason"].as_str().map(str::to_owned),
                upstream_query,
            ));
        }
        assert_eq!(
            outcomes[0], outcomes[1],
            "{method} {path} {headers:?}: filter vs ext_authz"
        );
    }
    filter.tollgate.unwrap().stop().await;
    ext.tollgate.unwrap().stop().await;
}
