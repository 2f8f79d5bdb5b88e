//! The admin REST API over real HTTP: every status code, tenant isolation, ceilings, tokens
//! shown once, regenerate, delete cascade, pagination, search and audit rows.

use crate::harness::TestServer;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use tollgate_server::admin::AdminConfig;

const POLICY: &str = r#"{kube_namespace="prometheus"}"#;

#[tokio::test]
async fn health_openapi_metrics_and_bootstrap_file() {
    let server = TestServer::start().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.token_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "bootstrap token file is private");
    assert!(server.admin_token.starts_with("tgsa_"));

    let health = server.call(None, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["liveTokens"], 1);

    let openapi = server.call(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(openapi.status, 200);
    for path in [
        "/api/v1/serviceaccounts",
        "/api/v1/serviceaccounts/{id}/tokens/{tokenId}/regenerate",
        "/api/v1/access-review",
        "/api/v1/audit",
        "/api/v1/whoami",
        "/api/v1/labelpolicies/validate",
    ] {
        assert!(
            openapi.json["paths"][path].is_object(),
            "openapi documents {path}"
        );
    }
    assert!(openapi.json["components"]["schemas"]["CreateAccountBody"].is_object());

    server
        .admin(Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    let metrics = server.call(None, Method::GET, "/metrics", None).await;
    assert!(
        metrics.text.contains("tollgate_live_tokens 1"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("tollgate_admin_responses_total{code=\"200\"}"),
        "{}",
        metrics.text
    );
    assert!(!metrics.text.contains(&server.admin_token));

    server
        .call(None, Method::GET, "/nope", None)
        .await
        .expect(404, "not_found");
    server
        .admin(Method::PUT, "/api/v1/audit", None)
        .await
        .expect(405, "method_not_allowed");
    server.stop().await;
}

/// Every request body's example in /openapi.json works as written, in the order a reader
/// would follow them: a role, an account with its first token, a second token, renamed, the
/// account's policy changed, the role widened, an access review, a policy validated.
#[tokio::test]
async fn the_documented_examples_work() {
    let server = TestServer::start().await;
    let openapi = server.call(None, Method::GET, "/openapi.json", None).await;
    let schemas = openapi.expect_status(200).json["components"]["schemas"].clone();
    let example = |body: &str| {
        let example = schemas[body]["example"].clone();
        assert!(example.is_object(), "{body} has an example");
        example
    };
    let role = example("CreateRoleBody");
    let role_name = role["name"].as_str().unwrap().to_owned();
    server
        .admin(Method::POST, "/api/v1/roles", Some(role))
        .await
        .expect(201, "");
    let account = server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(example("CreateAccountBody")),
        )
        .await
        .expect(201, "");
    assert!(
        account.json["token"].is_object(),
        "{}",
        account.json["name"]
    );
    let id = account.json["id"].as_i64().unwrap();
    let token = server
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(example("CreateTokenBody")),
        )
        .await
        .expect(201, "");
    let token_id = token.json["id"].as_i64().unwrap();
    let steps = [
        (
            Method::PATCH,
            format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            "RenameTokenBody",
        ),
        (
            Method::PATCH,
            format!("/api/v1/serviceaccounts/{id}"),
            "PatchAccountBody",
        ),
        (
            Method::PATCH,
            format!("/api/v1/roles/{role_name}"),
            "PatchRoleBody",
        ),
        (
            Method::POST,
            "/api/v1/access-review".to_owned(),
            "AccessReviewBody",
        ),
        (
            Method::POST,
            "/api/v1/labelpolicies/validate".to_owned(),
            "ValidatePolicyBody",
        ),
    ];
    for (method, path, body) in steps {
        let reply = server.admin(method, &path, Some(example(body))).await;
        assert_eq!(reply.status.as_u16(), 200, "{body}: {}", reply.text);
    }
    server.stop().await;
}

#[tokio::test]
async fn seed_workflow_and_token_secrecy() {
    let server = TestServer::start().await;
    let created = server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({
                "name": "ci-reader", "displayName": "CI reader", "description": "reads dashboards",
                "ownerEmail": "team@example.com", "role": "viewer", "labelPolicy": POLICY,
            })),
        )
        .await
        .expect(201, "");
    let id = created.json["id"].as_i64().unwrap();
    assert_eq!(created.json["tenant"], "default");
    assert_eq!(created.json["labelPolicy"], POLICY);
    assert_eq!(created.json["createdBy"], "default/bootstrap-admin");
    assert!(created.json.get("token").is_none());

    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let issued = server
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": "main", "expiresAt": expires})),
        )
        .await
        .expect(201, "");
    let token = issued.json["token"].as_str().unwrap().to_owned();
    let token_id = issued.json["id"].as_i64().unwrap();
    assert!(token.starts_with("tgsa_"));
    assert_eq!(
        issued.json["hint"].as_str().unwrap(),
        format!("tgsa_…{}", &token[token.len() - 4..])
    );

    let listed = server
        .admin(
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(listed.json["tokens"].as_array().unwrap().len(), 1);
    assert!(listed.json["tokens"][0].get("token").is_none());
    assert!(
        !listed.text.contains(&token[5..37]),
        "a listing never shows the value"
    );

    let review = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"account": "ci-reader", "method": "GET", "path": "/api/v1/query"})),
        )
        .await
        .expect(200, "allowed");
    assert_eq!(
        (
            review.json["allowed"].as_bool(),
            review.json["scope"].as_str()
        ),
        (Some(true), Some("metrics:read"))
    );
    let review = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"account": id, "method": "POST", "path": "/api/v1/write"})),
        )
        .await;
    assert_eq!(
        (review.json["allowed"].as_bool(), review.reason()),
        (Some(false), "missing_scope")
    );
    let review = server
        .admin(Method::POST, "/api/v1/access-review", Some(json!({"token": token, "method": "GET", "path": "/api/v1/query", "labels": "{kube_namespace=\"other\"}"})))
        .await;
    assert_eq!(
        (review.json["allowed"].as_bool(), review.reason()),
        (Some(false), "label_policy_violation")
    );
    let review = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"token": "tgsa_nope", "method": "GET", "path": "/api/v1/query"})),
        )
        .await;
    assert_eq!(review.reason(), "malformed_token");
    assert!(
        !review.text.contains("tgsa_nope"),
        "errors never echo a token"
    );

    // Regenerate: the old value stops working at once, the new one works.
    let new_token = server
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}/regenerate"),
            None,
        )
        .await
        .expect(200, "")
        .json["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, token);
    let review = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"token": token, "method": "GET", "path": "/api/v1/query"})),
        )
        .await;
    assert_eq!(review.reason(), "unknown_token");
    let review = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"token": new_token, "method": "GET", "path": "/api/v1/query"})),
        )
        .await;
    assert_eq!(review.reason(), "allowed");

    server
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await
        .expect(204, "");
    let review = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"token": new_token, "method": "GET", "path": "/api/v1/query"})),
        )
        .await;
    assert_eq!(review.reason(), "unknown_token", "revoked");
    server
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}"),
            None,
        )
        .await
        .expect(204, "");
    server
        .admin(Method::GET, &format!("/api/v1/serviceaccounts/{id}"), None)
        .await
        .expect(404, "not_found");

    let audit = server
        .admin(Method::GET, "/api/v1/audit?pageSize=100", None)
        .await
        .expect(200, "");
    for secret in [&token, &new_token, &server.admin_token] {
        assert!(
            !audit.text.contains(&secret[5..37]),
            "the audit log never holds a token"
        );
    }
    let actions: Vec<&str> = audit.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "bootstrap",
        "serviceaccount.create",
        "token.create",
        "token.regenerate",
        "token.delete",
        "serviceaccount.delete",
    ] {
        assert!(actions.contains(&action), "audit has {action}: {actions:?}");
    }
    let mine = server
        .admin(
            Method::GET,
            &format!("/api/v1/audit?target=serviceaccount/{id}"),
            None,
        )
        .await
        .expect(200, "");
    assert!(
        mine.json["totalCount"].as_u64().unwrap() >= 4,
        "{}",
        mine.text
    );
    server.stop().await;
}

#[tokio::test]
async fn authentication_failures_are_401() {
    let server = TestServer::start().await;
    // Long enough to be alive through the checks below on a loaded machine.
    let created = std::time::Instant::now();
    let (id, token) = server
        .account_with_token(json!({"name": "short", "role": "admin", "ttlSeconds": 5}))
        .await;
    let cases = [
        (None, "missing_token"),
        (Some("not-a-token"), "malformed_token"),
        (
            Some("tgsa_00000000000000000000000000000000_00000000"),
            "malformed_token",
        ),
    ];
    for (token, reason) in cases {
        let reply = server
            .call(token, Method::GET, "/api/v1/serviceaccounts", None)
            .await
            .expect(401, reason);
        assert_eq!(
            reply.headers["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
    }
    let unknown = tollgate_core::Token::generate().unwrap();
    server
        .call(
            Some(unknown.expose_secret()),
            Method::GET,
            "/api/v1/serviceaccounts",
            None,
        )
        .await
        .expect(401, "unknown_token");
    server
        .call(Some(&token), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    // Expiry is exclusive: at the expiry second the token is already dead.
    tokio::time::sleep(Duration::from_millis(6100).saturating_sub(created.elapsed())).await;
    server
        .call(Some(&token), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(401, "expired_token");
    // Deleting an account revokes its tokens.
    let (id2, token2) = server
        .account_with_token(json!({"name": "doomed", "role": "admin"}))
        .await;
    server
        .call(Some(&token2), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    server
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id2}"),
            None,
        )
        .await
        .expect(204, "");
    server
        .call(Some(&token2), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(401, "unknown_token");
    // Disabling an account stops its tokens; enabling restores them.
    let (id3, token3) = server
        .account_with_token(json!({"name": "paused", "role": "admin"}))
        .await;
    server
        .admin(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{id3}"),
            Some(json!({"disabled": true})),
        )
        .await
        .expect(200, "");
    server
        .call(Some(&token3), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(401, "unknown_token");
    server
        .admin(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{id3}"),
            Some(json!({"disabled": false})),
        )
        .await
        .expect(200, "");
    server
        .call(Some(&token3), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    let _ = id;
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400_naming_the_field() {
    let server = TestServer::start().await;
    let post = |body| server.admin(Method::POST, "/api/v1/serviceaccounts", Some(body));
    let cases = [
        (json!({"role": "viewer"}), "invalid_body", "name"),
        (json!({"name": "x", "role": "root"}), "unknown_role", "role"),
        (
            json!({"name": "x", "role": "viewer", "colour": "red"}),
            "invalid_body",
            "colour",
        ),
        (
            json!({"name": "Bad Name", "role": "viewer"}),
            "invalid_field",
            "name",
        ),
        (
            json!({"name": "x", "role": "viewer", "labelPolicy": "{ns=}"}),
            "invalid_field",
            "labelPolicy",
        ),
        (
            json!({"name": "x", "role": "viewer", "description": "d".repeat(401)}),
            "invalid_field",
            "description",
        ),
        (
            json!({"name": "x", "role": "viewer", "ownerEmail": "nobody"}),
            "invalid_field",
            "ownerEmail",
        ),
        (
            json!({"name": "x", "role": "viewer", "displayName": "a\u{0}b"}),
            "invalid_field",
            "displayName",
        ),
        (
            json!({"name": "x", "role": "viewer", "withToken": true, "expiresAt": "tomorrow"}),
            "invalid_field",
            "expiresAt",
        ),
        (
            json!({"name": "x", "role": "viewer", "withToken": true, "expiresAt": "2999-01-01T00:00:00Z", "ttlSeconds": 5}),
            "invalid_field",
            "exclusive",
        ),
    ];
    for (body, reason, field) in cases {
        let reply = post(body.clone()).await.expect(400, reason);
        assert!(
            reply.json["error"].as_str().unwrap().contains(field),
            "{body} -> {}",
            reply.text
        );
    }
    let raw = reqwest::Client::new()
        .post(format!("{}/api/v1/serviceaccounts", server.url))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    server
        .admin(Method::GET, "/api/v1/serviceaccounts/abc", None)
        .await
        .expect(400, "invalid_parameter");
    server
        .admin(Method::GET, "/api/v1/serviceaccounts?pageSize=0", None)
        .await
        .expect(400, "invalid_parameter");
    server
        .admin(Method::GET, "/api/v1/serviceaccounts?page=x", None)
        .await
        .expect(400, "invalid_parameter");
    server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"method": "GET", "path": "/"})),
        )
        .await
        .expect(400, "invalid_body");
    server.stop().await;
}

#[tokio::test]
async fn semantic_errors_are_422_and_conflicts_409() {
    let server = TestServer::start_with(AdminConfig {
        max_token_lifetime: Some(Duration::from_secs(86_400)),
        default_token_lifetime: Some(Duration::from_secs(3600)),
        ..AdminConfig::default()
    })
    .await;
    let (id, _) = server
        .account_with_token(json!({"name": "a", "role": "viewer"}))
        .await;
    let tokens = format!("/api/v1/serviceaccounts/{id}/tokens");
    let cases = [
        (
            json!({"name": "past", "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiry_in_past",
        ),
        (
            json!({"name": "long", "ttlSeconds": 86_401}),
            "expiry_too_late",
        ),
        (
            json!({"name": "far", "expiresAt": "2999-01-01T00:00:00Z"}),
            "expiry_too_late",
        ),
    ];
    for (body, reason) in cases {
        server
            .admin(Method::POST, &tokens, Some(body))
            .await
            .expect(422, reason);
    }
    let default = server
        .admin(Method::POST, &tokens, Some(json!({"name": "dflt"})))
        .await
        .expect(201, "");
    assert!(
        default.json["expiresAt"].is_string(),
        "the default lifetime applies"
    );

    let many = (0..11)
        .map(|i| format!("l{i}=\"v\""))
        .collect::<Vec<_>>()
        .join(", ");
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "m", "role": "viewer", "labelPolicy": format!("{{{many}}}")})),
        )
        .await
        .expect(422, "label_policy_limit");
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "d", "role": "viewer", "labelPolicy": "{a=\"1\", a=\"2\"}"})),
        )
        .await
        .expect(422, "label_policy_limit");
    // Regexes Go's RE2 (the upstream) reads differently from Tollgate's checker.
    for policy in [
        r#"{ns=~"[o&&p]ther"}"#,
        r#"{team!~"[[s]]ecret"}"#,
        r#"{ns=~"(?i)prod"}"#,
    ] {
        server
            .admin(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"name": "r", "role": "viewer", "labelPolicy": policy})),
            )
            .await
            .expect(422, "label_policy_regex");
    }

    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "a", "role": "viewer"})),
        )
        .await
        .expect(409, "already_exists");
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "b", "role": "viewer"})),
        )
        .await
        .expect(201, "");
    server
        .admin(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{id}"),
            Some(json!({"name": "b"})),
        )
        .await
        .expect(409, "already_exists");
    server
        .admin(Method::POST, &tokens, Some(json!({"name": "dflt"})))
        .await
        .expect(409, "already_exists");
    server
        .admin(
            Method::PATCH,
            &format!("{tokens}/999"),
            Some(json!({"name": "z"})),
        )
        .await
        .expect(404, "not_found");
    server
        .admin(Method::DELETE, &format!("{tokens}/999"), None)
        .await
        .expect(404, "not_found");
    server
        .admin(Method::GET, "/api/v1/serviceaccounts/999/tokens", None)
        .await
        .expect(404, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn tenant_isolation_scopes_and_ceilings() {
    let server = TestServer::start().await;
    let (_, acme_admin) = server
        .account_with_token(json!({"tenant": "acme", "name": "acme-admin", "role": "admin", "labelPolicy": "{team=\"a\"}"}))
        .await;
    let (other_id, other_admin) = server
        .account_with_token(json!({"tenant": "globex", "name": "globex-admin", "role": "admin"}))
        .await;
    let (_, viewer) = server.account_with_token(json!({"tenant": "acme", "name": "viewer", "role": "viewer", "labelPolicy": "{team=\"a\"}"})).await;
    let acme = Some(acme_admin.as_str());

    // Scopes: a viewer cannot use the admin API at all.
    server
        .call(Some(&viewer), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(403, "missing_scope");

    // Listing and audit are confined to the caller's tenant.
    let listed = server
        .call(acme, Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    let tenants: Vec<&str> = listed.json["serviceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "acme"]);
    let audit = server
        .call(acme, Method::GET, "/api/v1/audit", None)
        .await
        .expect(200, "");
    assert!(
        audit.json["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "acme"),
        "{}",
        audit.text
    );

    // Another tenant's account is out of reach on every endpoint.
    let other = format!("/api/v1/serviceaccounts/{other_id}");
    for (method, path, body) in [
        (Method::GET, other.clone(), None),
        (
            Method::PATCH,
            other.clone(),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, other.clone(), None),
        (Method::GET, format!("{other}/tokens"), None),
        (
            Method::POST,
            format!("{other}/tokens"),
            Some(json!({"name": "steal"})),
        ),
        (
            Method::POST,
            "/api/v1/serviceaccounts".into(),
            Some(
                json!({"tenant": "globex", "name": "x", "role": "viewer", "labelPolicy": "{team=\"a\"}"}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/access-review".into(),
            Some(json!({"account": other_id, "method": "GET", "path": "/api/v1/query"})),
        ),
        (
            Method::POST,
            "/api/v1/access-review".into(),
            Some(json!({"token": other_admin, "method": "GET", "path": "/api/v1/query"})),
        ),
    ] {
        server
            .call(acme, method.clone(), &path, body)
            .await
            .expect(403, "tenant_forbidden");
    }

    // The label-policy ceiling: a restricted admin may only grant within its policy.
    let create = |body| server.call(acme, Method::POST, "/api/v1/serviceaccounts", Some(body));
    create(json!({"name": "wide", "role": "viewer"}))
        .await
        .expect(403, "label_policy_ceiling");
    create(json!({"name": "other-team", "role": "viewer", "labelPolicy": "{team=\"b\"}"}))
        .await
        .expect(403, "label_policy_ceiling");
    let narrow = create(
        json!({"name": "narrow", "role": "viewer", "labelPolicy": "{team=\"a\", env=\"prod\"}"}),
    )
    .await
    .expect(201, "");
    assert_eq!(
        narrow.json["tenant"], "acme",
        "the caller's tenant is the default"
    );
    let narrow_id = narrow.json["id"].as_i64().unwrap();
    server
        .call(
            acme,
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{narrow_id}"),
            Some(json!({"labelPolicy": ""})),
        )
        .await
        .expect(403, "label_policy_ceiling");

    // An unrestricted account of the same tenant is above the restricted admin's ceiling.
    let unrestricted = server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"tenant": "acme", "name": "root", "role": "admin"})),
        )
        .await
        .expect(201, "");
    let root_id = unrestricted.json["id"].as_i64().unwrap();
    server
        .call(
            acme,
            Method::POST,
            &format!("/api/v1/serviceaccounts/{root_id}/tokens"),
            Some(json!({"name": "mine"})),
        )
        .await
        .expect(403, "label_policy_ceiling");

    // Failed attempts are audited with their reason.
    let audit = server
        .admin(
            Method::GET,
            "/api/v1/audit?actor=acme/acme-admin&pageSize=100",
            None,
        )
        .await
        .expect(200, "");
    let outcomes: Vec<&str> = audit.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"tenant_forbidden")
            && outcomes.contains(&"label_policy_ceiling")
            && outcomes.contains(&"ok"),
        "{outcomes:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn pagination_and_search() {
    let server = TestServer::start().await;
    for i in 0..12 {
        server
            .admin(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"name": format!("exporter-{i:02}"), "role": "writer"})),
            )
            .await
            .expect(201, "");
    }
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "grafana", "displayName": "Grafana dashboards", "role": "viewer"})),
        )
        .await
        .expect(201, "");
    let page = server
        .admin(
            Method::GET,
            "/api/v1/serviceaccounts?search=exporter&page=2&pageSize=5",
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(page.json["totalCount"], 12);
    let names: Vec<&str> = page.json["serviceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "exporter-05",
            "exporter-06",
            "exporter-07",
            "exporter-08",
            "exporter-09"
        ]
    );
    let last = server
        .admin(
            Method::GET,
            "/api/v1/serviceaccounts?search=exporter&page=3&pageSize=5",
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(last.json["serviceAccounts"].as_array().unwrap().len(), 2);
    let by_display = server
        .admin(
            Method::GET,
            "/api/v1/serviceaccounts?search=dashboards",
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(by_display.json["totalCount"], 1);
    let all = server
        .admin(Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    assert_eq!(
        (
            all.json["totalCount"].as_u64(),
            all.json["pageSize"].as_u64()
        ),
        (Some(14), Some(50))
    );
    server.stop().await;
}

#[tokio::test]
async fn token_list_pages_with_the_expiring_filter() {
    let server = TestServer::start().await;
    let (id, _) = server
        .account_with_token(json!({"name": "ci", "role": "viewer", "tokenName": "t00"}))
        .await;
    let tokens = format!("/api/v1/serviceaccounts/{id}/tokens");
    // t00 never expires; t01..t06 expire in 1..6 days.
    for i in 1..7 {
        server
            .admin(
                Method::POST,
                &tokens,
                Some(json!({"name": format!("t{i:02}"), "ttlSeconds": i * 86_400})),
            )
            .await
            .expect(201, "");
    }
    let names = |reply: &crate::harness::Reply| -> Vec<String> {
        reply.json["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = server
        .admin(Method::GET, &format!("{tokens}?page=2&pageSize=3"), None)
        .await
        .expect(200, "");
    assert_eq!(
        (
            &page.json["totalCount"],
            &page.json["page"],
            &page.json["pageSize"]
        ),
        (&json!(7), &json!(2), &json!(3))
    );
    assert_eq!(names(&page), ["t03", "t04", "t05"]);
    let defaults = server
        .admin(Method::GET, &tokens, None)
        .await
        .expect(200, "");
    assert_eq!(
        (&defaults.json["page"], &defaults.json["pageSize"]),
        (&json!(1), &json!(50)),
        "the account list's defaults"
    );
    // The filter is applied before paging: the total counts what it keeps.
    let expiring = server
        .admin(
            Method::GET,
            &format!("{tokens}?expiringWithin=4d&pageSize=3&page=2"),
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(expiring.json["totalCount"], 4);
    assert_eq!(names(&expiring), ["t04"]);
    for bad in ["page=0", "pageSize=0", "pageSize=1001", "pageSize=x"] {
        let reply = server
            .admin(Method::GET, &format!("{tokens}?{bad}"), None)
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{bad}: {}", reply.text);
    }
    let openapi = server.call(None, Method::GET, "/openapi.json", None).await;
    let params: Vec<&str> =
        openapi.json["paths"]["/api/v1/serviceaccounts/{id}/tokens"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
    for name in ["expiringWithin", "page", "pageSize"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn writes_survive_a_restart() {
    let server = TestServer::start().await;
    let (_, token) = server
        .account_with_token(json!({"name": "durable", "role": "admin"}))
        .await;
    let config_path = server.store_path.clone();
    let dir_token = server.admin_token.clone();
    // Reopen the same store in a second server while the first is stopped.
    let dir = config_path.parent().unwrap().to_owned();
    server.stop_keep_dir().await;
    let config = tollgate_server::config::ServeConfig {
        store: format!("sqlite://{}", config_path.display()),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token_file: Some(dir.join("second-bootstrap")),
        admin: AdminConfig::default(),
        routes: tollgate_core::RouteTable::default(),
        write_limits: Default::default(),
    };
    let second = tollgate_server::serve::Server::bind(&config)
        .await
        .unwrap()
        .spawn();
    assert!(
        !dir.join("second-bootstrap").exists(),
        "bootstrap runs once per store"
    );
    let url = format!("http://{}", second.http_addr);
    for t in [&token, &dir_token] {
        let status = reqwest::Client::new()
            .get(format!("{url}/api/v1/serviceaccounts"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    second.stop().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `?name=` finds an account by its exact name, in every tenant the caller sees: names and
/// display names that merely contain it do not match, and a tenant admin sees only its own.
#[tokio::test]
async fn list_by_exact_name() {
    let server = TestServer::start().await;
    for body in [
        json!({"name": "a", "role": "viewer"}),
        json!({"name": "ab", "role": "viewer"}),
        json!({"name": "ba", "role": "viewer", "displayName": "a"}),
        json!({"tenant": "acme", "name": "a", "role": "viewer"}),
    ] {
        server
            .admin(Method::POST, "/api/v1/serviceaccounts", Some(body))
            .await
            .expect(201, "");
    }
    let named = |query: &'static str| {
        let server = &server;
        async move {
            let reply = server
                .admin(
                    Method::GET,
                    &format!("/api/v1/serviceaccounts?{query}"),
                    None,
                )
                .await
                .expect(200, "");
            let found: Vec<(String, String)> = reply.json["serviceAccounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["tenant"].as_str().unwrap().to_owned(),
                        a["name"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (reply.json["totalCount"].as_u64().unwrap(), found)
        }
    };
    let pair = |tenant: &str, name: &str| (tenant.to_owned(), name.to_owned());
    assert_eq!(
        named("name=a").await,
        (2, vec![pair("default", "a"), pair("acme", "a")])
    );
    assert_eq!(
        named("search=a").await.0,
        5,
        "search still matches substrings"
    );
    assert_eq!(named("name=ab").await, (1, vec![pair("default", "ab")]));
    assert_eq!(named("name=b").await, (0, vec![]));
    // Paged like any list.
    assert_eq!(
        named("name=a&pageSize=1&page=2").await,
        (2, vec![pair("acme", "a")])
    );
    server
        .admin(Method::GET, "/api/v1/serviceaccounts?name=a&search=a", None)
        .await
        .expect(400, "invalid_parameter");

    // A tenant admin sees its tenant's account only.
    let (_, acme_admin) = server
        .account_with_token(json!({"tenant": "acme", "name": "acme-admin", "role": "admin"}))
        .await;
    let reply = server
        .call(
            Some(&acme_admin),
            Method::GET,
            "/api/v1/serviceaccounts?name=a",
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(reply.json["totalCount"], 1);
    assert_eq!(reply.json["serviceAccounts"][0]["tenant"], "acme");

    let openapi = server.call(None, Method::GET, "/openapi.json", None).await;
    let params = openapi.json["paths"]["/api/v1/serviceaccounts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(params.contains(&"name".to_owned()), "{params:?}");
    server.stop().await;
}

#[tokio::test]
async fn whoami_answers_the_callers_own_identity() {
    let server = TestServer::start().await;
    let (id, token) = server
        .account_with_token(json!({"tenant": "acme", "name": "acme-admin", "displayName": "Acme admin", "role": "admin", "labelPolicy": POLICY}))
        .await;
    let me = server
        .call(Some(&token), Method::GET, "/api/v1/whoami", None)
        .await
        .expect(200, "");
    assert_eq!(me.json["account"]["id"], id);
    assert_eq!(me.json["account"]["tenant"], "acme");
    assert_eq!(me.json["account"]["displayName"], "Acme admin");
    assert_eq!(me.json["account"]["labelPolicy"], POLICY);
    assert_eq!(me.json["account"]["allTenants"], false);
    assert_eq!(
        me.json["token"]["name"], "default",
        "the token of this request"
    );
    assert!(
        !me.text.contains(&token),
        "metadata only, never the value: {}",
        me.text
    );
    let scopes = me.json["scopes"].as_array().unwrap();
    assert!(scopes.contains(&json!("accounts:write")), "{}", me.text);

    let boot = server
        .admin(Method::GET, "/api/v1/whoami", None)
        .await
        .expect(200, "");
    assert_eq!(boot.json["account"]["allTenants"], true);

    // A telemetry-only token may not read accounts, itself included: the console says so.
    let (_, viewer) = server
        .account_with_token(json!({"name": "grafana", "role": "viewer"}))
        .await;
    server
        .call(Some(&viewer), Method::GET, "/api/v1/whoami", None)
        .await
        .expect(403, "missing_scope");
    server
        .call(None, Method::GET, "/api/v1/whoami", None)
        .await
        .expect(401, "missing_token");
    server.stop().await;
}

#[tokio::test]
async fn label_policies_are_validated_by_the_servers_parser() {
    let server = TestServer::start().await;
    let validate = |policy: &str| {
        server.admin(
            Method::POST,
            "/api/v1/labelpolicies/validate",
            Some(json!({ "policy": policy })),
        )
    };
    let ok = validate(r#"{ env =~ "prod|staging", team="a" } or {team="b"}"#)
        .await
        .expect_status(200);
    assert_eq!(ok.json["valid"], true, "{}", ok.text);
    assert_eq!(
        ok.json["canonical"],
        r#"{env=~"prod|staging", team="a"} or {team="b"}"#
    );
    assert_eq!(
        ok.json["selectors"][0]["matchers"][0],
        json!({"name": "env", "op": "=~", "value": "prod|staging"})
    );
    assert_eq!(ok.json["withinCeiling"], true);
    assert_eq!(ok.json["limits"]["maxSelectors"], 8);
    assert_eq!(ok.json["limits"]["maxMatchersPerSelector"], 10);

    let unrestricted = validate("  ").await.expect_status(200);
    assert_eq!(
        (
            &unrestricted.json["valid"],
            &unrestricted.json["canonical"],
            &unrestricted.json["selectors"]
        ),
        (&json!(true), &json!(""), &json!([]))
    );

    // (policy, reason, byte position, column, why): the same refusals an account write gets.
    type Case<'a> = (&'a str, &'a str, Option<u64>, Option<u64>, &'a str);
    let cases: &[Case] = &[
        (
            r#"{kube_namespace="prometheus" env"#,
            "invalid_field",
            Some(29),
            Some(30),
            "syntax, placed",
        ),
        (
            r#"{é="x", a"#,
            "invalid_field",
            None,
            None,
            "bad label name",
        ),
        (
            r#"{ns="€" x"#,
            "invalid_field",
            Some(10),
            Some(9),
            "the column counts characters, the position bytes",
        ),
        (
            r#"{a="b"} or {}"#,
            "invalid_field",
            Some(11),
            Some(12),
            "empty selector",
        ),
        (
            r#"{a="b""#,
            "invalid_field",
            Some(6),
            Some(7),
            "unterminated",
        ),
        (
            r#"{a=~"(?i)x"}"#,
            "label_policy_regex",
            None,
            None,
            "a regex RE2 reads differently",
        ),
        (
            r#"{a="x", a="y"}"#,
            "label_policy_limit",
            None,
            None,
            "duplicate label name",
        ),
        (
            r#"{a="x", a!="x"}"#,
            "label_policy_limit",
            None,
            None,
            "duplicate names are checked before emptiness",
        ),
    ];
    for (policy, reason, position, column, why) in cases {
        let reply = validate(policy).await.expect_status(200);
        assert_eq!(reply.json["valid"], false, "{why}: {}", reply.text);
        assert_eq!(reply.json["reason"], *reason, "{why}: {}", reply.text);
        assert_eq!(
            reply.json["position"],
            json!(position),
            "{why}: {}",
            reply.text
        );
        assert_eq!(reply.json["column"], json!(column), "{why}: {}", reply.text);
        assert!(
            reply.json["error"]
                .as_str()
                .unwrap()
                .starts_with("labelPolicy: "),
            "{why}: {}",
            reply.text
        );
        // The same text, written: refused with the same reason.
        let write = server
            .admin(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"name": "probe", "role": "viewer", "labelPolicy": policy})),
            )
            .await;
        assert_eq!(write.reason(), *reason, "{why}: {}", write.text);
    }

    // Within the caller's own policy or not.
    let (_, scoped) = server
        .account_with_token(json!({"name": "ns-admin", "role": "admin", "labelPolicy": POLICY}))
        .await;
    for (policy, within) in [
        (r#"{kube_namespace="prometheus", job="x"}"#, true),
        (r#"{kube_namespace="other"}"#, false),
        ("", false),
    ] {
        let reply = server
            .call(
                Some(&scoped),
                Method::POST,
                "/api/v1/labelpolicies/validate",
                Some(json!({ "policy": policy })),
            )
            .await
            .expect_status(200);
        assert_eq!(
            reply.json["withinCeiling"], within,
            "{policy}: {}",
            reply.text
        );
        assert_eq!(reply.json["ceiling"], POLICY);
    }

    // A token-shaped value is not echoed back.
    let secret = server.admin_token.clone();
    let echoed = validate(&format!(r#"{{a="{secret}" x"#))
        .await
        .expect_status(200);
    assert!(!echoed.text.contains(&secret), "{}", echoed.text);
    validate_body_errors(&server).await;
    server.stop().await;
}

async fn validate_body_errors(server: &TestServer) {
    server
        .admin(
            Method::POST,
            "/api/v1/labelpolicies/validate",
            Some(json!({"policy": 1})),
        )
        .await
        .expect(400, "invalid_body");
    server
        .admin(
            Method::POST,
            "/api/v1/labelpolicies/validate",
            Some(json!({"policy": "", "extra": true})),
        )
        .await
        .expect(400, "invalid_body");
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let server = TestServer::start().await;
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/console", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/console/");
    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let reply = server.call(None, Method::GET, path, None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.headers["content-type"], content_type, "{path}");
        assert_eq!(
            reply.headers["content-security-policy"],
            tollgate_server::console::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert_eq!(reply.headers["referrer-policy"], "no-referrer");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
        assert_eq!(reply.headers["cache-control"], "no-cache");
        let etag = reply.headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{path}: {etag}");
        let again = server
            .http_get_with(path, &[("if-none-match", etag.as_str())])
            .await;
        assert_eq!(again, 304, "{path}");
    }
    let missing = server
        .call(None, Method::GET, "/console/nope.js", None)
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers.contains_key("content-security-policy"));
    server.stop().await;
}
