//! Tenants: listed with their counts, deleted with every account and token, in one transaction.

use super::{audit, live_hashes, new_account, new_token};
use crate::model::{ChangeKind, TenantSummary};
use crate::store::{Protected, Store, StoreError};
use tollgate_core::Role;

pub async fn tenants_are_listed_and_deleted_whole<S: Store>(store: S) {
    let mut ids = Vec::new();
    for (tenant, name) in [("acme", "a"), ("acme", "b"), ("globex", "c")] {
        let account = store
            .create_account(new_account(tenant, name, Role::Viewer), audit("create"))
            .await
            .unwrap();
        ids.push(account.id);
    }
    let mut acme_hashes = Vec::new();
    for (account, token) in [
        (ids[0], "t1"),
        (ids[0], "t2"),
        (ids[1], "t3"),
        (ids[2], "t4"),
    ] {
        let (_, new) = new_token(token);
        if account != ids[2] {
            acme_hashes.push(new.hash);
        }
        store
            .create_token(account, new, audit("token"))
            .await
            .unwrap();
    }
    assert_eq!(
        store.list_tenants().await.unwrap(),
        [
            TenantSummary {
                name: "acme".into(),
                accounts: 2,
                tokens: 3
            },
            TenantSummary {
                name: "globex".into(),
                accounts: 1,
                tokens: 1
            },
        ]
    );

    let mark = store.load_grants().await.unwrap().revision;
    assert_eq!(
        store
            .delete_tenant("acme", audit("tenant.delete"))
            .await
            .unwrap(),
        2
    );
    let tenants = store.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1, "{tenants:?}");
    assert_eq!(tenants[0].name, "globex");
    // Every token of the tenant is revoked through the change feed, and gone from the grants.
    let changes = store.changes_since(mark, 100).await.unwrap();
    for hash in &acme_hashes {
        assert!(
            changes
                .iter()
                .any(|c| c.hash == *hash && c.kind == ChangeKind::Revoked),
            "a revocation for every token of the tenant"
        );
    }
    let live = live_hashes(&store).await;
    assert!(acme_hashes.iter().all(|h| !live.contains(h)));
    assert_eq!(live.len(), 1, "globex's token stays");

    assert!(matches!(
        store.delete_tenant("acme", audit("again")).await,
        Err(StoreError::NotFound { .. })
    ));

    // The all-tenant admin's tenant cannot be deleted.
    let mut admin = new_account("default", "bootstrap-admin", Role::Admin);
    admin.all_tenants = true;
    admin.label_policy = String::new();
    let (_, token) = new_token("bootstrap");
    assert!(
        store
            .bootstrap(admin, token, audit("bootstrap"))
            .await
            .unwrap()
    );
    assert!(matches!(
        store.delete_tenant("default", audit("tenant.delete")).await,
        Err(StoreError::Protected(Protected::Delete))
    ));
    assert!(
        store
            .find_account("default", "bootstrap-admin")
            .await
            .is_ok()
    );
}
