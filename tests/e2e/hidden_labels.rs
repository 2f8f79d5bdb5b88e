//! Issue 15: an account that hides its policy labels, through Envoy in front of the real
//! Prometheus (Debian's). Filter mode: on every endpoint that answers with labels, the answer
//! holds neither the policy's label name nor its value, and the numbers are the same as an
//! unhidden account's; an answer over `maxAnswerBytes` is a 502, never unfiltered. ext_authz
//! mode cannot change answers, so such an account's reads are refused with a clear reason.

use crate::prometheus::stack;
use serde_json::{Value, json};
use tollgate_core::form;
use tollgate_e2e::{Envoy, Mode, bootstrap};

const NS: &str = r#"{kube_namespace="prometheus"}"#;

fn assert_hidden(what: &str, text: &str) {
    assert!(
        !text.contains("kube_namespace")
            && !text.contains("\"prometheus\"")
            && !text.contains("=\"prometheus\""),
        "{what}: the policy label leaks: {text}"
    );
}

/// Every series' labels in an answer, without `kube_namespace`, for comparing two accounts.
fn series_without_namespace(json: &Value) -> Vec<Value> {
    let data = &json["data"];
    let mut sets: Vec<Value> = match data.get("result") {
        Some(result) => result
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!({"metric": r["metric"], "value": r["value"][1], "values": r["values"]}))
            .collect(),
        None => data.as_array().unwrap().clone(),
    };
    for set in &mut sets {
        for labels in [set.get_mut("metric"), None].into_iter().flatten() {
            if let Some(map) = labels.as_object_mut() {
                map.remove("kube_namespace");
            }
        }
        if let Some(map) = set.as_object_mut() {
            map.remove("kube_namespace");
        }
    }
    sets.sort_by_key(|v| v.to_string());
    sets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_policy_labels_through_the_filter() {
    let config = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
    let stack = stack(Mode::Filter(config.into())).await;
    let (_, _, hiding) = stack
        .tollgate
        .account_with_token(
            json!({"name": "hidden", "role": "viewer", "labelPolicy": NS,
            "hidePolicyLabels": true}),
        )
        .await;
    let (_, _, plain) = stack
        .tollgate
        .account_with_token(json!({"name": "plain", "role": "viewer", "labelPolicy": NS}))
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = |q: &str| format!("/api/v1/query?query={}&time={now}", form::encode(q));
    let range = format!(
        "/api/v1/query_range?query={}&start={}&end={now}&step=15",
        form::encode("tollgate_demo_requests_total"),
        now - 60
    );
    let series = format!(
        "/api/v1/series?match[]={}",
        form::encode("tollgate_demo_up")
    );
    let federate = format!(
        "/federate?match[]={}",
        form::encode(r#"{__name__=~"tollgate_demo.*"}"#)
    );
    for (what, path, compare) in [
        ("query", query("tollgate_demo_up"), true),
        (
            "sum",
            query("sum by (kube_namespace, app) (tollgate_demo_requests_total)"),
            true,
        ),
        ("query_range", range, true),
        ("series", series, true),
        ("labels", "/api/v1/labels".to_owned(), false),
        (
            "namespace values",
            "/api/v1/label/kube_namespace/values".to_owned(),
            false,
        ),
        (
            "exemplars",
            format!(
                "/api/v1/query_exemplars?query=tollgate_demo_up&start={}&end={now}",
                now - 60
            ),
            false,
        ),
    ] {
        let hidden = stack.get(&path, &hiding).await;
        assert_eq!(hidden.status, 200, "{what}: {}", hidden.text);
        assert_hidden(what, &hidden.text);
        let shown = stack.get(&path, &plain).await;
        assert_eq!(shown.status, 200, "{what}: {}", shown.text);
        // (No exemplars are stored from a plain scrape: that answer is empty for both.)
        assert!(
            what == "exemplars"
                || shown.text.contains("kube_namespace")
                || shown.text.contains("\"prometheus\""),
            "{what}: the plain account sees it: {}",
            shown.text
        );
        if compare {
            assert_eq!(
                series_without_namespace(&hidden.json),
                series_without_namespace(&shown.json),
                "{what}: same series and numbers"
            );
            assert!(
                !series_without_namespace(&hidden.json).is_empty(),
                "{what}: not empty"
            );
        }
    }
    let labels = stack.get("/api/v1/labels", &hiding).await;
    assert!(
        labels.json["data"]
            .as_array()
            .unwrap()
            .contains(&json!("app")),
        "{}",
        labels.text
    );
    let values = stack.get("/api/v1/label/app/values", &hiding).await;
    assert_eq!(values.json["data"], json!(["a"]), "{}", values.text);

    let fed_hidden = stack.get(&federate, &hiding).await;
    assert_eq!(fed_hidden.status, 200, "{}", fed_hidden.text);
    assert_hidden("federate", &fed_hidden.text);
    assert!(
        fed_hidden.text.contains("tollgate_demo_up{"),
        "{}",
        fed_hidden.text
    );
    let fed_plain = stack.get(&federate, &plain).await;
    let strip = |text: &str| -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                l.replace("kube_namespace=\"prometheus\",", "")
                    .replace(",kube_namespace=\"prometheus\"", "")
                    .replace("kube_namespace=\"prometheus\"", "")
            })
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(
        strip(&fed_hidden.text),
        strip(&fed_plain.text),
        "federate: same samples"
    );

    // An error that echoes the rewritten query does not give the policy away either.
    let bad = stack
        .get(&query("rate(tollgate_demo_up[1m]) + on(nope"), &hiding)
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_hidden("parse error", &bad.text);
    // Loki's tail (a WebSocket) cannot be rewritten: refused.
    let tail = stack
        .get("/loki/api/v1/tail?query=%7Bapp%3D%22a%22%7D", &hiding)
        .await;
    assert_eq!(tail.status, 403, "{}", tail.text);
    assert_eq!(tail.json["reason"], "labels_not_enforceable");
    drop(stack);

    // Over the cap: a 502 with the reason, never the answer.
    let small = r#"{"cluster":"tollgate","feed":{"intervalMs":200},"maxAnswerBytes":1024}"#;
    let stack = crate::prometheus::stack(Mode::Filter(small.into())).await;
    let (_, _, hiding) = stack
        .tollgate
        .account_with_token(
            json!({"name": "hidden", "role": "viewer", "labelPolicy": NS,
            "hidePolicyLabels": true}),
        )
        .await;
    let big = stack
        .get(
            &format!(
                "/api/v1/query_range?query=tollgate_demo_up&start={}&end={}&step=1",
                now - 300,
                now + 600
            ),
            &hiding,
        )
        .await;
    assert_eq!(big.status, 502, "{}", big.text);
    assert_eq!(big.json["reason"], "answer_too_large", "{}", big.text);
    assert_hidden("too large", &big.text);
    let fine = stack.get(&query("tollgate_demo_up"), &hiding).await;
    assert_eq!(fine.status, 200, "{}", fine.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_policy_labels_are_refused_through_ext_authz() {
    let stack = stack(Mode::ExtAuthz).await;
    let (_, _, hiding) = stack
        .tollgate
        .account_with_token(
            json!({"name": "hidden", "role": "viewer", "labelPolicy": NS,
            "hidePolicyLabels": true}),
        )
        .await;
    let refused = stack
        .get("/api/v1/query?query=tollgate_demo_up", &hiding)
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.json["reason"], "labels_not_enforceable");
    assert!(refused.text.contains("ext_authz"), "{}", refused.text);
    let build = stack.get("/api/v1/status/buildinfo", &hiding).await;
    assert_eq!(
        build.status, 200,
        "answers without series data stay open: {}",
        build.text
    );
    let _: &Envoy = &stack.envoy;
    let _ = bootstrap;
}

/// An upstream whose response header values are not UTF-8 (obs-text): the filter reads them as
/// it reads request headers (each such byte as `!`) and decides on that, never panicking. A
/// content type that still names JSON is rewritten; an encoding that names nothing we read is
/// a 502; the next answer is rewritten as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_header_values_that_are_not_utf8() {
    use axum::http::{HeaderValue, header};
    let answer = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a","kube_namespace":"prometheus"},"value":[1,"1"]}]}}"#;
    let upstream =
        axum::Router::new().fallback(move |request: axum::extract::Request| async move {
            let encoding = request.uri().path().ends_with("/labels");
            let mut response = axum::response::Response::new(axum::body::Body::from(answer));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_bytes(b"application/json; charset=caf\xe9").unwrap(),
            );
            if encoding {
                headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_bytes(b"gz\xffip").unwrap(),
                );
            }
            response
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, upstream).await;
    });
    let tollgate = tollgate_e2e::Tollgate::start().await.unwrap();
    let mode = Mode::Filter(r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#.into());
    let envoy = Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), upstream_port).unwrap())
        .await
        .unwrap();
    let (_, _, hiding) = tollgate
        .account_with_token(
            json!({"name": "hidden", "role": "viewer", "labelPolicy": NS,
            "hidePolicyLabels": true}),
        )
        .await;
    let get = |path: &str| {
        tollgate_e2e::send(
            reqwest::Client::new()
                .get(format!("{}{path}", envoy.url()))
                .bearer_auth(&hiding),
        )
    };
    let rewritten = get("/api/v1/query?query=up").await;
    assert_eq!(rewritten.status, 200, "{}\n{}", rewritten.text, envoy.log());
    assert_hidden("charset in obs-text", &rewritten.text);
    assert_eq!(rewritten.json["data"]["result"][0]["metric"]["job"], "a");
    let refused = get("/api/v1/labels").await;
    assert_eq!(refused.status, 502, "{}\n{}", refused.text, envoy.log());
    assert!(refused.text.contains("gz!ip"), "{}", refused.text);
    let again = get("/api/v1/query?query=up").await;
    assert_eq!(again.status, 200, "the filter decides on: {}", again.text);
    assert!(!envoy.log().contains("panicked"), "{}", envoy.log());
    tollgate.stop().await;
    server.abort();
}
