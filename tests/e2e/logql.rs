//! Issue 15 (Loki reads): a label-restricted account's LogQL reaches the upstream with the policy
//! in every stream selector, through the real Envoy in both modes, to a recording upstream that
//! keeps what it received (Loki itself cannot be installed here). What arrived is compared with
//! the expected text and parsed back with the core's LogQL parser: every selector within policy.
//!
//! Adversarial queries: a selector spelled inside a line filter's string, nested metric queries,
//! `or`, `unless`, `label_format` / `label_replace` writing the policy label, POST form bodies
//! (rewritten by the filter, checked by ext_authz), and tail (a WebSocket upgrade with the query
//! in the URL). `X-Prom-Label-Policy` arrives with the effective policy, one value per selector,
//! and a client-sent copy never does.

use serde_json::json;
use tollgate_core::Policy;
use tollgate_core::form;
use tollgate_e2e::{
    Envoy, MARKER, Mode, Recorded, RecordingUpstream, Through, Tollgate, bootstrap, send,
};

const POLICY: &str = r#"{namespace="team-a"}"#;
const TWO: &str = r#"{namespace="team-a"} or {namespace="team-b"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const FORM: &str = "application/x-www-form-urlencoded";

struct Rig {
    envoy: Envoy,
    upstream: RecordingUpstream,
    /// Viewer confined to [`POLICY`].
    reader: String,
    /// Viewer confined to [`TWO`].
    two: String,
    /// Viewer with no label policy.
    free: String,
    tenant: String,
    tollgate: Tollgate,
}

impl Rig {
    async fn start(mode: &Mode) -> Rig {
        let tollgate = Tollgate::start().await.unwrap();
        let (_, _, reader) = tollgate
            .account_with_token(json!({"name": "logs-a", "role": "viewer", "labelPolicy": POLICY}))
            .await;
        let (_, _, two) = tollgate
            .account_with_token(json!({"name": "logs-ab", "role": "viewer", "labelPolicy": TWO}))
            .await;
        let (_, _, free) = tollgate
            .account_with_token(json!({"name": "logs-all", "role": "viewer"}))
            .await;
        let upstream = RecordingUpstream::start().await.unwrap();
        let envoy = Envoy::start(
            &bootstrap(mode, tollgate.grpc_addr.port(), upstream.addr.port()).unwrap(),
        )
        .await
        .unwrap();
        Rig {
            envoy,
            upstream,
            reader,
            two,
            free,
            tenant: "default".into(),
            tollgate,
        }
    }

    async fn get(
        &self,
        token: &str,
        path: &str,
        headers: &[(&str, &str)],
        marker: &str,
    ) -> Through {
        let mut request = reqwest::Client::new()
            .get(format!("{}{path}", self.envoy.url()))
            .bearer_auth(token)
            .header(MARKER, marker);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    async fn post(&self, token: &str, path: &str, body: String, marker: &str) -> Through {
        send(
            reqwest::Client::new()
                .post(format!("{}{path}", self.envoy.url()))
                .bearer_auth(token)
                .header(MARKER, marker)
                .header("content-type", FORM)
                .body(body),
        )
        .await
    }

    fn arrived(&self, marker: &str, count: usize) -> Vec<Recorded> {
        let got = self.upstream.marked(marker);
        assert_eq!(
            got.len(),
            count,
            "{marker}: {count} request(s) reach the upstream, got {:?}\n{}",
            got.iter().map(|r| (&r.path, &r.query)).collect::<Vec<_>>(),
            self.envoy.log()
        );
        got
    }

    fn arrived_one(&self, marker: &str) -> Recorded {
        self.arrived(marker, 1).remove(0)
    }

    async fn stop(self) {
        self.tollgate.stop().await;
    }
}

/// The decoded values of `key` in a query string or form body.
fn values(text: &str, key: &str) -> Vec<String> {
    form::parse(text)
        .unwrap()
        .into_iter()
        .filter(|p| p.key == key)
        .map(|p| p.value)
        .collect()
}

fn the_value(text: &str, key: &str) -> String {
    let mut all = values(text, key);
    assert_eq!(all.len(), 1, "one {key} in {text}");
    all.remove(0)
}

/// Parses `query` back: every stream selector lies within `policy`.
fn confined(policy: &str, query: &str, selector_only: bool) {
    let policy = Policy::parse(policy).unwrap();
    tollgate_core::logql::check_within(&policy, "query", query, selector_only)
        .unwrap_or_else(|err| panic!("{query} arrived unconfined: {err}"));
}

fn policy_headers(recorded: &Recorded) -> Vec<String> {
    recorded
        .headers
        .get_all("x-prom-label-policy")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn assert_refused(reply: &Through, status: u16, reason: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.json["reason"].as_str()),
        (status, Some(reason)),
        "{what}: {}",
        reply.text
    );
}

/// (what, sent, what must arrive)
const ADVERSARIAL: &[(&str, &str, &str)] = &[
    (
        "a selector inside a line filter's string",
        r#"{app="x"} |= "{namespace=\"team-b\"}" != `}{namespace="team-b"}`"#,
        r#"{app="x", namespace="team-a"} |= "{namespace=\"team-b\"}" != `}{namespace="team-b"}`"#,
    ),
    (
        "nested metric queries",
        r#"sum by (app) (count_over_time({app="x"} |~ "}{" | json [5m])) / on(app) group_left sum by (app) (rate(({app="y"} | logfmt)[5m] offset 1h))"#,
        r#"sum by (app) (count_over_time({app="x", namespace="team-a"} |~ "}{" | json [5m])) / on(app) group_left sum by (app) (rate(({app="y", namespace="team-a"} | logfmt)[5m] offset 1h))"#,
    ),
    (
        "or",
        r#"rate({app="x"}[1m]) or rate({namespace=~"team-.*"}[1m])"#,
        r#"rate({app="x", namespace="team-a"}[1m]) or rate({namespace=~"team-.*", namespace="team-a"}[1m])"#,
    ),
    (
        "unless",
        r#"count_over_time({app="x"}[1m]) unless count_over_time({app!="x"}[1m])"#,
        r#"count_over_time({app="x", namespace="team-a"}[1m]) unless count_over_time({app!="x", namespace="team-a"}[1m])"#,
    ),
    (
        "label_format renaming the policy label",
        r#"{app="x"} | label_format namespace=app | label_format app="{{.namespace}}""#,
        r#"{app="x", namespace="team-a"} | label_format namespace=app | label_format app="{{.namespace}}""#,
    ),
    (
        "label_replace writing the policy label",
        r#"label_replace(sum(count_over_time({app="x"}[1m])), "namespace", "team-b", "", "")"#,
        r#"label_replace(sum(count_over_time({app="x", namespace="team-a"}[1m])), "namespace", "team-b", "", "")"#,
    ),
    (
        "a comment hiding nothing",
        "{app=\"x\"} # {namespace=\"team-b\"}\n|= \"y\"",
        "{app=\"x\", namespace=\"team-a\"} # {namespace=\"team-b\"}\n|= \"y\"",
    ),
];

async fn loki_reads(rig: &Rig, filter: bool) {
    let mode = if filter { "filter" } else { "ext_authz" };

    for (i, (what, sent, want)) in ADVERSARIAL.iter().enumerate() {
        let marker = format!("{mode}-adversarial-{i}");
        let path = format!(
            "/loki/api/v1/query_range?query={}&limit=10",
            form::encode(sent)
        );
        let reply = rig
            .get(
                &rig.reader,
                &path,
                &[(
                    "x-prom-label-policy",
                    "default:%7Bnamespace%3D~%22.%2A%22%7D",
                )],
                &marker,
            )
            .await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text);
        let got = rig.arrived_one(&marker);
        assert_eq!(got.path, "/loki/api/v1/query_range");
        let query = the_value(&got.query, "query");
        assert_eq!(query, *want, "{what}");
        confined(POLICY, &query, false);
        assert_eq!(
            the_value(&got.query, "limit"),
            "10",
            "{what}: the rest as sent"
        );
        assert_eq!(
            policy_headers(&got),
            [format!("{}:{}", rig.tenant, form::encode(POLICY))],
            "{what}: the policy header is ours, the client's is gone"
        );
        assert_eq!(got.header("x-scope-orgid"), rig.tenant);
        assert_eq!(got.header("authorization"), "");
    }

    // Refused before the upstream.
    for (i, (sent, status, reason)) in [
        (r#"{namespace="team-b"}"#, 403, "query_not_allowed"),
        (
            r#"rate({app="x"}[1m]) or rate({namespace!="team-a"}[1m])"#,
            403,
            "query_not_allowed",
        ),
        (r#"{app="x"} |= "unterminated"#, 400, "invalid_query"),
        (
            r#"{app="x"} | json {namespace="team-b"}"#,
            400,
            "invalid_query",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let marker = format!("{mode}-refused-{i}");
        let path = format!("/loki/api/v1/query?query={}", form::encode(sent));
        let reply = rig.get(&rig.reader, &path, &[], &marker).await;
        assert_refused(&reply, status, reason, sent);
        rig.arrived(&marker, 0);
    }
    let marker = format!("{mode}-format-query");
    let reply = rig
        .get(
            &rig.reader,
            "/loki/api/v1/format_query?query=%7Ba%3D%22b%22%7D",
            &[],
            &marker,
        )
        .await;
    assert_refused(&reply, 403, "labels_not_enforceable", "format_query");
    rig.arrived(&marker, 0);

    // Tail: a WebSocket upgrade, the query in the URL.
    let marker = format!("{mode}-tail");
    let path = format!(
        "/loki/api/v1/tail?query={}&delay_for=1",
        form::encode(r#"{app="x"} |= "{namespace=\"team-b\"}""#)
    );
    rig.get(
        &rig.reader,
        &path,
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        &marker,
    )
    .await;
    let got = rig.arrived_one(&marker);
    assert_eq!(got.path, "/loki/api/v1/tail");
    assert_eq!(got.header("upgrade"), "websocket", "still an upgrade");
    assert_eq!(
        the_value(&got.query, "query"),
        r#"{app="x", namespace="team-a"} |= "{namespace=\"team-b\"}""#
    );
    let marker = format!("{mode}-tail-conflict");
    let reply = rig
        .get(
            &rig.reader,
            "/loki/api/v1/tail?query=%7Bnamespace%3D%22team-b%22%7D",
            &[("connection", "Upgrade"), ("upgrade", "websocket")],
            &marker,
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    rig.arrived(&marker, 0);

    // Labels and series without a selector get the policy's; an OR policy in one label is one
    // regex union in the query and two X-Prom-Label-Policy values.
    let marker = format!("{mode}-labels");
    let reply = rig
        .get(
            &rig.two,
            "/loki/api/v1/label/app/values?start=1",
            &[],
            &marker,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = rig.arrived_one(&marker);
    assert_eq!(
        the_value(&got.query, "query"),
        r#"{namespace=~"team-a|team-b"}"#
    );
    let want: Vec<String> = ["team-a", "team-b"]
        .iter()
        .map(|ns| {
            format!(
                "{}:{}",
                rig.tenant,
                form::encode(&format!(r#"{{namespace="{ns}"}}"#))
            )
        })
        .collect();
    assert_eq!(
        policy_headers(&got),
        [want.join(",")],
        "one element per selector, one field line"
    );
    let marker = format!("{mode}-series");
    let path = format!(
        "/loki/api/v1/series?match[]={}&match[]={}",
        form::encode(r#"{app="x"}"#),
        form::encode(r#"{app="y"}"#)
    );
    let reply = rig.get(&rig.reader, &path, &[], &marker).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = rig.arrived_one(&marker);
    let selectors = values(&got.query, "match[]");
    assert_eq!(
        selectors,
        [
            r#"{app="x", namespace="team-a"}"#,
            r#"{app="y", namespace="team-a"}"#
        ],
        "both match[] kept and confined"
    );
    for selector in &selectors {
        confined(POLICY, selector, true);
    }

    // POST form bodies: the filter rewrites them, ext_authz checks them.
    let body = format!(
        "query={}&limit=5",
        form::encode(r#"sum(count_over_time({app="x"} |= "{namespace=\"team-b\"}" [5m]))"#)
    );
    let marker = format!("{mode}-post");
    let reply = rig
        .post(&rig.reader, "/loki/api/v1/query_range", body, &marker)
        .await;
    if filter {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let got = rig.arrived_one(&marker);
        let text = std::str::from_utf8(&got.body).unwrap();
        let query = the_value(text, "query");
        assert_eq!(
            query,
            r#"sum(count_over_time({app="x", namespace="team-a"} |= "{namespace=\"team-b\"}" [5m]))"#
        );
        confined(POLICY, &query, false);
        assert_eq!(got.header("content-length"), text.len().to_string());
    } else {
        assert_refused(&reply, 403, "query_not_allowed", "an unconfined body");
        rig.arrived(&marker, 0);
    }
    let within = format!(
        "query={}",
        form::encode(r#"{app="x", namespace="team-a"} |= "y""#)
    );
    let marker = format!("{mode}-post-within");
    let reply = rig
        .post(&rig.reader, "/loki/api/v1/query", within.clone(), &marker)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = rig.arrived_one(&marker);
    assert_eq!(
        &got.body[..],
        within.as_bytes(),
        "already confined: as sent"
    );

    // An unrestricted account: as sent, and no policy header, whatever the client sent.
    let marker = format!("{mode}-free");
    let reply = rig
        .get(
            &rig.free,
            "/loki/api/v1/query?query=%7Bapp%3D%22x%22%7D",
            &[(
                "x-prom-label-policy",
                "default:%7Bnamespace%3D%22team-a%22%7D",
            )],
            &marker,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = rig.arrived_one(&marker);
    assert_eq!(got.query, "query=%7Bapp%3D%22x%22%7D");
    assert!(
        policy_headers(&got).is_empty(),
        "a client's copy never arrives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_reads_are_confined_by_the_filter() {
    let rig = Rig::start(&Mode::Filter(FAST.into())).await;
    loki_reads(&rig, true).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_reads_are_confined_by_ext_authz() {
    let rig = Rig::start(&Mode::ExtAuthz).await;
    loki_reads(&rig, false).await;
    rig.stop().await;
}
