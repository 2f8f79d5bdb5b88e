//! `tollgate role`: list, show, define, change and delete roles (named sets of scopes).

use super::Output;
use super::client::{Client, NONE, segment};
use super::output::{Column, print, render_table, text};
use crate::api::{CreateRoleBody, PatchRoleBody, RoleDto, RoleListDto, RoleParams};
use anyhow::bail;
use clap::{Args, Subcommand};
use reqwest::Method;

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// The built-in roles and the tenant's own (every tenant's for an all-tenant admin).
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One role with its scopes.
    Get(RoleArg),
    /// Define a role from scopes you hold yourself.
    Create(CreateArgs),
    /// Change a role's scopes or description; its accounts follow at once.
    Update(UpdateArgs),
    /// Delete a role no account holds.
    Delete(RoleArg),
}

// No doc comments on these structs: clap would show them as the command's description.

#[derive(Args, Debug)]
pub struct RoleArg {
    #[arg(value_name = "ROLE")]
    name: String,
    /// Tenant of the role (default: yours).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(value_name = "ROLE")]
    name: String,
    /// Comma-separated, e.g. accounts:read,accounts:write,metrics:write
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    role: RoleArg,
    /// Replaces the scopes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    #[arg(long)]
    description: Option<String>,
}

const ROLE_COLUMNS: &[Column<RoleDto>] = &[
    ("NAME", |r| text(&r.name)),
    ("TENANT", |r| {
        r.tenant
            .as_deref()
            .map_or_else(|| "(built in)".into(), text)
    }),
    ("SCOPES", |r| text(&r.scopes.join(","))),
    ("DESCRIPTION", |r| text(&r.description)),
];

fn role_table(role: &RoleDto) -> String {
    render_table(ROLE_COLUMNS, std::slice::from_ref(role))
}

/// `/api/v1/roles/NAME`, with `?tenant=` when one is given.
fn role_path(role: &RoleArg) -> String {
    let mut path = format!("/api/v1/roles/{}", segment(&role.name));
    if let Some(tenant) = &role.tenant {
        path.push_str("?tenant=");
        path.push_str(&segment(tenant));
    }
    path
}

pub async fn run(client: &Client, output: Output, command: RoleCommand) -> anyhow::Result<()> {
    match command {
        RoleCommand::List { tenant } => {
            let params = RoleParams { tenant };
            let roles: RoleListDto = client
                .call(Method::GET, "/api/v1/roles", Some(&params), NONE)
                .await?;
            print(output, &roles, |roles| {
                render_table(ROLE_COLUMNS, &roles.items)
            })
        }
        RoleCommand::Get(role) => {
            let found: RoleDto = client
                .call(Method::GET, &role_path(&role), NONE, NONE)
                .await?;
            print(output, &found, role_table)
        }
        RoleCommand::Create(args) => {
            let body = CreateRoleBody {
                tenant: args.tenant,
                name: args.name,
                description: args.description,
                scopes: args.scopes,
            };
            let created: RoleDto = client
                .call(Method::POST, "/api/v1/roles", NONE, Some(&body))
                .await?;
            print(output, &created, role_table)
        }
        RoleCommand::Update(args) => {
            if args.scopes.is_none() && args.description.is_none() {
                bail!("nothing to update: give --scopes or --description");
            }
            let body = PatchRoleBody {
                description: args.description,
                scopes: args.scopes,
            };
            let updated: RoleDto = client
                .call(Method::PATCH, &role_path(&args.role), NONE, Some(&body))
                .await?;
            print(output, &updated, role_table)
        }
        RoleCommand::Delete(role) => {
            client
                .call_empty(Method::DELETE, &role_path(&role), NONE)
                .await?;
            if output == Output::Table {
                println!("deleted role {}", role.name);
            } else {
                println!("{}", serde_json::json!({ "deleted": role.name }));
            }
            Ok(())
        }
    }
}
