//! `tollgate can-i`: the access review.

use super::Output;
use super::client::{Client, NONE};
use super::output::{Column, optional, print, render_table, text};
use crate::api::{AccessReviewBody, AccessReviewDto, AccountRef};
use clap::Args;
use reqwest::Method;

// No doc comment on this struct: clap would show it as the command's description.
#[derive(Args, Debug)]
pub struct CanIArgs {
    #[arg(required_unless_present = "list")]
    method: Option<String>,
    #[arg(required_unless_present = "list")]
    path: Option<String>,
    /// What the account may do in each route family, instead of one request.
    #[arg(long, conflicts_with_all = ["method", "path"])]
    list: bool,
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

/// One request per route family of the default table, for `can-i --list`.
const FAMILIES: &[(&str, &str, &str)] = &[
    ("metrics query", "GET", "/api/v1/query"),
    ("metrics series and labels", "GET", "/api/v1/series"),
    ("metrics federation", "GET", "/federate"),
    ("metrics metadata, rules, targets", "GET", "/api/v1/targets"),
    ("metrics remote write", "POST", "/api/v1/write"),
    ("metrics OTLP", "POST", "/v1/metrics"),
    ("logs query (Loki)", "GET", "/loki/api/v1/query_range"),
    ("logs push (Loki)", "POST", "/loki/api/v1/push"),
    ("logs OTLP", "POST", "/v1/logs"),
    ("traces query (Tempo)", "GET", "/api/search/tags"),
    ("traces OTLP", "POST", "/v1/traces"),
    ("service accounts, read", "GET", "/api/v1/serviceaccounts"),
    (
        "service accounts, manage",
        "POST",
        "/api/v1/serviceaccounts",
    ),
];

/// A row of `can-i --list`.
#[derive(serde::Serialize)]
struct FamilyAnswer {
    family: &'static str,
    method: &'static str,
    path: &'static str,
    #[serde(flatten)]
    answer: AccessReviewDto,
}

pub async fn can_i(client: &Client, output: Output, args: CanIArgs) -> anyhow::Result<()> {
    let account = match args.account.parse::<i64>() {
        Ok(id) => AccountRef::Id(id),
        Err(_) => AccountRef::Name(args.account),
    };
    let review = |method: String, path: String| AccessReviewBody {
        account: Some(account.clone()),
        tenant: args.tenant.clone(),
        token: None,
        method,
        path,
        labels: args.labels.clone(),
    };
    let (Some(method), Some(path)) = (args.method.clone(), args.path.clone()) else {
        let mut rows = Vec::with_capacity(FAMILIES.len());
        for (family, method, path) in FAMILIES {
            let body = review((*method).to_owned(), (*path).to_owned());
            let answer: AccessReviewDto = client
                .call(Method::POST, "/api/v1/access-review", NONE, Some(&body))
                .await?;
            rows.push(FamilyAnswer {
                family,
                method,
                path,
                answer,
            });
        }
        return print(output, &rows, |rows| render_table(FAMILY_COLUMNS, rows));
    };
    let body = review(method.to_ascii_uppercase(), path);
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

const FAMILY_COLUMNS: &[Column<FamilyAnswer>] = &[
    ("FAMILY", |r| r.family.to_owned()),
    ("REQUEST", |r| format!("{} {}", r.method, r.path)),
    ("ALLOWED", |r| {
        if r.answer.allowed { "yes" } else { "no" }.to_owned()
    }),
    ("REASON", |r| text(&r.answer.reason)),
];

/// "No" from `can-i`, already printed: exit status 1 without an error line, as `kubectl auth
/// can-i` does, so scripts can branch on it.
#[derive(Debug, thiserror::Error)]
#[error("not allowed")]
pub struct NotAllowed;
