//! "Can I?": would an account or a token be allowed METHOD PATH, and why. Decided by the same
//! core pipeline as the proxy ([`tollgate_core::authorize_grant`]).

use super::accounts::stored_policy;
use super::{Admin, Caller, ServiceError, now_secs};
use crate::model::Account;
use crate::store::Store;
use tollgate_core::write::WriteRoute;
use tollgate_core::{Deny, DenyReason, Grant, RequestView, RouteTable, Token, authorize_grant};

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

fn deny_answer(deny: Deny) -> ReviewAnswer {
    ReviewAnswer {
        allowed: false,
        scope: None,
        reason: deny.reason.as_str().to_owned(),
        message: deny.message,
    }
}

impl Admin {
    /// The grant an account's token would carry.
    async fn account_grant(&self, account: Account) -> Result<Grant, ServiceError> {
        if account.disabled {
            return Err(ServiceError::AccountDisabled(account.id));
        }
        let policy = stored_policy(&account)?;
        let scopes = self.role_scopes(&account.tenant, &account.role).await?;
        Ok(Grant {
            token_id: 0,
            account_id: account.id,
            account: account.name.into(),
            tenant: account.tenant.into(),
            role: account.role.into(),
            scopes,
            policy,
            expires_at: None,
            all_tenants: account.all_tenants,
            read_tenants: account.read_tenants,
            hide_policy_labels: account.hide_policy_labels,
        })
    }

    /// "Can I?": would `subject` be allowed `method path` (with an optional narrowing selector)?
    pub async fn access_review(
        &self,
        caller: &Caller,
        subject: ReviewSubject,
        method: &str,
        path: &str,
        labels: Option<&str>,
    ) -> Result<ReviewAnswer, ServiceError> {
        let grant = match self.subject_grant(caller, subject).await? {
            Ok(grant) => grant,
            Err(deny) => return Ok(deny_answer(deny)),
        };
        let mut view = RequestView::new(method, path);
        if let Some(labels) = labels {
            view.observe_header(tollgate_core::headers::LABELS, labels);
        }
        let routes = self.review_routes(&view);
        let rule = routes.find(view.method, view.path);
        // The review asks about a route, not a body: a write is judged as a body in the
        // route's usual format (whose series the policy then confines).
        if let Some(write) = rule.and_then(|rule| WriteRoute::of(rule.labels)) {
            let (content_type, content_encoding) = write.canonical_media();
            view.observe_header("content-type", content_type);
            if let Some(content_encoding) = content_encoding {
                view.observe_header("content-encoding", content_encoding);
            }
        }
        let scope = rule.map(|rule| rule.scope.to_string());
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

    /// The grant the review is about, or the denial a token gets before any route is looked at.
    async fn subject_grant(
        &self,
        caller: &Caller,
        subject: ReviewSubject,
    ) -> Result<Result<Grant, Deny>, ServiceError> {
        Ok(Ok(match subject {
            ReviewSubject::Token(value) => {
                let token = match Token::parse(&value) {
                    Ok(token) => token,
                    Err(err) => {
                        return Ok(Err(Deny::new(
                            DenyReason::MalformedToken,
                            format!("malformed token: {err}"),
                        )));
                    }
                };
                let snapshot = self.directory.snapshot();
                match snapshot.get(&token.hash()) {
                    Some(grant) => {
                        caller.check_tenant_of(&grant.tenant)?;
                        grant
                    }
                    None => return Ok(Err(Deny::unknown_token())),
                }
            }
            ReviewSubject::AccountId(id) => {
                self.account_grant(self.visible_account(caller, id).await?)
                    .await?
            }
            ReviewSubject::AccountName { tenant, name } => {
                let tenant = tenant.unwrap_or_else(|| caller.tenant.clone());
                caller.check_tenant(&tenant)?;
                self.account_grant(self.store().find_account(&tenant, &name).await?)
                    .await?
            }
        }))
    }

    /// A path Envoy sends upstream is judged by the upstream table; else one of this admin API
    /// by the admin table.
    fn review_routes(&self, view: &RequestView<'_>) -> &RouteTable {
        if self.upstream_routes.find(view.method, view.path).is_none()
            && self.admin_routes.find(view.method, view.path).is_some()
        {
            &self.admin_routes
        } else {
            self.upstream_routes.as_ref()
        }
    }
}
