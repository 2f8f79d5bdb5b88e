//! Reading the current state: every account the caller sees and an account's tokens, page by
//! page through the admin API.

use crate::api::{
    AccountDto, AccountPageDto, ListParams, MAX_PAGE_SIZE, TokenDto, TokenListParams, TokenPageDto,
};
use crate::cli::client::{Client, NONE};
use reqwest::Method;

/// Every account the caller sees, page by page.
pub async fn all_accounts(client: &Client) -> anyhow::Result<Vec<AccountDto>> {
    let mut accounts = Vec::new();
    for page in 1.. {
        let params = ListParams {
            page: Some(page),
            page_size: Some(MAX_PAGE_SIZE),
            ..ListParams::default()
        };
        let found: AccountPageDto = client
            .call(Method::GET, "/api/v1/serviceaccounts", Some(&params), NONE)
            .await?;
        let last = found.service_accounts.is_empty();
        accounts.extend(found.service_accounts);
        if last || accounts.len() as u64 >= found.total_count {
            break;
        }
    }
    Ok(accounts)
}

/// Every token of an account, page by page.
pub async fn all_tokens(client: &Client, account_id: i64) -> anyhow::Result<Vec<TokenDto>> {
    let path = format!("/api/v1/serviceaccounts/{account_id}/tokens");
    let mut tokens = Vec::new();
    for page in 1.. {
        let params = TokenListParams {
            page: Some(page),
            page_size: Some(MAX_PAGE_SIZE),
            ..TokenListParams::default()
        };
        let found: TokenPageDto = client.call(Method::GET, &path, Some(&params), NONE).await?;
        let last = found.tokens.is_empty();
        tokens.extend(found.tokens);
        if last || tokens.len() as u64 >= found.total_count {
            break;
        }
    }
    Ok(tokens)
}
