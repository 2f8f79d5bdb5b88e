//! Tenants' own roles: stored per tenant, resolved into grants, changes reaching every holder's
//! tokens through the feed, deletion refused while held; and read tenants kept per account.

use super::{audit, live_hashes, new_account, new_token};
use crate::model::{AccountPatch, ChangeKind, Name, NewRole, RolePatch};
use crate::store::{Store, StoreError};
use tollgate_core::{ReadTenants, Role, Scope, ScopeSet};

fn new_role(tenant: &str, name: &str, scopes: &[Scope]) -> NewRole {
    NewRole {
        tenant: Name::parse(tenant).unwrap(),
        name: Name::parse(name).unwrap(),
        description: "manages collectors".into(),
        scopes: ScopeSet::of(scopes),
        created_at: 1_700_000_000,
        created_by: "default/tester".into(),
    }
}

pub async fn roles_are_per_tenant_and_reach_grants<S: Store>(store: S) {
    use Scope::*;
    let role = store
        .create_role(
            new_role("acme", "sa-manager", &[AccountsRead, AccountsWrite]),
            audit("role.create"),
        )
        .await
        .unwrap();
    assert_eq!(role.scopes, ScopeSet::of(&[AccountsRead, AccountsWrite]));
    assert!(matches!(
        store
            .create_role(new_role("acme", "sa-manager", &[MetricsRead]), audit("x"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .create_role(new_role("globex", "sa-manager", &[LogsRead]), audit("x"))
        .await
        .unwrap();
    let names = |roles: Vec<crate::model::RoleRecord>| -> Vec<(String, String)> {
        roles.into_iter().map(|r| (r.tenant, r.name)).collect()
    };
    assert_eq!(
        names(store.list_roles(Some("acme")).await.unwrap()),
        [("acme".to_owned(), "sa-manager".to_owned())]
    );
    assert_eq!(store.list_roles(None).await.unwrap().len(), 2);

    // An account may hold its tenant's role, not another tenant's or an unknown one.
    let mut account = new_account("acme", "manager", Role::Viewer);
    account.role = Name::parse("sa-manager").unwrap();
    let manager = store
        .create_account(account, audit("create"))
        .await
        .unwrap();
    assert_eq!(manager.role, "sa-manager");
    let mut elsewhere = new_account("initech", "manager", Role::Viewer);
    elsewhere.role = Name::parse("sa-manager").unwrap();
    assert!(matches!(
        store.create_account(elsewhere, audit("create")).await,
        Err(StoreError::NotFound { what: "role" })
    ));
    let viewer = store
        .create_account(new_account("acme", "viewer", Role::Viewer), audit("c"))
        .await
        .unwrap();
    let unknown = AccountPatch {
        role: Some(Name::parse("nope").unwrap()),
        ..AccountPatch::default()
    };
    assert!(matches!(
        store.update_account(viewer.id, unknown, audit("u")).await,
        Err(StoreError::NotFound { what: "role" })
    ));

    let (_, token) = new_token("t");
    let hash = token.hash;
    store
        .create_token(manager.id, token, audit("token"))
        .await
        .unwrap();
    let grant = |set: crate::store::GrantSet| {
        set.grants
            .into_iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, g)| g.grant())
            .unwrap()
    };
    let before = store.load_grants().await.unwrap();
    assert_eq!(
        grant(before).scopes,
        ScopeSet::of(&[AccountsRead, AccountsWrite])
    );

    // Widening the role changes the holder's grant and tells the feed.
    let revision = store.load_grants().await.unwrap().revision;
    let patch = RolePatch {
        scopes: Some(ScopeSet::of(&[AccountsRead, AccountsWrite, MetricsWrite])),
        description: None,
    };
    store
        .update_role("acme", "sa-manager", patch, audit("role.update"))
        .await
        .unwrap();
    let changes = store.changes_since(revision, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].hash, changes[0].kind),
        (hash, ChangeKind::Changed)
    );
    assert!(
        grant(store.load_grants().await.unwrap())
            .scopes
            .contains(MetricsWrite)
    );
    let other = store.get_role("globex", "sa-manager").await.unwrap();
    assert_eq!(
        other.scopes,
        ScopeSet::of(&[LogsRead]),
        "other tenant untouched"
    );

    // In use: refused, and nothing changed.
    assert!(matches!(
        store.delete_role("acme", "sa-manager", audit("d")).await,
        Err(StoreError::RoleInUse { accounts: 1, .. })
    ));
    store.delete_account(manager.id, audit("d")).await.unwrap();
    store
        .delete_role("acme", "sa-manager", audit("d"))
        .await
        .unwrap();
    assert!(matches!(
        store.get_role("acme", "sa-manager").await,
        Err(StoreError::NotFound { what: "role" })
    ));
    assert!(live_hashes(&store).await.is_empty());
}

pub async fn read_tenants_are_kept_and_granted<S: Store>(store: S) {
    let mut account = new_account("ops", "monitoring", Role::Viewer);
    account.read_tenants = ReadTenants::from_names(&["dev", "prod"]).unwrap();
    let monitoring = store
        .create_account(account, audit("create"))
        .await
        .unwrap();
    assert_eq!(monitoring.read_tenants.to_text(), "dev prod");
    let (_, token) = new_token("t");
    let hash = token.hash;
    store
        .create_token(monitoring.id, token, audit("token"))
        .await
        .unwrap();
    let read_tenants = |set: crate::store::GrantSet| {
        set.grants
            .into_iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, g)| g.grant().read_tenants)
            .unwrap()
    };
    assert_eq!(
        read_tenants(store.load_grants().await.unwrap()),
        monitoring.read_tenants
    );
    let revision = store.load_grants().await.unwrap().revision;
    let every = AccountPatch {
        read_tenants: Some(ReadTenants::All),
        ..AccountPatch::default()
    };
    let updated = store
        .update_account(monitoring.id, every, audit("u"))
        .await
        .unwrap();
    assert_eq!(updated.read_tenants, ReadTenants::All);
    assert_eq!(
        read_tenants(store.load_grants().await.unwrap()),
        ReadTenants::All
    );
    let changes = store.changes_since(revision, 10).await.unwrap();
    assert_eq!(changes.len(), 1, "the grant changed: the feed says so");
}
