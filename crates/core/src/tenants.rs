//! Which tenants a grant may read, and the `X-Scope-OrgID` a request goes upstream with.
//!
//! An account reads and writes its own (home) tenant. An all-tenant admin may grant it more
//! tenants, or all, for reads: a request then names several in Mimir's and Loki's federation
//! syntax (`X-Scope-OrgID: a|b`), which is passed on as sent once every part is allowed.

use crate::decision::{Deny, DenyReason, Grant};
use crate::scope::Scope;
use std::sync::Arc;

/// Tenants an account may read besides its home tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReadTenants {
    /// Its home tenant only.
    #[default]
    Home,
    /// These too (sorted, without duplicates).
    Listed(Arc<[Arc<str>]>),
    /// Every tenant.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadTenantsError {
    #[error(
        "\"{0}\" is not a tenant name (a-z, 0-9, '.', '_' and '-', starting with a letter or digit, at most 63)"
    )]
    BadName(String),
    #[error("\"*\" (every tenant) cannot be listed with other tenants")]
    AllWithOthers,
}

/// Whether `name` is a tenant name as the server accepts them (`[a-z0-9][a-z0-9._-]{0,62}`).
pub fn is_tenant_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

impl ReadTenants {
    /// From a list of names, `*` alone for every tenant, empty for the home tenant only.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<ReadTenants, ReadTenantsError> {
        if names.iter().any(|n| n.as_ref() == "*") {
            return match names {
                [_] => Ok(ReadTenants::All),
                _ => Err(ReadTenantsError::AllWithOthers),
            };
        }
        let mut listed: Vec<&str> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            if !is_tenant_name(name) {
                return Err(ReadTenantsError::BadName(name.to_owned()));
            }
            listed.push(name);
        }
        listed.sort_unstable();
        listed.dedup();
        if listed.is_empty() {
            return Ok(ReadTenants::Home);
        }
        Ok(ReadTenants::Listed(
            listed.into_iter().map(Arc::from).collect(),
        ))
    }

    /// Space-separated names, `*`, or empty: how the store and the wire keep it.
    pub fn parse_text(text: &str) -> Result<ReadTenants, ReadTenantsError> {
        let names: Vec<&str> = text.split_whitespace().collect();
        ReadTenants::from_names(&names)
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            ReadTenants::Home => Vec::new(),
            ReadTenants::Listed(names) => names.iter().map(|n| n.to_string()).collect(),
            ReadTenants::All => vec!["*".to_owned()],
        }
    }

    pub fn to_text(&self) -> String {
        self.names().join(" ")
    }

    pub fn is_home_only(&self) -> bool {
        matches!(self, ReadTenants::Home)
    }

    fn includes(&self, tenant: &str) -> bool {
        match self {
            ReadTenants::Home => false,
            ReadTenants::Listed(names) => names.iter().any(|n| &**n == tenant),
            ReadTenants::All => is_tenant_name(tenant),
        }
    }
}

fn mismatch(message: String) -> Deny {
    Deny::new(DenyReason::TenantMismatch, message)
}

/// The `X-Scope-OrgID` to send upstream: the token's tenant when the client named none (or
/// named it), else what the client sent, once every `|`-separated tenant in it is the token's
/// or one it may read, and the route only reads. `sent` holds every `X-Scope-OrgID` and
/// `X-Forwarded-Tenant-Id` value, which must agree.
pub fn scope_org_id(grant: &Grant, sent: &[&str], scope: Scope) -> Result<String, Deny> {
    let Some(first) = sent.first() else {
        return Ok(String::from(&*grant.tenant));
    };
    if let Some(other) = sent.iter().find(|value| *value != first) {
        return Err(mismatch(format!(
            "tenant headers disagree: \"{}\" and \"{}\"",
            first.escape_debug(),
            other.escape_debug()
        )));
    }
    // The home tenant alone, however often it is named (`acme|acme`), is the home tenant.
    if first.split('|').all(|part| *part == *grant.tenant) {
        return Ok(String::from(&*grant.tenant));
    }
    for part in first.split('|') {
        if *part == *grant.tenant {
            continue;
        }
        if !grant.read_tenants.includes(part) {
            return Err(mismatch(format!(
                "tenant header \"{}\" names \"{}\", which is neither the token's tenant \"{}\" nor one it may read",
                first.escape_debug(),
                part.escape_debug(),
                grant.tenant
            )));
        }
        if !scope.is_telemetry_read() {
            return Err(mismatch(format!(
                "only reads may name other tenants; {scope} goes to the token's tenant \"{}\"",
                grant.tenant
            )));
        }
    }
    Ok((*first).to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::scope::Role;
    use crate::selector::Policy;

    fn grant(read: &[&str]) -> Grant {
        Grant {
            token_id: 1,
            account_id: 1,
            account: "monitoring".into(),
            tenant: "ops".into(),
            role: Role::Editor.as_str().into(),
            scopes: Role::Editor.scopes(),
            policy: Policy::parse("").unwrap(),
            expires_at: None,
            all_tenants: false,
            read_tenants: ReadTenants::from_names(read).unwrap(),
            hide_policy_labels: false,
        }
    }

    #[test]
    fn read_tenants_text() {
        assert_eq!(ReadTenants::parse_text(""), Ok(ReadTenants::Home));
        assert_eq!(ReadTenants::parse_text("*"), Ok(ReadTenants::All));
        let listed = ReadTenants::parse_text("b a b").unwrap();
        assert_eq!(listed.to_text(), "a b");
        assert_eq!(
            ReadTenants::parse_text("a *"),
            Err(ReadTenantsError::AllWithOthers)
        );
        assert_eq!(
            ReadTenants::parse_text("A"),
            Err(ReadTenantsError::BadName("A".into()))
        );
        assert!(ReadTenants::parse_text("a|b").is_err());
    }

    /// Tenants granted, header values sent, the route's scope, the X-Scope-OrgID sent upstream
    /// (or a tenant mismatch), and why.
    type Case<'a> = (
        &'a [&'a str],
        &'a [&'a str],
        Scope,
        Result<&'a str, ()>,
        &'a str,
    );

    #[test]
    fn org_id_per_grant_and_header() {
        use Scope::{MetricsRead, MetricsWrite};
        let cases: &[Case<'_>] = &[
            (&[], &[], MetricsRead, Ok("ops"), "no header: home"),
            (&[], &["ops"], MetricsWrite, Ok("ops"), "home named"),
            (
                &[],
                &["ops|ops"],
                MetricsWrite,
                Ok("ops"),
                "home twice is home",
            ),
            (&[], &["dev"], MetricsRead, Err(()), "single-tenant account"),
            (&["dev"], &["dev"], MetricsRead, Ok("dev"), "granted tenant"),
            (
                &["dev"],
                &["ops|dev"],
                MetricsRead,
                Ok("ops|dev"),
                "federation",
            ),
            (
                &["dev"],
                &["dev|prod"],
                MetricsRead,
                Err(()),
                "one not granted",
            ),
            (
                &["dev"],
                &["dev"],
                MetricsWrite,
                Err(()),
                "no remote writes",
            ),
            (&["dev"], &["dev|"], MetricsRead, Err(()), "empty part"),
            (&["*"], &["x|y.z"], MetricsRead, Ok("x|y.z"), "every tenant"),
            (&["*"], &["X"], MetricsRead, Err(()), "not a tenant name"),
            (&["*"], &["a b"], MetricsRead, Err(()), "space"),
            (
                &["dev"],
                &["dev", "ops"],
                MetricsRead,
                Err(()),
                "headers disagree",
            ),
            (
                &["dev"],
                &["dev", "dev"],
                MetricsRead,
                Ok("dev"),
                "headers agree",
            ),
        ];
        for (read, sent, scope, want, why) in cases {
            let got = scope_org_id(&grant(read), sent, *scope);
            match want {
                Ok(value) => assert_eq!(got.as_deref(), Ok(*value), "{why}"),
                Err(()) => assert_eq!(
                    got.map_err(|d| d.reason),
                    Err(DenyReason::TenantMismatch),
                    "{why}"
                ),
            }
        }
    }
}
