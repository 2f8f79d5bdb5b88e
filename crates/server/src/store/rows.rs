//! Rows to domain values, shared by both backends: accounts, token records, hashes and grants.
//! Anything a row holds that this binary cannot read is `Corrupt`, never a panic.
//!
//! A macro rather than generic functions: sqlx's row decoding would need a bound per column
//! type and backend, while each backend's rows are one concrete type. Each backend's `rows.rs`
//! invokes it with its row type, next to its own SQL.

macro_rules! row_readers {
    ($row:ty) => {
        pub(super) fn account_from_row(row: &$row) -> Result<Account, StoreError> {
            let read_tenants: String = row.try_get("read_tenants")?;
            Ok(Account {
                id: row.try_get("id")?,
                tenant: row.try_get("tenant")?,
                name: row.try_get("name")?,
                display_name: row.try_get("display_name")?,
                description: row.try_get("description")?,
                owner_email: row.try_get("owner_email")?,
                role: row.try_get("role")?,
                label_policy: row.try_get("label_policy")?,
                disabled: row.try_get("disabled")?,
                all_tenants: row.try_get("all_tenants")?,
                hide_policy_labels: row.try_get("hide_policy_labels")?,
                read_tenants: ReadTenants::parse_text(&read_tenants).map_err(|err| {
                    StoreError::Corrupt {
                        detail: format!("account read tenants \"{read_tenants}\": {err}"),
                    }
                })?,
                created_at: row.try_get("created_at")?,
                created_by: row.try_get("created_by")?,
            })
        }

        pub(super) fn role_from_row(row: &$row) -> Result<RoleRecord, StoreError> {
            let scopes: String = row.try_get("scopes")?;
            Ok(RoleRecord {
                tenant: row.try_get("tenant")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                scopes: ScopeSet::parse_text(&scopes).map_err(|err| StoreError::Corrupt {
                    detail: format!("role scopes \"{scopes}\": {err}"),
                })?,
                created_at: row.try_get("created_at")?,
                created_by: row.try_get("created_by")?,
            })
        }

        pub(super) fn token_from_row(row: &$row) -> Result<TokenRecord, StoreError> {
            Ok(TokenRecord {
                id: row.try_get("id")?,
                account_id: row.try_get("account_id")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                last_used_at: row.try_get("last_used_at")?,
                hint: row.try_get("hint")?,
            })
        }

        pub(super) fn hash_from_row(row: &$row) -> Result<TokenHash, StoreError> {
            // Borrowed from the row: no allocation per token while a million load.
            let bytes: &[u8] = row.try_get("hash")?;
            TokenHash::try_from(bytes).map_err(|_| StoreError::Corrupt {
                detail: format!("token hash of {} bytes", bytes.len()),
            })
        }

        /// Account-level parts of grants, built once per account: a million tokens of a few
        /// thousand accounts share one account grant each (names, parsed policy, scopes). `None`:
        /// the account's stored policy no longer parses (a regex a newer version refuses), or its
        /// role is gone, so its tokens are left out of the grants.
        #[derive(Default)]
        pub(super) struct AccountParts {
            by_id: std::collections::HashMap<i64, Option<Arc<Grant>>>,
        }

        impl AccountParts {
            fn get(&mut self, row: &$row) -> Result<Option<Arc<Grant>>, StoreError> {
                let account_id: i64 = row.try_get("account_id")?;
                if let Some(parts) = self.by_id.get(&account_id) {
                    return Ok(parts.clone());
                }
                let role: String = row.try_get("role")?;
                let role_scopes: Option<String> = row.try_get("role_scopes")?;
                let policy_text: String = row.try_get("label_policy")?;
                let name: String = row.try_get("name")?;
                let read_tenants: String = row.try_get("read_tenants")?;
                // Fail closed for this account only: one old policy (a regex a newer version
                // refuses) or a missing role must not stop every other account's tokens.
                let refuse = |what: &str, error: String| {
                    tracing::error!(
                        account_id,
                        account = %name,
                        error = %error,
                        "the account's stored {what} is not usable; its tokens are refused until an admin changes it"
                    );
                };
                let scopes = match (Role::builtin(&role), role_scopes) {
                    (Some(builtin), _) => Ok(builtin.scopes()),
                    (None, Some(text)) => ScopeSet::parse_text(&text).map_err(|e| e.to_string()),
                    (None, None) => Err(format!("role \"{role}\" does not exist")),
                };
                let parsed = scopes.map_err(|e| ("role", e)).and_then(|scopes| {
                    let policy = Policy::parse(&policy_text)
                        .map_err(|e| ("label policy", e.to_string()))?;
                    let read = ReadTenants::parse_text(&read_tenants)
                        .map_err(|e| ("read tenants", e.to_string()))?;
                    Ok((scopes, policy, read))
                });
                let (scopes, policy, read_tenants) = match parsed {
                    Ok(parts) => parts,
                    Err((what, error)) => {
                        refuse(what, error);
                        self.by_id.insert(account_id, None);
                        return Ok(None);
                    }
                };
                let tenant: String = row.try_get("tenant")?;
                // The token's own fields are the TokenGrant's; these are never read.
                let parts = Arc::new(Grant {
                    token_id: 0,
                    account_id,
                    account: Arc::from(name),
                    tenant: Arc::from(tenant),
                    role: Arc::from(role),
                    scopes,
                    policy,
                    expires_at: None,
                    all_tenants: row.try_get("all_tenants")?,
                    read_tenants,
                    hide_policy_labels: row.try_get("hide_policy_labels")?,
                });
                self.by_id.insert(account_id, Some(parts.clone()));
                Ok(Some(parts))
            }
        }

        impl AccountParts {
            /// Reads one row of the account columns of the grant query (what
            /// `GRANT_ACCOUNTS_SELECT` returns), so that token rows need not repeat them.
            pub(super) fn add(&mut self, row: &$row) -> Result<(), StoreError> {
                self.get(row).map(drop)
            }

            /// The grant of a token row of `GRANT_TOKENS_SELECT`; `None` when its account is
            /// unknown (disabled, or without tokens when the accounts were read) or refused
            /// (see [`AccountParts`]).
            pub(super) fn token_grant(
                &self,
                row: &$row,
            ) -> Result<Option<(TokenHash, TokenGrant)>, StoreError> {
                let account_id: i64 = row.try_get("account_id")?;
                match self.by_id.get(&account_id) {
                    Some(Some(account)) => token_grant_from_row(row, account.clone()).map(Some),
                    _ => Ok(None),
                }
            }
        }

        /// One row of the whole grant query (`GRANT_SELECT`); `None` when the account's policy
        /// is no longer accepted (see [`AccountParts`]).
        pub(super) fn grant_from_row(
            row: &$row,
            accounts: &mut AccountParts,
        ) -> Result<Option<(TokenHash, TokenGrant)>, StoreError> {
            match accounts.get(row)? {
                Some(account) => token_grant_from_row(row, account).map(Some),
                None => Ok(None),
            }
        }

        /// The token's own columns of a grant row, with its account's part.
        fn token_grant_from_row(
            row: &$row,
            account: Arc<Grant>,
        ) -> Result<(TokenHash, TokenGrant), StoreError> {
            let expires_at: Option<i64> = row.try_get("expires_at")?;
            let grant = TokenGrant::new(
                row.try_get("token_id")?,
                expires_at.map(|at| at.max(0) as u64),
                account,
            );
            Ok((hash_from_row(row)?, grant))
        }

        /// `LIKE` pattern matching `needle` literally anywhere.
        pub(super) fn like_pattern(needle: &str) -> String {
            let escaped = needle
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        }

        pub(super) fn to_i64(n: u64) -> i64 {
            i64::try_from(n).unwrap_or(i64::MAX)
        }
    };
}

pub(super) use row_readers;
