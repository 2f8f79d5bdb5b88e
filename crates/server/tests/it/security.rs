//! Attacks on the admin API and the Check: tenant isolation on every endpoint, no escalation past
//! the caller's role and label policy, look-alike names, control characters, expiry at the exact
//! second, oversized bodies. Each answer is a clear 4xx (never a 5xx) and changes nothing.

use crate::authz::check_request;
use crate::harness::{Reply, TestServer};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_server::authz::{CheckInput, HeaderMapValues, Verdict, evaluate};
use tollgate_server::directory::Directory;
use tollgate_server::store::SqliteStore;

fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

#[track_caller]
fn assert_no_5xx(reply: &Reply, what: &str) {
    assert!(
        !reply.status.is_server_error(),
        "{what}: {} {}",
        reply.status,
        reply.text
    );
}

/// What the caller from another tenant must see.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 403 `tenant_forbidden`: the design answers a cross-tenant id with a 403 (audited as such),
    /// on every endpoint alike.
    Forbidden,
    /// 404 `not_found`: a token id of the other tenant under the caller's own account.
    NotFound,
    /// 200, and nothing in the answer belongs to the other tenant (collections).
    Confined,
    /// 403 `all_tenants_only`: tenant operations belong to all-tenant admins alone.
    AllTenantsOnly,
    /// 200 about the caller alone (who it is, a policy it sent): nothing of another tenant.
    OwnOnly,
}

/// Every endpoint of the admin API against tenant B's resources, as tenant A's admin:
/// (method, path, body, expectation). `{b}`: B's account id; `{bt}`: its token id; `{a}`: A's
/// own account id; `{b_token}`: B's token value. One line per endpoint and variant.
const CROSS_TENANT: &[(&str, &str, Option<&str>, Expect)] = &[
    (
        "GET",
        "/api/v1/serviceaccounts/{b}",
        None,
        Expect::Forbidden,
    ),
    (
        "PATCH",
        "/api/v1/serviceaccounts/{b}",
        Some(r#"{"description": "owned"}"#),
        Expect::Forbidden,
    ),
    (
        "PATCH",
        "/api/v1/serviceaccounts/{b}",
        Some(r#"{"disabled": true}"#),
        Expect::Forbidden,
    ),
    (
        "DELETE",
        "/api/v1/serviceaccounts/{b}",
        None,
        Expect::Forbidden,
    ),
    (
        "GET",
        "/api/v1/serviceaccounts/{b}/tokens",
        None,
        Expect::Forbidden,
    ),
    (
        "POST",
        "/api/v1/serviceaccounts/{b}/tokens",
        Some(r#"{"name": "steal"}"#),
        Expect::Forbidden,
    ),
    (
        "PATCH",
        "/api/v1/serviceaccounts/{b}/tokens/{bt}",
        Some(r#"{"name": "renamed"}"#),
        Expect::Forbidden,
    ),
    (
        "DELETE",
        "/api/v1/serviceaccounts/{b}/tokens/{bt}",
        None,
        Expect::Forbidden,
    ),
    (
        "POST",
        "/api/v1/serviceaccounts/{b}/tokens/{bt}/regenerate",
        None,
        Expect::Forbidden,
    ),
    // B's token id under A's own account: the pair must match, not only each half.
    (
        "PATCH",
        "/api/v1/serviceaccounts/{a}/tokens/{bt}",
        Some(r#"{"name": "renamed"}"#),
        Expect::NotFound,
    ),
    (
        "DELETE",
        "/api/v1/serviceaccounts/{a}/tokens/{bt}",
        None,
        Expect::NotFound,
    ),
    (
        "POST",
        "/api/v1/serviceaccounts/{a}/tokens/{bt}/regenerate",
        None,
        Expect::NotFound,
    ),
    (
        "POST",
        "/api/v1/serviceaccounts",
        Some(r#"{"tenant": "globex", "name": "mole", "role": "viewer"}"#),
        Expect::Forbidden,
    ),
    ("GET", "/api/v1/serviceaccounts", None, Expect::Confined),
    (
        "GET",
        "/api/v1/serviceaccounts?search=globex",
        None,
        Expect::Confined,
    ),
    (
        "POST",
        "/api/v1/access-review",
        Some(r#"{"account": {b}, "method": "GET", "path": "/api/v1/query"}"#),
        Expect::Forbidden,
    ),
    (
        "POST",
        "/api/v1/access-review",
        Some(
            r#"{"account": "globex-app", "tenant": "globex", "method": "GET", "path": "/api/v1/query"}"#,
        ),
        Expect::Forbidden,
    ),
    (
        "POST",
        "/api/v1/access-review",
        Some(
            r#"{"account": "no-such", "tenant": "globex", "method": "GET", "path": "/api/v1/query"}"#,
        ),
        Expect::Forbidden,
    ),
    (
        "POST",
        "/api/v1/access-review",
        Some(r#"{"token": "{b_token}", "method": "GET", "path": "/api/v1/query"}"#),
        Expect::Forbidden,
    ),
    ("GET", "/api/v1/audit", None, Expect::Confined),
    (
        "GET",
        "/api/v1/audit?actor=globex/globex-admin",
        None,
        Expect::Confined,
    ),
    (
        "GET",
        "/api/v1/audit?target=serviceaccount/{b}",
        None,
        Expect::Confined,
    ),
    // Roles: `{name}` is both B's tenant and B's own role there.
    ("GET", "/api/v1/roles", None, Expect::Confined),
    (
        "GET",
        "/api/v1/roles?tenant={name}",
        None,
        Expect::Forbidden,
    ),
    (
        "GET",
        "/api/v1/roles/{name}?tenant={name}",
        None,
        Expect::Forbidden,
    ),
    ("GET", "/api/v1/roles/{name}", None, Expect::NotFound),
    (
        "POST",
        "/api/v1/roles",
        Some(r#"{"tenant": "globex", "name": "mole", "scopes": ["metrics:read"]}"#),
        Expect::Forbidden,
    ),
    (
        "PATCH",
        "/api/v1/roles/{name}?tenant={name}",
        Some(r#"{"scopes": ["metrics:write"]}"#),
        Expect::Forbidden,
    ),
    (
        "DELETE",
        "/api/v1/roles/{name}?tenant={name}",
        None,
        Expect::Forbidden,
    ),
    ("GET", "/api/v1/whoami", None, Expect::OwnOnly),
    (
        "POST",
        "/api/v1/labelpolicies/validate",
        Some(r#"{"policy": "{tenant=\"globex\"}"}"#),
        Expect::OwnOnly,
    ),
    ("GET", "/api/v1/tenants", None, Expect::AllTenantsOnly),
    (
        "DELETE",
        "/api/v1/tenants/{name}",
        None,
        Expect::AllTenantsOnly,
    ),
];

/// Everything tenant B has, as the all-tenant admin sees it.
async fn tenant_state(server: &TestServer, accounts: &[i64]) -> Vec<Value> {
    let mut state = Vec::new();
    for id in accounts {
        let account = server
            .admin(Method::GET, &format!("/api/v1/serviceaccounts/{id}"), None)
            .await
            .expect(200, "");
        let tokens = server
            .admin(
                Method::GET,
                &format!("/api/v1/serviceaccounts/{id}/tokens"),
                None,
            )
            .await
            .expect(200, "");
        state.push(json!({"account": account.json, "tokens": tokens.json}));
    }
    state
}

#[tokio::test]
async fn tenant_isolation_on_every_endpoint() {
    let server = TestServer::start().await;
    let (a_id, acme) = server
        .account_with_token(json!({"tenant": "acme", "name": "acme-admin", "role": "admin"}))
        .await;
    let (b_admin_id, b_admin) = server
        .account_with_token(json!({"tenant": "globex", "name": "globex-admin", "role": "admin"}))
        .await;
    let (b_id, b_token) = server
        .account_with_token(json!({"tenant": "globex", "name": "globex-app", "role": "viewer"}))
        .await;
    let b_tokens = server
        .admin(
            Method::GET,
            &format!("/api/v1/serviceaccounts/{b_id}/tokens"),
            None,
        )
        .await
        .expect(200, "");
    let bt = b_tokens.json["tokens"][0]["id"].as_i64().unwrap();
    server
        .admin(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"tenant": "globex", "name": "globex", "scopes": ["metrics:read"]})),
        )
        .await
        .expect(201, "");

    // The table covers every operation the server documents: a new endpoint fails here until
    // it has a line above.
    let openapi = server
        .call(None, Method::GET, "/openapi.json", None)
        .await
        .expect(200, "");
    let documented: BTreeSet<(String, String)> = openapi.json["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            let path = path.replace("{tokenId}", "{bt}").replace("{id}", "{b}");
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let tested: BTreeSet<(String, String)> = CROSS_TENANT
        .iter()
        .map(|(method, path, ..)| {
            let path = path.split('?').next().unwrap().replace("{a}", "{b}");
            ((*method).to_owned(), path)
        })
        .collect();
    let untested: Vec<_> = documented.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "endpoints without a tenant-isolation case: {untested:?}"
    );

    let before = tenant_state(&server, &[b_admin_id, b_id]).await;
    let fill = |text: &str| {
        text.replace("{a}", &a_id.to_string())
            .replace("{bt}", &bt.to_string())
            .replace("{b}", &b_id.to_string())
            .replace("{b_token}", &b_token)
            .replace("{name}", "globex")
    };
    for (method, path, body, expect) in CROSS_TENANT {
        let path = fill(path);
        let body = body.map(|b| serde_json::from_str::<Value>(&fill(b)).unwrap());
        // B's tenant name only comes back where the caller wrote it (an id must not reveal it).
        let named_b = path.contains("globex")
            || body
                .as_ref()
                .is_some_and(|b| b.to_string().contains("globex"));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let what = format!("{method} {path}");
        let reply = server.call(Some(&acme), method, &path, body).await;
        match expect {
            Expect::Forbidden => {
                let reply = reply.expect(403, "tenant_forbidden");
                assert!(
                    !reply.text.contains("globex-app") && !reply.text.contains(&b_token),
                    "{what}: leaks B's data: {}",
                    reply.text
                );
                assert!(
                    named_b || !reply.text.contains("globex"),
                    "{what}: names B's tenant: {}",
                    reply.text
                );
            }
            Expect::NotFound => {
                reply.expect(404, "not_found");
            }
            Expect::AllTenantsOnly => {
                let reply = reply.expect(403, "all_tenants_only");
                assert!(!reply.text.contains("globex"), "{what}: {}", reply.text);
            }
            Expect::OwnOnly => {
                let reply = reply.expect(200, "");
                assert!(
                    !reply.text.contains("globex-") && !reply.text.contains(&b_token),
                    "{what}: mentions B: {}",
                    reply.text
                );
                if let Some(account) = reply.json.get("account") {
                    assert_eq!(account["tenant"], "acme", "{what}: {}", reply.text);
                }
            }
            Expect::Confined => {
                let reply = reply.expect(200, "");
                let items = reply.json["serviceAccounts"]
                    .as_array()
                    .or(reply.json["entries"].as_array())
                    .or(reply.json["items"].as_array())
                    .unwrap();
                assert!(
                    items
                        .iter()
                        .all(|item| item["tenant"] == "acme" || item["builtin"] == true),
                    "{what}: {}",
                    reply.text
                );
                assert!(
                    !reply.text.contains("globex-"),
                    "{what}: mentions B's accounts: {}",
                    reply.text
                );
            }
        }
    }

    // Nothing of B changed, and B's tokens still work.
    assert_eq!(tenant_state(&server, &[b_admin_id, b_id]).await, before);
    let role = server
        .admin(Method::GET, "/api/v1/roles/globex?tenant=globex", None)
        .await
        .expect(200, "");
    assert_eq!(role.json["scopes"], json!(["metrics:read"]));
    server
        .call(Some(&b_admin), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    let listed = server
        .call(Some(&b_admin), Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    assert_eq!(listed.json["totalCount"], 2, "no account was planted in B");
    let review = server
        .call(
            Some(&b_admin),
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"token": b_token, "method": "GET", "path": "/api/v1/query"})),
        )
        .await;
    assert_eq!(
        review.json["allowed"], true,
        "B's token is not revoked: {}",
        review.text
    );
    server.stop().await;
}

#[tokio::test]
async fn no_escalation_past_the_callers_label_policy() {
    let server = TestServer::start().await;
    let (team_a_id, team_a) = server
        .account_with_token(json!({"tenant": "acme", "name": "team-a-admin", "role": "admin", "labelPolicy": "{team=\"a\"}"}))
        .await;
    let (root_id, root_token) = server
        .account_with_token(json!({"tenant": "acme", "name": "root", "role": "admin"}))
        .await;
    let (team_b_id, _) = server
        .account_with_token(json!({"tenant": "acme", "name": "team-b", "role": "viewer", "labelPolicy": "{team=\"b\"}"}))
        .await;
    let caller = Some(team_a.as_str());
    // Wider than {team="a"} in every way a selector can be.
    let wider = [
        "",
        "{team=~\"a|b\"}",
        "{team=~\".*\"}",
        "{team=~\"a.*\"}",
        "{team!=\"b\"}",
        "{team=\"a\"} or {team=\"b\"}",
        "{team=\"a\"} or {env=\"prod\"}",
        "{env=\"prod\"}",
    ];
    for policy in wider {
        server
            .call(
                caller,
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"name": "wide", "role": "viewer", "labelPolicy": policy})),
            )
            .await
            .expect(403, "label_policy_ceiling");
    }
    // Within the ceiling: the same policy, or narrower.
    let narrow = server
        .call(
            caller,
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "narrow", "role": "admin", "labelPolicy": "{team=\"a\", env=~\"prod|dev\"}"})),
        )
        .await
        .expect(201, "");
    let narrow_id = narrow.json["id"].as_i64().unwrap();

    // Widening an account it manages, or itself, is refused too.
    for (id, policy) in wider
        .iter()
        .flat_map(|p| [(narrow_id, *p), (team_a_id, *p)])
    {
        server
            .call(
                caller,
                Method::PATCH,
                &format!("/api/v1/serviceaccounts/{id}"),
                Some(json!({"labelPolicy": policy})),
            )
            .await
            .expect(403, "label_policy_ceiling");
    }

    // Accounts above the ceiling are visible but not manageable: no token minted, renamed,
    // regenerated (which would hand the caller a broader credential) or revoked, no edit.
    for id in [root_id, team_b_id] {
        let account = format!("/api/v1/serviceaccounts/{id}");
        let tokens = server
            .call(caller, Method::GET, &format!("{account}/tokens"), None)
            .await
            .expect(200, "");
        let token_id = tokens.json["tokens"][0]["id"].as_i64().unwrap();
        let token = format!("{account}/tokens/{token_id}");
        for (method, path, body) in [
            (
                Method::POST,
                format!("{account}/tokens"),
                Some(json!({"name": "mine"})),
            ),
            (Method::POST, format!("{token}/regenerate"), None),
            (Method::PATCH, token.clone(), Some(json!({"name": "x"}))),
            (Method::DELETE, token.clone(), None),
            (
                Method::PATCH,
                account.clone(),
                Some(json!({"description": "x"})),
            ),
            (
                Method::PATCH,
                account.clone(),
                Some(json!({"labelPolicy": "{team=\"a\"}"})),
            ),
            (
                Method::PATCH,
                account.clone(),
                Some(json!({"disabled": true})),
            ),
            (Method::DELETE, account.clone(), None),
        ] {
            server
                .call(caller, method.clone(), &path, body)
                .await
                .expect(403, "label_policy_ceiling");
        }
    }
    // The broader account's credential is untouched.
    server
        .call(
            Some(&root_token),
            Method::GET,
            "/api/v1/serviceaccounts",
            None,
        )
        .await
        .expect(200, "");

    // Privileges that only the bootstrap admin has cannot be asked for.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/serviceaccounts".to_owned(),
            json!({"name": "all", "role": "viewer", "labelPolicy": "{team=\"a\"}", "allTenants": true}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/serviceaccounts/{narrow_id}"),
            json!({"allTenants": true}),
        ),
    ] {
        let reply = server
            .call(caller, method, &path, Some(body))
            .await
            .expect(400, "invalid_body");
        assert!(reply.text.contains("allTenants"), "{}", reply.text);
    }
    let me = server
        .call(
            caller,
            Method::GET,
            &format!("/api/v1/serviceaccounts/{team_a_id}"),
            None,
        )
        .await
        .expect(200, "");
    assert_eq!(
        (
            me.json["labelPolicy"].as_str(),
            me.json["allTenants"].as_bool()
        ),
        (Some("{team=\"a\"}"), Some(false))
    );
    server.stop().await;
}

/// A refused attempt's audit row takes nothing raw from the request: a token value sent as a
/// tenant is not stored, a line break cannot forge a row, and an attempt on another tenant is
/// filed in the caller's own tenant's log (where its admins look), not in the other's.
#[tokio::test]
async fn audit_rows_keep_no_raw_client_input() {
    let server = TestServer::start().await;
    let (_, acme) = server
        .account_with_token(json!({"tenant": "acme", "name": "a", "role": "admin"}))
        .await;
    let (_, secret) = server
        .account_with_token(json!({"tenant": "acme", "name": "b", "role": "viewer"}))
        .await;
    let (_, globex) = server
        .account_with_token(json!({"tenant": "globex", "name": "g", "role": "admin"}))
        .await;
    let attempts = [
        (Method::PATCH, format!("/api/v1/roles/x?tenant={secret}")),
        (
            Method::DELETE,
            "/api/v1/roles/x?tenant=globex%0A9999%20fake".to_owned(),
        ),
        (Method::DELETE, "/api/v1/roles/x?tenant=globex".to_owned()),
    ];
    for (method, path) in attempts {
        let body = (method == Method::PATCH).then(|| json!({"description": "x"}));
        let reply = server.call(Some(&acme), method, &path, body).await;
        assert_eq!(reply.status.as_u16(), 403, "{path}: {}", reply.reason());
    }
    let audit = server
        .admin(Method::GET, "/api/v1/audit?actor=acme/a", None)
        .await
        .expect_status(200);
    let rows = audit.json["entries"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{}", audit.json);
    for row in rows {
        assert_eq!(row["tenant"], "acme", "{row}");
        assert_eq!(row["outcome"], "tenant_forbidden", "{row}");
        let target = row["target"].as_str().unwrap();
        assert!(!target.chars().any(char::is_control), "{target:?}");
    }
    assert!(
        !audit.text.contains(&secret[5..]),
        "a token value in the audit log"
    );
    assert!(audit.text.contains(r"globex\\n9999 fake"), "{}", audit.text);
    // acme's own admin sees its member's attempts; globex's sees none of them.
    let own = server
        .call(Some(&acme), Method::GET, "/api/v1/audit?actor=acme/a", None)
        .await
        .expect_status(200);
    assert_eq!(own.json["entries"].as_array().map(Vec::len), Some(3));
    let other = server
        .call(
            Some(&globex),
            Method::GET,
            "/api/v1/audit?actor=acme/a",
            None,
        )
        .await
        .expect_status(200);
    assert_eq!(other.json["entries"], json!([]), "{}", other.text);
    server.stop().await;
}

#[tokio::test]
async fn look_alike_names_are_rejected_and_never_collide() {
    let server = TestServer::start().await;
    let admin = server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"tenant": "acme", "name": "admin", "role": "viewer"})),
        )
        .await
        .expect(201, "");
    let admin_id = admin.json["id"].as_i64().unwrap();
    let look_alikes = [
        "\u{0430}dmin",  // Cyrillic а
        "\u{0251}dmin",  // Latin alpha
        "\u{FF41}dmin",  // fullwidth ａ
        "ad\u{200D}min", // zero-width joiner
        "ad\u{200B}min", // zero-width space
        "admin\u{FEFF}", // byte-order mark
        "a\u{0301}dmin", // combining acute accent
        "\u{00E1}dmin",  // precomposed á
        "\u{202E}nimda", // right-to-left override
        "admin\u{2060}", // word joiner
        "admin\u{00A0}", // no-break space
        "ADMIN",         // case
        "Admin",
        " admin",
        "admin ",
        "adm\u{0131}n",  // dotless ı
        "\u{1D41A}dmin", // mathematical bold a
    ];
    for name in look_alikes {
        let what = format!("{name:?}");
        let reply = server
            .admin(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"tenant": "acme", "name": name, "role": "admin"})),
            )
            .await
            .expect(400, "invalid_field");
        assert!(
            reply.json["error"].as_str().unwrap().starts_with("name:"),
            "{what}: {}",
            reply.text
        );
        server
            .admin(
                Method::PATCH,
                &format!("/api/v1/serviceaccounts/{admin_id}"),
                Some(json!({"name": name})),
            )
            .await
            .expect(400, "invalid_field");
        let reply = server
            .admin(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(json!({"tenant": name, "name": "x", "role": "viewer"})),
            )
            .await
            .expect(400, "invalid_field");
        assert!(
            reply.json["error"].as_str().unwrap().starts_with("tenant:"),
            "{what}: {}",
            reply.text
        );
        let reply = server
            .admin(
                Method::POST,
                &format!("/api/v1/serviceaccounts/{admin_id}/tokens"),
                Some(json!({"name": name})),
            )
            .await
            .expect(400, "invalid_field");
        assert!(
            reply.json["error"].as_str().unwrap().starts_with("name:"),
            "{what}"
        );
        // A review by a look-alike name never resolves to the ASCII account.
        let review = server
            .admin(
                Method::POST,
                "/api/v1/access-review",
                Some(json!({"account": name, "tenant": "acme", "method": "GET", "path": "/api/v1/query"})),
            )
            .await;
        assert_eq!(review.status, 404, "{what}: {}", review.text);
        let search = server
            .admin(
                Method::GET,
                &format!("/api/v1/serviceaccounts?search={}", percent_encode(name)),
                None,
            )
            .await;
        assert_no_5xx(&search, &what);
    }
    let listed = server
        .admin(Method::GET, "/api/v1/serviceaccounts", None)
        .await
        .expect(200, "");
    let names: Vec<&str> = listed.json["serviceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bootstrap-admin", "admin"],
        "nothing else was created"
    );
    // A display name is free text, not an identity: Unicode is kept as sent.
    let shown = server
        .admin(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{admin_id}"),
            Some(json!({"displayName": "\u{0430}dmin \u{1F512}"})),
        )
        .await
        .expect(200, "");
    assert_eq!(shown.json["displayName"], "\u{0430}dmin \u{1F512}");
    assert_eq!(shown.json["name"], "admin");
    server.stop().await;
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn control_characters_are_rejected_or_kept_verbatim() {
    let server = TestServer::start().await;
    let (id, _) = server
        .account_with_token(json!({"name": "target", "role": "viewer"}))
        .await;
    let account = format!("/api/v1/serviceaccounts/{id}");
    let evil = [
        "\r",
        "\n",
        "\r\n",
        "\0",
        "\r\nx-tollgate-tenant: other",
        "\u{7f}",
        "\u{85}",
    ];
    for bad in evil {
        let what = format!("{bad:?}");
        // Identities and selectors: always refused, naming the field.
        let cases = [
            (
                Method::POST,
                "/api/v1/serviceaccounts".to_owned(),
                json!({"name": format!("a{bad}b"), "role": "viewer"}),
                "name",
            ),
            (
                Method::POST,
                "/api/v1/serviceaccounts".to_owned(),
                json!({"tenant": format!("t{bad}"), "name": "x", "role": "viewer"}),
                "tenant",
            ),
            (
                Method::POST,
                "/api/v1/serviceaccounts".to_owned(),
                json!({"name": "x", "role": "viewer", "labelPolicy": format!("{{ns=\"a{bad}b\"}}")}),
                "labelPolicy",
            ),
            (
                Method::POST,
                "/api/v1/serviceaccounts".to_owned(),
                json!({"name": "x", "role": "viewer", "labelPolicy": format!("{{ns=\"a\"{bad}, n{bad}s=\"a\"}}")}),
                "labelPolicy",
            ),
            (
                Method::POST,
                "/api/v1/serviceaccounts".to_owned(),
                json!({"name": "x", "role": "viewer", "withToken": true, "tokenName": format!("t{bad}")}),
                "tokenName",
            ),
            (
                Method::PATCH,
                account.clone(),
                json!({"labelPolicy": format!("{{ns=~\"a{bad}\"}}")}),
                "labelPolicy",
            ),
            (
                Method::PATCH,
                account.clone(),
                json!({"ownerEmail": format!("a{bad}@b.c")}),
                "ownerEmail",
            ),
            (
                Method::POST,
                format!("{account}/tokens"),
                json!({"name": format!("t{bad}")}),
                "name",
            ),
        ];
        for (method, path, body, field) in cases {
            let reply = server.admin(method, &path, Some(body.clone())).await;
            assert_eq!(reply.status, 400, "{what} {body}: {}", reply.text);
            assert!(
                reply.json["error"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{field}:")),
                "{what} {body}: {}",
                reply.text
            );
        }
        // Between the tokens of a selector, CR and LF are whitespace as in PromQL: accepted,
        // and gone from the canonical policy. NUL and the rest are refused.
        let spaced = server
            .admin(
                Method::PATCH,
                &account,
                Some(json!({"labelPolicy": format!("{{{bad}ns{bad}={bad}\"a\"{bad}}}")})),
            )
            .await;
        assert_no_5xx(&spaced, &what);
        if spaced.status == 200 {
            assert_eq!(spaced.json["labelPolicy"], "{ns=\"a\"}", "{what}");
            assert!(bad.chars().all(char::is_whitespace), "{what} accepted");
        } else {
            spaced.expect(400, "invalid_field");
        }
        // Free text: a line feed is allowed in a description; anything else is refused. What
        // is stored comes back exactly, JSON-escaped.
        for field in ["description", "displayName"] {
            let text = format!("one{bad}two");
            let reply = server
                .admin(Method::PATCH, &account, Some(json!({ field: text })))
                .await;
            assert_no_5xx(&reply, &what);
            if reply.status == 200 {
                assert_eq!(reply.json[field], text, "{what}: stored verbatim");
                assert!(!reply.text.contains(bad), "{what}: escaped in JSON");
                assert_eq!(bad, "\n", "{what}: only a line feed is accepted in {field}");
            } else {
                assert_eq!(reply.status, 400, "{what}: {}", reply.text);
                assert!(reply.json["error"].as_str().unwrap().starts_with(field));
            }
        }
        // An access review with such a narrowing selector, method or path is a 4xx or a denial.
        for body in [
            json!({"account": id, "method": "GET", "path": "/api/v1/query", "labels": format!("{{ns=\"a{bad}\"}}")}),
            json!({"account": id, "method": format!("GET{bad}"), "path": "/api/v1/query"}),
            json!({"account": id, "method": "GET", "path": format!("/api/v1/query{bad}")}),
        ] {
            let reply = server
                .admin(Method::POST, "/api/v1/access-review", Some(body.clone()))
                .await;
            assert_no_5xx(&reply, &what);
            if reply.status == 200 {
                assert_eq!(reply.json["allowed"], false, "{what} {body}");
            }
        }
        for query in ["search", "page"] {
            let reply = server
                .admin(
                    Method::GET,
                    &format!("/api/v1/serviceaccounts?{query}=a{}", percent_encode(bad)),
                    None,
                )
                .await;
            assert_no_5xx(&reply, &what);
        }
        for query in ["actor", "target"] {
            let reply = server
                .admin(
                    Method::GET,
                    &format!("/api/v1/audit?{query}=a{}", percent_encode(bad)),
                    None,
                )
                .await;
            assert_no_5xx(&reply, &what);
        }
    }
    server.stop().await;
}

/// A client-sent narrowing selector is the only label text a client controls that could reach
/// `x-tollgate-labels`: with CR, LF or NUL in it the Check denies, and no header it sets upstream
/// ever carries one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_control_character_reaches_an_upstream_header() {
    let server = TestServer::start().await;
    let (_, token) = server
        .account_with_token(
            json!({"name": "dash", "role": "viewer", "labelPolicy": "{team=\"a\"}"}),
        )
        .await;
    let bearer = format!("Bearer {token}");
    let mut client = AuthorizationClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let mut allowed = 0;
    for labels in [
        None,
        Some(r#"{team="a", env="p\"r\\od"}"#),
        Some("{team=\"a\", env=\"prod\r\nx-tollgate-tenant: other\"}"),
        Some("{team=\"a\", env=\"p\nrod\"}"),
        Some("{team=\"a\", env=\"p\0rod\"}"),
        Some("{team=\"a\", env=\"p\\nrod\"}"),
        Some("{team=\"a\"}\r\nx-evil: 1"),
        Some("{team=\"a\", env=`p\rrod`}"),
    ] {
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(labels) = labels {
            headers.push(("x-tollgate-labels", labels));
        }
        let response = client
            .check(check_request("GET", "/api/v1/query?query=up", &headers, ""))
            .await
            .unwrap()
            .into_inner();
        match response.http_response.unwrap() {
            HttpResponse::OkResponse(ok) => {
                allowed += 1;
                let bad = labels.is_some_and(|l| l.contains(['\r', '\n', '\0']));
                assert!(!bad, "{labels:?} allowed");
                for header in ok.headers {
                    let header = header.header.unwrap();
                    assert!(
                        !header.value.contains(['\r', '\n', '\0']),
                        "{labels:?}: {}: {:?}",
                        header.key,
                        header.value
                    );
                }
                for param in ok.query_parameters_to_set {
                    assert!(!param.value.contains(['\r', '\n', '\0']), "{labels:?}");
                }
            }
            HttpResponse::DeniedResponse(denied) => {
                let status = denied.status.unwrap().code;
                assert!((400..500).contains(&status), "{labels:?}: {status}");
                for header in denied.headers {
                    let header = header.header.unwrap();
                    assert!(!header.value.contains(['\r', '\n', '\0']), "{labels:?}");
                }
            }
            HttpResponse::ErrorResponse(_) => panic!("{labels:?}: error response"),
        }
    }
    assert_eq!(allowed, 2, "the two clean cases are allowed");
    server.stop().await;
}

/// Expiry is exclusive: a token is dead at its `expiresAt` second. Decided with an explicit
/// clock through the same `evaluate` the Check uses, so no sleeping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_exclusive_at_the_exact_second() {
    let server = TestServer::start().await;
    let (id, _) = server
        .account_with_token(json!({"name": "brief", "role": "viewer"}))
        .await;
    let expires_at = now_secs() + 3600;
    let issued = server
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": "edge", "expiresAt": rfc3339(expires_at)})),
        )
        .await
        .expect(201, "");
    assert_eq!(issued.json["expiresAt"], rfc3339(expires_at));
    let token = issued.json["token"].as_str().unwrap().to_owned();

    let store = SqliteStore::open(&format!("sqlite://{}", server.store_path.display()))
        .await
        .unwrap();
    let directory = Arc::new(Directory::open(store).await.unwrap());
    let routes = tollgate_core::RouteTable::default();
    let request = check_request(
        "GET",
        "/api/v1/query?query=up",
        &[("authorization", &format!("Bearer {token}"))],
        "",
    );
    let http = request.attributes.unwrap().request.unwrap().http.unwrap();
    let map_values = HeaderMapValues::of(&http);
    let input = CheckInput::from_request(&http, &map_values);
    let limits = tollgate_core::write::WriteLimits::default();
    let at = |now: i64| match evaluate(&directory, &routes, &limits, &input, now as u64, None) {
        Verdict::Allow(_) => "allowed".to_owned(),
        Verdict::Deny(deny) => format!("{} {}", deny.status(), deny.reason.as_str()),
    };
    assert_eq!(at(expires_at - 3600), "allowed");
    assert_eq!(at(expires_at - 1), "allowed", "alive in its last second");
    assert_eq!(at(expires_at), "401 expired_token", "dead at expiresAt");
    assert_eq!(at(expires_at + 1), "401 expired_token");

    // An expiry at the current second is already past: refused at creation.
    let now = now_secs();
    server
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": "now", "expiresAt": rfc3339(now)})),
        )
        .await
        .expect(422, "expiry_in_past");
    server
        .admin(
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": "zero", "ttlSeconds": 0})),
        )
        .await
        .expect(422, "expiry_in_past");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_hostile_bodies_are_4xx_and_the_server_stays_healthy() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let post = |body: reqwest::Body, content_type: &'static str| {
        http.post(format!("{}/api/v1/serviceaccounts", server.url))
            .bearer_auth(&server.admin_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let reply = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        (
            status,
            body["reason"].as_str().unwrap_or("").to_owned(),
            body,
        )
    };

    // Large: with a Content-Length, and streamed without one.
    for size in [65 * 1024, 1024 * 1024] {
        let body =
            json!({"name": "big", "role": "viewer", "description": "x".repeat(size)}).to_string();
        let (status, reason, body) =
            reply(post(body.into(), "application/json").await.unwrap()).await;
        assert_eq!(
            (status, reason.as_str()),
            (413, "body_too_large"),
            "{size}: {body}"
        );
        assert!(body["error"].as_str().unwrap().contains("bytes"));
    }
    let head = |extra: &str| {
        format!(
            "POST /api/v1/serviceaccounts HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\nconnection: close\r\n{extra}\r\n",
            server.admin_token
        )
    };
    // 16 MiB announced; the server answers without reading it all.
    let announced = raw_exchange(
        &server.url,
        head("content-length: 16777216\r\n"),
        (0..256).map(|_| vec![b' '; 64 * 1024]),
    )
    .await;
    assert!(announced.starts_with("HTTP/1.1 413"), "{announced}");
    assert!(announced.contains("body_too_large"), "{announced}");
    // Chunked, no length: the limit applies to what arrives.
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024)).into_bytes();
    let chunked = raw_exchange(
        &server.url,
        head("transfer-encoding: chunked\r\n"),
        std::iter::repeat_n(chunk, 64).chain(std::iter::once(b"0\r\n\r\n".to_vec())),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    assert!(chunked.contains("body_too_large"), "{chunked}");

    // Deep nesting within the size limit: a parse error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let (status, reason, _) = reply(post(deep.into(), "application/json").await.unwrap()).await;
    assert_eq!(
        (status, reason.as_str()),
        (400, "invalid_body"),
        "deep nesting"
    );
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let (status, ..) = reply(post(deep_object.into(), "application/json").await.unwrap()).await;
    assert_eq!(status, 400, "deep object");
    // Not JSON, or not declared as JSON.
    let (status, reason, _) =
        reply(post("{\"name\":\"x\"}".into(), "text/plain").await.unwrap()).await;
    assert_eq!((status, reason.as_str()), (415, "unsupported_media_type"));
    let (status, reason, _) = reply(
        post(vec![0xff, 0xfe, 0x00].into(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, reason.as_str()),
        (400, "invalid_body"),
        "invalid UTF-8"
    );

    // An oversized header and an oversized query string: refused before any handler, no 5xx.
    let huge_auth = http
        .get(format!("{}/api/v1/serviceaccounts", server.url))
        .header(
            "authorization",
            format!("Bearer {}", "a".repeat(200 * 1024)),
        )
        .send()
        .await;
    if let Ok(response) = huge_auth {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let huge_query = http
        .get(format!(
            "{}/api/v1/serviceaccounts?search={}",
            server.url,
            "a".repeat(200 * 1024)
        ))
        .bearer_auth(&server.admin_token)
        .send()
        .await;
    if let Ok(response) = huge_query {
        assert!(
            !response.status().is_server_error(),
            "{}",
            response.status()
        );
    }

    // Still healthy, and a normal request works.
    server
        .call(None, Method::GET, "/healthz", None)
        .await
        .expect(200, "");
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "after", "role": "viewer", "description": "x".repeat(400)})),
        )
        .await
        .expect(201, "");
    server.stop().await;
}

/// Regression (schemathesis): a body-taking operation answered 415 (and now 413) without the
/// OpenAPI document listing it. Every operation with a request body documents both.
#[tokio::test]
async fn openapi_documents_every_body_rejection() {
    let server = TestServer::start().await;
    let openapi = server
        .call(None, Method::GET, "/openapi.json", None)
        .await
        .expect(200, "");
    let mut with_body = 0;
    for (path, ops) in openapi.json["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            with_body += 1;
            for status in ["400", "413", "415"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
    assert_eq!(with_body, 8);
    // The documented constraints are the server's own, so generated "valid" input reaches the
    // handlers' logic instead of bouncing off validation (schemathesis warned of the mismatch).
    let schemas = &openapi.json["components"]["schemas"];
    let name = "^[a-z0-9][a-z0-9._-]{0,62}$";
    for (schema, field) in [
        ("CreateAccountBody", "name"),
        ("CreateAccountBody", "tenant"),
        ("CreateAccountBody", "tokenName"),
        ("PatchAccountBody", "name"),
        ("CreateTokenBody", "name"),
        ("RenameTokenBody", "name"),
        ("CreateRoleBody", "name"),
        ("CreateRoleBody", "tenant"),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["pattern"], name, "{schema}.{field}: {property}");
    }
    assert_eq!(
        schemas["CreateAccountBody"]["properties"]["description"]["maxLength"],
        400
    );
    let account = server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": format!("0{}", "a.-_".repeat(16)).chars().take(63).collect::<String>(), "role": "writer"})),
        )
        .await
        .expect(201, "");
    assert_eq!(account.json["name"].as_str().unwrap().len(), 63);
    // A body without a content type gets the documented JSON error shape.
    let response = reqwest::Client::new()
        .patch(format!("{}/api/v1/serviceaccounts/1/tokens/1", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "unsupported_media_type");
    server.stop().await;
}

/// Writes `head` then each chunk over a plain TCP connection (stopping when the server closes it)
/// and returns everything the server answered.
async fn raw_exchange(
    url: &str,
    head: String,
    chunks: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // Write from another thread while this one reads: a server that answers early (413)
        // and closes must not have its answer lost to a reset while we are still writing.
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            for chunk in chunks {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let _ = sender.join();
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap()
}

/// The all-tenant admin is above every tenant admin's ceiling, and it cannot be lost: nobody can
/// delete or disable it, change its role or policy, or revoke its last live token.
#[tokio::test]
async fn the_all_tenant_admin_is_out_of_reach_and_cannot_be_lost() {
    let server = TestServer::start().await;
    let root = Some(server.admin_token.as_str());
    let me = server
        .call(
            root,
            Method::GET,
            "/api/v1/serviceaccounts?search=bootstrap-admin",
            None,
        )
        .await
        .expect(200, "");
    let id = me.json["serviceAccounts"][0]["id"].as_i64().unwrap();
    let tokens = server
        .call(
            root,
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            None,
        )
        .await
        .expect(200, "");
    let token_id = tokens.json["tokens"][0]["id"].as_i64().unwrap();

    // A full admin of the same tenant ("default") sees it but cannot act on it: minting one of
    // its tokens would have given that admin every tenant.
    let (_, tenant_admin) = server
        .account_with_token(json!({"name": "default-admin", "role": "admin"}))
        .await;
    let admin = Some(tenant_admin.as_str());
    server
        .call(
            admin,
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}"),
            None,
        )
        .await
        .expect(200, "");
    let account = format!("/api/v1/serviceaccounts/{id}");
    let token = format!("{account}/tokens/{token_id}");
    for (method, path, body) in [
        (
            Method::POST,
            format!("{account}/tokens"),
            Some(json!({"name": "mine"})),
        ),
        (Method::POST, format!("{token}/regenerate"), None),
        (
            Method::PATCH,
            token.clone(),
            Some(json!({"name": "renamed"})),
        ),
        (Method::DELETE, token.clone(), None),
        (
            Method::PATCH,
            account.clone(),
            Some(json!({"description": "x"})),
        ),
        (
            Method::PATCH,
            account.clone(),
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, account.clone(), None),
    ] {
        let reply = server.call(admin, method.clone(), &path, body).await;
        assert_eq!(
            (reply.status.as_u16(), reply.reason()),
            (403, "all_tenants_ceiling"),
            "{method} {path}: {}",
            reply.text
        );
    }

    // The all-tenant admin itself cannot lock everyone out.
    for (method, path, body) in [
        (Method::DELETE, account.clone(), None),
        (
            Method::PATCH,
            account.clone(),
            Some(json!({"disabled": true})),
        ),
        (
            Method::PATCH,
            account.clone(),
            Some(json!({"role": "editor"})),
        ),
        (
            Method::PATCH,
            account.clone(),
            Some(json!({"labelPolicy": "{team=\"a\"}"})),
        ),
        (Method::DELETE, token.clone(), None),
    ] {
        let reply = server.call(root, method.clone(), &path, body).await;
        assert_eq!(
            (reply.status.as_u16(), reply.reason()),
            (409, "all_tenants_admin_protected"),
            "{method} {path}: {}",
            reply.text
        );
    }
    // A second token that expires sooner is no survivor: the account would be locked out when
    // it expires.
    server
        .call(
            root,
            Method::POST,
            &format!("{account}/tokens"),
            Some(json!({"name": "short", "ttlSeconds": 60})),
        )
        .await
        .expect(201, "");
    server
        .call(root, Method::DELETE, &token, None)
        .await
        .expect(409, "all_tenants_admin_protected");
    // What leaves it intact still works: a description, a second token, then revoking the first.
    server
        .call(
            root,
            Method::PATCH,
            &account,
            Some(json!({"description": "break glass"})),
        )
        .await
        .expect(200, "");
    let second = server
        .call(
            root,
            Method::POST,
            &format!("{account}/tokens"),
            Some(json!({"name": "second"})),
        )
        .await
        .expect(201, "");
    let second_token = second.json["token"].as_str().unwrap().to_owned();
    server
        .call(root, Method::DELETE, &token, None)
        .await
        .expect(204, "");
    server
        .call(Some(&second_token), Method::GET, &account, None)
        .await
        .expect(200, "");
}
