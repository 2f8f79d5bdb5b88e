//! `tollgate token`: create, list, rename, revoke and regenerate the tokens of an account.

use super::client::{Client, NONE};
use super::output::{TOKEN_COLUMNS, issued_token_table, print, render_table, token_table};
use super::{AccountArg, ExpiryArgs, Output};
use crate::api::{
    CreateTokenBody, IssuedTokenDto, RenameTokenBody, TokenDto, TokenListParams, TokenPageDto,
};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its value is printed once.
    Create(CreateArgs),
    List(ListArgs),
    Rename(RenameArgs),
    Revoke(TokenArg),
    /// New value; the old one stops working at once.
    Regenerate(TokenArg),
}

// No doc comments on these structs: clap would show them as the command's description.

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    account: AccountArg,
    name: String,
    #[command(flatten)]
    expiry: ExpiryArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    account: AccountArg,
    /// Only tokens still valid that expire within this period, such as 7d or 12h.
    #[arg(long, value_name = "PERIOD")]
    expiring: Option<String>,
    /// Page to show, from 1 [default: 1].
    #[arg(long)]
    page: Option<u64>,
    /// Tokens per page, 1 to 1000 [default: 50].
    #[arg(long)]
    page_size: Option<u64>,
}

#[derive(Args, Debug)]
pub struct TokenArg {
    #[command(flatten)]
    account: AccountArg,
    token_id: i64,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    #[command(flatten)]
    token: TokenArg,
    name: String,
}

/// What `token revoke --output json` prints.
#[derive(Serialize)]
struct Revoked {
    revoked: i64,
}

pub async fn run(client: &Client, output: Output, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(client, output, args).await,
        TokenCommand::List(args) => list(client, output, args).await,
        TokenCommand::Rename(args) => rename(client, output, args).await,
        TokenCommand::Revoke(token) => revoke(client, output, token).await,
        TokenCommand::Regenerate(token) => regenerate(client, output, token).await,
    }
}

/// `/api/v1/serviceaccounts/{id}/tokens` of the account named on the command line.
async fn tokens_path(client: &Client, account: &AccountArg) -> anyhow::Result<String> {
    let id = client
        .account_id(&account.account, account.tenant.as_deref())
        .await?;
    Ok(format!("/api/v1/serviceaccounts/{id}/tokens"))
}

async fn create(client: &Client, output: Output, args: CreateArgs) -> anyhow::Result<()> {
    let path = tokens_path(client, &args.account).await?;
    let (expires_at, ttl_seconds) = args.expiry.into_fields()?;
    let body = CreateTokenBody {
        name: args.name,
        expires_at,
        ttl_seconds,
    };
    let issued: IssuedTokenDto = client.call(Method::POST, &path, NONE, Some(&body)).await?;
    print(output, &issued, issued_token_table)
}

async fn list(client: &Client, output: Output, args: ListArgs) -> anyhow::Result<()> {
    let path = tokens_path(client, &args.account).await?;
    let query = TokenListParams {
        expiring_within: args.expiring,
        page: args.page,
        page_size: args.page_size,
    };
    let page: TokenPageDto = client.call(Method::GET, &path, Some(&query), NONE).await?;
    print(output, &page, |page| {
        format!(
            "{}({} of {} total, page {} of {})\n",
            render_table(TOKEN_COLUMNS, &page.tokens),
            page.tokens.len(),
            page.total_count,
            page.page,
            page.total_count.div_ceil(page.page_size.max(1)).max(1)
        )
    })
}

async fn rename(client: &Client, output: Output, args: RenameArgs) -> anyhow::Result<()> {
    let path = tokens_path(client, &args.token.account).await?;
    let body = RenameTokenBody { name: args.name };
    let renamed: TokenDto = client
        .call(
            Method::PATCH,
            &format!("{path}/{}", args.token.token_id),
            NONE,
            Some(&body),
        )
        .await?;
    print(output, &renamed, token_table)
}

async fn revoke(client: &Client, output: Output, token: TokenArg) -> anyhow::Result<()> {
    let path = tokens_path(client, &token.account).await?;
    let token_id = token.token_id;
    client
        .call_empty(Method::DELETE, &format!("{path}/{token_id}"), NONE)
        .await?;
    print(output, &Revoked { revoked: token_id }, |_| {
        format!("revoked token {token_id}\n")
    })
}

async fn regenerate(client: &Client, output: Output, token: TokenArg) -> anyhow::Result<()> {
    let path = tokens_path(client, &token.account).await?;
    let issued: IssuedTokenDto = client
        .call(
            Method::POST,
            &format!("{path}/{}/regenerate", token.token_id),
            NONE,
            NONE,
        )
        .await?;
    print(output, &issued, issued_token_table)
}
