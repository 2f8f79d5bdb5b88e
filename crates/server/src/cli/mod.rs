//! The `tollgate` command line: `serve`, and `sa`, `role`, `token`, `can-i`, `audit`, `tenant`,
//! `apply`, `get` against the admin API.
//!
//! Clap definitions and dispatch live here; each command group has its file, with one function
//! per command. Requests and responses are the admin API's own types ([`crate::api`]), so the
//! CLI and the server cannot disagree on a field name.

mod accounts;
mod apply;
mod audit;
mod client;
mod output;
mod review;
mod roles;
mod tenants;
mod tokens;

pub use accounts::SaCommand;
pub use apply::{ApplyArgs, GetCommand};
pub use audit::AuditArgs;
pub use review::{CanIArgs, NotAllowed};
pub use roles::RoleCommand;
pub use tenants::TenantCommand;
pub use tokens::TokenCommand;

use crate::config::{FileConfig, Overrides, ServeConfig};
use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};
use client::Client;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "tollgate",
    version,
    about = "Service accounts with scoped, revocable, label-restricted tokens, enforced at Envoy"
)]
pub struct Cli {
    /// Admin API base URL.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_URL",
        default_value = "http://127.0.0.1:8181"
    )]
    pub url: String,
    /// Bearer token for the admin API (prefer the environment: arguments are visible to other users).
    #[arg(long, global = true, env = "TOLLGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: admin API, metrics and health.
    Serve(ServeArgs),
    /// Manage service accounts.
    #[command(subcommand)]
    Sa(SaCommand),
    /// Manage roles: the built-in ones and your tenant's own sets of scopes.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage tokens of a service account.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Ask whether an account may do METHOD PATH, and why.
    CanI(CanIArgs),
    /// Create or update accounts, roles and tokens from YAML files; print the diff.
    Apply(ApplyArgs),
    /// Write accounts or roles in the format `apply` reads (with --output yaml).
    #[command(subcommand)]
    Get(GetCommand),
    /// Show the audit log, newest first.
    Audit(AuditArgs),
    /// List tenants, or delete one with all of its accounts (all-tenant admins only).
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file; flags and environment override it.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store URL [default: sqlite://tollgate.db]
    #[arg(long, env = "TOLLGATE_STORE")]
    pub store: Option<String>,
    /// Admin API, /metrics, /healthz and /openapi.json [default: 127.0.0.1:8181]
    #[arg(long, env = "TOLLGATE_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// gRPC: ext_authz, change feed, health [default: 127.0.0.1:9191]
    #[arg(long, env = "TOLLGATE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Lifetime of tokens created without an expiry, e.g. 30d (default: never expire).
    #[arg(long, env = "TOLLGATE_DEFAULT_TOKEN_LIFETIME")]
    pub default_token_lifetime: Option<String>,
    /// Longest lifetime a token may have, e.g. 365d (default: no maximum).
    #[arg(long, env = "TOLLGATE_MAX_TOKEN_LIFETIME")]
    pub max_token_lifetime: Option<String>,
    /// Write the bootstrap admin token to this file (mode 0600) instead of stderr.
    #[arg(long, env = "TOLLGATE_BOOTSTRAP_TOKEN_FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        ServeConfig::resolve(
            Overrides {
                store: self.store,
                http_listen: self.http_listen,
                grpc_listen: self.grpc_listen,
                default_token_lifetime: self.default_token_lifetime,
                max_token_lifetime: self.max_token_lifetime,
                bootstrap_token_file: self.bootstrap_token_file,
            },
            file,
        )
    }
}

// An account on the command line: an id, or a name looked up exactly. (A comment, not a doc
// comment: clap would show that as the description of every command that takes one.)
#[derive(Args, Debug)]
pub struct AccountArg {
    /// Account id or name.
    #[arg(value_name = "ACCOUNT")]
    pub account: String,
    /// Tenant of ACCOUNT when given by name: picks among same-named accounts of different
    /// tenants (only an all-tenant admin sees several).
    #[arg(long)]
    pub tenant: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExpiryArgs {
    /// Lifetime such as 30d, 12h (default: the server's default lifetime).
    #[arg(long, conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// Expiry as an RFC 3339 time.
    #[arg(long)]
    pub expires_at: Option<String>,
}

impl ExpiryArgs {
    fn is_set(&self) -> bool {
        self.expires_in.is_some() || self.expires_at.is_some()
    }

    /// `(expiresAt, ttlSeconds)` as the API takes them.
    fn into_fields(self) -> anyhow::Result<(Option<String>, Option<u64>)> {
        let ttl = self
            .expires_in
            .map(|lifetime| crate::config::parse_duration(&lifetime).map(|d| d.as_secs()))
            .transpose()?;
        Ok((self.expires_at, ttl))
    }
}

pub async fn run_client(
    url: &str,
    token: Option<String>,
    output: Output,
    command: Command,
) -> anyhow::Result<()> {
    let client = Client::new(url, token)?;
    match command {
        Command::Serve(_) => bail!("serve is not a client command"),
        Command::Sa(command) => accounts::run(&client, output, command).await,
        Command::Role(command) => roles::run(&client, output, command).await,
        Command::Token(command) => tokens::run(&client, output, command).await,
        Command::CanI(args) => review::can_i(&client, output, args).await,
        Command::Audit(args) => audit::show(&client, output, args).await,
        Command::Apply(args) => apply::apply(&client, args).await,
        Command::Get(command) => apply::get(&client, output, command).await,
        Command::Tenant(command) => tenants::run(&client, output, command).await,
    }
}
