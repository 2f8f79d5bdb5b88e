//! `tollgate audit`: the audit log, newest first.

use super::Output;
use super::client::{Client, NONE};
use super::output::{Column, print, render_table, text};
use crate::api::{AuditDto, AuditPageDto, AuditParams};
use clap::Args;
use reqwest::Method;

// No doc comment on this struct: clap would show it as the command's description.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    target: Option<String>,
    #[arg(long)]
    page: Option<u64>,
    #[arg(long)]
    page_size: Option<u64>,
}

const AUDIT_COLUMNS: &[Column<AuditDto>] = &[
    ("ID", |e| e.id.to_string()),
    ("AT", |e| text(&e.at)),
    ("ACTOR", |e| text(&e.actor)),
    ("ACTION", |e| text(&e.action)),
    ("TARGET", |e| text(&e.target)),
    ("OUTCOME", |e| text(&e.outcome)),
];

pub async fn show(client: &Client, output: Output, args: AuditArgs) -> anyhow::Result<()> {
    let params = AuditParams {
        actor: args.actor,
        target: args.target,
        page: args.page,
        page_size: args.page_size,
    };
    let page: AuditPageDto = client
        .call(Method::GET, "/api/v1/audit", Some(&params), NONE)
        .await?;
    print(output, &page, |page| {
        render_table(AUDIT_COLUMNS, &page.entries)
    })
}
