//! Applying the plan: each step as one or two admin API calls, in the plan's order.

use super::plan::{AccountStep, Expiry};
use super::roles::RoleStep;
use super::sink::TokenSink;
use crate::api::{
    AccountDto, CreateTokenBody, CreatedAccountDto, IssuedTokenDto, PatchAccountBody,
};
use crate::cli::client::{Client, NONE};
use anyhow::bail;
use reqwest::Method;
use std::collections::HashMap;

/// One step of the whole plan, in the order it is applied.
pub enum Step {
    Role(RoleStep),
    Account(AccountStep),
}

impl Step {
    pub fn lines(&self) -> Vec<String> {
        match self {
            Step::Role(step) => step.lines(),
            Step::Account(step) => step.lines(),
        }
    }

    pub fn object(&self) -> String {
        match self {
            Step::Role(step) => step.object(),
            Step::Account(step) => step.object(),
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            Step::Role(RoleStep::Create(_))
            | Step::Account(AccountStep::Create { .. } | AccountStep::CreateToken { .. }) => {
                "create"
            }
            Step::Role(RoleStep::Update { .. }) | Step::Account(AccountStep::Update { .. }) => {
                "update"
            }
            Step::Role(RoleStep::Delete { .. }) | Step::Account(AccountStep::Delete { .. }) => {
                "delete"
            }
            Step::Account(AccountStep::RevokeToken { .. }) => "revoke",
        }
    }
}

/// What applying needs besides the step: account ids by `tenant/name` (filled as accounts are
/// created) and where token values go.
pub struct Applier<'a> {
    pub client: &'a Client,
    pub ids: HashMap<String, i64>,
    pub sink: Option<TokenSink>,
}

impl Applier<'_> {
    pub async fn apply(&mut self, step: &Step) -> anyhow::Result<()> {
        let account = match step {
            Step::Role(step) => return step.apply(self.client).await,
            Step::Account(step) => step,
        };
        match account {
            AccountStep::Create {
                tenant,
                name,
                body,
                disable,
            } => {
                let created: CreatedAccountDto = self
                    .client
                    .call(Method::POST, "/api/v1/serviceaccounts", NONE, Some(body))
                    .await?;
                let id = created.account.id;
                self.ids.insert(format!("{tenant}/{name}"), id);
                if *disable {
                    self.patch(
                        id,
                        &PatchAccountBody {
                            disabled: Some(true),
                            ..PatchAccountBody::default()
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            AccountStep::Update { id, body, .. } => self.patch(*id, body).await,
            AccountStep::Delete { id, .. } => {
                self.client
                    .call_empty(
                        Method::DELETE,
                        &format!("/api/v1/serviceaccounts/{id}"),
                        NONE,
                    )
                    .await
            }
            AccountStep::CreateToken {
                tenant,
                account,
                name,
                expiry,
            } => {
                let Some(id) = self.ids.get(&format!("{tenant}/{account}")).copied() else {
                    bail!("service account {tenant}/{account} was not found");
                };
                let (expires_at, ttl_seconds) = match expiry {
                    Expiry::Default => (None, None),
                    Expiry::In { secs, .. } => (None, Some(*secs)),
                    Expiry::At { text, .. } => (Some(text.clone()), None),
                };
                let body = CreateTokenBody {
                    name: name.clone(),
                    expires_at,
                    ttl_seconds,
                };
                let issued: IssuedTokenDto = self
                    .client
                    .call(
                        Method::POST,
                        &format!("/api/v1/serviceaccounts/{id}/tokens"),
                        NONE,
                        Some(&body),
                    )
                    .await?;
                match &mut self.sink {
                    Some(sink) => sink.deliver(&format!("{tenant}/{account}/{name}"), &issued),
                    None => bail!("no place for the new token's value"),
                }
            }
            AccountStep::RevokeToken {
                account_id,
                token_id,
                ..
            } => {
                self.client
                    .call_empty(
                        Method::DELETE,
                        &format!("/api/v1/serviceaccounts/{account_id}/tokens/{token_id}"),
                        NONE,
                    )
                    .await
            }
        }
    }

    async fn patch(&self, id: i64, body: &PatchAccountBody) -> anyhow::Result<()> {
        self.client
            .call::<AccountDto>(
                Method::PATCH,
                &format!("/api/v1/serviceaccounts/{id}"),
                NONE,
                Some(body),
            )
            .await
            .map(drop)
    }
}
