//! The first start: the all-tenant bootstrap admin and its token, created once.

use super::{Admin, now_secs};
use crate::model::{AuditRecord, DEFAULT_TENANT, Name, NewAccount, NewToken};
use crate::store::Store;
use tollgate_core::{Role, Token};

impl Admin {
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
            role: Name::parse(Role::Admin.as_str())?,
            label_policy: String::new(),
            all_tenants: true,
            read_tenants: Default::default(),
            hide_policy_labels: false,
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
