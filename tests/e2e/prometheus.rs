//! Isolation at the level that matters: the data an account gets back from a real Prometheus
//! (Debian's), through Envoy in both modes. Seed: series in two namespaces, scraped.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_core::form;
use tollgate_e2e::{
    Envoy, MetricsTarget, Mode, Prometheus, Through, Tollgate, bootstrap, remote_write, send,
};

const NS: &str = r#"{kube_namespace="prometheus"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const SEED: &str = "\
# TYPE tollgate_demo_up gauge
tollgate_demo_up{kube_namespace=\"prometheus\",app=\"a\"} 1
tollgate_demo_up{kube_namespace=\"dd-trace-example\",app=\"b\"} 1
# TYPE tollgate_demo_requests_total counter
tollgate_demo_requests_total{kube_namespace=\"prometheus\",app=\"a\"} 10
tollgate_demo_requests_total{kube_namespace=\"dd-trace-example\",app=\"b\"} 20
";

pub(crate) struct Stack {
    pub(crate) tollgate: Tollgate,
    pub(crate) prometheus: Prometheus,
    _target: MetricsTarget,
    pub(crate) envoy: Envoy,
    http: reqwest::Client,
}

/// Tollgate, a Prometheus scraping [`SEED`], and Envoy in `mode` in front of it.
pub(crate) async fn stack(mode: Mode) -> Stack {
    let tollgate = Tollgate::start().await.unwrap();
    let target = MetricsTarget::start(SEED).await.unwrap();
    let prometheus = Prometheus::start(&[target.addr]).await.unwrap();
    prometheus.wait_for("tollgate_demo_up", 2).await.unwrap();
    let envoy =
        Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), prometheus.addr.port()).unwrap())
            .await
            .unwrap();
    Stack {
        tollgate,
        prometheus,
        _target: target,
        envoy,
        http: reqwest::Client::new(),
    }
}

impl Stack {
    pub(crate) async fn get(&self, path: &str, token: &str) -> Through {
        send(
            self.http
                .get(format!("{}{path}", self.envoy.url()))
                .bearer_auth(token),
        )
        .await
    }

    async fn query(&self, query: &str, token: &str) -> Through {
        self.get(
            &format!("/api/v1/query?query={}", form::encode(query)),
            token,
        )
        .await
    }

    async fn post_query(&self, body: &str, token: &str) -> Through {
        send(
            self.http
                .post(format!("{}/api/v1/query", self.envoy.url()))
                .bearer_auth(token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_owned()),
        )
        .await
    }

    /// Waits until `token` gets `status` through Envoy (revocations take up to a feed period).
    async fn until_status(&self, token: &str, status: u16) -> Duration {
        let started = Instant::now();
        loop {
            if self.query("tollgate_demo_up", token).await.status == status {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no {status} within 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `kube_namespace` of every series in a Prometheus answer, sorted.
fn namespaces(reply: &Through) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let data = &reply.json["data"];
    let items: Vec<&Value> = match data.get("result") {
        Some(result) => result
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["metric"])
            .collect(),
        None => data.as_array().unwrap().iter().collect(),
    };
    let mut found: Vec<String> = items
        .iter()
        .filter_map(|m| m["kube_namespace"].as_str().map(str::to_owned))
        .collect();
    found.sort();
    found.dedup();
    found
}

fn scalar(reply: &Through) -> String {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("none")
        .to_owned()
}

async fn isolation(mode: Mode) {
    let filter_mode = matches!(mode, Mode::Filter(_));
    let s = stack(mode).await;
    let (_, _, restricted) = s
        .tollgate
        .account_with_token(json!({"name": "ns-reader", "role": "viewer", "labelPolicy": NS}))
        .await;
    let (_, _, everything) = s
        .tollgate
        .account_with_token(json!({"name": "all-reader", "role": "viewer"}))
        .await;
    let only = vec!["prometheus".to_owned()];
    let both = vec!["dd-trace-example".to_owned(), "prometheus".to_owned()];

    // Queries, including those that try to escape.
    for query in [
        "tollgate_demo_up",
        r#"tollgate_demo_up{kube_namespace=~".+"}"#,
        r#"{__name__=~"tollgate_demo_.*"}"#,
        "count by (kube_namespace) (tollgate_demo_requests_total)",
        r#"tollgate_demo_up or tollgate_demo_requests_total"#,
        "last_over_time(tollgate_demo_requests_total[1m])",
    ] {
        assert_eq!(
            namespaces(&s.query(query, &restricted).await),
            only,
            "{query}"
        );
    }
    assert_eq!(
        namespaces(&s.query("tollgate_demo_up", &everything).await),
        both,
        "an unrestricted token sees both"
    );
    assert_eq!(
        scalar(
            &s.query(
                "sum without (kube_namespace, app) (tollgate_demo_requests_total)",
                &restricted
            )
            .await
        ),
        "10",
        "aggregation dropping the label"
    );
    assert_eq!(
        scalar(
            &s.query(
                "sum without (kube_namespace, app) (tollgate_demo_requests_total)",
                &everything
            )
            .await
        ),
        "30"
    );
    assert_eq!(
        scalar(&s.query("count(tollgate_demo_up)", &restricted).await),
        "1"
    );
    let escape = s.query(r#"tollgate_demo_up or tollgate_demo_requests_total{kube_namespace="dd-trace-example"}"#, &restricted).await;
    assert_eq!(
        (escape.status, escape.json["status"].as_str()),
        (403, Some("error")),
        "an explicit other namespace is refused"
    );

    // query_range, series, labels, label values.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let range = format!(
        // The end lies ahead: a sample scraped within the current second is still evaluated.
        "/api/v1/query_range?query={}&start={}&end={}&step=5",
        form::encode("tollgate_demo_up"),
        now - 60,
        now + 10
    );
    assert_eq!(namespaces(&s.get(&range, &restricted).await), only);
    assert_eq!(namespaces(&s.get(&range, &everything).await), both);
    assert_eq!(
        namespaces(
            &s.get(
                &format!(
                    "/api/v1/series?match[]={}",
                    form::encode("tollgate_demo_up")
                ),
                &restricted
            )
            .await
        ),
        only
    );
    assert_eq!(
        namespaces(&s.get("/api/v1/series", &restricted).await),
        only,
        "series without match[] gets the policy"
    );
    let values = s
        .get("/api/v1/label/kube_namespace/values", &restricted)
        .await;
    assert_eq!(
        values.json["data"],
        json!(["prometheus"]),
        "{}",
        values.text
    );
    let values = s
        .get("/api/v1/label/kube_namespace/values", &everything)
        .await;
    assert_eq!(
        values.json["data"],
        json!(["dd-trace-example", "prometheus"])
    );
    let labels = s.get("/api/v1/labels", &restricted).await;
    assert!(
        labels.json["data"]
            .as_array()
            .unwrap()
            .contains(&json!("kube_namespace")),
        "{}",
        labels.text
    );

    // POST (Grafana): the filter rewrites the body; ext_authz requires it to be within the policy.
    let plain = format!("query={}", form::encode("tollgate_demo_up"));
    let scoped = format!(
        "query={}",
        form::encode(r#"tollgate_demo_up{kube_namespace="prometheus"}"#)
    );
    assert_eq!(namespaces(&s.post_query(&scoped, &restricted).await), only);
    let reply = s.post_query(&plain, &restricted).await;
    if filter_mode {
        assert_eq!(
            namespaces(&reply),
            only,
            "the filter rewrites the posted query"
        );
    } else {
        assert_eq!(
            (reply.status, reply.json["reason"].as_str()),
            (403, Some("query_not_allowed")),
            "{}",
            reply.text
        );
    }
    assert_eq!(namespaces(&s.post_query(&plain, &everything).await), both);
    s.tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_through_the_filter() {
    isolation(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_through_ext_authz() {
    isolation(Mode::ExtAuthz).await;
}

/// Issue 11: what the review did as an attacker, against the real Prometheus. Regexes that Go's
/// RE2 reads differently from Rust's regex, empty selectors, ambiguous string escapes, writes a
/// header cannot confine, and Loki deletes.
async fn dialect_and_route_bypasses(mode: Mode) {
    let s = stack(mode).await;
    let (_, _, restricted) = s
        .tollgate
        .account_with_token(json!({"name": "ns-reader", "role": "viewer", "labelPolicy": NS}))
        .await;
    let (_, _, deny_list) = s
        .tollgate
        .account_with_token(json!({
            "name": "not-dd", "role": "viewer",
            "labelPolicy": r#"{kube_namespace!="dd-trace-example"}"#,
        }))
        .await;
    let (_, _, restricted_writer) = s
        .tollgate
        .account_with_token(json!({"name": "ns-writer", "role": "editor", "labelPolicy": NS}))
        .await;
    let only = vec!["prometheus".to_owned()];
    let narrowed = |token: &str, labels: &str| {
        send(
            s.http
                .get(format!("{}/api/v1/series", s.envoy.url()))
                .bearer_auth(token)
                .header("x-tollgate-labels", labels),
        )
    };

    // In Rust `[d&&e]` is an empty intersection (so the selector looked empty, hence "within"
    // any policy); in Go it is the class {d, &, e} and selects dd-trace-example.
    for (token, labels, status, reason) in [
        (
            &restricted,
            r#"{kube_namespace="dd-trace-example", kube_namespace=~"[d&&e]d-trace-example"}"#,
            400,
            "invalid_labels",
        ),
        (
            &restricted,
            r#"{kube_namespace="dd-trace-example", kube_namespace=~"[d--x]d-trace-example"}"#,
            400,
            "invalid_labels",
        ),
        (
            &restricted,
            r#"{kube_namespace="dd-trace-example", kube_namespace="prometheus"}"#,
            403,
            "label_policy_violation",
        ),
        (
            &deny_list,
            r#"{kube_namespace!~"[[d]]d-trace-example"}"#,
            400,
            "invalid_labels",
        ),
    ] {
        let reply = narrowed(token, labels).await;
        assert_eq!(
            (reply.status, reply.json["reason"].as_str()),
            (status, Some(reason)),
            "{labels}: {}",
            reply.text
        );
        assert!(!reply.text.contains("tollgate_demo"), "{labels}: no data");
    }
    // A narrowing within a deny-list policy still works, and stays within it.
    let reply = send(
        s.http
            .get(format!(
                "{}/api/v1/query?query=tollgate_demo_up",
                s.envoy.url()
            ))
            .bearer_auth(&deny_list)
            .header(
                "x-tollgate-labels",
                r#"{kube_namespace!~"dd-trace-example|x"}"#,
            ),
    )
    .await;
    assert_eq!(namespaces(&reply), only, "{}", reply.text);

    // The same selectors in a query, in the URL (rewritten) and in a POST body (checked by
    // ext_authz, rewritten by the filter): refused the same way in both modes.
    for (query, status) in [
        (
            r#"{kube_namespace="dd-trace-example", kube_namespace=~"[d&&e]d-trace-example"}"#,
            400,
        ),
        (
            r#"tollgate_demo_up{kube_namespace=~"(?i)DD-TRACE-EXAMPLE"}"#,
            400,
        ),
        (r#"tollgate_demo_up{app="\xc3\xa9"}"#, 400),
        (r#"tollgate_demo_up{app='\303\251'}"#, 400),
    ] {
        let by_url = s.query(query, &restricted).await;
        let by_body = s
            .post_query(&format!("query={}", form::encode(query)), &restricted)
            .await;
        for (how, reply) in [("URL", &by_url), ("body", &by_body)] {
            assert_eq!(reply.status, status, "{query} in the {how}: {}", reply.text);
            assert!(!reply.text.contains("dd-trace"), "{query} in the {how}");
        }
    }
    let body = format!(
        "query={}",
        form::encode(
            r#"{kube_namespace="dd-trace-example", kube_namespace="prometheus", __name__="tollgate_demo_up"}"#
        )
    );
    let reply = s.post_query(&body, &restricted).await;
    assert_eq!(
        reply.status, 403,
        "empty selector in a body: {}",
        reply.text
    );

    // Writes: upstreams ignore x-tollgate-labels, so the policy is enforced in the body: a
    // series for another namespace is refused (forced in filter mode, checked in ext_authz).
    let write = send(
        s.http
            .post(format!("{}/api/v1/write", s.envoy.url()))
            .bearer_auth(&restricted_writer)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .body(remote_write::body(
                &[&[
                    ("__name__", "tollgate_forged"),
                    ("kube_namespace", "dd-trace-example"),
                ]],
                1.0,
            )),
    )
    .await;
    assert_eq!(
        (write.status, write.json["reason"].as_str()),
        (403, Some("label_policy_violation")),
        "{}",
        write.text
    );

    // Loki's deletes and ruler are not reads: denied even to an unrestricted admin-less editor.
    let (_, _, editor) = s
        .tollgate
        .account_with_token(json!({"name": "editor", "role": "editor"}))
        .await;
    for (method, path) in [
        (
            Method::POST,
            "/loki/api/v1/delete?query=%7Ba%3D%22b%22%7D&start=0",
        ),
        (
            Method::PUT,
            "/loki/api/v1/delete?query=%7Ba%3D%22b%22%7D&start=0",
        ),
        (Method::POST, "/loki/api/v1/rules/ns"),
    ] {
        let reply = send(
            s.http
                .request(method.clone(), format!("{}{path}", s.envoy.url()))
                .bearer_auth(&editor),
        )
        .await;
        assert_eq!(
            (reply.status, reply.json["reason"].as_str()),
            (403, Some("route_not_allowed")),
            "{method} {path}: {}",
            reply.text
        );
    }
    s.tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_and_route_bypasses_through_the_filter() {
    dialect_and_route_bypasses(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_and_route_bypasses_through_ext_authz() {
    dialect_and_route_bypasses(Mode::ExtAuthz).await;
}

async fn roles_tenants_and_token_lifecycle(mode: Mode) {
    let s = stack(mode).await;
    let (_, _, viewer) = s
        .tollgate
        .account_with_token(json!({"name": "viewer", "role": "viewer"}))
        .await;
    let (_, _, writer) = s
        .tollgate
        .account_with_token(json!({"name": "collector", "role": "writer"}))
        .await;
    let (_, _, stranger) = s
        .tollgate
        .account_with_token(json!({"tenant": "globex", "name": "g", "role": "viewer"}))
        .await;
    let write = |token: &str| {
        send(
            s.http
                .post(format!("{}/api/v1/write", s.envoy.url()))
                .bearer_auth(token)
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "snappy")
                .header("x-prometheus-remote-write-version", "0.1.0")
                .body(remote_write::body(
                    &[&[
                        ("__name__", "tollgate_written"),
                        ("kube_namespace", "prometheus"),
                    ]],
                    42.0,
                )),
        )
    };
    assert_eq!(write(&viewer).await.status, 403, "a viewer cannot write");
    let written = write(&writer).await;
    assert_eq!(written.status, 204, "a writer writes: {}", written.text);
    assert_eq!(
        s.query("tollgate_demo_up", &writer).await.status,
        403,
        "a writer cannot read"
    );
    s.prometheus.wait_for("tollgate_written", 1).await.unwrap();
    assert_eq!(scalar(&s.query("tollgate_written", &viewer).await), "42");

    // An admin manages accounts (the admin API, with the admin's own token); a viewer cannot.
    let (_, _, admin) = s
        .tollgate
        .account_with_token(json!({"name": "team-admin", "role": "admin"}))
        .await;
    let create = |token: &str, name: &str| {
        s.http
            .post(format!("{}/api/v1/serviceaccounts", s.tollgate.url))
            .bearer_auth(token)
            .json(&json!({"name": name, "role": "viewer"}))
            .send()
    };
    assert_eq!(create(&admin, "made-by-admin").await.unwrap().status(), 201);
    assert_eq!(
        create(&viewer, "made-by-viewer").await.unwrap().status(),
        403
    );

    // Another tenant's token cannot claim this tenant.
    let claim = send(
        s.http
            .get(format!("{}/api/v1/query?query=up", s.envoy.url()))
            .bearer_auth(&stranger)
            .header("x-scope-orgid", "default"),
    )
    .await;
    assert_eq!(
        (claim.status, claim.json["reason"].as_str()),
        (403, Some("tenant_mismatch"))
    );

    // Regeneration, revocation and expiry observed through Envoy.
    let (id, token_id, token) = s
        .tollgate
        .account_with_token(json!({"name": "rotating", "role": "viewer"}))
        .await;
    assert_eq!(s.query("tollgate_demo_up", &token).await.status, 200);
    let regenerated = s
        .tollgate
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}/regenerate"),
            None,
        )
        .await;
    let new_token = regenerated["token"].as_str().unwrap().to_owned();
    let took = s.until_status(&token, 401).await;
    assert_eq!(s.query("tollgate_demo_up", &new_token).await.status, 200);
    println!("regenerate to first 401 of the old value: {took:?}");
    s.tollgate
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await;
    s.until_status(&new_token, 401).await;
    let (_, _, brief) = s
        .tollgate
        .account_with_token(json!({"name": "brief", "role": "viewer", "ttlSeconds": 2}))
        .await;
    assert_eq!(s.query("tollgate_demo_up", &brief).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = s.query("tollgate_demo_up", &brief).await;
    assert_eq!(
        (expired.status, expired.json["reason"].as_str()),
        (401, Some("expired_token"))
    );
    s.tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_tenants_and_lifecycle_through_the_filter() {
    roles_tenants_and_token_lifecycle(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_tenants_and_lifecycle_through_ext_authz() {
    roles_tenants_and_token_lifecycle(Mode::ExtAuthz).await;
}

/// The workflows of DESIGN.md, with the CLI, against the running stack (filter mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn design_workflows_with_the_cli() {
    let s = stack(Mode::Filter(FAST.into())).await;
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(tollgate_e2e::tollgate_binary().unwrap());
        command
            .args(args)
            .args(["--output", "json"])
            .env("TOLLGATE_URL", &s.tollgate.url)
            .env("TOLLGATE_TOKEN", &s.tollgate.admin_token);
        async move {
            let out = tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap();
            // `can-i` answers no with exit status 1 and the answer on stdout.
            let answered_no = out.status.code() == Some(1) && out.stderr.is_empty();
            assert!(
                out.status.success() || answered_no,
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        }
    };
    // 1. An admin creates a service account with a role and a label policy.
    let account = cli(&[
        "sa",
        "create",
        "ci-reader",
        "--role",
        "viewer",
        "--label-policy",
        NS,
        "--description",
        "CI dashboards",
        "--owner-email",
        "ci@example.com",
    ])
    .await;
    assert_eq!(account["labelPolicy"], NS);
    // 2. Creates a token, shown once; listing shows metadata only.
    let first = cli(&[
        "token",
        "create",
        "ci-reader",
        "main",
        "--expires-in",
        "30d",
    ])
    .await;
    let first_token = first["token"].as_str().unwrap().to_owned();
    let listed = cli(&["token", "list", "ci-reader"]).await;
    let listed = &listed["tokens"];
    assert!(
        listed[0].get("token").is_none()
            && listed[0]["hint"].as_str().unwrap().starts_with("tgsa_")
    );
    // 3. Automation uses it through Envoy and sees only its namespace.
    assert_eq!(
        namespaces(&s.query("tollgate_demo_up", &first_token).await),
        ["prometheus"]
    );
    // 5. Can I?
    let can = cli(&["can-i", "GET", "/api/v1/query", "--as", "ci-reader"]).await;
    assert_eq!(can["allowed"], true);
    let cannot = cli(&["can-i", "POST", "/api/v1/write", "--as", "ci-reader"]).await;
    assert_eq!(cannot["reason"], "missing_scope");
    // 4. Rotation without downtime: a second token, switch, delete the first.
    let second = cli(&[
        "token",
        "create",
        "ci-reader",
        "next",
        "--expires-in",
        "30d",
    ])
    .await;
    let second_token = second["token"].as_str().unwrap().to_owned();
    assert_eq!(s.query("tollgate_demo_up", &second_token).await.status, 200);
    cli(&["token", "revoke", "ci-reader", &first["id"].to_string()]).await;
    s.until_status(&first_token, 401).await;
    assert_eq!(
        s.query("tollgate_demo_up", &second_token).await.status,
        200,
        "the new token keeps working"
    );
    // Deleting the account revokes all its tokens.
    cli(&["sa", "delete", "ci-reader"]).await;
    s.until_status(&second_token, 401).await;
    let audit = cli(&[
        "audit",
        "--target",
        &format!("serviceaccount/{}", account["id"]),
    ])
    .await;
    assert!(audit["totalCount"].as_u64().unwrap() >= 4, "{audit}");
    s.tollgate.stop().await;
}
