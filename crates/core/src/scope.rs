//! Scopes and the built-in roles that bundle them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    MetricsRead,
    MetricsWrite,
    LogsRead,
    LogsWrite,
    TracesRead,
    TracesWrite,
    AccountsRead,
    AccountsWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope \"{0}\" (expected one of metrics|logs|traces|accounts followed by :read or :write)"
)]
pub struct UnknownScope(pub String);

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::MetricsRead,
        Scope::MetricsWrite,
        Scope::LogsRead,
        Scope::LogsWrite,
        Scope::TracesRead,
        Scope::TracesWrite,
        Scope::AccountsRead,
        Scope::AccountsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MetricsRead => "metrics:read",
            Scope::MetricsWrite => "metrics:write",
            Scope::LogsRead => "logs:read",
            Scope::LogsWrite => "logs:write",
            Scope::TracesRead => "traces:read",
            Scope::TracesWrite => "traces:write",
            Scope::AccountsRead => "accounts:read",
            Scope::AccountsWrite => "accounts:write",
        }
    }

    /// Reads of telemetry: the only requests that may name other tenants (see `tenants`).
    pub fn is_telemetry_read(self) -> bool {
        matches!(
            self,
            Scope::MetricsRead | Scope::LogsRead | Scope::TracesRead
        )
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

impl TryFrom<String> for Scope {
    type Error = UnknownScope;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> String {
        scope.as_str().to_owned()
    }
}

/// A set of scopes as a bit set: checks are a mask test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    pub fn of(scopes: &[Scope]) -> ScopeSet {
        ScopeSet(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_superset_of(self, other: ScopeSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in `self` but not in `other`.
    pub fn without(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & !other.0)
    }

    /// Scope names separated by single spaces, in a fixed order: how a role's scopes are stored.
    pub fn to_text(self) -> String {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        names.join(" ")
    }

    /// Reads [`ScopeSet::to_text`]'s form (any whitespace between names).
    pub fn parse_text(text: &str) -> Result<ScopeSet, UnknownScope> {
        text.split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<Scope>, _>>()
            .map(|scopes| ScopeSet::of(&scopes))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> ScopeSet {
        ScopeSet(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// The built-in roles, present in every tenant; admins add their own (named scope sets, kept by
/// the server). A caller may only grant a role whose scopes it holds itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Role {
    /// Read all telemetry.
    Viewer,
    /// Read and write all telemetry.
    Editor,
    /// Editor plus managing service accounts.
    Admin,
    /// Write-only telemetry, for collectors: least privilege.
    Writer,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role \"{0}\" (expected viewer, editor, admin or writer)")]
pub struct UnknownRole(pub String);

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Writer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Writer => "writer",
        }
    }

    /// The built-in role of this name, if it is one.
    pub fn builtin(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    pub fn scopes(self) -> ScopeSet {
        use Scope::*;
        match self {
            Role::Viewer => ScopeSet::of(&[MetricsRead, LogsRead, TracesRead]),
            Role::Writer => ScopeSet::of(&[MetricsWrite, LogsWrite, TracesWrite]),
            Role::Editor => ScopeSet::of(&[
                MetricsRead,
                MetricsWrite,
                LogsRead,
                LogsWrite,
                TracesRead,
                TracesWrite,
            ]),
            Role::Admin => ScopeSet::of(&Scope::ALL),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl TryFrom<String> for Role {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Role> for String {
    fn from(role: Role) -> String {
        role.as_str().to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("metrics:admin".parse::<Scope>().is_err());
    }

    #[test]
    fn roles_hold_the_documented_scopes() {
        use Scope::*;
        let cases = [
            (Role::Viewer, MetricsRead, true, "viewer reads metrics"),
            (Role::Viewer, MetricsWrite, false, "viewer cannot write"),
            (Role::Writer, LogsWrite, true, "writer pushes logs"),
            (Role::Writer, TracesRead, false, "writer cannot read"),
            (Role::Editor, TracesWrite, true, "editor writes"),
            (
                Role::Editor,
                AccountsRead,
                false,
                "editor cannot see accounts",
            ),
            (Role::Admin, AccountsWrite, true, "admin manages accounts"),
        ];
        for (role, scope, want, why) in cases {
            assert_eq!(role.scopes().contains(scope), want, "{why}");
        }
    }

    #[test]
    fn role_ceiling() {
        let cases = [
            (Role::Admin, Role::Viewer, true),
            (Role::Admin, Role::Admin, true),
            (Role::Editor, Role::Writer, true),
            (Role::Editor, Role::Admin, false),
            (Role::Viewer, Role::Writer, false),
            (Role::Writer, Role::Viewer, false),
        ];
        for (caller, granted, want) in cases {
            assert_eq!(
                caller.scopes().is_superset_of(granted.scopes()),
                want,
                "{caller} granting {granted}"
            );
        }
        assert_eq!(Role::Viewer.scopes().iter().count(), 3);
    }

    #[test]
    fn scope_sets_as_text() {
        let set = ScopeSet::of(&[Scope::AccountsWrite, Scope::MetricsRead]);
        assert_eq!(set.to_text(), "metrics:read accounts:write");
        assert_eq!(ScopeSet::parse_text(&set.to_text()), Ok(set));
        assert_eq!(ScopeSet::parse_text(""), Ok(ScopeSet::EMPTY));
        assert!(ScopeSet::parse_text("metrics:read root").is_err());
        assert_eq!(
            Role::Admin.scopes().without(Role::Editor.scopes()),
            ScopeSet::of(&[Scope::AccountsRead, Scope::AccountsWrite])
        );
    }
}
