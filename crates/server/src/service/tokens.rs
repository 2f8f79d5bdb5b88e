//! Tokens: issued (value returned once), listed as metadata, renamed, regenerated and revoked,
//! with expiries held to the configured default and maximum.

use super::fields::parse_name;
use super::{Admin, Caller, ServiceError, now_secs};
use crate::model::{AuditRecord, Name, NewToken, Page, TokenQuery, TokenRecord};
use crate::store::Store;
use tollgate_core::Token;

/// Expiries beyond this are refused even with no configured maximum (year 9999).
const LATEST_EXPIRY: i64 = 253_402_300_799;

/// A requested expiry: an instant, a time to live, or neither (the configured default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpirySpec {
    pub expires_at: Option<i64>,
    pub ttl_seconds: Option<u64>,
}

/// A token as it is handed out: once, at creation or regeneration.
pub struct IssuedToken {
    pub record: TokenRecord,
    pub token: Token,
}

fn plus_secs(now: i64, secs: u64) -> i64 {
    now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl Admin {
    /// Resolves the expiry of a new token against the configured default and maximum.
    pub(super) fn resolve_expiry(
        &self,
        spec: ExpirySpec,
        now: i64,
    ) -> Result<Option<i64>, ServiceError> {
        let expires_at = match (spec.expires_at, spec.ttl_seconds) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::InvalidField(
                    "expiresAt and ttlSeconds are exclusive: give one".into(),
                ));
            }
            (Some(at), None) => Some(at),
            (None, Some(ttl)) => Some(plus_secs(now, ttl)),
            (None, None) => self
                .config
                .default_token_lifetime
                .map(|d| plus_secs(now, d.as_secs())),
        };
        if let Some(at) = expires_at {
            if at <= now {
                return Err(ServiceError::ExpiryInPast);
            }
            if at > LATEST_EXPIRY {
                return Err(ServiceError::ExpiryTooLate(
                    "expiry must be before the year 10000".into(),
                ));
            }
        }
        if let Some(max) = self.config.max_token_lifetime {
            let latest = plus_secs(now, max.as_secs());
            match expires_at {
                None => {
                    return Err(ServiceError::ExpiryRequired(format!(
                        "tokens must expire within {} seconds: give expiresAt or ttlSeconds",
                        max.as_secs()
                    )));
                }
                Some(at) if at > latest => {
                    return Err(ServiceError::ExpiryTooLate(format!(
                        "expiry exceeds the maximum token lifetime of {} seconds",
                        max.as_secs()
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(expires_at)
    }

    pub(super) async fn issue_token(
        &self,
        account_id: i64,
        name: Name,
        expires_at: Option<i64>,
        audit: AuditRecord,
    ) -> Result<IssuedToken, ServiceError> {
        let token = Token::generate().map_err(|err| ServiceError::Internal(err.to_string()))?;
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

    pub async fn create_token(
        &self,
        caller: &Caller,
        account_id: i64,
        name: String,
        expiry: ExpirySpec,
    ) -> Result<IssuedToken, ServiceError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "token.create",
            format!("serviceaccount/{account_id}/token/{name}"),
        );
        let result = self
            .checked_write(async {
                let account = self.managed_account(caller, account_id).await?;
                let name = parse_name("name", &name)?;
                let expires_at = self.resolve_expiry(expiry, now_secs())?;
                let audit = AuditRecord {
                    tenant: account.tenant.clone(),
                    ..audit.clone()
                };
                self.issue_token(account_id, name, expires_at, audit).await
            })
            .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }

    /// The page `offset`, `limit` of an account's tokens; with `expiring_within`, only those
    /// still valid that expire within that period from now.
    pub async fn list_tokens(
        &self,
        caller: &Caller,
        account_id: i64,
        expiring_within: Option<std::time::Duration>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<TokenRecord>, ServiceError> {
        self.visible_account(caller, account_id).await?;
        let expiring = expiring_within.map(|within| {
            let now = now_secs();
            (now, plus_secs(now, within.as_secs()))
        });
        Ok(self
            .store()
            .list_tokens(TokenQuery {
                account_id,
                expiring,
                offset,
                limit,
            })
            .await?)
    }

    pub async fn rename_token(
        &self,
        caller: &Caller,
        account_id: i64,
        token_id: i64,
        name: String,
    ) -> Result<TokenRecord, ServiceError> {
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
    ) -> Result<IssuedToken, ServiceError> {
        let audit = self.audit(
            caller,
            &caller.tenant,
            "token.regenerate",
            format!("serviceaccount/{account_id}/token/{token_id}"),
        );
        let result = self
            .checked_write(async {
                let account = self.managed_account(caller, account_id).await?;
                let token =
                    Token::generate().map_err(|err| ServiceError::Internal(err.to_string()))?;
                let audit = AuditRecord {
                    tenant: account.tenant.clone(),
                    ..audit.clone()
                };
                let record = self
                    .store()
                    .regenerate_token(account_id, token_id, token.hash(), token.hint(), audit)
                    .await?;
                Ok(IssuedToken { record, token })
            })
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
    ) -> Result<(), ServiceError> {
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
}
