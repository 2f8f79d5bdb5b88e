//! Domain types of the authoritative store, independent of HTTP and SQL.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tollgate_core::{ReadTenants, ScopeSet};

/// Seconds since the Unix epoch: the clock of expiries, audit rows and last-used times.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A validated name: tenants, account names and token names.
/// Lower-case ASCII only (`[a-z0-9][a-z0-9._-]{0,62}`), so look-alike Unicode names cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 63 characters, got {len}")]
    TooLong { len: usize },
    #[error(
        "must start with a lower-case letter or digit and contain only a-z, 0-9, '.', '_' and '-'"
    )]
    BadCharacter,
}

impl Name {
    pub const MAX_LEN: usize = 63;

    pub fn parse(value: &str) -> Result<Name, NameError> {
        let len = value.chars().count();
        if len == 0 {
            return Err(NameError::Empty);
        }
        if len > Self::MAX_LEN {
            return Err(NameError::TooLong { len });
        }
        let mut bytes = value.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
        if !(first_ok && rest_ok) {
            return Err(NameError::BadCharacter);
        }
        Ok(Name(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub tenant: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub owner_email: String,
    /// A built-in role's name or one of the tenant's own roles.
    pub role: String,
    /// Canonical selector text; empty for unrestricted.
    pub label_policy: String,
    pub disabled: bool,
    /// The bootstrap admin: may manage every tenant.
    pub all_tenants: bool,
    /// Tenants its tokens may read besides its own (only an all-tenant admin grants them).
    pub read_tenants: ReadTenants,
    /// Answers leave out the labels its policy fixes (filter mode; ext_authz refuses its reads).
    pub hide_policy_labels: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub tenant: Name,
    pub name: Name,
    pub display_name: String,
    pub description: String,
    pub owner_email: String,
    pub role: Name,
    pub label_policy: String,
    pub all_tenants: bool,
    pub read_tenants: ReadTenants,
    pub hide_policy_labels: bool,
    pub created_at: i64,
    pub created_by: String,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountPatch {
    pub name: Option<Name>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    pub role: Option<Name>,
    pub label_policy: Option<String>,
    pub disabled: Option<bool>,
    pub read_tenants: Option<ReadTenants>,
    pub hide_policy_labels: Option<bool>,
}

impl AccountPatch {
    /// Whether the change alters what the account's tokens may do (so grants must be rebuilt).
    pub fn touches_grants(&self) -> bool {
        self.name.is_some()
            || self.role.is_some()
            || self.label_policy.is_some()
            || self.disabled.is_some()
            || self.read_tenants.is_some()
            || self.hide_policy_labels.is_some()
    }
}

/// A tenant's own role: a named set of scopes, next to the built-in ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub tenant: String,
    pub name: String,
    pub description: String,
    pub scopes: ScopeSet,
    /// Unix seconds.
    pub created_at: i64,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRole {
    pub tenant: Name,
    pub name: Name,
    pub description: String,
    pub scopes: ScopeSet,
    pub created_at: i64,
    pub created_by: String,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePatch {
    pub description: Option<String>,
    pub scopes: Option<ScopeSet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: Name,
    pub hash: tollgate_core::TokenHash,
    pub hint: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// What an admin action records in the audit log, in the same transaction as the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: i64,
    /// `<tenant>/<account name>` of the caller.
    pub actor: String,
    /// Tenant the action touched (for tenant-scoped audit views).
    pub tenant: String,
    pub action: String,
    pub target: String,
    /// `ok`, or the machine reason of the failure.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub record: AuditRecord,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountQuery {
    /// Only this tenant; `None` for all.
    pub tenant: Option<String>,
    /// Case-insensitive substring of name or display name.
    pub search: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// A page of one account's tokens, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenQuery {
    pub account_id: i64,
    /// Only tokens valid at `.0` that expire at or before `.1` (both Unix seconds): the
    /// `expiringWithin` filter, in the query so that the total counts what it keeps.
    pub expiring: Option<(i64, i64)>,
    pub offset: u64,
    pub limit: u64,
}

impl TokenQuery {
    /// Every token of the account.
    pub fn all(account_id: i64) -> TokenQuery {
        TokenQuery {
            account_id,
            expiring: None,
            offset: 0,
            limit: u64::MAX,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// A tenant as the store knows it: the tenant of at least one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub name: String,
    pub accounts: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A token became live.
    Added,
    /// A live token's grant changed (account renamed, role or policy changed).
    Changed,
    /// A token stopped being live (deleted, regenerated, account deleted or disabled).
    Revoked,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        [ChangeKind::Added, ChangeKind::Changed, ChangeKind::Revoked]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: u64,
    pub hash: tollgate_core::TokenHash,
    pub kind: ChangeKind,
}

/// `text` with each control character written as its escape (`\n`, `\u{1b}`): for text that
/// carries client input and is printed a line at a time (audit targets, table cells), where a
/// raw line break or terminal escape could forge a row.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_other_text_kept() {
        assert!(matches!(
            escape_control("role/acme/x é"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_control("globex\n9999\t\u{1b}[2J\u{85}é"),
            r"globex\n9999\t\u{1b}[2J\u{85}é"
        );
    }

    #[test]
    fn names() {
        let cases = [
            ("ci-reader", Ok(()), "typical"),
            ("a", Ok(()), "one char"),
            ("0day.v2_x", Ok(()), "digits, dot, underscore"),
            ("", Err(NameError::Empty), "empty"),
            ("-lead", Err(NameError::BadCharacter), "leading dash"),
            ("Upper", Err(NameError::BadCharacter), "upper case"),
            (
                "аdmin",
                Err(NameError::BadCharacter),
                "Cyrillic a look-alike",
            ),
            ("a b", Err(NameError::BadCharacter), "space"),
            ("a\0", Err(NameError::BadCharacter), "NUL"),
        ];
        for (input, want, why) in cases {
            assert_eq!(Name::parse(input).map(|_| ()), want, "{why}");
        }
        assert_eq!(
            Name::parse(&"a".repeat(64)),
            Err(NameError::TooLong { len: 64 })
        );
    }
}
