//! `tollgate can-i`: the access review.

use super::Output;
use super::client::{Client, NONE};
use super::output::{optional, print, text};
use crate::api::{AccessReviewBody, AccessReviewDto, AccountRef};
use clap::Args;
use reqwest::Method;

// No doc comment on this struct: clap would show it as the command's description.
#[derive(Args, Debug)]
pub struct CanIArgs {
    method: String,
    path: String,
    /// Account id or name.
    #[arg(long = "as")]
    account: String,
    /// Tenant of the account when given by name.
    #[arg(long)]
    tenant: Option<String>,
    /// A narrowing selector, as sent in x-tollgate-labels.
    #[arg(long)]
    labels: Option<String>,
}

pub async fn can_i(client: &Client, output: Output, args: CanIArgs) -> anyhow::Result<()> {
    let account = match args.account.parse::<i64>() {
        Ok(id) => AccountRef::Id(id),
        Err(_) => AccountRef::Name(args.account),
    };
    let body = AccessReviewBody {
        account: Some(account),
        tenant: args.tenant,
        token: None,
        method: args.method.to_ascii_uppercase(),
        path: args.path,
        labels: args.labels,
    };
    let answer: AccessReviewDto = client
        .call(Method::POST, "/api/v1/access-review", NONE, Some(&body))
        .await?;
    print(output, &answer, |answer| {
        let verdict = if answer.allowed { "yes" } else { "no" };
        format!(
            "{verdict}: {} (reason {}, scope {})\n",
            text(&answer.message),
            text(&answer.reason),
            optional(answer.scope.as_deref())
        )
    })?;
    if answer.allowed {
        Ok(())
    } else {
        Err(NotAllowed.into())
    }
}

/// "No" from `can-i`, already printed: exit status 1 without an error line, as `kubectl auth
/// can-i` does, so scripts can branch on it.
#[derive(Debug, thiserror::Error)]
#[error("not allowed")]
pub struct NotAllowed;
