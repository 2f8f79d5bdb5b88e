//! Roles over the API: built-ins listed, a tenant's own roles defined within the caller's
//! scopes, the role ceiling firing for an account manager that reads no telemetry, holders
//! following a role's change, deletion refused while held; and read tenants granted only by an
//! all-tenant admin.

use crate::harness::TestServer;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn custom_roles_and_their_ceiling() {
    let server = TestServer::start().await;
    let listed = server.admin(Method::GET, "/api/v1/roles", None).await;
    let listed = listed.expect(200, "");
    let names: Vec<&str> = listed.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["viewer", "editor", "admin", "writer"]);
    assert_eq!(listed.json["items"][0]["builtin"], true);

    // Crosswork's service-account manager: manages accounts, reads no telemetry.
    let role = server
        .admin(
            Method::POST,
            "/api/v1/roles",
            Some(
                json!({"tenant": "acme", "name": "sa-manager", "description": "accounts only",
                "scopes": ["accounts:read", "accounts:write"]}),
            ),
        )
        .await
        .expect(201, "");
    assert_eq!(
        role.json["scopes"],
        json!(["accounts:read", "accounts:write"])
    );
    assert_eq!(role.json["tenant"], "acme");
    assert_eq!(role.json["builtin"], false);
    for (body, status, reason) in [
        (
            json!({"name": "viewer", "scopes": ["metrics:read"]}),
            409,
            "builtin_role",
        ),
        (
            json!({"tenant": "acme", "name": "sa-manager", "scopes": ["metrics:read"]}),
            409,
            "already_exists",
        ),
        (json!({"name": "x", "scopes": []}), 400, "invalid_field"),
        (
            json!({"name": "x", "scopes": ["metrics:admin"]}),
            400,
            "invalid_field",
        ),
        (
            json!({"name": "Bad Name", "scopes": ["metrics:read"]}),
            400,
            "invalid_field",
        ),
    ] {
        server
            .admin(Method::POST, "/api/v1/roles", Some(body.clone()))
            .await
            .expect(status, reason);
    }

    let (manager_id, manager) = server
        .account_with_token(json!({"tenant": "acme", "name": "manager", "role": "sa-manager"}))
        .await;
    // The ceiling fires: a viewer account needs telemetry reads the manager lacks.
    let denied = server
        .call(
            Some(&manager),
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "dash", "role": "viewer"})),
        )
        .await
        .expect(403, "role_ceiling");
    assert!(denied.text.contains("metrics:read"), "{}", denied.text);
    // It may not define a role wider than itself either, nor widen its own.
    server
        .call(
            Some(&manager),
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "reader", "scopes": ["metrics:read"]})),
        )
        .await
        .expect(403, "role_ceiling");
    server
        .call(
            Some(&manager),
            Method::PATCH,
            "/api/v1/roles/sa-manager",
            Some(json!({"scopes": ["accounts:read", "accounts:write", "metrics:read"]})),
        )
        .await
        .expect(403, "role_ceiling");
    // Within its scopes it works: an account of its own role, in its tenant.
    server
        .call(
            Some(&manager),
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "deputy", "role": "sa-manager"})),
        )
        .await
        .expect(201, "");
    // It lists its tenant's roles only; unknown roles are a clear 400.
    let seen = server
        .call(Some(&manager), Method::GET, "/api/v1/roles", None)
        .await
        .expect(200, "");
    assert_eq!(seen.json["total"], 5);
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"tenant": "globex", "name": "m", "role": "sa-manager"})),
        )
        .await
        .expect(400, "unknown_role");

    // A role change reaches its holders at once: widen to metrics:read, the manager reads.
    let before = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"account": manager_id, "method": "GET", "path": "/api/v1/query"})),
        )
        .await
        .expect(200, "missing_scope");
    assert_eq!(before.json["allowed"], false);
    server
        .admin(
            Method::PATCH,
            "/api/v1/roles/sa-manager?tenant=acme",
            Some(json!({"scopes": ["accounts:read", "accounts:write", "metrics:read"]})),
        )
        .await
        .expect(200, "");
    let after = server
        .admin(
            Method::POST,
            "/api/v1/access-review",
            Some(json!({"token": manager, "method": "GET", "path": "/api/v1/query"})),
        )
        .await
        .expect(200, "allowed");
    assert_eq!(after.json["allowed"], true, "{}", after.text);

    // Built-ins are fixed; a held role is not deleted.
    server
        .admin(Method::DELETE, "/api/v1/roles/admin", None)
        .await
        .expect(409, "builtin_role");
    server
        .admin(Method::DELETE, "/api/v1/roles/sa-manager?tenant=acme", None)
        .await
        .expect(409, "role_in_use");
    server
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{manager_id}"),
            None,
        )
        .await
        .expect(204, "");
    let deputy = server
        .admin(Method::GET, "/api/v1/serviceaccounts?name=deputy", None)
        .await
        .expect(200, "");
    let deputy_id = deputy.json["serviceAccounts"][0]["id"].as_i64().unwrap();
    server
        .admin(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{deputy_id}"),
            Some(json!({"role": "viewer"})),
        )
        .await
        .expect(200, "");
    server
        .admin(Method::DELETE, "/api/v1/roles/sa-manager?tenant=acme", None)
        .await
        .expect(204, "");
    server
        .admin(Method::GET, "/api/v1/roles/sa-manager?tenant=acme", None)
        .await
        .expect(404, "not_found");
    let audit = server
        .admin(
            Method::GET,
            "/api/v1/audit?target=role/acme/sa-manager",
            None,
        )
        .await
        .expect(200, "");
    let actions: Vec<&str> = audit.json["entries"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(actions.contains(&"role.delete"), "{}", audit.text);
    assert!(actions.contains(&"role.create"), "{}", audit.text);
    server.stop().await;
}

#[tokio::test]
async fn read_tenants_only_from_an_all_tenant_admin() {
    let server = TestServer::start().await;
    let (_, tenant_admin) = server
        .account_with_token(json!({"tenant": "ops", "name": "ops-admin", "role": "admin"}))
        .await;
    server
        .call(
            Some(&tenant_admin),
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": "monitoring", "role": "viewer", "readTenants": ["dev"]})),
        )
        .await
        .expect(403, "all_tenants_only");
    let created = server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(
                json!({"tenant": "ops", "name": "monitoring", "role": "viewer",
                "readTenants": ["prod", "dev", "dev"]}),
            ),
        )
        .await
        .expect(201, "");
    assert_eq!(created.json["readTenants"], json!(["dev", "prod"]));
    let id = created.json["id"].as_i64().unwrap();
    // A tenant admin may not mint its tokens or edit it: that would read other tenants.
    server
        .call(
            Some(&tenant_admin),
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": "t"})),
        )
        .await
        .expect(403, "all_tenants_only");
    server
        .call(
            Some(&tenant_admin),
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{id}"),
            Some(json!({"readTenants": []})),
        )
        .await
        .expect(403, "all_tenants_only");
    for (body, reason) in [
        (json!({"readTenants": ["*", "dev"]}), "invalid_field"),
        (json!({"readTenants": ["Dev"]}), "invalid_field"),
        (json!({"readTenants": ["a|b"]}), "invalid_field"),
    ] {
        server
            .admin(
                Method::PATCH,
                &format!("/api/v1/serviceaccounts/{id}"),
                Some(body),
            )
            .await
            .expect(400, reason);
    }
    let every = server
        .admin(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{id}"),
            Some(json!({"readTenants": ["*"]})),
        )
        .await
        .expect(200, "");
    assert_eq!(every.json["readTenants"], json!(["*"]));
    server.stop().await;
}

/// The scopes /openapi.json lists for a role are exactly those the server takes: a role with
/// all of them is created and reads back the same list, and the documents hold no other scope.
#[tokio::test]
async fn the_documented_scopes_are_the_accepted_ones() {
    let server = TestServer::start().await;
    let openapi = server.call(None, Method::GET, "/openapi.json", None).await;
    let schemas = &openapi.expect_status(200).json["components"]["schemas"];
    let documented = schemas["ScopeName"]["enum"].clone();
    assert_eq!(documented.as_array().map(Vec::len), Some(8), "{documented}");
    for body in ["CreateRoleBody", "PatchRoleBody"] {
        let scopes = &schemas[body]["properties"]["scopes"];
        assert_eq!(scopes["items"]["$ref"], "#/components/schemas/ScopeName");
        assert_eq!(scopes["minItems"], 1, "{body}");
    }
    for dto in ["RoleDto", "WhoAmIDto"] {
        assert_eq!(
            schemas[dto]["properties"]["scopes"]["items"]["$ref"],
            "#/components/schemas/ScopeName"
        );
    }
    let role = server
        .admin(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"name": "everything", "scopes": documented})),
        )
        .await
        .expect(201, "");
    assert_eq!(role.json["scopes"], documented);
    server.stop().await;
}

/// Widening a role widens its holders: a tenant admin may do it only when it could manage each
/// of them (not an account that reads other tenants, nor one with a wider label policy).
#[tokio::test]
async fn widening_a_role_is_held_to_its_holders() {
    let server = TestServer::start().await;
    server
        .admin(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"tenant": "acme", "name": "reader", "scopes": ["metrics:read"]})),
        )
        .await
        .expect(201, "");
    let (_, acme_admin) = server
        .account_with_token(
            json!({"tenant": "acme", "name": "acme-admin", "role": "admin",
            "labelPolicy": "{team=\"a\"}"}),
        )
        .await;
    let widen = json!({"scopes": ["metrics:read", "logs:read"]});
    // No holder yet: the tenant admin may widen it.
    server
        .call(
            Some(&acme_admin),
            Method::PATCH,
            "/api/v1/roles/reader",
            Some(widen.clone()),
        )
        .await
        .expect(200, "");
    let wider = json!({"scopes": ["metrics:read", "logs:read", "traces:read"]});
    // A holder with a wider label policy than the tenant admin's: refused.
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"tenant": "acme", "name": "wide", "role": "reader"})),
        )
        .await
        .expect(201, "");
    server
        .call(
            Some(&acme_admin),
            Method::PATCH,
            "/api/v1/roles/reader",
            Some(wider.clone()),
        )
        .await
        .expect(403, "label_policy_ceiling");
    // A holder that reads other tenants: refused even without a label policy ceiling.
    let (_, open_admin) = server
        .account_with_token(json!({"tenant": "acme", "name": "open-admin", "role": "admin"}))
        .await;
    server
        .admin(
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"tenant": "acme", "name": "fed", "role": "reader", "readTenants": ["globex"]})),
        )
        .await
        .expect(201, "");
    server
        .call(
            Some(&open_admin),
            Method::PATCH,
            "/api/v1/roles/reader",
            Some(wider.clone()),
        )
        .await
        .expect(403, "all_tenants_only");
    // Narrowing is always within reach, and the all-tenant admin may widen.
    server
        .call(
            Some(&open_admin),
            Method::PATCH,
            "/api/v1/roles/reader",
            Some(json!({"scopes": ["metrics:read"]})),
        )
        .await
        .expect(200, "");
    server
        .admin(
            Method::PATCH,
            "/api/v1/roles/reader?tenant=acme",
            Some(wider),
        )
        .await
        .expect(200, "");
    server.stop().await;
}

/// A role widened while an account is created with it: the widening checks the role's holders
/// and the creation checks the role's scopes, so interleaved, each would pass on what the
/// other is about to change and the account would end up past both callers' ceilings (a
/// review found 29 of 40 such races escalated). At most one of the two may succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widening_and_a_creation_never_both_pass_their_checks() {
    let server = TestServer::start().await;
    server
        .admin(
            Method::POST,
            "/api/v1/roles",
            Some(json!({"tenant": "acme", "name": "mgr",
                "scopes": ["accounts:read", "accounts:write", "metrics:read"]})),
        )
        .await
        .expect(201, "");
    // May create accounts with metrics:read roles, and has no label policy.
    let (_, manager) = server
        .account_with_token(json!({"tenant": "acme", "name": "acme-mgr", "role": "mgr"}))
        .await;
    // May widen roles, but only for holders within {team="a"}.
    let (_, admin) = server
        .account_with_token(
            json!({"tenant": "acme", "name": "acme-admin", "role": "admin",
            "labelPolicy": "{team=\"a\"}"}),
        )
        .await;
    let mut both = Vec::new();
    for i in 0..40 {
        let role = format!("r{i}");
        server
            .admin(
                Method::POST,
                "/api/v1/roles",
                Some(json!({"tenant": "acme", "name": role, "scopes": ["metrics:read"]})),
            )
            .await
            .expect(201, "");
        let create = server.call(
            Some(&manager),
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": format!("x{i}"), "role": role})),
        );
        let path = format!("/api/v1/roles/{role}");
        let widen = server.call(
            Some(&admin),
            Method::PATCH,
            &path,
            Some(json!({"scopes": ["metrics:read", "logs:read"]})),
        );
        let (created, widened) = tokio::join!(create, widen);
        match (created.status.as_u16(), widened.status.as_u16()) {
            (201, 200) => both.push(i),
            // The creation first: the widening finds a holder past its policy ceiling.
            (201, 403) => assert_eq!(widened.reason(), "label_policy_ceiling"),
            // The widening first: the creation finds a role past the manager's scopes.
            (403, 200) => assert_eq!(created.reason(), "role_ceiling"),
            other => panic!("unexpected {other:?}: {} / {}", created.text, widened.text),
        }
    }
    assert!(both.is_empty(), "both passed in trials {both:?}");
    server.stop().await;
}
