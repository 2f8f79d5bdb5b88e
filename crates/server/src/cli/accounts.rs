//! `tollgate sa`: create, list, get, update and delete service accounts.

use super::client::{Client, NONE};
use super::output::{
    ACCOUNT_COLUMNS, account_table, issued_token_table, print, render_table, text,
};
use super::{AccountArg, ExpiryArgs, Output};
use crate::api::{
    AccountDto, AccountPageDto, CreateAccountBody, CreatedAccountDto, ListParams, PatchAccountBody,
};
use anyhow::bail;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;

#[derive(Subcommand, Debug)]
pub enum SaCommand {
    Create(CreateArgs),
    List(ListArgs),
    /// ACCOUNT is an id or a name.
    Get(AccountArg),
    Update(UpdateArgs),
    /// Deletes the accounts and revokes all their tokens; ACCOUNT is an id or a name.
    Delete(DeleteArgs),
}

// No doc comments on these structs: clap would show them as the command's description.

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[arg(value_name = "ACCOUNT", required = true)]
    accounts: Vec<String>,
    /// Tenant of the accounts given by name.
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    name: String,
    #[arg(long)]
    role: String,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    owner_email: Option<String>,
    /// e.g. '{kube_namespace="prometheus"}'
    #[arg(long)]
    label_policy: Option<String>,
    /// Other tenants its tokens may read, comma-separated, or '*' for all (all-tenant admins).
    #[arg(long, value_delimiter = ',')]
    read_tenants: Option<Vec<String>>,
    /// Leave the labels its policy fixes out of every answer (filter mode only).
    #[arg(long)]
    hide_policy_labels: bool,
    /// Also create a first token (shown once).
    #[arg(long)]
    with_token: bool,
    #[command(flatten)]
    expiry: ExpiryArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    search: Option<String>,
    #[arg(long)]
    page: Option<u64>,
    #[arg(long)]
    page_size: Option<u64>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    owner_email: Option<String>,
    #[arg(long)]
    role: Option<String>,
    /// Empty string for unrestricted.
    #[arg(long)]
    label_policy: Option<String>,
    /// Replaces the other tenants it may read (comma-separated, '*' for all, '' for none).
    #[arg(long, value_delimiter = ',')]
    read_tenants: Option<Vec<String>>,
    /// Leave the labels its policy fixes out of every answer (filter mode only).
    #[arg(long, conflicts_with = "show_policy_labels")]
    hide_policy_labels: bool,
    /// Stop hiding them.
    #[arg(long)]
    show_policy_labels: bool,
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    #[arg(long)]
    enable: bool,
    #[command(flatten)]
    account: AccountArg,
}

/// What `sa delete --output json` prints.
#[derive(Serialize)]
struct Deleted {
    deleted: i64,
}

pub async fn run(client: &Client, output: Output, command: SaCommand) -> anyhow::Result<()> {
    match command {
        SaCommand::Create(args) => create(client, output, args).await,
        SaCommand::List(args) => list(client, output, args).await,
        SaCommand::Get(account) => get(client, output, account).await,
        SaCommand::Update(args) => update(client, output, args).await,
        SaCommand::Delete(args) => delete(client, output, args).await,
    }
}

async fn create(client: &Client, output: Output, args: CreateArgs) -> anyhow::Result<()> {
    let (expires_at, ttl_seconds) = if args.with_token {
        args.expiry.into_fields()?
    } else if args.expiry.is_set() {
        bail!("--expires-in and --expires-at need --with-token");
    } else {
        (None, None)
    };
    let body = CreateAccountBody {
        tenant: args.tenant,
        name: args.name,
        display_name: args.display_name,
        description: args.description,
        owner_email: args.owner_email,
        role: args.role,
        label_policy: args.label_policy,
        read_tenants: args.read_tenants.map(drop_empty),
        hide_policy_labels: args.hide_policy_labels.then_some(true),
        with_token: args.with_token.then_some(true),
        token_name: None,
        expires_at,
        ttl_seconds,
    };
    let created: CreatedAccountDto = client
        .call(Method::POST, "/api/v1/serviceaccounts", NONE, Some(&body))
        .await?;
    print(output, &created, |created| {
        let mut out = account_table(&created.account);
        if let Some(token) = &created.token {
            out.push('\n');
            out.push_str(&issued_token_table(token));
        }
        out
    })
}

async fn list(client: &Client, output: Output, args: ListArgs) -> anyhow::Result<()> {
    let params = ListParams {
        search: args.search,
        name: None,
        page: args.page,
        page_size: args.page_size,
    };
    let page: AccountPageDto = client
        .call(Method::GET, "/api/v1/serviceaccounts", Some(&params), NONE)
        .await?;
    print(output, &page, |page| {
        format!(
            "{}({} of {} total, page {})\n",
            render_table(ACCOUNT_COLUMNS, &page.service_accounts),
            page.service_accounts.len(),
            page.total_count,
            page.page
        )
    })
}

async fn get(client: &Client, output: Output, account: AccountArg) -> anyhow::Result<()> {
    let id = client
        .account_id(&account.account, account.tenant.as_deref())
        .await?;
    let found: AccountDto = client
        .call(
            Method::GET,
            &format!("/api/v1/serviceaccounts/{id}"),
            NONE,
            NONE,
        )
        .await?;
    print(output, &found, account_table)
}

async fn update(client: &Client, output: Output, args: UpdateArgs) -> anyhow::Result<()> {
    let id = client
        .account_id(&args.account.account, args.account.tenant.as_deref())
        .await?;
    let body = PatchAccountBody {
        name: args.name,
        display_name: args.display_name,
        description: args.description,
        owner_email: args.owner_email,
        role: args.role,
        label_policy: args.label_policy,
        disabled: (args.disable || args.enable).then_some(args.disable),
        read_tenants: args.read_tenants.map(drop_empty),
        hide_policy_labels: (args.hide_policy_labels || args.show_policy_labels)
            .then_some(args.hide_policy_labels),
    };
    if changes_nothing(&body) {
        bail!(
            "nothing to update: give at least one of --name, --display-name, --description, --owner-email, --role, --label-policy, --read-tenants, --hide-policy-labels, --show-policy-labels, --disable, --enable"
        );
    }
    let updated: AccountDto = client
        .call(
            Method::PATCH,
            &format!("/api/v1/serviceaccounts/{id}"),
            NONE,
            Some(&body),
        )
        .await?;
    print(output, &updated, account_table)
}

/// `--read-tenants ''` clears the list.
fn drop_empty(names: Vec<String>) -> Vec<String> {
    names.into_iter().filter(|n| !n.is_empty()).collect()
}

fn changes_nothing(body: &PatchAccountBody) -> bool {
    let PatchAccountBody {
        name,
        display_name,
        description,
        owner_email,
        role,
        label_policy,
        disabled,
        read_tenants,
        hide_policy_labels,
    } = body;
    [
        name,
        display_name,
        description,
        owner_email,
        role,
        label_policy,
    ]
    .iter()
    .all(|field| field.is_none())
        && disabled.is_none()
        && read_tenants.is_none()
        && hide_policy_labels.is_none()
}

/// Deletes each account in turn, going on past a failure (reported on stderr) as `kubectl
/// delete` does; fails at the end when any did.
async fn delete(client: &Client, output: Output, args: DeleteArgs) -> anyhow::Result<()> {
    let mut failed = 0usize;
    for account in &args.accounts {
        let result = async {
            let id = client.account_id(account, args.tenant.as_deref()).await?;
            client
                .call_empty(
                    Method::DELETE,
                    &format!("/api/v1/serviceaccounts/{id}"),
                    NONE,
                )
                .await?;
            anyhow::Ok(id)
        }
        .await;
        match result {
            Ok(id) => print(output, &Deleted { deleted: id }, |_| {
                format!("deleted service account {id} and revoked its tokens\n")
            })?,
            Err(err) if args.accounts.len() > 1 => {
                failed += 1;
                eprintln!("error: {}: {err:#}", text(account));
            }
            Err(err) => return Err(err),
        }
    }
    if failed > 0 {
        bail!("{failed} of {} accounts not deleted", args.accounts.len());
    }
    Ok(())
}
