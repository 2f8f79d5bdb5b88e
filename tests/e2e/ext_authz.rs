//! Envoy in ext_authz-only mode (`envoy/ext-authz.yaml`) in front of an echo upstream: what the
//! client gets back and exactly what reaches the upstream.

use serde_json::json;
use tollgate_core::form;
use tollgate_e2e::{EchoUpstream, Envoy, Mode, Tollgate, bootstrap, send};

const NS: &str = r#"{kube_namespace="prometheus"}"#;

fn config(authz_port: u16, upstream_port: u16) -> String {
    bootstrap(&Mode::ExtAuthz, authz_port, upstream_port).unwrap()
}

struct Stack {
    tollgate: Tollgate,
    _echo: EchoUpstream,
    envoy: Envoy,
    http: reqwest::Client,
    viewer: String,
}

async fn stack() -> Stack {
    let tollgate = Tollgate::start().await.unwrap();
    let echo = EchoUpstream::start().await.unwrap();
    let envoy = Envoy::start(&config(tollgate.grpc_addr.port(), echo.addr.port()))
        .await
        .unwrap();
    let (_, _, viewer) = tollgate
        .account_with_token(json!({"name": "dash", "role": "viewer", "labelPolicy": NS}))
        .await;
    Stack {
        tollgate,
        _echo: echo,
        envoy,
        http: reqwest::Client::new(),
        viewer,
    }
}

/// The decoded values of `key` in a query string, as the upstream reads them.
fn params(query: &str, key: &str) -> Vec<String> {
    form::parse(query)
        .unwrap()
        .into_iter()
        .filter(|p| p.key == key)
        .map(|p| p.value)
        .collect()
}

/// Parsed and printed again: compares queries by meaning, not spelling.
fn canonical(query: &str) -> String {
    tollgate_core::promql::canonical(query).unwrap_or_else(|e| panic!("{query}: {e}"))
}

#[tokio::test]
async fn the_config_validates() {
    Envoy::validate(&config(9191, 9090)).unwrap();
}

#[tokio::test]
async fn allowed_requests_reach_the_upstream_rewritten_and_cleaned() {
    let s = stack().await;
    let query = "sum(rate(http_requests_total[5m])) or up";
    let reply = send(
        s.http
            .get(format!(
                "{}/api/v1/query?query={}&time=1",
                s.envoy.url(),
                form::encode(query)
            ))
            .bearer_auth(&s.viewer)
            .header("x-tollgate-account", "admin")
            .header("x-tollgate-debug", "1")
            .header("x-scope-orgid", "default"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let headers = &reply.json["headers"];
    assert_eq!(
        headers["x-tollgate-account"],
        json!(["dash"]),
        "spoofed identity overwritten"
    );
    assert_eq!(headers["x-tollgate-tenant"], json!(["default"]));
    assert_eq!(headers["x-scope-orgid"], json!(["default"]));
    assert_eq!(headers["x-tollgate-labels"], json!([NS]));
    assert!(
        headers.get("authorization").is_none(),
        "credentials never reach the upstream"
    );
    assert!(
        headers.get("x-tollgate-debug").is_none(),
        "client x-tollgate-* removed"
    );
    let upstream_query = reply.json["query"].as_str().unwrap();
    let sent = params(upstream_query, "query");
    assert_eq!(sent.len(), 1, "{upstream_query}");
    assert_eq!(
        canonical(&sent[0]),
        canonical(
            r#"sum(rate(http_requests_total{kube_namespace="prometheus"}[5m])) or up{kube_namespace="prometheus"}"#
        )
    );
    assert_eq!(
        params(upstream_query, "time"),
        ["1"],
        "other parameters untouched"
    );
    s.tollgate.stop().await;
}

#[tokio::test]
async fn match_parameters_are_all_confined() {
    let s = stack().await;
    let cases = [
        (
            "/api/v1/series".to_owned(),
            1,
            "no match[]: one carrying the policy is added",
        ),
        (
            format!("/api/v1/series?match[]={}", form::encode("up")),
            1,
            "one match[]",
        ),
        (
            format!("/api/v1/series?match%5B%5D={}", form::encode("up")),
            1,
            "percent-encoded key (Go clients)",
        ),
        (
            format!(
                "/api/v1/series?match[]={}&match[]={}",
                form::encode("up"),
                form::encode("down")
            ),
            2,
            "two match[]",
        ),
        (
            "/api/v1/label/job/values?match%5B%5D=up&match[]=down".to_owned(),
            2,
            "mixed spellings",
        ),
    ];
    for (path, count, why) in cases {
        let reply = send(
            s.http
                .get(format!("{}{path}", s.envoy.url()))
                .bearer_auth(&s.viewer),
        )
        .await;
        if reply.status != 200 {
            panic!("{why}: {} {}", reply.status, reply.text);
        }
        let upstream_query = reply.json["query"].as_str().unwrap();
        let values = params(upstream_query, "match[]");
        assert_eq!(values.len(), count, "{why}: {upstream_query}");
        for value in values {
            assert!(
                canonical(&value).contains(r#"kube_namespace="prometheus""#),
                "{why}: {value}"
            );
        }
    }
    s.tollgate.stop().await;
}

#[tokio::test]
async fn post_bodies_are_checked_and_passed_unchanged() {
    let s = stack().await;
    let url = format!("{}/api/v1/query", s.envoy.url());
    let within = format!(
        "query={}",
        form::encode(r#"rate(x{kube_namespace="prometheus"}[5m])"#)
    );
    let reply = send(
        s.http
            .post(&url)
            .bearer_auth(&s.viewer)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(within.clone()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["body"], within,
        "the body reaches the upstream unchanged"
    );

    let outside = send(
        s.http
            .post(&url)
            .bearer_auth(&s.viewer)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("query=up"),
    )
    .await;
    assert_eq!(outside.status, 403);
    assert_eq!(
        (
            outside.json["status"].as_str(),
            outside.json["reason"].as_str()
        ),
        (Some("error"), Some("query_not_allowed"))
    );
    assert!(
        outside.json["error"]
            .as_str()
            .unwrap()
            .contains("add the policy's matchers"),
        "{}",
        outside.text
    );
    s.tollgate.stop().await;
}

#[tokio::test]
async fn denials_and_failing_closed() {
    let s = stack().await;
    let url = format!("{}/api/v1/query?query=up", s.envoy.url());
    let missing = send(s.http.get(&url)).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(missing.json["reason"], "missing_token");

    let write = send(
        s.http
            .post(format!("{}/api/v1/write", s.envoy.url()))
            .bearer_auth(&s.viewer)
            .body("x"),
    )
    .await;
    assert_eq!(
        (write.status, write.json["reason"].as_str()),
        (403, Some("missing_scope"))
    );

    let conflict = send(
        s.http
            .get(format!(
                "{}/api/v1/query?query={}",
                s.envoy.url(),
                form::encode(r#"up{kube_namespace="other"}"#)
            ))
            .bearer_auth(&s.viewer),
    )
    .await;
    assert_eq!(conflict.status, 403);
    assert_eq!(conflict.json["errorType"], "forbidden", "{}", conflict.text);

    // The server goes away: every request is denied, never allowed.
    let viewer = s.viewer.clone();
    s.tollgate.stop().await;
    let down = send(s.http.get(&url).bearer_auth(&viewer)).await;
    assert_eq!(down.status, 503, "{}", down.text);
}
