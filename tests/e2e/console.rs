//! Issue 16, the web console, in a real browser: Debian's headless Chromium driven by selenium
//! (tests/clients/console_ui.py) through the console the server serves on its admin port. The
//! script does what a person would (sign in, page and search 120 accounts, create an account
//! with a label policy, tokens, regenerate, rename, revoke, edit, disable, delete, "can I?",
//! audit); this test then checks the outcome through the admin API, and uses the token the
//! console showed through Envoy with the wasm filter.
//!
//! `CONSOLE_SCREENSHOTS=docs` also writes the screenshots (1280x800) into `docs/` for the
//! README (`make console-screenshots`).

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_e2e::{
    ConsoleTokens, EchoUpstream, Envoy, Mode, Tollgate, bootstrap, console_python, console_ui,
    repo_root, send,
};

const POLICY: &str = r#"{kube_namespace="prometheus"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const XSS: &str =
    r#"<img src=x id=xss-img onerror="window.__xss=1"><script>window.__xss=2</script>"'&amp;"#;

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that no storage the page can reach holds `secret`, and that no request URL did.
fn assert_not_stored(storage: &Value, secret: &str, what: &str) {
    let url = storage["url"].as_str().unwrap_or_default();
    assert!(!url.contains(secret), "{what}: token in the URL {url}");
    for place in ["local", "cookies", "requests"] {
        assert!(
            strings(&storage[place]).iter().all(|s| !s.contains(secret)),
            "{what}: token in {place}: {}",
            storage[place]
        );
    }
    assert!(
        strings(&storage["local"]).is_empty() && strings(&storage["cookies"]).is_empty(),
        "{what}: nothing in localStorage or cookies: {storage}"
    );
}

#[tokio::test]
async fn console_workflows_in_a_real_browser() {
    let Some(python) = console_python().unwrap() else {
        return;
    };
    let tollgate = Tollgate::start().await.unwrap();
    let echo = EchoUpstream::start().await.unwrap();
    let envoy = Envoy::start(
        &bootstrap(
            &Mode::Filter(FAST.into()),
            tollgate.grpc_addr.port(),
            echo.addr.port(),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();

    // The security headers of every console file, and the API untouched by them.
    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let reply = send(http.get(format!("{}{path}", tollgate.url))).await;
        assert_eq!(reply.status, 200, "{path}");
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(header("etag").starts_with('"'), "{path}: a strong ETag");
        let again = http
            .get(format!("{}{path}", tollgate.url))
            .header("if-none-match", header("etag"))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}: revalidated by its ETag");
    }

    // 120 accounts to page and search through, and a viewer (no accounts scopes).
    for i in 0..120 {
        tollgate
            .admin(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"name": format!("bulk-{i:03}"), "displayName": format!("Bulk #{i:03}"), "role": "viewer"})),
            )
            .await;
    }
    let (_, _, viewer) = tollgate
        .account_with_token(json!({"name": "grafana-viewer", "role": "viewer"}))
        .await;
    let (_, _, tenant_admin) = tollgate
        .account_with_token(json!({"tenant": "acme", "name": "acme-admin", "role": "admin"}))
        .await;
    tollgate
        .admin(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "auditor", "scopes": ["accounts:read"]})),
        )
        .await;
    let (_, _, reader) = tollgate
        .account_with_token(json!({"name": "auditor-1", "role": "auditor"}))
        .await;

    let screenshots = repo_root().join("target/console-screenshots");
    let docs = std::env::var("CONSOLE_SCREENSHOTS")
        .is_ok_and(|v| v == "docs")
        .then(|| repo_root().join("docs"));
    if let Some(docs) = &docs {
        std::fs::create_dir_all(docs).unwrap();
    }
    let started = std::time::Instant::now();
    let report = console_ui(
        &python,
        &tollgate.url,
        ConsoleTokens {
            admin: &tollgate.admin_token,
            viewer: &viewer,
            tenant_admin: &tenant_admin,
            reader: &reader,
        },
        &screenshots,
        docs.as_deref(),
    )
    .await
    .unwrap();
    eprintln!(
        "console_ui.py: {:.1} s in all, {} s of browser steps",
        started.elapsed().as_secs_f64(),
        report["seconds"]
    );
    let admin = &tollgate.admin_token;

    // The viewer is refused with a message that says why, and nothing of it is kept.
    let refusal = report["viewer"]["message"].as_str().unwrap();
    assert!(
        refusal.contains("accounts:read") && refusal.contains("missing_scope"),
        "{refusal}"
    );
    assert_eq!(report["viewer"]["signed_in"], false);
    assert!(strings(&report["viewer"]["storage"]["session"]).is_empty());
    assert_not_stored(&report["viewer"]["storage"], &viewer, "viewer");

    // The admin's identity; its token only in sessionStorage, and never in a URL.
    assert_eq!(
        report["identity"],
        json!({"name": "Bootstrap admin", "tenant": "default", "role": "admin", "all_tenants": true})
    );
    let session = strings(&report["signed_in_storage"]["session"]);
    assert_eq!(session, vec![format!("tollgate.token={admin}")]);
    for storage in ["signed_in_storage", "after_tokens_storage"] {
        assert_not_stored(&report[storage], admin, storage);
    }
    assert!(strings(&report["signed_out_storage"]["session"]).is_empty());

    // Paging and search.
    assert_eq!(report["accounts_pager"], "Page 1 of 7 · 124 accounts");
    assert_eq!(report["tenant_column"], "table-cell", "all-tenant admin");
    let page2 = strings(&report["accounts_page2"]);
    assert_eq!(page2.len(), 20);
    assert_eq!(page2[0], "bulk-019");
    let found = strings(&report["search"]["rows"]);
    let want: Vec<String> = (110..120).map(|i| format!("bulk-{i}")).collect();
    assert_eq!(found, want);
    assert_eq!(
        strings(&report["roles"]),
        ["viewer", "editor", "admin", "writer", "auditor"],
        "the role choices are the server's (GET /api/v1/roles): built-ins, then the tenant's own"
    );

    // The policy was checked by the server as it was typed, errors placed.
    let policy_error = report["policy_error"]["text"].as_str().unwrap();
    assert!(
        policy_error.contains("syntax error at byte 29") && policy_error.contains("invalid_field"),
        "{policy_error}"
    );
    assert_eq!(
        report["policy_error"]["caret"],
        format!("{{kube_namespace=\"prometheus\" env\n{}^", " ".repeat(29)),
        "the caret under column 30"
    );
    assert_eq!(report["policy_error"]["column"], "at column 30");
    assert!(
        report["policy_check"]
            .as_str()
            .unwrap()
            .contains("kube_namespace is \"prometheus\""),
        "{}",
        report["policy_check"]
    );

    // The account as the API has it: what the form said, the XSS text stored and shown as text.
    let id = report["account_id"].as_i64().unwrap();
    let account = tollgate
        .admin(Method::GET, &format!("/api/v1/serviceaccounts/{id}"), None)
        .await;
    assert_eq!(account["name"], "prom-reader");
    assert_eq!(account["displayName"], "Prometheus reader (CI)", "edited");
    assert_eq!(account["labelPolicy"], POLICY);
    assert_eq!(account["role"], "viewer");
    assert_eq!(account["ownerEmail"], "sre@example.com");
    assert_eq!(account["description"], XSS);
    assert_eq!(report["xss"]["text"], XSS, "shown verbatim");
    assert_eq!(report["xss"]["injected"], 0, "no element injected");
    assert_eq!(report["xss"]["flag"], Value::Null, "no script ran");
    assert_eq!(
        report["duplicate_error"],
        "service account \"prom-reader\" already exists already_exists"
    );
    assert_eq!(report["page_holds_a_token"], false);

    // Tokens: names and expiries as chosen; revoked, renamed and regenerated as clicked.
    let tokens = tollgate
        .admin(
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            None,
        )
        .await["tokens"]
        .clone();
    let by_name = |name: &str| -> Value {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let names: Vec<&str> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci", "grafana", "backup-2026", "dated"]);
    assert_eq!(strings(&report["tokens_after"]), names);
    assert_eq!(report["revoke_cancel_kept"], true);
    let days = |token: &Value| {
        let at = |field: &str| {
            time::OffsetDateTime::parse(
                token[field].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        (at("expiresAt") - at("createdAt")).whole_days()
    };
    assert_eq!(days(&by_name("ci")), 30);
    assert_eq!(days(&by_name("grafana")), 90);
    assert_eq!(days(&by_name("backup-2026")), 365);
    let listed = report["tokens_listed"].as_array().unwrap();
    let expiring: Vec<&str> = listed
        .iter()
        .filter(|row| row["expiring"] == true)
        .map(|row| row["name"].as_str().unwrap())
        .collect();
    assert_eq!(expiring, ["dated"], "only the 3-day token is highlighted");
    assert_eq!(
        listed
            .iter()
            .find(|row| row["name"] == "forever")
            .map(|row| row["cells"][3].clone()),
        Some(json!("never"))
    );

    // Through Envoy: the 30-day token the console showed once works, inside its policy.
    let values = &report["tokens"];
    let through = |token: String| {
        let request = http
            .get(format!("{}/api/v1/query", envoy.url()))
            .query(&[("query", "up")])
            .bearer_auth(token);
        send(request)
    };
    let allowed = through(values["ci"].as_str().unwrap().to_owned()).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(
        allowed.json["headers"]["x-tollgate-account"][0],
        "prom-reader"
    );
    assert!(
        allowed.json["query"]
            .as_str()
            .unwrap()
            .contains("kube_namespace"),
        "confined to the policy: {}",
        allowed.json
    );
    // Regenerated: the old value is dead, the new one works. Revoked: dead.
    assert_eq!(
        through(values["grafana"].as_str().unwrap().to_owned())
            .await
            .status,
        401,
        "the value before regeneration"
    );
    assert_eq!(
        through(values["grafana_new"].as_str().unwrap().to_owned())
            .await
            .status,
        200
    );
    assert_eq!(
        through(values["forever"].as_str().unwrap().to_owned())
            .await
            .status,
        401,
        "revoked"
    );

    // "Can I?" answered with its reason.
    assert_eq!(report["review"]["GET /api/v1/query"]["verdict"], "Allowed");
    assert_eq!(report["review"]["POST /api/v1/write"]["verdict"], "Denied");
    assert_eq!(
        report["review"]["POST /api/v1/write"]["reason"],
        "missing_scope"
    );

    // Disabled, then deleted: gone, and the audit log has every step.
    let doomed = report["doomed"]["id"].as_i64().unwrap();
    assert_eq!(report["doomed"]["kept_on_cancel"], true);
    let gone = http
        .get(format!("{}/api/v1/serviceaccounts/{doomed}", tollgate.url))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let audit = tollgate
        .admin(
            Method::GET,
            &format!("/api/v1/audit?target=serviceaccount/{doomed}"),
            None,
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["serviceaccount.delete", "serviceaccount.update"]);
    // Its creation is recorded by name (the id did not exist yet).
    let created = tollgate
        .admin(
            Method::GET,
            "/api/v1/audit?target=serviceaccount/default/doomed",
            None,
        )
        .await;
    assert_eq!(created["entries"][0]["action"], "serviceaccount.create");
    assert!(
        report["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row[3] == "token.regenerate"),
        "{}",
        report["audit"]
    );

    // A tenant admin sees its tenant alone, without the tenant column.
    assert_eq!(
        report["tenant_admin"],
        json!({"tenant": "acme", "all_tenants": false, "rows": ["acme-admin"], "tenant_column": "none"})
    );

    // An auditor (custom role, accounts:read alone) gets the console read-only: a note, and no
    // control that would write.
    assert_eq!(
        report["reader"],
        json!({"role": "auditor", "note": true, "new_account": false, "write_controls": 0})
    );

    // Readable on a narrow window: the page itself does not scroll sideways.
    let narrow = &report["narrow"];
    assert!(
        narrow["scroll"].as_i64().unwrap() <= narrow["width"].as_i64().unwrap(),
        "{narrow}"
    );
    // The only console errors are the API's refusals the test provoked.
    for message in strings(&report["console_errors"]) {
        assert!(
            ["403 (Forbidden)", "404 (Not Found)", "409 (Conflict)"]
                .iter()
                .any(|status| message.contains(status)),
            "browser console: {message}"
        );
    }
    drop(envoy);
    tollgate.stop().await;
}
