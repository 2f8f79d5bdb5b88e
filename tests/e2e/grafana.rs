//! Issue 17 (the endpoints Grafana and other clients call), with real clients, through Envoy in
//! both modes. The upstream is a real Prometheus (Debian's) scraping series in two namespaces.
//! A second Prometheus federates `/federate` through Envoy with its token in its scrape
//! config's `authorization`; the PyPI library prometheus-api-client queries, lists label values,
//! series, targets and metadata; direct requests cover build information, query formatting,
//! rules, alerts and Mimir's `/prometheus` prefix.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_core::form;
use tollgate_e2e::{
    EchoUpstream, Envoy, MetricsTarget, Mode, Prometheus, Through, Tollgate, bootstrap, prom_api,
    send,
};

const POLICY: &str = r#"{kube_namespace="team-a"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const SEED: &str = "\
# HELP fed_probe A probe in each namespace.
# TYPE fed_probe gauge
fed_probe{kube_namespace=\"team-a\",app=\"a\"} 1
fed_probe{kube_namespace=\"team-b\",app=\"b\"} 2
# HELP fed_requests_total Requests per namespace.
# TYPE fed_requests_total counter
fed_requests_total{kube_namespace=\"team-a\",app=\"a\"} 10
fed_requests_total{kube_namespace=\"team-b\",app=\"b\"} 20
";
const FEDERATED: &str = r#"{__name__=~"fed_.+"}"#;

struct Stack {
    tollgate: Tollgate,
    upstream: Prometheus,
    _target: MetricsTarget,
    envoy: Envoy,
    /// A viewer restricted to [`POLICY`].
    restricted: String,
    /// A viewer without a label policy.
    everything: String,
    http: reqwest::Client,
}

async fn stack(mode: Mode) -> Stack {
    let tollgate = Tollgate::start().await.unwrap();
    let (_, _, restricted) = tollgate
        .account_with_token(
            json!({"name": "team-a-grafana", "role": "viewer", "labelPolicy": POLICY}),
        )
        .await;
    let (_, _, everything) = tollgate
        .account_with_token(json!({"name": "all-grafana", "role": "viewer"}))
        .await;
    let target = MetricsTarget::start(SEED).await.unwrap();
    let upstream = Prometheus::start(&[target.addr]).await.unwrap();
    upstream.wait_for("fed_probe", 2).await.unwrap();
    upstream.wait_for("fed_requests_total", 2).await.unwrap();
    let envoy =
        Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), upstream.addr.port()).unwrap())
            .await
            .unwrap();
    Stack {
        tollgate,
        upstream,
        _target: target,
        envoy,
        restricted,
        everything,
        http: reqwest::Client::new(),
    }
}

impl Stack {
    async fn get(&self, path: &str, token: &str) -> Through {
        send(
            self.http
                .get(format!("{}{path}", self.envoy.url()))
                .bearer_auth(token),
        )
        .await
    }
}

/// The sorted, deduplicated `kube_namespace` values of label sets.
fn namespaces<'a>(label_sets: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    let mut found: Vec<String> = label_sets
        .into_iter()
        .map(|labels| {
            labels["kube_namespace"]
                .as_str()
                .unwrap_or("<none>")
                .to_owned()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

fn team_a() -> Vec<String> {
    vec!["team-a".to_owned()]
}

fn both() -> Vec<String> {
    vec!["team-a".to_owned(), "team-b".to_owned()]
}

/// Asserts a refusal by Tollgate: `status` with `reason`, and no series data in the answer.
fn assert_denied(reply: &Through, status: u16, reason: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.json["reason"].as_str()),
        (status, Some(reason)),
        "{what}: {}",
        reply.text
    );
    // The message may quote the request's own selector, never a series (`app` is only in data).
    assert!(
        reply.json["data"].is_null() && !reply.text.contains("app="),
        "{what}: no data: {}",
        reply.text
    );
}

/// Asserts Tollgate let the request through (whatever the upstream then answered).
fn assert_not_denied(reply: &Through, what: &str) {
    assert!(
        !matches!(reply.status, 401 | 403) && reply.json["reason"].is_null(),
        "{what}: denied by Tollgate: {} {}",
        reply.status,
        reply.text
    );
}

// ---------------------------------------------------------------------------------------------
// 1. A real Prometheus federating through Envoy.

/// A scrape job federating `/federate` through Envoy with `token` in `authorization`.
fn federate_job(envoy: &Envoy, token: &str) -> String {
    format!(
        "- job_name: federate\n  honor_labels: true\n  metrics_path: /federate\n  params:\n    'match[]': ['{FEDERATED}']\n  authorization:\n    credentials: {token}\n  static_configs:\n  - targets: ['{}']\n",
        envoy.listener
    )
}

/// The label sets of the `fed_*` series `prometheus` holds (asked directly, not through Envoy).
async fn held(prometheus: &Prometheus) -> Vec<Value> {
    let reply: Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/series", prometheus.addr))
        .query(&[("match[]", FEDERATED)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["data"].as_array().cloned().unwrap_or_default()
}

/// Polls until the federating Prometheus has scraped `/federate` successfully (`up` is 1) and
/// holds at least `count` federated series; returns them.
async fn until_federated(federator: &Prometheus, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = held(federator).await;
        let up: Value = reqwest::Client::new()
            .get(format!("http://{}/api/v1/query", federator.addr))
            .query(&[("query", r#"up{job="federate"}"#)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let scraped = up["data"]["result"][0]["value"][1] == "1";
        if scraped && series.len() >= count {
            return series;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} federated series after 30 s (up: {up}): {series:?}\n{}",
            series.len(),
            federator.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn federation(mode: Mode) {
    let s = stack(mode).await;

    // Restricted: the match[] of the scrape config is confined to the policy.
    let federator = Prometheus::start_configured(&[], "", &federate_job(&s.envoy, &s.restricted))
        .await
        .unwrap();
    let series = until_federated(&federator, 2).await;
    // One scrape brings all that /federate answered: had it answered team-b, it would be here.
    assert_eq!(namespaces(&series), team_a(), "{series:?}");
    assert_eq!(
        series.len(),
        2,
        "fed_probe and fed_requests_total of team-a: {series:?}"
    );
    drop(federator);

    // Unrestricted: both namespaces.
    let federator = Prometheus::start_configured(&[], "", &federate_job(&s.envoy, &s.everything))
        .await
        .unwrap();
    let series = until_federated(&federator, 4).await;
    assert_eq!(namespaces(&series), both(), "{series:?}");
    drop(federator);

    // By hand: a restricted match[] naming the other namespace is refused (as a query naming it
    // is), one within the policy is confined to it.
    let other = format!(
        "/federate?match[]={}",
        form::encode(r#"fed_probe{kube_namespace="team-b"}"#)
    );
    assert_denied(
        &s.get(&other, &s.restricted).await,
        403,
        "query_not_allowed",
        "federate team-b",
    );
    let own = s
        .get(
            &format!("/federate?match[]={}", form::encode("fed_probe")),
            &s.restricted,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert!(
        own.text.contains(r#"kube_namespace="team-a""#),
        "{}",
        own.text
    );
    assert!(!own.text.contains("team-b"), "{}", own.text);
    s.tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_federates_through_the_filter() {
    federation(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_federates_through_ext_authz() {
    federation(Mode::ExtAuthz).await;
}

// ---------------------------------------------------------------------------------------------
// 2. prometheus-api-client (PyPI) through Envoy.

/// The summary entry of one library call, which must have succeeded.
fn ok<'a>(summary: &'a Value, call: &str) -> &'a Value {
    let entry = &summary[call];
    assert_eq!(entry["ok"], true, "{call}: {entry}");
    &entry["result"]
}

/// The summary entry of one library call, which Tollgate must have refused with `reason`.
fn refused(summary: &Value, call: &str, reason: &str) {
    let entry = &summary[call];
    assert_eq!(
        (
            entry["ok"].as_bool(),
            entry["status"].as_u64(),
            entry["body"]["reason"].as_str()
        ),
        (Some(false), Some(403), Some(reason)),
        "{call}: {entry}"
    );
    assert!(entry["body"]["data"].is_null(), "{call}: no data: {entry}");
}

async fn client_library(mode: Mode) {
    let s = stack(mode).await;
    let url = s.envoy.url();
    let args = [
        "--query",
        "fed_probe",
        "--label",
        "kube_namespace",
        "--metric",
        "fed_probe",
    ];

    let restricted = prom_api(&url, &s.restricted, &args).await.unwrap();
    let result = ok(&restricted, "custom_query").as_array().unwrap();
    assert_eq!(
        namespaces(result.iter().map(|r| &r["metric"])),
        team_a(),
        "{restricted}"
    );
    assert_eq!(
        ok(&restricted, "get_label_values"),
        &json!(["team-a"]),
        "{restricted}"
    );
    let series = ok(&restricted, "get_series").as_array().unwrap();
    assert!(!series.is_empty(), "{restricted}");
    assert_eq!(namespaces(series), team_a(), "{restricted}");
    refused(&restricted, "get_targets", "labels_not_enforceable");
    refused(&restricted, "get_metric_metadata", "labels_not_enforceable");

    let everything = prom_api(&url, &s.everything, &args).await.unwrap();
    let result = ok(&everything, "custom_query").as_array().unwrap();
    assert_eq!(
        namespaces(result.iter().map(|r| &r["metric"])),
        both(),
        "{everything}"
    );
    assert_eq!(
        ok(&everything, "get_label_values"),
        &json!(["team-a", "team-b"]),
        "{everything}"
    );
    let series = ok(&everything, "get_series").as_array().unwrap();
    assert_eq!(namespaces(series), both(), "{everything}");
    let targets = ok(&everything, "get_targets")["activeTargets"]
        .as_array()
        .unwrap();
    assert!(
        targets.iter().any(|t| t["health"] == "up"),
        "the scraped target: {everything}"
    );
    let metadata = ok(&everything, "get_metric_metadata").as_array().unwrap();
    assert!(
        metadata
            .iter()
            .any(|m| m["metric_name"] == "fed_probe" && m["type"] == "gauge"),
        "{everything}"
    );

    // Without a token the library gets 401 from Tollgate, never data.
    let anonymous = prom_api(&url, "", &args).await.unwrap();
    for call in ["custom_query", "get_label_values", "get_targets"] {
        assert_eq!(
            (
                anonymous[call]["ok"].as_bool(),
                anonymous[call]["status"].as_u64()
            ),
            (Some(false), Some(401)),
            "{call}: {anonymous}"
        );
    }
    s.tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_api_client_through_the_filter() {
    client_library(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_api_client_through_ext_authz() {
    client_library(Mode::ExtAuthz).await;
}

// ---------------------------------------------------------------------------------------------
// 3. What Grafana calls besides queries, by hand; Mimir's /prometheus prefix.

async fn grafana_endpoints(mode: Mode) {
    let s = stack(mode.clone()).await;

    // Without series data: allowed to the restricted account, answered by Prometheus.
    let reply = s.get("/api/v1/status/buildinfo", &s.restricted).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json["data"]["version"].is_string(), "{}", reply.text);
    let reply = s
        .get(
            "/api/v1/format_query?query=up%7Bjob%3D%22seed%22%7D",
            &s.restricted,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["data"], r#"up{job="seed"}"#, "{}", reply.text);
    let reply = send(
        s.http
            .post(format!("{}/api/v1/format_query", s.envoy.url()))
            .bearer_auth(&s.restricted)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("query=sum(up)"),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["data"].as_str()),
        (200, Some("sum(up)")),
        "{}",
        reply.text
    );
    // Debian's Prometheus 2.42 predates /api/v1/parse_query (it answers 404): Tollgate lets it
    // through all the same.
    let reply = s.get("/api/v1/parse_query?query=up", &s.restricted).await;
    assert_not_denied(&reply, "parse_query");

    // Everything about every series, whatever its labels: denied to the restricted account,
    // saying why; served to the unrestricted one.
    for path in [
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/targets",
        "/api/v1/metadata",
    ] {
        let reply = s.get(path, &s.restricted).await;
        assert_denied(&reply, 403, "labels_not_enforceable", path);
        assert!(
            reply.json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: a message: {}",
            reply.text
        );
        let reply = s.get(path, &s.everything).await;
        assert_eq!(
            (reply.status, reply.json["status"].as_str()),
            (200, Some("success")),
            "{path}: {}",
            reply.text
        );
    }
    let reply = s.get("/api/v1/status/buildinfo", &s.everything).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = s.get("/api/v1/status/tsdb", &s.everything).await;
    assert!(
        matches!(reply.status, 403 | 404) && !reply.json["reason"].is_null(),
        "TSDB status stays unlisted: {} {}",
        reply.status,
        reply.text
    );
    drop(s.upstream);
    s.tollgate.stop().await;

    // Mimir's /prometheus prefix: the same rules, the path kept. An echo upstream shows what
    // Tollgate passed on.
    let tollgate = Tollgate::start().await.unwrap();
    let (_, _, restricted) = tollgate
        .account_with_token(
            json!({"name": "team-a-grafana", "role": "viewer", "labelPolicy": POLICY}),
        )
        .await;
    let echo = EchoUpstream::start().await.unwrap();
    let envoy =
        Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), echo.addr.port()).unwrap())
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        send(
            http.get(format!("{}{path}", envoy.url()))
                .bearer_auth(&restricted),
        )
    };
    let reply = get(&format!(
        "/prometheus/api/v1/query?query={}",
        form::encode("fed_probe")
    ))
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["path"], "/prometheus/api/v1/query",
        "{}",
        reply.text
    );
    let query: Vec<String> = form::parse(reply.json["query"].as_str().unwrap())
        .unwrap()
        .into_iter()
        .filter(|p| p.key == "query")
        .map(|p| p.value)
        .collect();
    assert_eq!(query.len(), 1, "{}", reply.text);
    assert!(
        query[0].contains("fed_probe") && query[0].contains(r#"kube_namespace="team-a""#),
        "rewritten to the policy: {query:?}"
    );
    let reply = get(&format!(
        "/prometheus/api/v1/query?query={}",
        form::encode(r#"fed_probe{kube_namespace="team-b"}"#)
    ))
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = get("/prometheus/api/v1/status/buildinfo").await;
    assert_eq!(
        (reply.status, reply.json["path"].as_str()),
        (200, Some("/prometheus/api/v1/status/buildinfo")),
        "{}",
        reply.text
    );
    let reply = get("/prometheus/api/v1/rules").await;
    assert_denied(
        &reply,
        403,
        "labels_not_enforceable",
        "/prometheus/api/v1/rules",
    );
    let passed: Vec<String> = echo
        .received()
        .iter()
        .map(|r| r["path"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        passed,
        [
            "/prometheus/api/v1/query",
            "/prometheus/api/v1/status/buildinfo"
        ],
        "only what was allowed arrived"
    );
    drop(envoy);
    tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_endpoints_through_the_filter() {
    grafana_endpoints(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_endpoints_through_ext_authz() {
    grafana_endpoints(Mode::ExtAuthz).await;
}
