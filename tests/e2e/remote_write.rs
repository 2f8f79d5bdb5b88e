//! Issue 14 (remote write 1.0): a label-restricted writer's series carry its policy in the body
//! itself. A real Prometheus (Debian's) scrapes series without the policy's label and
//! remote-writes them through Envoy, with its bearer token in `remote_write.authorization`, to a
//! second Prometheus (the remote-write receiver). Filter mode forces the label on every series;
//! ext_authz mode accepts a writer whose `external_labels` already carry it and refuses one
//! without. A hand-built request for another namespace is 403 in both modes and never arrives.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_e2e::{
    Envoy, MetricsTarget, Mode, Prometheus, Tollgate, bootstrap, remote_write, send,
};

const POLICY: &str = r#"{kube_namespace="team-a"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const SEED: &str = "\
# TYPE rw_probe gauge
rw_probe{app=\"a\"} 1
rw_probe{app=\"b\"} 2
";

/// The `remote_write:` section of a Prometheus sending through Envoy with `token`.
fn remote_write_config(envoy: &Envoy, token: &str) -> String {
    format!(
        "remote_write:\n- url: {}/api/v1/write\n  authorization:\n    credentials: {token}\n  queue_config:\n    batch_send_deadline: 200ms\n    min_backoff: 100ms\n    max_backoff: 500ms\n",
        envoy.url()
    )
}

/// The label sets of `rw_probe` series the receiver holds.
async fn received(receiver: &Prometheus, selector: &str) -> Vec<Value> {
    let reply: Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/series", receiver.addr))
        .query(&[("match[]", selector)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["data"].as_array().cloned().unwrap_or_default()
}

async fn until_received(receiver: &Prometheus, selector: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = received(receiver, selector).await;
        if series.len() >= count {
            return series;
        }
        assert!(
            Instant::now() < deadline,
            "{selector}: {} of {count} series after 30 s: {series:?}\n{}",
            series.len(),
            receiver.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn remote_write_through(mode: Mode) {
    let filter_mode = matches!(mode, Mode::Filter(_));
    let tollgate = Tollgate::start().await.unwrap();
    let (_, _, writer) = tollgate
        .account_with_token(json!({"name": "collector", "role": "writer", "labelPolicy": POLICY}))
        .await;
    let receiver = Prometheus::start(&[]).await.unwrap();
    let envoy =
        Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), receiver.addr.port()).unwrap())
            .await
            .unwrap();
    let target = MetricsTarget::start(SEED).await.unwrap();

    // A hand-built request for another namespace: refused, and never arrives.
    let forged = remote_write::body(
        &[&[("__name__", "rw_forged"), ("kube_namespace", "team-b")]],
        1.0,
    );
    let reply = send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/write", envoy.url()))
            .bearer_auth(&writer)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .body(forged),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json["reason"].as_str()),
        (403, Some("label_policy_violation")),
        "{}",
        reply.text
    );
    assert!(
        !reply.text.contains("team-b"),
        "names no other value: {}",
        reply.text
    );
    // Not remote write 1.0: 415, never passed on.
    let reply = send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/write", envoy.url()))
            .bearer_auth(&writer)
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.text);

    if filter_mode {
        // Prometheus sends series without the label: the filter forces it on every one.
        let sender =
            Prometheus::start_configured(&[target.addr], "", &remote_write_config(&envoy, &writer))
                .await
                .unwrap();
        let series = until_received(&receiver, "rw_probe", 2).await;
        for s in &series {
            assert_eq!(s["kube_namespace"], "team-a", "forced: {s}");
        }
        drop(sender);
    } else {
        // ext_authz checks: a sender whose external_labels carry the policy is accepted...
        let sender = Prometheus::start_configured(
            &[target.addr],
            "  external_labels:\n    kube_namespace: team-a\n",
            &remote_write_config(&envoy, &writer),
        )
        .await
        .unwrap();
        let series = until_received(&receiver, "rw_probe", 2).await;
        for s in &series {
            assert_eq!(s["kube_namespace"], "team-a", "as sent: {s}");
        }
        drop(sender);
        // ...and one without is refused: its series never arrive.
        let bare = MetricsTarget::start("# TYPE rw_bare gauge\nrw_bare 1\n")
            .await
            .unwrap();
        let sender =
            Prometheus::start_configured(&[bare.addr], "", &remote_write_config(&envoy, &writer))
                .await
                .unwrap();
        sender.wait_for("rw_bare", 1).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            received(&receiver, "rw_bare").await.is_empty(),
            "refused writes never arrive"
        );
        drop(sender);
    }
    assert!(
        received(&receiver, "rw_forged").await.is_empty(),
        "the forged series never arrives"
    );
    tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_is_forced_through_the_filter() {
    remote_write_through(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_is_checked_through_ext_authz() {
    remote_write_through(Mode::ExtAuthz).await;
}
