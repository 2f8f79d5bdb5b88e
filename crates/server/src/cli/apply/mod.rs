//! `tollgate apply -f FILE` and `tollgate get`: declarative management of service accounts,
//! their tokens' metadata and custom roles, through the admin API only (so every check,
//! ceiling and audit row of the API applies).
//!
//! [`file`] is the YAML format, [`plan`] the pure plan for accounts and tokens, [`roles`] the
//! role documents, `state` reads the current state, `steps` applies the plan, `sink` delivers
//! new token values (once, to a 0600 file or stdout) and `get` writes the format back. Here:
//! the command itself, from the files to the printed diff and the applied changes.

pub mod file;
mod get;
pub mod plan;
pub mod roles;
mod sink;
mod state;
mod steps;

pub use get::{GetCommand, get};

use super::client::{Client, NONE};
use crate::api::WhoAmIDto;
use anyhow::{Context, bail};
use clap::Args;
use file::Object;
use plan::{AccountStep, Current, DesiredAccount, Me};
use reqwest::Method;
use roles::DesiredRole;
use sink::TokenSink;
use state::{all_accounts, all_tokens};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use steps::{Applier, Step};

// No doc comments on these structs: clap would show them as the command's description.

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// YAML file of ServiceAccount and Role documents; `-` for stdin. May be repeated.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete what the file's tenants have but the file does not list (per kind present in
    /// the file; never the caller's own account or the all-tenant admin).
    #[arg(long)]
    prune: bool,
    /// Write new token values to this file, created with mode 0600 (default: stdout, once).
    #[arg(long, value_name = "FILE")]
    token_output: Option<PathBuf>,
    /// Replace an existing --token-output file.
    #[arg(long, requires = "token_output")]
    overwrite_token_output: bool,
}

fn read_file(name: &str) -> anyhow::Result<(String, String)> {
    if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        return Ok(("<stdin>".into(), text));
    }
    let text = std::fs::read_to_string(name).with_context(|| format!("cannot read {name}"))?;
    Ok((name.to_owned(), text))
}

pub async fn apply(client: &Client, args: ApplyArgs) -> anyhow::Result<()> {
    let mut objects = Vec::new();
    for name in &args.files {
        let (name, text) = read_file(name)?;
        objects.extend(file::parse(&name, &text)?);
    }
    if objects.is_empty() {
        bail!("no documents in {}", args.files.join(", "));
    }
    let me: WhoAmIDto = client
        .call(Method::GET, "/api/v1/whoami", NONE, NONE)
        .await
        .context("cannot tell who this token belongs to")?;
    let mut accounts = Vec::new();
    let mut wanted_roles = Vec::new();
    for object in objects {
        match object {
            Object::Account(origin, document) => accounts.push(DesiredAccount::from_document(
                origin,
                document,
                &me.account.tenant,
            )?),
            Object::Role(origin, document) => wanted_roles.push(DesiredRole::from_document(
                origin,
                document,
                &me.account.tenant,
            )),
        }
    }

    // Roles first: they are asked for only when the file has some.
    let role_plan = if wanted_roles.is_empty() {
        roles::RolePlan::default()
    } else {
        let tenants: BTreeSet<String> = wanted_roles.iter().map(|r| r.tenant.clone()).collect();
        let current = roles::fetch_roles(client, Some(&tenants))
            .await
            .with_context(|| format!("{} has Role documents", wanted_roles[0].origin))?;
        roles::plan_roles(&wanted_roles, &current, args.prune)?
    };
    let current_accounts = if accounts.is_empty() {
        Vec::new()
    } else {
        all_accounts(client).await?
    };
    let mut tokens = HashMap::new();
    for want in accounts.iter().filter(|a| a.tokens.is_some()) {
        if let Some(found) = current_accounts
            .iter()
            .find(|a| a.tenant == want.tenant && a.name == want.name)
        {
            tokens.insert(found.id, all_tokens(client, found.id).await?);
        }
    }
    let current = Current {
        accounts: &current_accounts,
        tokens: &tokens,
        me: Me {
            account_id: me.account.id,
            token_id: me
                .token
                .as_ref()
                .map(|t| t.id)
                .context("the token of this command was revoked while it ran")?,
        },
    };
    let account_plan = plan::plan_accounts(&accounts, &current, args.prune)?;

    // Roles before the accounts that use them; accounts pruned before the roles they held.
    let steps: Vec<Step> = role_plan
        .upserts
        .into_iter()
        .map(Step::Role)
        .chain(account_plan.upserts.into_iter().map(Step::Account))
        .chain(account_plan.deletes.into_iter().map(Step::Account))
        .chain(role_plan.deletes.into_iter().map(Step::Role))
        .collect();
    for step in &steps {
        for line in step.lines() {
            println!("{line}");
        }
    }
    for note in &account_plan.notes {
        println!("{note}");
    }
    let count = |verb: &str| steps.iter().filter(|s| s.verb() == verb).count();
    if steps.is_empty() {
        println!("no changes");
        return Ok(());
    }
    println!(
        "{} to create, {} to update, {} to delete or revoke",
        count("create"),
        count("update"),
        count("delete") + count("revoke")
    );
    if args.dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }

    // The token file is made before any change, so a refusal to overwrite changes nothing.
    let creates_tokens = steps
        .iter()
        .any(|s| matches!(s, Step::Account(AccountStep::CreateToken { .. })));
    let sink = creates_tokens
        .then(|| TokenSink::open(args.token_output.as_deref(), args.overwrite_token_output))
        .transpose()?;
    let mut applier = Applier {
        client,
        ids: current_accounts
            .iter()
            .map(|a| (format!("{}/{}", a.tenant, a.name), a.id))
            .collect(),
        sink,
    };
    for (done, step) in steps.iter().enumerate() {
        if let Err(err) = applier.apply(step).await {
            let applied = match done {
                0 => "nothing was applied".to_owned(),
                1 => "the change above it was applied".to_owned(),
                n => format!("the {n} changes above it were applied"),
            };
            return Err(err.context(format!(
                "cannot {} {} ({applied}; the rest were not)",
                step.verb(),
                step.object()
            )));
        }
    }
    if let Some(TokenSink::File { path, .. }) = &applier.sink {
        println!("new token values written to {}", path.display());
    }
    match steps.len() {
        1 => println!("applied 1 change"),
        n => println!("applied {n} changes"),
    }
    Ok(())
}
