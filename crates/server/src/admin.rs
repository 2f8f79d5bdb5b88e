//! Admin operations on service accounts and tokens, with the rules that keep them safe:
//! tenant isolation, the role and label-policy ceilings, expiry limits, and an audit row for
//! every outcome. HTTP-free: the API layer maps requests to these calls.

use crate::directory::Directory;
use crate::error::ApiError;
use crate::model::{
    Account, AccountPatch, AccountQuery, AuditEntry, AuditQuery, AuditRecord, DEFAULT_TENANT, Name,
    NewAccount, NewToken, Page, TokenRecord,
};
use crate::store::{Store, StoreError};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_core::selector::{LimitError, SelectorError};
use tollgate_core::{
    Authorization, Grant, GrantLookup, Policy, PolicyLimits, RequestView, Role, RouteTable,
    ScopeSet, Token, authorize, authorize_grant,
};

pub const MAX_DESCRIPTION_CHARS: usize = 400;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_CHARS: usize = 254;
/// Expiries beyond this are refused even with no configured maximum (year 9999).
const LATEST_EXPIRY: i64 = 253_402_300_799;

#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Lifetime of a token created without an expiry; `None` means it never expires.
    pub default_token_lifetime: Option<Duration>,
    /// Longest lifetime a token may have; `None` for no limit.
    pub max_token_lifetime: Option<Duration>,
    pub policy_limits: PolicyLimits,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An authenticated caller of the admin API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: i64,
    /// The token the caller authenticated with.
    pub token_id: i64,
    pub tenant: String,
    /// `<tenant>/<name>`, as recorded in the audit log.
    pub actor: String,
    pub scopes: ScopeSet,
    pub policy: Policy,
    pub all_tenants: bool,
}

impl Caller {
    fn from_grant(grant: &Grant) -> Caller {
        Caller {
            account_id: grant.account_id,
            token_id: grant.token_id,
            tenant: grant.tenant.to_string(),
            actor: format!("{}/{}", grant.tenant, grant.account),
            scopes: grant.scopes,
            policy: grant.policy.clone(),
            all_tenants: grant.all_tenants,
        }
    }

    fn check_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        if self.all_tenants || self.tenant == tenant {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "tenant_forbidden",
                format!("caller may not act on tenant \"{tenant}\""),
            ))
        }
    }

    /// A caller may only grant, or act for, what it holds itself: no escalation through an
    /// account it creates, edits or mints tokens for.
    fn check_ceiling(&self, role: Role, policy: &Policy) -> Result<(), ApiError> {
        if !self.scopes.is_superset_of(role.scopes()) {
            return Err(ApiError::forbidden(
                "role_ceiling",
                format!("caller does not hold every scope of role {role}"),
            ));
        }
        if !self.policy.contains(policy) {
            return Err(ApiError::forbidden(
                "label_policy_ceiling",
                format!(
                    "label policy \"{policy}\" is not within the caller's policy \"{}\"",
                    self.policy
                ),
            ));
        }
        Ok(())
    }
}

/// The fields of a new account as the API received them.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub tenant: Option<String>,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    pub role: Role,
    pub label_policy: Option<String>,
}

/// A requested expiry: an instant, a time to live, or neither (the configured default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpirySpec {
    pub expires_at: Option<i64>,
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    pub role: Option<Role>,
    pub label_policy: Option<String>,
    pub disabled: Option<bool>,
}

/// A token as it is handed out: once, at creation or regeneration.
pub struct IssuedToken {
    pub record: TokenRecord,
    pub token: Token,
}

/// Who an access review is about.
#[derive(Debug, Clone)]
pub enum ReviewSubject {
    AccountId(i64),
    AccountName {
        tenant: Option<String>,
        name: String,
    },
    Token(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewAnswer {
    pub allowed: bool,
    pub scope: Option<String>,
    pub reason: String,
    pub message: String,
}

pub struct Admin<S> {
    directory: Arc<Directory<S>>,
    config: AdminConfig,
    /// The admin API's own routes: who may call what here.
    admin_routes: RouteTable,
    /// What Envoy enforces in front of upstreams, for access reviews.
    upstream_routes: Arc<RouteTable>,
}

fn field_error(field: &'static str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_field", format!("{field}: {problem}"))
}

fn parse_name(field: &'static str, value: &str) -> Result<Name, ApiError> {
    Name::parse(value).map_err(|err| field_error(field, err))
}

fn check_text(field: &'static str, value: &str, max_chars: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len > max_chars {
        return Err(field_error(
            field,
            format!("at most {max_chars} characters, got {len}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(field_error(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Ok(());
    }
    check_text("ownerEmail", value, MAX_EMAIL_CHARS)?;
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !value.chars().any(char::is_whitespace)
    });
    if valid {
        Ok(())
    } else {
        Err(field_error("ownerEmail", "must look like name@domain"))
    }
}

impl<S: Store> Admin<S> {
    pub fn new(
        directory: Arc<Directory<S>>,
        config: AdminConfig,
        upstream_routes: Arc<RouteTable>,
    ) -> Admin<S> {
        Admin {
            directory,
            config,
            admin_routes: RouteTable::admin(),
            upstream_routes,
        }
    }

    pub fn directory(&self) -> &Directory<S> {
        &self.directory
    }

    fn store(&self) -> &S {
        self.directory.store()
    }

    /// Authenticates a bearer credential against the live snapshot and checks that it may call
    /// `method path` of the admin API, with the same route rules and decision as the proxy.
    pub fn authenticate(
        &self,
        authorizations: &[&str],
        method: &str,
        path: &str,
    ) -> Result<Caller, ApiError> {
        let mut view = RequestView::new(method, path);
        for value in authorizations {
            view.observe_header(tollgate_core::headers::AUTHORIZATION, value);
        }
        let snapshot = self.directory.snapshot();
        let lookup = |hash: &_| match snapshot.get(hash) {
            Some(grant) => GrantLookup::Found(grant.as_ref()),
            None => GrantLookup::Unknown,
        };
        match authorize(&view, lookup, &self.admin_routes, now_secs().max(0) as u64) {
            Authorization::Allowed(authorized) => Ok(Caller::from_grant(authorized.grant)),
            Authorization::Denied(deny) => Err(deny.into()),
            Authorization::NotHere(_) => Err(tollgate_core::Deny::unknown_token().into()),
        }
    }

    fn audit(&self, caller: &Caller, tenant: &str, action: &str, target: String) -> AuditRecord {
        AuditRecord {
            at: now_secs(),
            actor: caller.actor.clone(),
            tenant: tenant.to_owned(),
            action: action.to_owned(),
            // Targets carry client input (an attempted name): never let a token into the log.
            target: tollgate_core::token::redact(&target).into_owned(),
            outcome: "ok".to_owned(),
        }
    }

    /// Records a failed action's outcome; successful ones are recorded by the store in the
    /// action's own transaction.
    async fn audited<T>(
        &self,
        audit: AuditRecord,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(err) = &result
            && err.status != StatusCode::SERVICE_UNAVAILABLE
        {
            let record = AuditRecord {
                outcome: err.reason.to_owned(),
                ..audit
            };
            if let Err(store_err) = self.store().record_audit(record).await {
                tracing::error!(error = %store_err, "could not record a failed action in the audit log");
            }
        }
        result
    }

    /// Publishes a committed write to the snapshot. The write is durable already; a failure
    /// here is logged and repaired by the next refresh.
    async fn publish(&self) {
        if let Err(err) = self.directory.refresh().await {
            tracing::error!(error = %err, "snapshot refresh failed after a committed write");
        }
    }

    fn parse_policy(&self, text: &str) -> Result<Policy, ApiError> {
        let policy = Policy::parse(text).map_err(|err| match err {
            // Well-formed, but a regex the upstream would read differently: refused as a
            // policy we will not enforce, not as malformed input.
            SelectorError::UnsupportedRegex { .. } => {
                ApiError::unprocessable("label_policy_regex", format!("labelPolicy: {err}"))
            }
            err => field_error("labelPolicy", err),
        })?;
        policy
            .validate(&self.config.policy_limits)
            .map_err(|err| match err {
                LimitError::SelectsNothing { .. } => {
                    ApiError::unprocessable("label_policy_empty", format!("labelPolicy: {err}"))
                }
                err => ApiError::unprocessable("label_policy_limit", format!("labelPolicy: {err}")),
            })?;
        Ok(policy)
    }

    /// Resolves the expiry of a new token against the configured default and maximum.
    fn resolve_expiry(&self, spec: ExpirySpec, now: i64) -> Result<Option<i64>, ApiError> {
        let expires_at = match (spec.expires_at, spec.ttl_seconds) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "expiresAt and ttlSeconds are exclusive: give one",
                ));
            }
            (Some(at), None) => Some(at),
            (None, Some(ttl)) => Some(now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
            (None, None) => self
                .config
                .default_token_lifetime
                .map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
        };
        if let Some(at) = expires_at {
            if at <= now {
                return Err(ApiError::unprocessable(
                    "expiry_in_past",
                    "expiry must be in the future",
                ));
            }
            if at > LATEST_EXPIRY {
                return Err(ApiError::unprocessable(
                    "expiry_too_late",
                    "expiry must be before the year 10000",
                ));
            }
        }
        if let Some(max) = self.config.max_token_lifetime {
            let latest = now.saturating_add(i64::try_from(max.as_secs()).unwrap_or(i64::MAX));
            match expires_at {
                None => {
                    return Err(ApiError::unprocessable(
                        "expiry_required",
                        format!(
                            "tokens must expire within {} seconds: give expiresAt or ttlSeconds",
                            max.as_secs()
                        ),
                    ));
                }
                Some(at) if at > latest => {
                    return Err(ApiError::unprocessable(
                        "expiry_too_late",
                        format!(
                            "expiry exceeds the maximum token lifetime of {} seconds",
                            max.as_secs()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(expires_at)
    }

    /// Loads an account the caller may see.
    async fn visible_account(&self, caller: &Caller, id: i64) -> Result<Account, ApiError> {
        let account = self.store().get_account(id).await?;
        caller.check_tenant(&account.tenant)?;
        Ok(account)
    }

    /// Loads an account the caller may manage: visible and within its ceiling. The all-tenant
    /// admin is above every tenant's ceiling: a tenant admin of its tenant must not mint its
    /// tokens (and so act on every tenant), nor edit, disable or delete it.
    async fn managed_account(&self, caller: &Caller, id: i64) -> Result<Account, ApiError> {
        let account = self.visible_account(caller, id).await?;
        if account.all_tenants && !caller.all_tenants {
            return Err(ApiError::forbidden(
                "all_tenants_ceiling",
                "only an all-tenant admin may manage the all-tenant admin account",
            ));
        }
        let policy = Policy::parse(&account.label_policy).map_err(|err| StoreError::Corrupt {
            detail: format!("label policy of account {id}: {err}"),
        })?;
        caller.check_ceiling(account.role, &policy)?;
        Ok(account)
    }

    async fn issue_token(
        &self,
        account_id: i64,
        name: Name,
        expires_at: Option<i64>,
        audit: AuditRecord,
    ) -> Result<IssuedToken, ApiError> {
        let token = Token::generate().map_err(|err| ApiError::internal(err.to_string()))?;
        let new = NewToken {
            name,
            hash: token.hash(),
            hint: token.hint(),
            created_at: now_secs(),
            expires_at,
        };
        let record = self.store().create_token(account_id, new, audit).await?;
        Ok(IssuedToken { record, token })
    }

    pub async fn create_account(
        &self,
        caller: &Caller,
        spec: AccountSpec,
        first_token: Option<(String, ExpirySpec)>,
    ) -> Result<(Account, Option<IssuedToken>), ApiError> {
        let tenant_text = spec.tenant.clone().unwrap_or_else(|| caller.tenant.clone());
        let audit = self.audit(
            caller,
            &tenant_text,
            "serviceaccount.create",
            format!("serviceaccount/{}/{}", tenant_text, spec.name),
        );
        let result = async {
            let tenant = parse_name("tenant", &tenant_text)?;
            let name = parse_name("name", &spec.name)?;
            let display_name = spec.display_name.unwrap_or_else(|| spec.name.clone());
            check_text("displayName", &display_name, MAX_DISPLAY_NAME_CHARS)?;
            let description = spec.description.unwrap_or_default();
            check_text("description", &description, MAX_DESCRIPTION_CHARS)?;
            let owner_email = spec.owner_email.unwrap_or_default();
            check_email(&owner_email)?;
            let policy = self.parse_policy(spec.label_policy.as_deref().unwrap_or(""))?;
            caller.check_tenant(tenant.as_str())?;
            caller.check_ceiling(spec.role, &policy)?;
            let now = now_secs();
            let first = match first_token {
                Some((token_name, expiry)) => Some((
                    parse_name("tokenName", &token_name)?,
                    self.resolve_expiry(expiry, now)?,
                )),
                None => None,
            };
            let account = self
                .store()
                .create_account(
                    NewAccount {
                        tenant,
                        name,
                        display_name,
                        description,
                        owner_email,
                        role: spec.role,
                        label_policy: policy.to_string(),
                        all_tenants: false,
                        created_at: now,
                        created_by: caller.actor.clone(),
                    },
                    audit.clone(),
                )
                .await?;
            let issued = match first {
                Some((token_name, expires_at)) => {
                    let token_audit = AuditRecord {
                        action: "token.create".into(),
                        target: format!("serviceaccount/{}/token/{token_name}", account.id),
                        ..audit.clone()
                    };
                    Some(
                        self.issue_token(account.id, token_name, expires_at, token_audit)
                            .await?,
                    )
                }
                None => None,
            };
            Ok((account, issued))
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn list_accounts(
        &self,
        caller: &Caller,
        search: Option<String>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<Account>, ApiError> {
        let tenant = (!caller.all_tenants).then(|| caller.tenant.clone());
        Ok(self
            .store()
            .list_accounts(AccountQuery {
                tenant,
                search: search.filter(|s| !s.is_empty()),
                offset,
                limit,
            })
            .await?)
    }

    pub async fn get_account(&self, caller: &Caller, id: i64) -> Result<Account, ApiError> {
        self.visible_account(caller, id).await
    }

    pub async fn update_account(
        &self,
        caller: &Caller,
        id: i64,
        changes: AccountChanges,
    ) -> Result<Account, ApiError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "serviceaccount.update",
            format!("serviceaccount/{id}"),
        );
        let result = async {
            let account = self.managed_account(caller, id).await?;
            let patch = AccountPatch {
                name: changes
                    .name
                    .as_deref()
                    .map(|n| parse_name("name", n))
                    .transpose()?,
                display_name: changes.display_name,
                description: changes.description,
                owner_email: changes.owner_email,
                role: changes.role,
                label_policy: match changes.label_policy.as_deref() {
                    Some(text) => Some(self.parse_policy(text)?.to_string()),
                    None => None,
                },
                disabled: changes.disabled,
            };
            if let Some(text) = &patch.display_name {
                check_text("displayName", text, MAX_DISPLAY_NAME_CHARS)?;
            }
            if let Some(text) = &patch.description {
                check_text("description", text, MAX_DESCRIPTION_CHARS)?;
            }
            if let Some(email) = &patch.owner_email {
                check_email(email)?;
            }
            let role = patch.role.unwrap_or(account.role);
            let policy_text = patch
                .label_policy
                .as_deref()
                .unwrap_or(&account.label_policy);
            let policy =
                Policy::parse(policy_text).map_err(|err| field_error("labelPolicy", err))?;
            caller.check_ceiling(role, &policy)?;
            let audit = AuditRecord {
                tenant: account.tenant.clone(),
                ..audit.clone()
            };
            // The store refuses to demote the all-tenant admin, inside its write transaction
            // (409 all_tenants_admin_protected): a check here could race another replica.
            Ok(self.store().update_account(id, patch, audit).await?)
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn delete_account(&self, caller: &Caller, id: i64) -> Result<(), ApiError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "serviceaccount.delete",
            format!("serviceaccount/{id}"),
        );
        let result = async {
            let account = self.managed_account(caller, id).await?;
            let audit = AuditRecord {
                tenant: account.tenant.clone(),
                ..audit.clone()
            };
            // The store refuses to delete the all-tenant admin (409, as above).
            Ok(self.store().delete_account(id, audit).await?)
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn create_token(
        &self,
        caller: &Caller,
        account_id: i64,
        name: String,
        expiry: ExpirySpec,
    ) -> Result<IssuedToken, ApiError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "token.create",
            format!("serviceaccount/{account_id}/token/{name}"),
        );
        let result = async {
            let account = self.managed_account(caller, account_id).await?;
            let name = parse_name("name", &name)?;
            let expires_at = self.resolve_expiry(expiry, now_secs())?;
            let audit = AuditRecord {
                tenant: account.tenant.clone(),
                ..audit.clone()
            };
            self.issue_token(account_id, name, expires_at, audit).await
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn list_tokens(
        &self,
        caller: &Caller,
        account_id: i64,
    ) -> Result<Vec<TokenRecord>, ApiError> {
        self.visible_account(caller, account_id).await?;
        Ok(self.store().list_tokens(account_id).await?)
    }

    pub async fn rename_token(
        &self,
        caller: &Caller,
        account_id: i64,
        token_id: i64,
        name: String,
    ) -> Result<TokenRecord, ApiError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "token.rename",
            format!("serviceaccount/{account_id}/token/{token_id}"),
        );
        let result = async {
            let account = self.managed_account(caller, account_id).await?;
            let name = parse_name("name", &name)?;
            let audit = AuditRecord {
                tenant: account.tenant.clone(),
                ..audit.clone()
            };
            Ok(self
                .store()
                .rename_token(account_id, token_id, name, audit)
                .await?)
        }
        .await;
        self.audited(audit, result).await
    }

    pub async fn regenerate_token(
        &self,
        caller: &Caller,
        account_id: i64,
        token_id: i64,
    ) -> Result<IssuedToken, ApiError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "token.regenerate",
            format!("serviceaccount/{account_id}/token/{token_id}"),
        );
        let result = async {
            let account = self.managed_account(caller, account_id).await?;
            let token = Token::generate().map_err(|err| ApiError::internal(err.to_string()))?;
            let audit = AuditRecord {
                tenant: account.tenant.clone(),
                ..audit.clone()
            };
            let record = self
                .store()
                .regenerate_token(account_id, token_id, token.hash(), token.hint(), audit)
                .await?;
            Ok(IssuedToken { record, token })
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    pub async fn delete_token(
        &self,
        caller: &Caller,
        account_id: i64,
        token_id: i64,
    ) -> Result<(), ApiError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "token.delete",
            format!("serviceaccount/{account_id}/token/{token_id}"),
        );
        let result = async {
            let account = self.managed_account(caller, account_id).await?;
            let audit = AuditRecord {
                tenant: account.tenant.clone(),
                ..audit.clone()
            };
            // The store keeps the all-tenant admin a live token that lasts as long, checked in
            // the revocation's transaction so concurrent revocations cannot both pass (409).
            Ok(self
                .store()
                .delete_token(account_id, token_id, audit)
                .await?)
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    /// "Can I?": would `subject` be allowed `method path` (with an optional narrowing selector)?
    pub async fn access_review(
        &self,
        caller: &Caller,
        subject: ReviewSubject,
        method: &str,
        path: &str,
        labels: Option<&str>,
    ) -> Result<ReviewAnswer, ApiError> {
        let grant = match subject {
            ReviewSubject::Token(value) => {
                let token = match Token::parse(&value) {
                    Ok(token) => token,
                    Err(err) => {
                        return Ok(deny_answer(tollgate_core::Deny::new(
                            tollgate_core::DenyReason::MalformedToken,
                            format!("malformed token: {err}"),
                        )));
                    }
                };
                let snapshot = self.directory.snapshot();
                match snapshot.get(&token.hash()) {
                    Some(grant) => {
                        caller.check_tenant(&grant.tenant)?;
                        Grant::clone(grant)
                    }
                    None => return Ok(deny_answer(tollgate_core::Deny::unknown_token())),
                }
            }
            ReviewSubject::AccountId(id) => {
                self.account_grant(self.visible_account(caller, id).await?)?
            }
            ReviewSubject::AccountName { tenant, name } => {
                let tenant = tenant.unwrap_or_else(|| caller.tenant.clone());
                caller.check_tenant(&tenant)?;
                self.account_grant(self.store().find_account(&tenant, &name).await?)?
            }
        };
        let mut view = RequestView::new(method, path);
        if let Some(labels) = labels {
            view.observe_header(tollgate_core::headers::LABELS, labels);
        }
        // A path Envoy sends upstream, or else one of this admin API.
        let routes = if self.upstream_routes.find(view.method, view.path).is_none()
            && self.admin_routes.find(view.method, view.path).is_some()
        {
            &self.admin_routes
        } else {
            self.upstream_routes.as_ref()
        };
        let scope = routes
            .find(view.method, view.path)
            .map(|rule| rule.scope.to_string());
        Ok(
            match authorize_grant(&grant, &view, routes, now_secs().max(0) as u64) {
                Ok(authorized) => ReviewAnswer {
                    allowed: true,
                    scope,
                    reason: "allowed".into(),
                    message: format!("role {} holds scope {}", grant.role, authorized.allow.scope),
                },
                Err(deny) => ReviewAnswer {
                    scope,
                    ..deny_answer(deny)
                },
            },
        )
    }

    fn account_grant(&self, account: Account) -> Result<Grant, ApiError> {
        if account.disabled {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "account_disabled",
                format!("service account {} is disabled", account.id),
            ));
        }
        let policy = Policy::parse(&account.label_policy).map_err(|err| StoreError::Corrupt {
            detail: format!("label policy of account {}: {err}", account.id),
        })?;
        Ok(Grant {
            token_id: 0,
            account_id: account.id,
            account: account.name.into(),
            tenant: account.tenant.into(),
            role: account.role,
            scopes: account.role.scopes(),
            policy,
            expires_at: None,
            all_tenants: account.all_tenants,
        })
    }

    pub async fn audit_log(
        &self,
        caller: &Caller,
        actor: Option<String>,
        target: Option<String>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<AuditEntry>, ApiError> {
        let tenant = (!caller.all_tenants).then(|| caller.tenant.clone());
        Ok(self
            .store()
            .list_audit(AuditQuery {
                tenant,
                actor,
                target,
                offset,
                limit,
            })
            .await?)
    }

    /// Creates the bootstrap admin on a new store and returns its token, or `None` when the
    /// store was bootstrapped before. `deliver` hands the token to the operator and runs before
    /// the commit, so a crash in between can never leave an admin nobody has the token of.
    pub async fn bootstrap(
        &self,
        deliver: impl FnOnce(&Token) -> std::io::Result<()>,
    ) -> Result<bool, anyhow::Error> {
        if self.store().is_bootstrapped().await? {
            return Ok(false);
        }
        let token = Token::generate()?;
        let now = now_secs();
        let tenant = Name::parse(DEFAULT_TENANT)?;
        let account = NewAccount {
            tenant,
            name: Name::parse("bootstrap-admin")?,
            display_name: "Bootstrap admin".into(),
            description: "Created on first start; manages every tenant.".into(),
            owner_email: String::new(),
            role: Role::Admin,
            label_policy: String::new(),
            all_tenants: true,
            created_at: now,
            created_by: "tollgate".into(),
        };
        let new_token = NewToken {
            name: Name::parse("bootstrap")?,
            hash: token.hash(),
            hint: token.hint(),
            created_at: now,
            expires_at: None,
        };
        let audit = AuditRecord {
            at: now,
            actor: "tollgate".into(),
            tenant: DEFAULT_TENANT.into(),
            action: "bootstrap".into(),
            target: "serviceaccount/default/bootstrap-admin".into(),
            outcome: "ok".into(),
        };
        deliver(&token)?;
        let created = self.store().bootstrap(account, new_token, audit).await?;
        self.publish().await;
        Ok(created)
    }
}

fn deny_answer(deny: tollgate_core::Deny) -> ReviewAnswer {
    ReviewAnswer {
        allowed: false,
        scope: None,
        reason: deny.reason.as_str().to_owned(),
        message: deny.message,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tollgate_core::Scope;

    fn caller(scopes: &[Scope], policy: &str) -> Caller {
        Caller {
            account_id: 1,
            token_id: 1,
            tenant: "acme".into(),
            actor: "acme/x".into(),
            scopes: ScopeSet::of(scopes),
            policy: Policy::parse(policy).unwrap(),
            all_tenants: false,
        }
    }

    #[test]
    fn ceilings() {
        use Scope::*;
        let accounts_only = caller(&[AccountsRead, AccountsWrite], "");
        let viewer_ceiling = caller(
            &[AccountsWrite, MetricsRead, LogsRead, TracesRead],
            r#"{team="a"}"#,
        );
        let team_a = Policy::parse(r#"{team="a"}"#).unwrap();
        let cases = [
            (
                &accounts_only,
                Role::Viewer,
                Policy::unrestricted(),
                Some("role_ceiling"),
                "cannot grant reads it lacks",
            ),
            (
                &accounts_only,
                Role::Writer,
                Policy::unrestricted(),
                Some("role_ceiling"),
                "cannot grant writes it lacks",
            ),
            (
                &viewer_ceiling,
                Role::Viewer,
                team_a.clone(),
                None,
                "may grant what it holds",
            ),
            (
                &viewer_ceiling,
                Role::Editor,
                team_a.clone(),
                Some("role_ceiling"),
                "editor exceeds viewer scopes",
            ),
            (
                &viewer_ceiling,
                Role::Viewer,
                Policy::unrestricted(),
                Some("label_policy_ceiling"),
                "unrestricted is wider",
            ),
            (
                &viewer_ceiling,
                Role::Viewer,
                Policy::parse(r#"{team="a", env="prod"}"#).unwrap(),
                None,
                "narrower policy",
            ),
        ];
        for (caller, role, policy, want, why) in cases {
            let got = caller.check_ceiling(role, &policy).err().map(|e| e.reason);
            assert_eq!(got, want, "{why}");
        }
        assert!(accounts_only.check_tenant("acme").is_ok());
        assert_eq!(
            accounts_only.check_tenant("globex").unwrap_err().reason,
            "tenant_forbidden"
        );
    }
}
