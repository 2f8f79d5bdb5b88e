//! A grant to and from the wire, both directions in one place: the server sends what the
//! filter reads.

use crate::v1;
use tollgate_core::{Grant, Policy, Role};

/// A grant from the server that the filter cannot read: refused, never guessed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantWireError {
    #[error("role: {0}")]
    Role(String),
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
        role: grant.role.as_str().to_owned(),
        label_policy: grant.policy.to_string(),
        expires_at: grant.expires_at,
    }
}

/// Reads a grant from the wire; scopes follow from the role.
pub fn grant_from_wire(grant: v1::Grant) -> Result<Grant, GrantWireError> {
    let role: Role = grant
        .role
        .parse()
        .map_err(|err| GrantWireError::Role(format!("{err}")))?;
    let policy = Policy::parse(&grant.label_policy)?;
    Ok(Grant {
        token_id: grant.token_id,
        account_id: grant.account_id,
        account: grant.account.into(),
        tenant: grant.tenant.into(),
        role,
        scopes: role.scopes(),
        policy,
        expires_at: grant.expires_at,
        all_tenants: false,
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
            role: Role::Writer,
            scopes: Role::Writer.scopes(),
            policy: Policy::parse(r#"{team="a"} or {env=~"prod|dev"}"#).unwrap(),
            expires_at: Some(1_900_000_000),
            all_tenants: false,
        };
        assert_eq!(grant_from_wire(grant_to_wire(&grant)).unwrap(), grant);

        let mut wire = grant_to_wire(&grant);
        wire.role = "root".into();
        assert!(matches!(
            grant_from_wire(wire),
            Err(GrantWireError::Role(_))
        ));
        let mut wire = grant_to_wire(&grant);
        wire.label_policy = r#"{a=~"[a&&b]"}"#.into();
        assert!(matches!(
            grant_from_wire(wire),
            Err(GrantWireError::Policy(_))
        ));
    }
}
