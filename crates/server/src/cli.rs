//! The `tollgate` command line: `serve`, and `sa`, `token`, `can-i`, `audit` against the admin API.

use crate::config::{FileConfig, Overrides, ServeConfig};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server: admin API, metrics and health.
    Serve(ServeArgs),
    /// Manage service accounts.
    #[command(subcommand)]
    Sa(SaCommand),
    /// Manage tokens of a service account.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Ask whether an account may do METHOD PATH, and why.
    CanI {
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
    },
    /// Show the audit log, newest first.
    Audit {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        page: Option<u64>,
        #[arg(long)]
        page_size: Option<u64>,
    },
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
    fn into_json(self, body: &mut Value) -> anyhow::Result<()> {
        if let Some(lifetime) = self.expires_in {
            body["ttlSeconds"] = json!(crate::config::parse_duration(&lifetime)?.as_secs());
        }
        if let Some(at) = self.expires_at {
            body["expiresAt"] = json!(at);
        }
        Ok(())
    }
}

#[derive(Subcommand, Debug)]
pub enum SaCommand {
    Create {
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
        /// Also create a first token (shown once).
        #[arg(long)]
        with_token: bool,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    List {
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        page: Option<u64>,
        #[arg(long)]
        page_size: Option<u64>,
    },
    /// ACCOUNT is an id or a name.
    Get { account: String },
    Update {
        account: String,
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
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
    /// Deletes the account and revokes all its tokens.
    Delete { account: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its value is printed once.
    Create {
        account: String,
        name: String,
        #[command(flatten)]
        expiry: ExpiryArgs,
    },
    List {
        account: String,
    },
    Rename {
        account: String,
        token_id: i64,
        name: String,
    },
    Revoke {
        account: String,
        token_id: i64,
    },
    /// New value; the old one stops working at once.
    Regenerate {
        account: String,
        token_id: i64,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn new(url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            bail!("no admin token: set TOLLGATE_TOKEN (or pass --token)");
        };
        Ok(Client {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("cannot read the admin API's response")?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            let reason = value
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            bail!("{message} ({reason}, HTTP {})", status.as_u16());
        }
        Ok(value)
    }

    /// An id, or the name of an account in the caller's tenant.
    async fn account_id(&self, account: &str) -> anyhow::Result<i64> {
        if let Ok(id) = account.parse() {
            return Ok(id);
        }
        let page = self
            .call(
                reqwest::Method::GET,
                "/api/v1/serviceaccounts",
                &[("search", account.to_owned()), ("pageSize", "1000".into())],
                None,
            )
            .await?;
        let found = page["serviceAccounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["name"] == account)
            .filter_map(|a| a["id"].as_i64())
            .collect::<Vec<_>>();
        match found.as_slice() {
            [id] => Ok(*id),
            [] => bail!("no service account named \"{account}\""),
            _ => bail!(
                "several service accounts are named \"{account}\" (in different tenants): use the id"
            ),
        }
    }
}

fn print(
    output: Output,
    value: &Value,
    table: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Table => print!("{}", table(value)),
    }
    Ok(())
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
fn render_table(columns: &[(&str, &str)], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, key)| cell(&row[*key])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |values: Vec<String>| {
        let parts: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(
        columns
            .iter()
            .map(|(title, _)| (*title).to_owned())
            .collect(),
    );
    for row in cells {
        line(row);
    }
    out
}

const ACCOUNT_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("TENANT", "tenant"),
    ("NAME", "name"),
    ("ROLE", "role"),
    ("LABEL POLICY", "labelPolicy"),
    ("DISABLED", "disabled"),
    ("CREATED", "createdAt"),
];
const TOKEN_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("HINT", "hint"),
    ("CREATED", "createdAt"),
    ("EXPIRES", "expiresAt"),
    ("LAST USED", "lastUsedAt"),
];

fn issued_token_table(token: &Value) -> String {
    format!(
        "{}\nToken (shown once, store it now):\n{}\n",
        render_table(TOKEN_COLUMNS, std::slice::from_ref(token)),
        cell(&token["token"])
    )
}

pub async fn run_client(
    url: &str,
    token: Option<String>,
    output: Output,
    command: Command,
) -> anyhow::Result<()> {
    use reqwest::Method;
    let client = Client::new(url, token)?;
    match command {
        Command::Serve(_) => bail!("serve is not a client command"),
        Command::Sa(SaCommand::Create {
            name,
            role,
            tenant,
            display_name,
            description,
            owner_email,
            label_policy,
            with_token,
            expiry,
        }) => {
            let mut body = json!({ "name": name, "role": role });
            for (key, value) in [
                ("tenant", tenant),
                ("displayName", display_name),
                ("description", description),
                ("ownerEmail", owner_email),
                ("labelPolicy", label_policy),
            ] {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            if with_token {
                body["withToken"] = json!(true);
                expiry.into_json(&mut body)?;
            } else if expiry.expires_in.is_some() || expiry.expires_at.is_some() {
                bail!("--expires-in and --expires-at need --with-token");
            }
            let created = client
                .call(Method::POST, "/api/v1/serviceaccounts", &[], Some(body))
                .await?;
            print(output, &created, |v| {
                let mut out = render_table(ACCOUNT_COLUMNS, std::slice::from_ref(v));
                if v.get("token").is_some() {
                    out.push('\n');
                    out.push_str(&issued_token_table(&v["token"]));
                }
                out
            })
        }
        Command::Sa(SaCommand::List {
            search,
            page,
            page_size,
        }) => {
            let mut query = Vec::new();
            if let Some(search) = search {
                query.push(("search", search));
            }
            if let Some(page) = page {
                query.push(("page", page.to_string()));
            }
            if let Some(size) = page_size {
                query.push(("pageSize", size.to_string()));
            }
            let page = client
                .call(Method::GET, "/api/v1/serviceaccounts", &query, None)
                .await?;
            print(output, &page, |v| {
                let rows = v["serviceAccounts"].as_array().cloned().unwrap_or_default();
                format!(
                    "{}({} of {} total, page {})\n",
                    render_table(ACCOUNT_COLUMNS, &rows),
                    rows.len(),
                    cell(&v["totalCount"]),
                    cell(&v["page"])
                )
            })
        }
        Command::Sa(SaCommand::Get { account }) => {
            let id = client.account_id(&account).await?;
            let value = client
                .call(
                    Method::GET,
                    &format!("/api/v1/serviceaccounts/{id}"),
                    &[],
                    None,
                )
                .await?;
            print(output, &value, |v| {
                render_table(ACCOUNT_COLUMNS, std::slice::from_ref(v))
            })
        }
        Command::Sa(SaCommand::Update {
            account,
            name,
            display_name,
            description,
            owner_email,
            role,
            label_policy,
            disable,
            enable,
        }) => {
            let id = client.account_id(&account).await?;
            let mut body = json!({});
            for (key, value) in [
                ("name", name),
                ("displayName", display_name),
                ("description", description),
                ("ownerEmail", owner_email),
                ("role", role),
                ("labelPolicy", label_policy),
            ] {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            if disable || enable {
                body["disabled"] = json!(disable);
            }
            if body.as_object().is_some_and(serde_json::Map::is_empty) {
                bail!(
                    "nothing to update: give at least one of --name, --display-name, --description, --owner-email, --role, --label-policy, --disable, --enable"
                );
            }
            let value = client
                .call(
                    Method::PATCH,
                    &format!("/api/v1/serviceaccounts/{id}"),
                    &[],
                    Some(body),
                )
                .await?;
            print(output, &value, |v| {
                render_table(ACCOUNT_COLUMNS, std::slice::from_ref(v))
            })
        }
        Command::Sa(SaCommand::Delete { account }) => {
            let id = client.account_id(&account).await?;
            client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/serviceaccounts/{id}"),
                    &[],
                    None,
                )
                .await?;
            print(output, &json!({ "deleted": id }), |_| {
                format!("deleted service account {id} and revoked its tokens\n")
            })
        }
        Command::Token(TokenCommand::Create {
            account,
            name,
            expiry,
        }) => {
            let id = client.account_id(&account).await?;
            let mut body = json!({ "name": name });
            expiry.into_json(&mut body)?;
            let value = client
                .call(
                    Method::POST,
                    &format!("/api/v1/serviceaccounts/{id}/tokens"),
                    &[],
                    Some(body),
                )
                .await?;
            print(output, &value, issued_token_table)
        }
        Command::Token(TokenCommand::List { account }) => {
            let id = client.account_id(&account).await?;
            let value = client
                .call(
                    Method::GET,
                    &format!("/api/v1/serviceaccounts/{id}/tokens"),
                    &[],
                    None,
                )
                .await?;
            print(output, &value, |v| {
                render_table(TOKEN_COLUMNS, v.as_array().map_or(&[], Vec::as_slice))
            })
        }
        Command::Token(TokenCommand::Rename {
            account,
            token_id,
            name,
        }) => {
            let id = client.account_id(&account).await?;
            let value = client
                .call(
                    Method::PATCH,
                    &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
                    &[],
                    Some(json!({ "name": name })),
                )
                .await?;
            print(output, &value, |v| {
                render_table(TOKEN_COLUMNS, std::slice::from_ref(v))
            })
        }
        Command::Token(TokenCommand::Revoke { account, token_id }) => {
            let id = client.account_id(&account).await?;
            client
                .call(
                    Method::DELETE,
                    &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
                    &[],
                    None,
                )
                .await?;
            print(output, &json!({ "revoked": token_id }), |_| {
                format!("revoked token {token_id}\n")
            })
        }
        Command::Token(TokenCommand::Regenerate { account, token_id }) => {
            let id = client.account_id(&account).await?;
            let value = client
                .call(
                    Method::POST,
                    &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}/regenerate"),
                    &[],
                    None,
                )
                .await?;
            print(output, &value, issued_token_table)
        }
        Command::CanI {
            method,
            path,
            account,
            tenant,
            labels,
        } => {
            let account = match account.parse::<i64>() {
                Ok(id) => json!(id),
                Err(_) => json!(account),
            };
            let mut body =
                json!({ "account": account, "method": method.to_ascii_uppercase(), "path": path });
            if let Some(tenant) = tenant {
                body["tenant"] = json!(tenant);
            }
            if let Some(labels) = labels {
                body["labels"] = json!(labels);
            }
            let value = client
                .call(Method::POST, "/api/v1/access-review", &[], Some(body))
                .await?;
            print(output, &value, |v| {
                let verdict = if v["allowed"] == true { "yes" } else { "no" };
                format!(
                    "{verdict}: {} (reason {}, scope {})\n",
                    cell(&v["message"]),
                    cell(&v["reason"]),
                    cell(&v["scope"])
                )
            })
        }
        Command::Audit {
            actor,
            target,
            page,
            page_size,
        } => {
            let mut query = Vec::new();
            if let Some(actor) = actor {
                query.push(("actor", actor));
            }
            if let Some(target) = target {
                query.push(("target", target));
            }
            if let Some(page) = page {
                query.push(("page", page.to_string()));
            }
            if let Some(size) = page_size {
                query.push(("pageSize", size.to_string()));
            }
            let value = client
                .call(Method::GET, "/api/v1/audit", &query, None)
                .await?;
            print(output, &value, |v| {
                let rows = v["entries"].as_array().cloned().unwrap_or_default();
                render_table(
                    &[
                        ("ID", "id"),
                        ("AT", "at"),
                        ("ACTOR", "actor"),
                        ("ACTION", "action"),
                        ("TARGET", "target"),
                        ("OUTCOME", "outcome"),
                    ],
                    &rows,
                )
            })
        }
    }
}
