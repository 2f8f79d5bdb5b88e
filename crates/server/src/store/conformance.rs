//! The store conformance suite: generic over [`Store`], so every backend runs the same tests.
//! A backend adds one `conformance_suite!(module, async constructor)` line, and one
//! `replica_suite!` line for the cases over two store instances on one database (two replicas).
//! A constructor yields `None` to skip (the backend's server is not installed here).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(crate) mod replicas;
mod roles;
mod tenants;

pub use roles::{read_tenants_are_kept_and_granted, roles_are_per_tenant_and_reach_grants};
pub use tenants::tenants_are_listed_and_deleted_whole;

pub(crate) use replicas::replica_suite;

use super::{Protected, Store, StoreError};
use crate::model::*;
use tollgate_core::{Role, Token, TokenHash};

fn audit(action: &str) -> AuditRecord {
    AuditRecord {
        at: 1_700_000_000,
        actor: "default/tester".into(),
        tenant: "acme".into(),
        action: action.into(),
        target: "serviceaccount/1".into(),
        outcome: "ok".into(),
    }
}

fn role_name(role: Role) -> Name {
    Name::parse(role.as_str()).unwrap()
}

fn new_account(tenant: &str, name: &str, role: Role) -> NewAccount {
    NewAccount {
        tenant: Name::parse(tenant).unwrap(),
        name: Name::parse(name).unwrap(),
        display_name: format!("Display {name}"),
        description: "d".into(),
        owner_email: "owner@example.com".into(),
        role: role_name(role),
        label_policy: r#"{kube_namespace="prometheus"}"#.into(),
        all_tenants: false,
        read_tenants: Default::default(),
        hide_policy_labels: false,
        created_at: 1_700_000_000,
        created_by: "default/tester".into(),
    }
}

fn new_token(name: &str) -> (Token, NewToken) {
    let token = Token::generate().unwrap();
    let new = NewToken {
        name: Name::parse(name).unwrap(),
        hash: token.hash(),
        hint: token.hint(),
        created_at: 1_700_000_000,
        expires_at: Some(1_900_000_000),
    };
    (token, new)
}

async fn live_hashes<S: Store>(store: &S) -> Vec<TokenHash> {
    store
        .load_grants()
        .await
        .unwrap()
        .grants
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

pub async fn accounts_crud_and_conflicts<S: Store>(store: S) {
    let a = store
        .create_account(new_account("acme", "ci", Role::Viewer), audit("create"))
        .await
        .unwrap();
    assert_eq!(
        (a.tenant.as_str(), a.name.as_str(), a.role.as_str()),
        ("acme", "ci", "viewer")
    );
    assert!(
        matches!(
            store
                .create_account(new_account("acme", "ci", Role::Editor), audit("create"))
                .await,
            Err(StoreError::Conflict { .. })
        ),
        "names are unique per tenant"
    );
    store
        .create_account(new_account("other", "ci", Role::Viewer), audit("create"))
        .await
        .expect("same name in another tenant");
    assert_eq!(store.get_account(a.id).await.unwrap(), a);
    assert_eq!(store.find_account("acme", "ci").await.unwrap().id, a.id);
    assert!(matches!(
        store.get_account(9999).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.find_account("nope", "ci").await,
        Err(StoreError::NotFound { .. })
    ));

    let b = store
        .create_account(
            new_account("acme", "loki-pusher", Role::Writer),
            audit("create"),
        )
        .await
        .unwrap();
    let renamed = store
        .update_account(
            b.id,
            AccountPatch {
                name: Some(Name::parse("ci").unwrap()),
                ..AccountPatch::default()
            },
            audit("update"),
        )
        .await;
    assert!(
        matches!(renamed, Err(StoreError::Conflict { .. })),
        "rename onto a taken name"
    );
    let updated = store
        .update_account(
            b.id,
            AccountPatch {
                description: Some("new".into()),
                role: Some(role_name(Role::Editor)),
                ..AccountPatch::default()
            },
            audit("update"),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            updated.description.as_str(),
            updated.role.as_str(),
            updated.name.as_str()
        ),
        ("new", "editor", "loki-pusher")
    );

    store.delete_account(b.id, audit("delete")).await.unwrap();
    assert!(matches!(
        store.get_account(b.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_account(b.id, audit("delete")).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn listing_search_and_pages<S: Store>(store: S) {
    for i in 0..7 {
        store
            .create_account(
                new_account("acme", &format!("svc-{i}"), Role::Viewer),
                audit("create"),
            )
            .await
            .unwrap();
    }
    store
        .create_account(
            new_account("acme", "grafana_x", Role::Viewer),
            audit("create"),
        )
        .await
        .unwrap();
    store
        .create_account(new_account("other", "svc-x", Role::Viewer), audit("create"))
        .await
        .unwrap();
    let page = |tenant: Option<&str>, search: Option<&str>, offset, limit| AccountQuery {
        tenant: tenant.map(Into::into),
        search: search.map(Into::into),
        offset,
        limit,
    };
    let all = store.list_accounts(page(None, None, 0, 100)).await.unwrap();
    assert_eq!((all.total, all.items.len()), (9, 9));
    let acme = store
        .list_accounts(page(Some("acme"), None, 0, 3))
        .await
        .unwrap();
    assert_eq!(acme.total, 8);
    assert_eq!(
        acme.items
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["svc-0", "svc-1", "svc-2"]
    );
    let second = store
        .list_accounts(page(Some("acme"), None, 3, 3))
        .await
        .unwrap();
    assert_eq!(second.items[0].name, "svc-3");
    let search = store
        .list_accounts(page(Some("acme"), Some("SVC-"), 0, 100))
        .await
        .unwrap();
    assert_eq!(
        search.total, 7,
        "search is case-insensitive and tenant-scoped"
    );
    let underscore = store
        .list_accounts(page(None, Some("_"), 0, 100))
        .await
        .unwrap();
    assert_eq!(
        underscore.items.len(),
        1,
        "LIKE wildcards in the search are literal"
    );
    let display = store
        .list_accounts(page(None, Some("display grafana"), 0, 100))
        .await
        .unwrap();
    assert_eq!(display.total, 1, "display names are searched");
}

pub async fn token_pages_and_expiring_filter<S: Store>(store: S) {
    let a = store
        .create_account(new_account("acme", "ci", Role::Viewer), audit("create"))
        .await
        .unwrap();
    let b = store
        .create_account(new_account("acme", "other", Role::Viewer), audit("create"))
        .await
        .unwrap();
    // Expiries 1_800_000_000 + i days; t2 never expires. Another account's token is never counted.
    for i in 0..5 {
        let (_, mut token) = new_token(&format!("t{i}"));
        token.expires_at = (i != 2).then_some(1_800_000_000 + i * 86_400);
        store.create_token(a.id, token, audit("t")).await.unwrap();
    }
    let (_, other) = new_token("x");
    store.create_token(b.id, other, audit("t")).await.unwrap();
    let names = |page: &Page<TokenRecord>| -> Vec<String> {
        page.items.iter().map(|t| t.name.clone()).collect()
    };
    let query = |expiring, offset, limit| TokenQuery {
        account_id: a.id,
        expiring,
        offset,
        limit,
    };
    let all = store.list_tokens(TokenQuery::all(a.id)).await.unwrap();
    assert_eq!(
        (all.total, names(&all)),
        (
            5,
            vec![
                "t0".into(),
                "t1".into(),
                "t2".into(),
                "t3".into(),
                "t4".into()
            ]
        ),
        "by id"
    );
    let second = store.list_tokens(query(None, 2, 2)).await.unwrap();
    assert_eq!(
        (second.total, names(&second)),
        (5, vec!["t2".into(), "t3".into()])
    );
    let past = store.list_tokens(query(None, 10, 2)).await.unwrap();
    assert_eq!(
        (past.total, past.items.len()),
        (5, 0),
        "past the end: empty"
    );
    // Valid at t1's expiry (so t0 and t1 are not) and expiring within 2 days: t3 only
    // (t2 never expires, t4 expires later). The total counts the filter, not the account.
    let now = 1_800_000_000 + 86_400;
    let expiring = store
        .list_tokens(query(Some((now, now + 2 * 86_400)), 0, 10))
        .await
        .unwrap();
    assert_eq!((expiring.total, names(&expiring)), (1, vec!["t3".into()]));
    let wide = Some((1_700_000_000, 1_900_000_000));
    let first = store.list_tokens(query(wide, 0, 3)).await.unwrap();
    let rest = store.list_tokens(query(wide, 3, 3)).await.unwrap();
    assert_eq!(
        (first.total, names(&first), names(&rest)),
        (
            4,
            vec!["t0".into(), "t1".into(), "t3".into()],
            vec!["t4".into()]
        ),
        "paging applies after the filter"
    );
}

pub async fn tokens_and_change_feed<S: Store>(store: S) {
    let a = store
        .create_account(new_account("acme", "ci", Role::Viewer), audit("create"))
        .await
        .unwrap();
    let start = store.load_grants().await.unwrap().revision;
    let (t1, n1) = new_token("main");
    let rec = store
        .create_token(a.id, n1, audit("token.create"))
        .await
        .unwrap();
    assert_eq!(
        (rec.name.as_str(), rec.expires_at, rec.last_used_at),
        ("main", Some(1_900_000_000), None)
    );
    assert!(matches!(
        store
            .create_token(a.id, new_token("main").1, audit("token.create"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .create_token(4242, new_token("x").1, audit("token.create"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let (_, n2) = new_token("second");
    let rec2 = store
        .create_token(a.id, n2, audit("token.create"))
        .await
        .unwrap();

    let set = store.load_grants().await.unwrap();
    let grant = set
        .grants
        .iter()
        .find(|(h, _)| *h == t1.hash())
        .unwrap()
        .1
        .grant();
    assert_eq!(
        (&*grant.account, &*grant.tenant, &*grant.role),
        ("ci", "acme", "viewer")
    );
    assert_eq!(grant.policy.to_string(), r#"{kube_namespace="prometheus"}"#);
    assert_eq!(grant.expires_at, Some(1_900_000_000));

    let changes = store.changes_since(start, 100).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [ChangeKind::Added, ChangeKind::Added]
    );
    assert_eq!(changes[0].hash, t1.hash());
    assert!(changes.windows(2).all(|w| w[0].revision < w[1].revision));
    assert_eq!(
        store.changes_since(start, 1).await.unwrap().len(),
        1,
        "limit applies"
    );

    let renamed = store
        .rename_token(
            a.id,
            rec.id,
            Name::parse("primary").unwrap(),
            audit("token.rename"),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "primary");
    assert!(matches!(
        store
            .rename_token(
                a.id,
                rec.id,
                Name::parse("second").unwrap(),
                audit("token.rename")
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));

    let fresh = Token::generate().unwrap();
    let mark = store.load_grants().await.unwrap().revision;
    store
        .regenerate_token(
            a.id,
            rec.id,
            fresh.hash(),
            fresh.hint(),
            audit("token.regenerate"),
        )
        .await
        .unwrap();
    let live = live_hashes(&store).await;
    assert!(
        live.contains(&fresh.hash()) && !live.contains(&t1.hash()),
        "regenerate replaces the hash"
    );
    let kinds: Vec<_> = store
        .changes_since(mark, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.hash, c.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (t1.hash(), ChangeKind::Revoked),
            (fresh.hash(), ChangeKind::Added)
        ]
    );
    assert!(
        matches!(
            store
                .regenerate_token(99, rec.id, fresh.hash(), fresh.hint(), audit("x"))
                .await,
            Err(StoreError::NotFound { .. })
        ),
        "token of another account"
    );

    store
        .touch_tokens(vec![(rec2.id, 1_750_000_000)])
        .await
        .unwrap();
    let listed = store
        .list_tokens(TokenQuery::all(a.id))
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].last_used_at, Some(1_750_000_000));

    store
        .delete_token(a.id, rec2.id, audit("token.delete"))
        .await
        .unwrap();
    assert_eq!(
        store
            .list_tokens(TokenQuery::all(a.id))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(matches!(
        store
            .delete_token(a.id, rec2.id, audit("token.delete"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn bulk_tokens_are_one_transaction<S: Store>(store: S) {
    let a = store
        .create_account(new_account("acme", "bulk", Role::Viewer), audit("create"))
        .await
        .unwrap();
    let tokens: Vec<NewToken> = (0..50).map(|i| new_token(&format!("t{i}")).1).collect();
    let first_hash = tokens[0].hash;
    assert_eq!(
        store
            .create_tokens(a.id, tokens, audit("token.create"))
            .await
            .unwrap(),
        50
    );
    assert_eq!(
        store
            .list_tokens(TokenQuery::all(a.id))
            .await
            .unwrap()
            .items
            .len(),
        50
    );
    assert!(live_hashes(&store).await.contains(&first_hash));
    // A duplicate name anywhere rolls the whole batch back.
    let clash = vec![new_token("fresh").1, new_token("t3").1];
    assert!(matches!(
        store
            .create_tokens(a.id, clash, audit("token.create"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .list_tokens(TokenQuery::all(a.id))
            .await
            .unwrap()
            .items
            .len(),
        50,
        "nothing of a failed batch remains"
    );
}

pub async fn account_changes_reach_grants<S: Store>(store: S) {
    let a = store
        .create_account(new_account("acme", "ci", Role::Viewer), audit("create"))
        .await
        .unwrap();
    let (t, n) = new_token("main");
    store
        .create_token(a.id, n, audit("token.create"))
        .await
        .unwrap();
    let grants_of = |set: super::GrantSet| {
        set.grants
            .into_iter()
            .filter(|(h, _)| *h == t.hash())
            .map(|(_, g)| g.grant())
            .next()
    };

    let mark = store.load_grants().await.unwrap().revision;
    store
        .update_account(
            a.id,
            AccountPatch {
                role: Some(role_name(Role::Editor)),
                label_policy: Some(String::new()),
                ..AccountPatch::default()
            },
            audit("update"),
        )
        .await
        .unwrap();
    let grant = grants_of(store.load_grants().await.unwrap()).unwrap();
    assert_eq!(&*grant.role, "editor");
    assert_eq!(grant.scopes, Role::Editor.scopes());
    assert!(grant.policy.is_unrestricted());
    assert_eq!(
        store.changes_since(mark, 10).await.unwrap()[0].kind,
        ChangeKind::Changed
    );

    let mark = store.load_grants().await.unwrap().revision;
    store
        .update_account(
            a.id,
            AccountPatch {
                disabled: Some(true),
                ..AccountPatch::default()
            },
            audit("update"),
        )
        .await
        .unwrap();
    assert!(
        grants_of(store.load_grants().await.unwrap()).is_none(),
        "disabled accounts have no live grants"
    );
    assert!(store.grants_for(vec![t.hash()]).await.unwrap().is_empty());
    assert_eq!(
        store.changes_since(mark, 10).await.unwrap()[0].kind,
        ChangeKind::Revoked
    );

    store
        .update_account(
            a.id,
            AccountPatch {
                disabled: Some(false),
                ..AccountPatch::default()
            },
            audit("update"),
        )
        .await
        .unwrap();
    assert_eq!(store.grants_for(vec![t.hash()]).await.unwrap().len(), 1);

    let mark = store.load_grants().await.unwrap().revision;
    store
        .update_account(
            a.id,
            AccountPatch {
                description: Some("only text".into()),
                ..AccountPatch::default()
            },
            audit("update"),
        )
        .await
        .unwrap();
    assert!(
        store.changes_since(mark, 10).await.unwrap().is_empty(),
        "a description change does not touch grants"
    );

    store.delete_account(a.id, audit("delete")).await.unwrap();
    assert!(
        live_hashes(&store).await.is_empty(),
        "delete cascades to tokens"
    );
    let last = store.changes_since(mark, 10).await.unwrap();
    assert_eq!(
        last.last().map(|c| (c.hash, c.kind)),
        Some((t.hash(), ChangeKind::Revoked))
    );
}

pub async fn audit_rows<S: Store>(store: S) {
    let a = store
        .create_account(
            new_account("acme", "ci", Role::Viewer),
            audit("serviceaccount.create"),
        )
        .await
        .unwrap();
    store
        .create_token(
            a.id,
            new_token("t").1,
            AuditRecord {
                target: "serviceaccount/1/token/1".into(),
                ..audit("token.create")
            },
        )
        .await
        .unwrap();
    store
        .record_audit(AuditRecord {
            tenant: "other".into(),
            actor: "other/x".into(),
            outcome: "tenant_forbidden".into(),
            ..audit("serviceaccount.delete")
        })
        .await
        .unwrap();
    // A failed write leaves no audit row of its own: the transaction rolled back.
    assert!(
        store
            .create_account(
                new_account("acme", "ci", Role::Viewer),
                audit("serviceaccount.create")
            )
            .await
            .is_err()
    );

    let q = |tenant: Option<&str>, actor: Option<&str>, target: Option<&str>| AuditQuery {
        tenant: tenant.map(Into::into),
        actor: actor.map(Into::into),
        target: target.map(Into::into),
        offset: 0,
        limit: 100,
    };
    let all = store.list_audit(q(None, None, None)).await.unwrap();
    assert_eq!(all.total, 3);
    assert_eq!(
        all.items[0].record.action, "serviceaccount.delete",
        "newest first"
    );
    assert_eq!(all.items[0].record.outcome, "tenant_forbidden");
    assert_eq!(
        store
            .list_audit(q(Some("acme"), None, None))
            .await
            .unwrap()
            .total,
        2
    );
    assert_eq!(
        store
            .list_audit(q(None, Some("other/x"), None))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store
            .list_audit(q(None, None, Some("serviceaccount/1")))
            .await
            .unwrap()
            .total,
        3,
        "a target matches targets under it"
    );
    assert_eq!(
        store
            .list_audit(q(None, None, Some("serviceaccount/1/token/1")))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store
            .list_audit(q(None, None, Some("serviceaccount/")))
            .await
            .unwrap()
            .total,
        0,
        "prefixes match whole segments only"
    );
}

pub async fn bootstrap_runs_once<S: Store>(store: S) {
    assert!(!store.is_bootstrapped().await.unwrap());
    let mut admin = new_account("default", "bootstrap-admin", Role::Admin);
    admin.all_tenants = true;
    let (token, new) = new_token("bootstrap");
    assert!(
        store
            .bootstrap(admin.clone(), new.clone(), audit("bootstrap"))
            .await
            .unwrap()
    );
    assert!(store.is_bootstrapped().await.unwrap());
    assert!(
        !store
            .bootstrap(admin, new, audit("bootstrap"))
            .await
            .unwrap(),
        "second bootstrap is a no-op"
    );
    let grants = store.load_grants().await.unwrap().grants;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].0, token.hash());
    assert!(grants[0].1.grant().all_tenants);
}

/// The all-tenant admin cannot be deleted, demoted or left without a live token that lasts as
/// long; refused writes change nothing, and two concurrent revocations cannot both pass.
pub async fn all_tenants_admin_is_protected<S: Store>(store: S) {
    let mut admin = new_account("default", "bootstrap-admin", Role::Admin);
    admin.all_tenants = true;
    admin.label_policy = String::new();
    let (_, first) = new_token("bootstrap");
    let first_hash = first.hash;
    let mut first = first;
    first.expires_at = None;
    assert!(
        store
            .bootstrap(admin, first, audit("bootstrap"))
            .await
            .unwrap()
    );
    let account = store
        .find_account("default", "bootstrap-admin")
        .await
        .unwrap();
    let first_id = store
        .list_tokens(TokenQuery::all(account.id))
        .await
        .unwrap()
        .items[0]
        .id;
    fn protected<T>(result: Result<T, StoreError>, want: Protected, why: &str) {
        match result {
            Err(StoreError::Protected(got)) => assert_eq!(got, want, "{why}"),
            Err(err) => panic!("{why}: {err}"),
            Ok(_) => panic!("{why}: allowed"),
        }
    }
    let mark = store.load_grants().await.unwrap().revision;
    let patch = |f: fn(&mut AccountPatch)| {
        let mut patch = AccountPatch::default();
        f(&mut patch);
        patch
    };
    for (demotion, why) in [
        (patch(|p| p.disabled = Some(true)), "disable"),
        (patch(|p| p.role = Some(role_name(Role::Editor))), "role"),
        (
            patch(|p| p.label_policy = Some(r#"{team="a"}"#.into())),
            "label policy",
        ),
    ] {
        let result = store
            .update_account(account.id, demotion, audit("update"))
            .await;
        protected(result, Protected::Demote, why);
    }
    let result = store.delete_account(account.id, audit("delete")).await;
    protected(result, Protected::Delete, "delete");
    let result = store
        .delete_token(account.id, first_id, audit("token.delete"))
        .await;
    protected(result, Protected::LastToken, "only token");
    assert_eq!(
        store.load_grants().await.unwrap().revision,
        mark,
        "refusals changed nothing"
    );
    assert_eq!(live_hashes(&store).await, [first_hash]);
    assert!(!store.get_account(account.id).await.unwrap().disabled);

    // What leaves it intact is allowed.
    let described = store
        .update_account(
            account.id,
            patch(|p| p.description = Some("break glass".into())),
            audit("update"),
        )
        .await
        .unwrap();
    assert_eq!(described.description, "break glass");
    // A token that expires sooner is no survivor.
    let (_, short) = new_token("short");
    store
        .create_token(account.id, short, audit("token.create"))
        .await
        .unwrap();
    let result = store
        .delete_token(account.id, first_id, audit("token.delete"))
        .await;
    protected(result, Protected::LastToken, "shorter survivor");

    // Two tokens that never expire: revoking both at once leaves exactly one.
    let (_, mut second) = new_token("second");
    second.expires_at = None;
    let second_id = store
        .create_token(account.id, second, audit("token.create"))
        .await
        .unwrap()
        .id;
    let (a, b) = tokio::join!(
        store.delete_token(account.id, first_id, audit("token.delete")),
        store.delete_token(account.id, second_id, audit("token.delete")),
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one concurrent revocation passes: {a:?} {b:?}"
    );
    for result in [a, b] {
        if result.is_err() {
            protected(result, Protected::LastToken, "concurrent revocation");
        }
    }
    let left = store
        .list_tokens(TokenQuery::all(account.id))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 2, "short and one of the two");
    assert!(left.iter().any(|t| t.expires_at.is_none()));
}

/// The change-feed contract with concurrent writers: a reader polling `changes_since` while
/// several tasks write sees every committed change exactly once, in revision order, none
/// skipped. Run on a multi-threaded runtime, so writers and the reader really overlap.
pub async fn concurrent_writers_never_skip_a_change<S: Store>(store: S) {
    writers_never_skip_a_change(vec![std::sync::Arc::new(store)]).await;
}

/// The body of [`concurrent_writers_never_skip_a_change`] over several instances of one store
/// (replicas): writer `w` writes through `stores[w % n]`, the reader reads through `stores[0]`,
/// and every instance reports the same committed feed at the end.
pub(super) async fn writers_never_skip_a_change<S: Store>(stores: Vec<std::sync::Arc<S>>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const WRITERS: usize = 4;
    const ROUNDS: usize = 15;
    let store = stores[0].clone();
    let start = store.load_grants().await.unwrap().revision;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: Vec<Change> = Vec::new();
            let mut cursor = start;
            loop {
                // Read before polling: once the writers are done, one more empty poll ends it.
                let finished = done.load(Ordering::Acquire);
                let batch = store.changes_since(cursor, 7).await.unwrap();
                let Some(last) = batch.last() else {
                    if finished {
                        return seen;
                    }
                    tokio::task::yield_now().await;
                    continue;
                };
                cursor = last.revision;
                seen.extend(batch);
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = stores[w % stores.len()].clone();
            tokio::spawn(async move {
                let name = format!("writer{w}");
                let account = store
                    .create_account(new_account("acme", &name, Role::Viewer), audit("create"))
                    .await
                    .unwrap();
                let mut mine = Vec::new();
                for i in 0..ROUNDS {
                    let (_, new) = new_token(&format!("t{i}"));
                    let hash = new.hash;
                    let record = store
                        .create_token(account.id, new, audit("token.create"))
                        .await
                        .unwrap();
                    mine.push((hash, ChangeKind::Added));
                    if i % 3 == 2 {
                        store
                            .delete_token(account.id, record.id, audit("token.delete"))
                            .await
                            .unwrap();
                        mine.push((hash, ChangeKind::Revoked));
                    }
                }
                mine
            })
        })
        .collect();
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.unwrap());
    }
    done.store(true, Ordering::Release);
    let seen = reader.await.unwrap();

    assert!(
        seen.windows(2).all(|w| w[0].revision < w[1].revision),
        "in order, none twice"
    );
    for other in &stores {
        let committed = other.changes_since(start, u64::MAX).await.unwrap();
        assert_eq!(seen, committed, "the reader saw every committed change");
    }
    assert_eq!(seen.len(), WRITERS * (ROUNDS + ROUNDS / 3));
    for mine in written {
        let got: Vec<_> = seen
            .iter()
            .filter(|c| mine.iter().any(|(hash, _)| *hash == c.hash))
            .map(|c| (c.hash, c.kind))
            .collect();
        assert_eq!(got, mine, "each writer's changes, in its order");
    }
}

/// Instantiates every conformance test for one backend.
macro_rules! conformance_suite {
    ($module:ident, $open:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let Some((store, _guard)) = $open.await else {
                            return;
                        };
                        $crate::store::conformance::$name(store).await;
                    }
                };
            }
            case!(accounts_crud_and_conflicts);
            case!(listing_search_and_pages);
            case!(tokens_and_change_feed);
            case!(token_pages_and_expiring_filter);
            case!(account_changes_reach_grants);
            case!(bulk_tokens_are_one_transaction);
            case!(audit_rows);
            case!(bootstrap_runs_once);
            case!(all_tenants_admin_is_protected);
            case!(tenants_are_listed_and_deleted_whole);
            case!(roles_are_per_tenant_and_reach_grants);
            case!(read_tenants_are_kept_and_granted);
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_writers_never_skip_a_change() {
                let Some((store, _guard)) = $open.await else {
                    return;
                };
                $crate::store::conformance::concurrent_writers_never_skip_a_change(store).await;
            }
        }
    };
}
pub(crate) use conformance_suite;
