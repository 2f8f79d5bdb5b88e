//! `tollgate tenant`: list tenants with their counts, delete a tenant and all of its accounts
//! (all-tenant admins only).

use super::Output;
use super::client::{Client, NONE, segment};
use super::output::{Column, print, render_table, text};
use crate::api::{DeletedTenantDto, TenantDto};
use clap::Subcommand;
use reqwest::Method;

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Every tenant with its account and token counts.
    List,
    /// Delete a tenant: every account of it, every token revoked.
    Delete {
        #[arg(value_name = "TENANT")]
        name: String,
    },
}

const TENANT_COLUMNS: &[Column<TenantDto>] = &[
    ("TENANT", |t| text(&t.name)),
    ("ACCOUNTS", |t| t.accounts.to_string()),
    ("TOKENS", |t| t.tokens.to_string()),
];

pub async fn run(client: &Client, output: Output, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::List => {
            let tenants: Vec<TenantDto> = client
                .call(Method::GET, "/api/v1/tenants", NONE, NONE)
                .await?;
            print(output, &tenants, |tenants| {
                render_table(TENANT_COLUMNS, tenants)
            })
        }
        TenantCommand::Delete { name } => {
            let deleted: DeletedTenantDto = client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/tenants/{}", segment(&name)),
                    NONE,
                    NONE,
                )
                .await?;
            print(output, &deleted, |d| {
                format!(
                    "deleted tenant {} and its {} service accounts; their tokens are revoked\n",
                    text(&d.tenant),
                    d.deleted_accounts
                )
            })
        }
    }
}
