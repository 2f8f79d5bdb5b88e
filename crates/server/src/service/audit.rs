//! The audit log: the row every action writes (successes in the store's own transaction,
//! failures here) and reading it back.

use super::{Admin, Caller, ServiceError, now_secs};
use crate::model::{AuditEntry, AuditQuery, AuditRecord, Page};
use crate::store::Store;

impl Admin {
    /// The audit row of an action by `caller`, as it will read if the action succeeds.
    pub(super) fn audit(
        &self,
        caller: &Caller,
        tenant: &str,
        action: &str,
        target: String,
    ) -> AuditRecord {
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

    /// Records a failed action's outcome (its [`ServiceError::code`]); successful ones are
    /// recorded by the store in the action's own transaction.
    pub(super) async fn audited<T>(
        &self,
        audit: AuditRecord,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        if let Err(err) = &result
            && !err.is_unavailable()
        {
            let record = AuditRecord {
                outcome: err.code().to_owned(),
                ..audit
            };
            if let Err(store_err) = self.store().record_audit(record).await {
                tracing::error!(error = %store_err, "could not record a failed action in the audit log");
            }
        }
        result
    }

    pub async fn audit_log(
        &self,
        caller: &Caller,
        actor: Option<String>,
        target: Option<String>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<AuditEntry>, ServiceError> {
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
}
