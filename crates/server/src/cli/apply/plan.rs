//! The plan for service accounts and their tokens: what the file wants, against what the API
//! answered, as ordered steps and the diff lines that show them. Pure: no I/O, unit-tested
//! without a server.

use super::file::{AccountSpec, Document, Origin};
use crate::api::{AccountDto, CreateAccountBody, PatchAccountBody, TokenDto};
use anyhow::{Context, bail};
use std::collections::{BTreeSet, HashMap, HashSet};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A token's expiry as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// The server's default lifetime.
    Default,
    /// A lifetime from creation (`expiresIn: 30d`).
    In { secs: u64, text: String },
    /// An instant (`expiresAt`), in Unix seconds and as written.
    At { at: i64, text: String },
}

impl Expiry {
    fn describe(&self) -> String {
        match self {
            Expiry::Default => "server default expiry".into(),
            Expiry::In { text, .. } => format!("expires in {text}"),
            Expiry::At { text, .. } => format!("expires at {text}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredToken {
    pub name: String,
    pub expiry: Expiry,
}

/// A ServiceAccount document, checked, with its tenant resolved and its label policy in the
/// server's canonical form (so that spelling or order never shows as a change).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredAccount {
    pub origin: Origin,
    pub tenant: String,
    pub name: String,
    pub spec: AccountSpec,
    pub tokens: Option<Vec<DesiredToken>>,
}

fn parse_time(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

impl DesiredAccount {
    pub fn from_document(
        origin: Origin,
        document: Document<AccountSpec>,
        default_tenant: &str,
    ) -> anyhow::Result<DesiredAccount> {
        let Document { metadata, spec, .. } = document;
        let mut spec = spec;
        if let Some(policy) = &spec.label_policy {
            let canonical = tollgate_core::Policy::parse(policy)
                .with_context(|| format!("{origin}: spec.labelPolicy"))?;
            spec.label_policy = Some(canonical.to_string());
        }
        let tokens = match spec.tokens.take() {
            None => None,
            Some(list) => {
                let mut seen = HashSet::new();
                let mut tokens = Vec::new();
                for (i, token) in list.into_iter().enumerate() {
                    let field = format!("{origin}: spec.tokens[{i}]");
                    if !seen.insert(token.name.clone()) {
                        bail!("{field}: token \"{}\" is listed twice", token.name);
                    }
                    let expiry = match (token.expires_in, token.expires_at) {
                        (Some(_), Some(_)) => {
                            bail!("{field}: expiresIn and expiresAt are exclusive: give one")
                        }
                        (Some(text), None) => Expiry::In {
                            secs: crate::config::parse_duration(&text)
                                .with_context(|| format!("{field}.expiresIn"))?
                                .as_secs(),
                            text,
                        },
                        (None, Some(text)) => match parse_time(&text) {
                            Some(at) => Expiry::At { at, text },
                            None => bail!("{field}.expiresAt: not an RFC 3339 time: \"{text}\""),
                        },
                        (None, None) => Expiry::Default,
                    };
                    tokens.push(DesiredToken {
                        name: token.name,
                        expiry,
                    });
                }
                Some(tokens)
            }
        };
        Ok(DesiredAccount {
            tenant: metadata.tenant.unwrap_or_else(|| default_tenant.to_owned()),
            name: metadata.name,
            origin,
            spec,
            tokens,
        })
    }

    fn key(&self) -> String {
        format!("{}/{}", self.tenant, self.name)
    }
}

/// Who runs the apply: never pruned, nor the token it authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Me {
    pub account_id: i64,
    pub token_id: i64,
}

/// What the API answered: every account the caller sees, and the tokens of those the file
/// manages tokens for.
pub struct Current<'a> {
    pub accounts: &'a [AccountDto],
    pub tokens: &'a HashMap<i64, Vec<TokenDto>>,
    pub me: Me,
}

/// One field that changes: `name: old -> new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

pub enum AccountStep {
    Create {
        tenant: String,
        name: String,
        body: CreateAccountBody,
        /// Disabled in the file: the API creates accounts enabled, so a PATCH follows.
        disable: bool,
    },
    Update {
        tenant: String,
        name: String,
        id: i64,
        changes: Vec<FieldChange>,
        body: PatchAccountBody,
    },
    Delete {
        tenant: String,
        name: String,
        id: i64,
    },
    CreateToken {
        tenant: String,
        account: String,
        name: String,
        expiry: Expiry,
    },
    RevokeToken {
        tenant: String,
        account: String,
        account_id: i64,
        token_id: i64,
        name: String,
    },
}

impl AccountStep {
    /// The object, as `serviceaccount acme/ci` or `token acme/ci/main`.
    pub fn object(&self) -> String {
        match self {
            AccountStep::Create { tenant, name, .. }
            | AccountStep::Update { tenant, name, .. }
            | AccountStep::Delete { tenant, name, .. } => format!("serviceaccount {tenant}/{name}"),
            AccountStep::CreateToken {
                tenant,
                account,
                name,
                ..
            }
            | AccountStep::RevokeToken {
                tenant,
                account,
                name,
                ..
            } => format!("token {tenant}/{account}/{name}"),
        }
    }

    /// The diff lines of this step.
    pub fn lines(&self) -> Vec<String> {
        let object = self.object();
        match self {
            AccountStep::Create { body, disable, .. } => {
                let mut details = vec![format!("role {}", body.role)];
                if let Some(policy) = body.label_policy.as_deref().filter(|p| !p.is_empty()) {
                    details.push(format!("labelPolicy {policy}"));
                }
                if *disable {
                    details.push("disabled".into());
                }
                vec![format!("+ {object} ({})", details.join(", "))]
            }
            AccountStep::Update { changes, .. } => changes
                .iter()
                .map(|c| format!("~ {object} {}: {} -> {}", c.field, c.old, c.new))
                .collect(),
            AccountStep::Delete { .. } => vec![format!("- {object} (revokes its tokens)")],
            AccountStep::CreateToken { expiry, .. } => {
                vec![format!("+ {object} ({})", expiry.describe())]
            }
            AccountStep::RevokeToken { token_id, .. } => {
                vec![format!("- {object} (id {token_id})")]
            }
        }
    }
}

/// The steps for accounts and tokens, and notes: what differs but is left alone, and why.
#[derive(Default)]
pub struct AccountPlan {
    /// Creates and updates of accounts, then new tokens.
    pub upserts: Vec<AccountStep>,
    /// Revoked tokens, then deleted accounts (only with prune).
    pub deletes: Vec<AccountStep>,
    pub notes: Vec<String>,
}

fn quote(text: &str) -> String {
    format!("{text:?}")
}

/// `field` of `old` against the file's `new`, when the file gives it.
fn compare(
    changes: &mut Vec<FieldChange>,
    field: &'static str,
    old: &str,
    new: Option<&String>,
) -> Option<String> {
    let new = new.filter(|new| new.as_str() != old)?;
    changes.push(FieldChange {
        field,
        old: quote(old),
        new: quote(new),
    });
    Some(new.clone())
}

fn update(account: &AccountDto, desired: &DesiredAccount) -> Option<AccountStep> {
    let spec = &desired.spec;
    let mut changes = Vec::new();
    let mut body = PatchAccountBody {
        name: None,
        display_name: compare(
            &mut changes,
            "displayName",
            &account.display_name,
            spec.display_name.as_ref(),
        ),
        description: compare(
            &mut changes,
            "description",
            &account.description,
            spec.description.as_ref(),
        ),
        owner_email: compare(
            &mut changes,
            "ownerEmail",
            &account.owner_email,
            spec.owner_email.as_ref(),
        ),
        role: None,
        label_policy: compare(
            &mut changes,
            "labelPolicy",
            &account.label_policy,
            spec.label_policy.as_ref(),
        ),
        disabled: None,
        read_tenants: None,
        hide_policy_labels: None,
    };
    if let Some(read) = spec.read_tenants.as_ref() {
        let mut wanted = read.clone();
        wanted.sort();
        wanted.dedup();
        if wanted != account.read_tenants {
            changes.push(FieldChange {
                field: "readTenants",
                old: format!("{:?}", account.read_tenants),
                new: format!("{wanted:?}"),
            });
            body.read_tenants = Some(wanted);
        }
    }
    if let Some(hide) = spec
        .hide_policy_labels
        .filter(|h| *h != account.hide_policy_labels)
    {
        changes.push(FieldChange {
            field: "hidePolicyLabels",
            old: account.hide_policy_labels.to_string(),
            new: hide.to_string(),
        });
        body.hide_policy_labels = Some(hide);
    }
    if spec.role != account.role {
        changes.push(FieldChange {
            field: "role",
            old: account.role.clone(),
            new: spec.role.clone(),
        });
        body.role = Some(spec.role.clone());
    }
    if let Some(disabled) = spec.disabled.filter(|d| *d != account.disabled) {
        changes.push(FieldChange {
            field: "disabled",
            old: account.disabled.to_string(),
            new: disabled.to_string(),
        });
        body.disabled = Some(disabled);
    }
    (!changes.is_empty()).then(|| AccountStep::Update {
        tenant: account.tenant.clone(),
        name: account.name.clone(),
        id: account.id,
        changes,
        body,
    })
}

fn create(desired: &DesiredAccount) -> AccountStep {
    let spec = desired.spec.clone();
    AccountStep::Create {
        tenant: desired.tenant.clone(),
        name: desired.name.clone(),
        disable: spec.disabled == Some(true),
        body: CreateAccountBody {
            tenant: Some(desired.tenant.clone()),
            name: desired.name.clone(),
            display_name: spec.display_name,
            description: spec.description,
            owner_email: spec.owner_email,
            role: spec.role,
            label_policy: spec.label_policy,
            read_tenants: spec.read_tenants,
            hide_policy_labels: spec.hide_policy_labels,
            with_token: None,
            token_name: None,
            expires_at: None,
            ttl_seconds: None,
        },
    }
}

/// Tokens of one account: the missing ones created; with prune, the unlisted ones revoked
/// (never the caller's own). An existing token's expiry is never changed: a differing
/// `expiresAt` is a note.
fn plan_tokens(
    desired: &DesiredAccount,
    wanted: &[DesiredToken],
    existing: Option<(&AccountDto, &[TokenDto])>,
    me: Me,
    prune: bool,
    plan: &mut AccountPlan,
) {
    let (account, have) = match existing {
        Some((account, tokens)) => (Some(account), tokens),
        None => (None, &[][..]),
    };
    for token in wanted {
        match have.iter().find(|t| t.name == token.name) {
            None => plan.upserts.push(AccountStep::CreateToken {
                tenant: desired.tenant.clone(),
                account: desired.name.clone(),
                name: token.name.clone(),
                expiry: token.expiry.clone(),
            }),
            Some(found) => {
                if let Expiry::At { at, text } = &token.expiry {
                    let current = found.expires_at.as_deref().and_then(parse_time);
                    if current != Some(*at) {
                        plan.notes.push(format!(
                            "! token {}/{}: expiresAt {text} in the file, {} on the server: expiry is set at creation only, left as is (revoke the token to re-create it)",
                            desired.key(),
                            token.name,
                            found.expires_at.as_deref().unwrap_or("never"),
                        ));
                    }
                }
            }
        }
    }
    let Some(account) = account.filter(|_| prune) else {
        return;
    };
    for token in have {
        if wanted.iter().any(|t| t.name == token.name) {
            continue;
        }
        if account.id == me.account_id && token.id == me.token_id {
            plan.notes.push(format!(
                "! token {}/{}: not revoked: it is the token this apply runs with",
                desired.key(),
                token.name
            ));
            continue;
        }
        plan.deletes.push(AccountStep::RevokeToken {
            tenant: account.tenant.clone(),
            account: account.name.clone(),
            account_id: account.id,
            token_id: token.id,
            name: token.name.clone(),
        });
    }
}

/// The plan for accounts and tokens. With `prune`, accounts of the file's tenants that the file
/// does not list are deleted, except the caller's own account and the all-tenant admin.
pub fn plan_accounts(
    desired: &[DesiredAccount],
    current: &Current<'_>,
    prune: bool,
) -> anyhow::Result<AccountPlan> {
    let mut seen: HashMap<String, &Origin> = HashMap::new();
    for account in desired {
        if let Some(first) = seen.insert(account.key(), &account.origin) {
            bail!(
                "{}: serviceaccount {} is also in {first}",
                account.origin,
                account.key()
            );
        }
    }
    let mut plan = AccountPlan::default();
    let mut new_tokens = Vec::new();
    for want in desired {
        let found = current
            .accounts
            .iter()
            .find(|a| a.tenant == want.tenant && a.name == want.name);
        match found {
            Some(account) => plan.upserts.extend(update(account, want)),
            None => plan.upserts.push(create(want)),
        }
        if let Some(tokens) = &want.tokens {
            let existing = found.map(|a| {
                let have = current.tokens.get(&a.id).map_or(&[][..], Vec::as_slice);
                (a, have)
            });
            let mut tokens_plan = AccountPlan::default();
            plan_tokens(want, tokens, existing, current.me, prune, &mut tokens_plan);
            new_tokens.extend(tokens_plan.upserts);
            plan.deletes.extend(tokens_plan.deletes);
            plan.notes.extend(tokens_plan.notes);
        }
    }
    // Tokens after every account: an account created above exists by then.
    plan.upserts.extend(new_tokens);
    if prune {
        let tenants: BTreeSet<&str> = desired.iter().map(|a| a.tenant.as_str()).collect();
        for account in current.accounts {
            if !tenants.contains(account.tenant.as_str())
                || desired
                    .iter()
                    .any(|d| d.tenant == account.tenant && d.name == account.name)
            {
                continue;
            }
            let key = format!("{}/{}", account.tenant, account.name);
            if account.all_tenants {
                plan.notes.push(format!(
                    "! serviceaccount {key}: not pruned: it is the all-tenant admin, which the API never deletes"
                ));
            } else if account.id == current.me.account_id {
                plan.notes.push(format!(
                    "! serviceaccount {key}: not pruned: it is the account this apply runs as"
                ));
            } else {
                plan.deletes.push(AccountStep::Delete {
                    tenant: account.tenant.clone(),
                    name: account.name.clone(),
                    id: account.id,
                });
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::file::{Metadata, TokenSpec};
    use super::*;

    fn origin(document: usize) -> Origin {
        Origin {
            file: "f.yaml".into(),
            document,
        }
    }

    fn account(id: i64, tenant: &str, name: &str) -> AccountDto {
        AccountDto {
            id,
            tenant: tenant.into(),
            name: name.into(),
            display_name: name.into(),
            description: String::new(),
            owner_email: String::new(),
            role: "viewer".into(),
            label_policy: r#"{a="1", b="2"}"#.into(),
            disabled: false,
            all_tenants: false,
            read_tenants: Vec::new(),
            hide_policy_labels: false,
            created_at: "2026-01-01T00:00:00Z".into(),
            created_by: "default/admin".into(),
        }
    }

    fn token(id: i64, name: &str, expires_at: Option<&str>) -> TokenDto {
        TokenDto {
            id,
            name: name.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: expires_at.map(Into::into),
            last_used_at: None,
            hint: "tgsa_…abcd".into(),
        }
    }

    fn desired(tenant: Option<&str>, name: &str, spec: AccountSpec) -> DesiredAccount {
        let document = Document::new(
            super::super::file::KIND_ACCOUNT,
            Metadata {
                name: name.into(),
                tenant: tenant.map(Into::into),
            },
            spec,
        );
        DesiredAccount::from_document(origin(1), document, "acme").unwrap()
    }

    fn spec(role: &str) -> AccountSpec {
        AccountSpec {
            role: role.into(),
            ..AccountSpec::default()
        }
    }

    const ME: Me = Me {
        account_id: 100,
        token_id: 1000,
    };

    fn lines(plan: &AccountPlan) -> Vec<String> {
        plan.upserts
            .iter()
            .chain(&plan.deletes)
            .flat_map(AccountStep::lines)
            .collect()
    }

    #[test]
    fn label_policies_compare_canonically_and_absent_fields_are_unmanaged() {
        let have = [account(1, "acme", "ci")];
        let tokens = HashMap::new();
        let current = Current {
            accounts: &have,
            tokens: &tokens,
            me: ME,
        };
        let same = AccountSpec {
            label_policy: Some(r#"{b="2",a="1"}"#.into()),
            ..spec("viewer")
        };
        let plan = plan_accounts(&[desired(None, "ci", same)], &current, false).unwrap();
        assert_eq!(
            lines(&plan),
            Vec::<String>::new(),
            "order and spacing are not a change"
        );

        let changed = AccountSpec {
            description: Some("CI".into()),
            role: "editor".into(),
            disabled: Some(true),
            ..AccountSpec::default()
        };
        let plan = plan_accounts(&[desired(None, "ci", changed)], &current, false).unwrap();
        assert_eq!(
            lines(&plan),
            [
                r#"~ serviceaccount acme/ci description: "" -> "CI""#,
                "~ serviceaccount acme/ci role: viewer -> editor",
                "~ serviceaccount acme/ci disabled: false -> true",
            ]
        );
    }

    #[test]
    fn creates_tokens_after_accounts_and_prunes_only_the_files_tenants() {
        let mut admin = account(100, "acme", "deployer");
        admin.role = "admin".into();
        let mut root = account(1, "acme", "bootstrap-admin");
        root.all_tenants = true;
        let have = [
            root,
            account(2, "acme", "old"),
            account(3, "globex", "other"),
            account(4, "acme", "ci"),
            admin,
        ];
        let tokens = HashMap::from([(
            4,
            vec![
                token(40, "keep", Some("2027-01-01T00:00:00Z")),
                token(41, "stale", None),
            ],
        )]);
        let current = Current {
            accounts: &have,
            tokens: &tokens,
            me: ME,
        };
        let with_tokens = |names: &[(&str, Option<&str>)]| AccountSpec {
            tokens: Some(
                names
                    .iter()
                    .map(|(name, at)| TokenSpec {
                        name: (*name).into(),
                        expires_at: at.map(Into::into),
                        expires_in: at.is_none().then(|| "30d".into()),
                    })
                    .collect(),
            ),
            ..spec("viewer")
        };
        let file = [
            desired(
                None,
                "ci",
                with_tokens(&[("keep", Some("2028-01-01T00:00:00Z")), ("new", None)]),
            ),
            desired(Some("acme"), "fresh", with_tokens(&[("first", None)])),
        ];
        let plan = plan_accounts(&file, &current, true).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "+ serviceaccount acme/fresh (role viewer)",
                "+ token acme/ci/new (expires in 30d)",
                "+ token acme/fresh/first (expires in 30d)",
                "- token acme/ci/stale (id 41)",
                "- serviceaccount acme/old (revokes its tokens)",
            ],
            "globex is not in the file: untouched"
        );
        let notes = plan.notes.join("\n");
        assert!(
            notes.contains("acme/bootstrap-admin: not pruned"),
            "{notes}"
        );
        assert!(notes.contains("acme/deployer: not pruned"), "{notes}");
        assert!(notes.contains("token acme/ci/keep: expiresAt"), "{notes}");

        let plan = plan_accounts(&file, &current, false).unwrap();
        assert!(plan.deletes.is_empty(), "nothing is deleted without prune");
    }

    #[test]
    fn the_callers_own_token_is_never_revoked() {
        let have = [account(100, "acme", "me")];
        let tokens = HashMap::from([(100, vec![token(1000, "mine", None)])]);
        let current = Current {
            accounts: &have,
            tokens: &tokens,
            me: ME,
        };
        let spec = AccountSpec {
            tokens: Some(vec![]),
            ..spec("viewer")
        };
        let plan = plan_accounts(&[desired(None, "me", spec)], &current, true).unwrap();
        assert!(plan.deletes.is_empty());
        assert!(plan.notes[0].contains("the token this apply runs with"));
    }

    #[test]
    fn bad_documents_name_their_origin_and_field() {
        let token = |expires_in: Option<&str>, expires_at: Option<&str>| AccountSpec {
            tokens: Some(vec![TokenSpec {
                name: "t".into(),
                expires_in: expires_in.map(Into::into),
                expires_at: expires_at.map(Into::into),
            }]),
            ..spec("viewer")
        };
        let cases = [
            (
                AccountSpec {
                    label_policy: Some("{a=".into()),
                    ..spec("viewer")
                },
                "f.yaml, document 1: spec.labelPolicy",
            ),
            (token(Some("1d"), Some("2027-01-01T00:00:00Z")), "exclusive"),
            (token(Some("soon"), None), "spec.tokens[0].expiresIn"),
            (token(None, Some("tomorrow")), "spec.tokens[0].expiresAt"),
        ];
        for (spec, want) in cases {
            let document = Document::new(
                super::super::file::KIND_ACCOUNT,
                Metadata {
                    name: "a".into(),
                    tenant: None,
                },
                spec,
            );
            let err = DesiredAccount::from_document(origin(1), document, "acme").unwrap_err();
            assert!(format!("{err:#}").contains(want), "{err:#} lacks {want}");
        }
        let twice = [
            desired(None, "a", spec("viewer")),
            desired(None, "a", spec("viewer")),
        ];
        let tokens = HashMap::new();
        let current = Current {
            accounts: &[],
            tokens: &tokens,
            me: ME,
        };
        let err = plan_accounts(&twice, &current, false).err().unwrap();
        assert!(
            err.to_string().contains("also in f.yaml, document 1"),
            "{err}"
        );
    }
}
