//! Conformance cases over two instances of one store (two pools on one database: what two
//! replicas are). Whatever holds "inside the transaction" must hold across instances too.

use super::{audit, live_hashes, new_account, new_token, writers_never_skip_a_change};
use crate::model::*;
use crate::store::{Protected, Store, StoreError};
use std::sync::Arc;
use tollgate_core::Role;

/// Writers on both instances at once: a reader on one never skips a change committed through
/// the other, and both report the same feed.
pub async fn replicas_never_skip_a_change<S: Store>(a: S, b: S) {
    writers_never_skip_a_change(vec![Arc::new(a), Arc::new(b)]).await;
}

/// Two replicas bootstrapping an empty store at once: exactly one admin, one token.
pub async fn replicas_bootstrap_once<S: Store>(a: S, b: S) {
    let mut admin = new_account("default", "bootstrap-admin", Role::Admin);
    admin.all_tenants = true;
    let (token_a, new_a) = new_token("bootstrap");
    let (token_b, new_b) = new_token("bootstrap");
    let (won_a, won_b) = tokio::join!(
        a.bootstrap(admin.clone(), new_a, audit("bootstrap")),
        b.bootstrap(admin, new_b, audit("bootstrap")),
    );
    let (won_a, won_b) = (won_a.unwrap(), won_b.unwrap());
    assert!(
        won_a != won_b,
        "exactly one bootstrap wins: {won_a} {won_b}"
    );
    for store in [&a, &b] {
        assert!(store.is_bootstrapped().await.unwrap());
        let live = live_hashes(store).await;
        let winner = if won_a {
            token_a.hash()
        } else {
            token_b.hash()
        };
        assert_eq!(live, [winner], "one live token: the winner's");
        let admins = store
            .list_accounts(AccountQuery {
                tenant: None,
                search: None,
                offset: 0,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(admins.total, 1, "one admin account");
    }
}

/// Names stay unique and the all-tenant admin keeps a token when two replicas race.
pub async fn replicas_keep_invariants<S: Store>(a: S, b: S) {
    let (x, y) = tokio::join!(
        a.create_account(new_account("acme", "ci", Role::Viewer), audit("create")),
        b.create_account(new_account("acme", "ci", Role::Editor), audit("create")),
    );
    assert!(x.is_ok() != y.is_ok(), "one create wins: {x:?} {y:?}");
    for result in [x, y] {
        if let Err(err) = result {
            assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        }
    }

    let mut admin = new_account("default", "bootstrap-admin", Role::Admin);
    admin.all_tenants = true;
    admin.label_policy = String::new();
    let (_, mut first) = new_token("first");
    first.expires_at = None;
    assert!(a.bootstrap(admin, first, audit("bootstrap")).await.unwrap());
    let account = b.find_account("default", "bootstrap-admin").await.unwrap();
    let (_, mut second) = new_token("second");
    second.expires_at = None;
    b.create_token(account.id, second, audit("token.create"))
        .await
        .unwrap();
    let ids: Vec<i64> = a
        .list_tokens(TokenQuery::all(account.id))
        .await
        .unwrap()
        .items
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids.len(), 2);
    let (r1, r2) = tokio::join!(
        a.delete_token(account.id, ids[0], audit("token.delete")),
        b.delete_token(account.id, ids[1], audit("token.delete")),
    );
    assert!(
        r1.is_ok() != r2.is_ok(),
        "one revocation passes: {r1:?} {r2:?}"
    );
    for result in [r1, r2] {
        if let Err(err) = result {
            assert!(
                matches!(err, StoreError::Protected(Protected::LastToken)),
                "{err}"
            );
        }
    }
    assert_eq!(
        a.list_tokens(TokenQuery::all(account.id))
            .await
            .unwrap()
            .total,
        1
    );
}

/// Instantiates every replica case for one backend: `$open` yields `Option<(S, S, guard)>`,
/// two instances on one fresh database, or `None` to skip.
macro_rules! replica_suite {
    ($module:ident, $open:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let Some((a, b, _guard)) = $open.await else {
                            return;
                        };
                        $crate::store::conformance::replicas::$name(a, b).await;
                    }
                };
            }
            case!(replicas_never_skip_a_change);
            case!(replicas_bootstrap_once);
            case!(replicas_keep_invariants);
        }
    };
}
pub(crate) use replica_suite;
