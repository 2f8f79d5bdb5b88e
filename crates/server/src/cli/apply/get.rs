//! `tollgate get`: accounts (with their tokens' metadata) and custom roles in the format
//! `apply` reads, or as tables.

use super::file::{self, AccountSpec, Document, KIND_ACCOUNT, Metadata, TokenSpec};
use super::roles;
use super::state::{all_accounts, all_tokens};
use crate::api::{AccountDto, TokenDto};
use crate::cli::Output;
use crate::cli::client::{ApiError, Client};
use crate::cli::output::{ACCOUNT_COLUMNS, Column, render_table, text};
use clap::{Args, Subcommand};
use std::collections::BTreeSet;

// No doc comments on these structs: clap would show them as the command's description.

#[derive(Subcommand, Debug)]
pub enum GetCommand {
    /// Service accounts with their tokens' metadata, in the format `apply` reads.
    #[command(alias = "sa")]
    Serviceaccounts(GetArgs),
    /// Custom roles, in the format `apply` reads.
    Roles(GetArgs),
    /// Custom roles, then service accounts (roles skipped on a server without the roles API).
    All(GetArgs),
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
}

/// An account as a document; `tokens` its tokens' metadata (never values).
fn account_document(account: &AccountDto, tokens: &[TokenDto]) -> Document<AccountSpec> {
    Document::new(
        KIND_ACCOUNT,
        Metadata {
            name: account.name.clone(),
            tenant: Some(account.tenant.clone()),
        },
        AccountSpec {
            display_name: Some(account.display_name.clone()),
            description: Some(account.description.clone()),
            owner_email: Some(account.owner_email.clone()),
            role: account.role.clone(),
            label_policy: Some(account.label_policy.clone()),
            disabled: Some(account.disabled),
            // Written only when set, so a file for a tenant admin carries nothing it may not set.
            read_tenants: (!account.read_tenants.is_empty()).then(|| account.read_tenants.clone()),
            hide_policy_labels: account.hide_policy_labels.then_some(true),
            tokens: Some(
                tokens
                    .iter()
                    .map(|t| TokenSpec {
                        name: t.name.clone(),
                        expires_in: None,
                        expires_at: t.expires_at.clone(),
                    })
                    .collect(),
            ),
        },
    )
}

const ROLE_COLUMNS: &[Column<roles::RoleDto>] = &[
    ("TENANT", |r| {
        r.tenant.as_deref().map_or_else(|| "-".into(), text)
    }),
    ("NAME", |r| text(&r.name)),
    ("SCOPES", |r| r.scopes.join(",")),
    ("BUILTIN", |r| r.builtin.to_string()),
];

/// A document of either kind, written as itself.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum AnyDocument {
    Role(Document<file::RoleSpec>),
    Account(Document<AccountSpec>),
}

/// Prints documents as YAML, or as a JSON array.
fn print_documents(output: Output, documents: &[AnyDocument]) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(documents)?),
        _ => print!("{}", file::render(documents)?),
    }
    Ok(())
}

pub async fn get(client: &Client, output: Output, command: GetCommand) -> anyhow::Result<()> {
    let (args, want_roles, want_accounts) = match &command {
        GetCommand::Serviceaccounts(args) => (args, false, true),
        GetCommand::Roles(args) => (args, true, false),
        GetCommand::All(args) => (args, true, true),
    };
    let tenants = args.tenant.as_ref().map(|t| BTreeSet::from([t.clone()]));
    let role_list = if want_roles {
        match roles::fetch_roles(client, tenants.as_ref()).await {
            Ok(found) => found
                .into_iter()
                .filter(|r| !r.builtin || output == Output::Table)
                .collect(),
            // `get all` on a server without the roles API: nothing to show.
            Err(err) if want_accounts && ApiError::has_status(&err, 404) => Vec::new(),
            Err(err) => return Err(err),
        }
    } else {
        Vec::new()
    };
    let accounts: Vec<AccountDto> = if want_accounts {
        all_accounts(client)
            .await?
            .into_iter()
            .filter(|a| args.tenant.as_ref().is_none_or(|t| &a.tenant == t))
            .collect()
    } else {
        Vec::new()
    };
    if output == Output::Table {
        if want_roles {
            print!("{}", render_table(ROLE_COLUMNS, &role_list));
        }
        if want_accounts {
            print!("{}", render_table(ACCOUNT_COLUMNS, &accounts));
        }
        return Ok(());
    }
    let mut documents = Vec::new();
    documents.extend(
        roles::documents(&role_list)
            .into_iter()
            .map(AnyDocument::Role),
    );
    for account in &accounts {
        let tokens = all_tokens(client, account.id).await?;
        documents.push(AnyDocument::Account(account_document(account, &tokens)));
    }
    print_documents(output, &documents)
}
