//! A grant to and from the wire, both directions in one place: the server sends what the
//! filter reads.

use crate::v1;
use tollgate_core::{Grant, Policy, ReadTenants, Scope, ScopeSet};

/// A grant from the server that the filter cannot read: refused, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantWireError {
    #[error("scopes: {0}")]
    Scope(#[from] tollgate_core::scope::UnknownScope),
    #[error("read tenants: {0}")]
    ReadTenants(#[from] tollgate_core::tenants::ReadTenantsError),
    #[error("label policy: {0}")]
    Policy(#[from] tollgate_core::selector::SelectorError),
}

/// The wire form of a grant. The all-tenant flag stays on the server: it only matters to the
/// admin API, never to a proxy.
pub fn grant_to_wire(grant: &Grant) -> v1::Grant {
    v1::Grant {
        token_id: grant.token_id,
        account_id: grant.account_id,
        account: grant.account.to_string(),
        tenant: grant.tenant.to_string(),
        role: grant.role.to_string(),
        label_policy: grant.policy.to_string(),
        expires_at: grant.expires_at,
        scopes: grant.scopes.iter().map(String::from).collect(),
        read_tenants: grant.read_tenants.names(),
        hide_policy_labels: grant.hide_policy_labels,
    }
}

/// Reads a grant from the wire. An unknown scope or tenant name refuses the grant.
pub fn grant_from_wire(grant: v1::Grant) -> Result<Grant, GrantWireError> {
    let policy = Policy::parse(&grant.label_policy)?;
    let scopes = grant
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<ScopeSet, _>>()?;
    Ok(Grant {
        token_id: grant.token_id,
        account_id: grant.account_id,
        account: grant.account.into(),
        tenant: grant.tenant.into(),
        role: grant.role.into(),
        scopes,
        policy,
        expires_at: grant.expires_at,
        all_tenants: false,
        read_tenants: ReadTenants::from_names(&grant.read_tenants)?,
        hide_policy_labels: grant.hide_policy_labels,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let grant = Grant {
            token_id: 4,
            account_id: 2,
            account: "ci".into(),
            tenant: "acme".into(),
            role: "collector-manager".into(),
            scopes: ScopeSet::of(&[Scope::MetricsWrite, Scope::AccountsWrite]),
            policy: Policy::parse(r#"{team="a"} or {env=~"prod|dev"}"#).unwrap(),
            expires_at: Some(1_900_000_000),
            all_tenants: false,
            read_tenants: ReadTenants::from_names(&["dev", "prod"]).unwrap(),
            hide_policy_labels: true,
        };
        assert_eq!(grant_from_wire(grant_to_wire(&grant)).unwrap(), grant);
        let every = Grant {
            read_tenants: ReadTenants::All,
            ..grant.clone()
        };
        assert_eq!(grant_from_wire(grant_to_wire(&every)).unwrap(), every);

        let mut wire = grant_to_wire(&grant);
        wire.scopes.push("metrics:root".into());
        assert!(matches!(
            grant_from_wire(wire),
            Err(GrantWireError::Scope(_))
        ));
        let mut wire = grant_to_wire(&grant);
        wire.read_tenants = vec!["*".into(), "a".into()];
        assert!(matches!(
            grant_from_wire(wire),
            Err(GrantWireError::ReadTenants(_))
        ));
        let mut wire = grant_to_wire(&grant);
        wire.label_policy = r#"{a=~"[a&&b]"}"#.into();
        assert!(matches!(
            grant_from_wire(wire),
            Err(GrantWireError::Policy(_))
        ));
    }
}
