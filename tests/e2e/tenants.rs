//! Cross-tenant readers (issue 17) through the real Envoy, in both modes: a monitoring account
//! granted `dev` and `prod` names them in `X-Scope-OrgID` with Mimir's and Loki's federation
//! syntax (`a|b`), which reaches the upstream as sent; without the header its home tenant is
//! sent; a tenant it was not granted, a write naming another tenant, disagreeing tenant headers
//! and a single-tenant account naming another tenant are 403 and never reach the upstream.

use serde_json::json;
use tollgate_e2e::{Envoy, MARKER, Mode, RecordingUpstream, Tollgate, bootstrap, send};

const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;

async fn cross_tenant_reads(mode: Mode) {
    let tollgate = Tollgate::start().await.unwrap();
    let (_, _, monitoring) = tollgate
        .account_with_token(
            json!({"tenant": "ops", "name": "monitoring", "role": "editor",
            "readTenants": ["dev", "prod"]}),
        )
        .await;
    let (_, _, single) = tollgate
        .account_with_token(json!({"tenant": "ops", "name": "dashboards", "role": "viewer"}))
        .await;
    let upstream = RecordingUpstream::start().await.unwrap();
    let envoy =
        Envoy::start(&bootstrap(&mode, tollgate.grpc_addr.port(), upstream.addr.port()).unwrap())
            .await
            .unwrap();
    let http = reqwest::Client::new();
    let request = |token: &str,
                   method: reqwest::Method,
                   path: &str,
                   marker: &str,
                   tenants: &[(&str, &str)]| {
        let mut builder = http
            .request(method, format!("{}{path}", envoy.url()))
            .bearer_auth(token)
            .header(MARKER, marker);
        for (name, value) in tenants {
            builder = builder.header(*name, *value);
        }
        builder
    };
    let get = reqwest::Method::GET;
    let query = "/api/v1/query?query=up";

    // Allowed: the header reaches the upstream as sent; none sent means the home tenant.
    for (marker, sent, want) in [
        ("home", None, "ops"),
        ("named-home", Some("ops"), "ops"),
        ("one-granted", Some("dev"), "dev"),
        ("federated", Some("ops|dev|prod"), "ops|dev|prod"),
    ] {
        let headers: Vec<(&str, &str)> = sent.map(|v| ("x-scope-orgid", v)).into_iter().collect();
        let through = send(request(&monitoring, get.clone(), query, marker, &headers)).await;
        assert_eq!(through.status, 200, "{marker}: {}", through.text);
        let arrived = upstream.marked(marker);
        assert_eq!(arrived.len(), 1, "{marker}");
        assert_eq!(arrived[0].header("x-scope-orgid"), want, "{marker}");
        assert_eq!(
            arrived[0].header("x-tollgate-tenant"),
            "ops",
            "{marker}: identity stays home"
        );
    }
    // Loki's federation through the same header.
    let through = send(request(
        &monitoring,
        get.clone(),
        "/loki/api/v1/labels",
        "loki",
        &[("x-scope-orgid", "dev|prod")],
    ))
    .await;
    assert_eq!(through.status, 200, "{}", through.text);
    assert_eq!(
        upstream.marked("loki")[0].header("x-scope-orgid"),
        "dev|prod"
    );

    // Refused, and nothing arrives.
    let post = reqwest::Method::POST;
    for (marker, token, method, path, headers) in [
        (
            "not-granted",
            &monitoring,
            get.clone(),
            query,
            vec![("x-scope-orgid", "dev|staging")],
        ),
        (
            "empty-part",
            &monitoring,
            get.clone(),
            query,
            vec![("x-scope-orgid", "dev|")],
        ),
        (
            "write-elsewhere",
            &monitoring,
            post.clone(),
            "/loki/api/v1/push",
            vec![("x-scope-orgid", "dev")],
        ),
        (
            "disagree",
            &monitoring,
            get.clone(),
            query,
            vec![("x-scope-orgid", "dev"), ("x-forwarded-tenant-id", "prod")],
        ),
        (
            "single-tenant",
            &single,
            get.clone(),
            query,
            vec![("x-scope-orgid", "dev")],
        ),
    ] {
        let through = send(request(token, method, path, marker, &headers)).await;
        assert_eq!(through.status, 403, "{marker}: {}", through.text);
        assert_eq!(
            through.json["reason"], "tenant_mismatch",
            "{marker}: {}",
            through.text
        );
        assert!(
            upstream.marked(marker).is_empty(),
            "{marker} reached the upstream"
        );
    }
    drop(envoy);
    tollgate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_reads_through_the_filter() {
    cross_tenant_reads(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_reads_through_ext_authz() {
    cross_tenant_reads(Mode::ExtAuthz).await;
}
