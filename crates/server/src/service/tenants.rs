//! Tenants: listed with their counts, and deleted with every account in them (iMKE deletes a
//! project's accounts with the project). All-tenant admins only.

use super::fields::parse_name;
use super::{Admin, Caller, ServiceError};
use crate::model::TenantSummary;
use crate::store::Store;

impl Admin {
    pub async fn list_tenants(&self, caller: &Caller) -> Result<Vec<TenantSummary>, ServiceError> {
        require_all_tenants(caller)?;
        Ok(self.store().list_tenants().await?)
    }

    /// Deletes every account of `tenant` and revokes their tokens, audited; the number of
    /// accounts deleted. The all-tenant admin's own tenant is refused (409).
    pub async fn delete_tenant(&self, caller: &Caller, tenant: &str) -> Result<u64, ServiceError> {
        let audit = self.audit(caller, tenant, "tenant.delete", format!("tenant/{tenant}"));
        let result = async {
            require_all_tenants(caller)?;
            let tenant = parse_name("tenant", tenant)?;
            Ok(self
                .store()
                .delete_tenant(tenant.as_str(), audit.clone())
                .await?)
        }
        .await;
        let result = self.audited(audit, result).await;
        self.publish().await;
        result
    }
}

fn require_all_tenants(caller: &Caller) -> Result<(), ServiceError> {
    if caller.all_tenants {
        Ok(())
    } else {
        Err(ServiceError::AllTenantsOnly("list or delete tenants"))
    }
}
