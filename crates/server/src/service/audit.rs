//! The audit log: the row every action writes (successes in the store's own transaction,
//! failures here) and reading it back.

use super::{Admin, Caller, ServiceError, now_secs};
use crate::model::{AuditEntry, AuditQuery, AuditRecord, Name, Page, escape_control};
use crate::store::Store;

/// A target as the log keeps it: it carries client input (an attempted name), so no token
/// value, and no control character that could forge a line where the log is printed.
fn audit_text(target: &str) -> String {
    escape_control(&tollgate_core::token::redact(target)).into_owned()
}

impl Admin {
    /// The audit row of an action by `caller`, as it will read if the action succeeds.
    pub(super) fn audit(
        &self,
        caller: &Caller,
        tenant: &str,
        action: &str,
        target: String,
    ) -> AuditRecord {
        // The row goes to the named tenant's log only when that is a tenant the caller may act
        // on. Otherwise `tenant` is raw client input (a query parameter, a body field), which
        // must not become a column value nor file the attempt in another tenant's log: the
        // caller's own tenant records it, and the target still names what was attempted.
        let tenant = if Name::parse(tenant).is_ok() && caller.check_tenant(tenant).is_ok() {
            tenant
        } else {
            caller.tenant.as_str()
        };
        AuditRecord {
            at: now_secs(),
            actor: caller.actor.clone(),
            tenant: tenant.to_owned(),
            action: action.to_owned(),
            target: audit_text(&target),
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
