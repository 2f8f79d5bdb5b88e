//! `tollgate apply -f FILE` and `tollgate get`: declarative management of service accounts,
//! their tokens' metadata and custom roles, through the admin API only (so every check,
//! ceiling and audit row of the API applies).
//!
//! [`file`] is the YAML format, [`plan`] the pure plan for accounts and tokens, [`roles`] the
//! role documents. Here: reading the current state, printing the diff, applying it in order
//! and delivering new token values (once, to a 0600 file or stdout).

pub mod file;
pub mod plan;
pub mod roles;

use super::Output;
use super::client::{ApiError, Client, NONE};
use super::output::{ACCOUNT_COLUMNS, Column, render_table, text};
use crate::api::{
    AccountDto, AccountPageDto, CreateTokenBody, CreatedAccountDto, IssuedTokenDto, ListParams,
    MAX_PAGE_SIZE, PatchAccountBody, TokenDto, TokenListParams, TokenPageDto, WhoamiDto,
};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use file::{AccountSpec, Document, KIND_ACCOUNT, Metadata, Object, TokenSpec};
use plan::{AccountStep, Current, DesiredAccount, Expiry, Me};
use reqwest::Method;
use roles::{DesiredRole, RoleStep};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

/// Every account the caller sees, page by page.
async fn all_accounts(client: &Client) -> anyhow::Result<Vec<AccountDto>> {
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
async fn all_tokens(client: &Client, account_id: i64) -> anyhow::Result<Vec<TokenDto>> {
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

/// Where new token values go: written as each token is created, so a later failure loses none.
enum TokenSink {
    Stdout,
    File { file: std::fs::File, path: PathBuf },
}

impl TokenSink {
    /// Creates the file with mode 0600 from the start (never a moment with a wider mode), and
    /// refuses an existing one unless told to replace it.
    fn open(path: Option<&Path>, overwrite: bool) -> anyhow::Result<TokenSink> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = path else {
            return Ok(TokenSink::Stdout);
        };
        if overwrite {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot replace {}", path.display()));
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|err| {
                if err.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "--token-output {} exists: give another path, or --overwrite-token-output",
                        path.display()
                    )
                } else {
                    anyhow::Error::new(err).context(format!("cannot create {}", path.display()))
                }
            })?;
        Ok(TokenSink::File {
            file,
            path: path.to_owned(),
        })
    }

    fn deliver(&mut self, object: &str, issued: &IssuedTokenDto) -> anyhow::Result<()> {
        match self {
            TokenSink::Stdout => {
                println!("{object} (shown once, store it now): {}", issued.token);
                Ok(())
            }
            TokenSink::File { file, path } => writeln!(file, "{object} {}", issued.token)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write to {}", path.display())),
        }
    }
}

/// One step of the whole plan, in the order it is applied.
enum Step {
    Role(RoleStep),
    Account(AccountStep),
}

impl Step {
    fn lines(&self) -> Vec<String> {
        match self {
            Step::Role(step) => step.lines(),
            Step::Account(step) => step.lines(),
        }
    }

    fn object(&self) -> String {
        match self {
            Step::Role(step) => step.object(),
            Step::Account(step) => step.object(),
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Step::Role(RoleStep::Create(_))
            | Step::Account(AccountStep::Create { .. } | AccountStep::CreateToken { .. }) => {
                "create"
            }
            Step::Role(RoleStep::Update { .. }) | Step::Account(AccountStep::Update { .. }) => {
                "update"
            }
            Step::Role(RoleStep::Delete { .. }) | Step::Account(AccountStep::Delete { .. }) => {
                "delete"
            }
            Step::Account(AccountStep::RevokeToken { .. }) => "revoke",
        }
    }
}

/// What applying needs besides the step: account ids by `tenant/name` (filled as accounts are
/// created) and where token values go.
struct Applier<'a> {
    client: &'a Client,
    ids: HashMap<String, i64>,
    sink: Option<TokenSink>,
}

impl Applier<'_> {
    async fn apply(&mut self, step: &Step) -> anyhow::Result<()> {
        let account = match step {
            Step::Role(step) => return step.apply(self.client).await,
            Step::Account(step) => step,
        };
        match account {
            AccountStep::Create {
                tenant,
                name,
                body,
                disable,
            } => {
                let created: CreatedAccountDto = self
                    .client
                    .call(Method::POST, "/api/v1/serviceaccounts", NONE, Some(body))
                    .await?;
                let id = created.account.id;
                self.ids.insert(format!("{tenant}/{name}"), id);
                if *disable {
                    self.patch(
                        id,
                        &PatchAccountBody {
                            disabled: Some(true),
                            ..PatchAccountBody::default()
                        },
                    )
                    .await?;
                }
                Ok(())
            }
            AccountStep::Update { id, body, .. } => self.patch(*id, body).await,
            AccountStep::Delete { id, .. } => {
                self.client
                    .call_empty(
                        Method::DELETE,
                        &format!("/api/v1/serviceaccounts/{id}"),
                        NONE,
                    )
                    .await
            }
            AccountStep::CreateToken {
                tenant,
                account,
                name,
                expiry,
            } => {
                let Some(id) = self.ids.get(&format!("{tenant}/{account}")).copied() else {
                    bail!("service account {tenant}/{account} was not found");
                };
                let (expires_at, ttl_seconds) = match expiry {
                    Expiry::Default => (None, None),
                    Expiry::In { secs, .. } => (None, Some(*secs)),
                    Expiry::At { text, .. } => (Some(text.clone()), None),
                };
                let body = CreateTokenBody {
                    name: name.clone(),
                    expires_at,
                    ttl_seconds,
                };
                let issued: IssuedTokenDto = self
                    .client
                    .call(
                        Method::POST,
                        &format!("/api/v1/serviceaccounts/{id}/tokens"),
                        NONE,
                        Some(&body),
                    )
                    .await?;
                match &mut self.sink {
                    Some(sink) => sink.deliver(&format!("{tenant}/{account}/{name}"), &issued),
                    None => bail!("no place for the new token's value"),
                }
            }
            AccountStep::RevokeToken {
                account_id,
                token_id,
                ..
            } => {
                self.client
                    .call_empty(
                        Method::DELETE,
                        &format!("/api/v1/serviceaccounts/{account_id}/tokens/{token_id}"),
                        NONE,
                    )
                    .await
            }
        }
    }

    async fn patch(&self, id: i64, body: &PatchAccountBody<String>) -> anyhow::Result<()> {
        self.client
            .call::<AccountDto>(
                Method::PATCH,
                &format!("/api/v1/serviceaccounts/{id}"),
                NONE,
                Some(body),
            )
            .await
            .map(drop)
    }
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
    let me: WhoamiDto = client
        .call(Method::GET, "/api/v1/serviceaccounts/me", NONE, NONE)
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
            token_id: me.token_id,
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
