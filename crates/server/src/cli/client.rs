//! The admin API over HTTP, with the API's own request and response types.

use crate::api::{AccountDto, AccountPageDto, ErrorBody, ListParams, MAX_PAGE_SIZE};
use anyhow::{Context, bail};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answer of the admin API, kept typed so that a caller can tell a missing endpoint
/// (404 `not_found`) from a refusal.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({reason}, HTTP {status})")]
pub struct ApiError {
    pub status: u16,
    pub reason: String,
    pub message: String,
}

impl ApiError {
    /// Whether `err` is an answer of the API with this status.
    pub fn has_status(err: &anyhow::Error, status: u16) -> bool {
        err.downcast_ref::<ApiError>()
            .is_some_and(|api| api.status == status)
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Nothing to send: a request without a body or query.
pub const NONE: Option<&()> = None;

impl Client {
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            bail!("no admin token: set TOLLGATE_TOKEN (or pass --token)");
        };
        Ok(Client {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Sends a request and reads the answer's body as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&impl Serialize>,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let text = self.send(method, path, query, body).await?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "unexpected answer from the admin API at {}{path}",
                self.base
            )
        })
    }

    /// Sends a request whose answer has no body (204).
    pub async fn call_empty(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<()> {
        self.send(method, path, NONE, body).await.map(drop)
    }

    /// The body of a successful answer; an error answer becomes
    /// `<message> (<reason>, HTTP <status>)`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: Option<&impl Serialize>,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(query) = query {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
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
        if !status.is_success() {
            let (message, reason) = match serde_json::from_str::<ErrorBody>(&text) {
                Ok(ErrorBody { error, reason }) => (error, reason),
                Err(_) => ("request failed".to_owned(), "unknown".to_owned()),
            };
            return Err(ApiError {
                status: status.as_u16(),
                reason,
                message,
            }
            .into());
        }
        Ok(text)
    }

    /// An id, or the name of an account the caller sees, looked up exactly; `tenant` picks among
    /// accounts of that name in different tenants.
    pub async fn account_id(&self, account: &str, tenant: Option<&str>) -> anyhow::Result<i64> {
        if let Ok(id) = account.parse() {
            return Ok(id);
        }
        let named = self.accounts_named(account).await?;
        let found: Vec<&AccountDto> = named
            .iter()
            .filter(|a| tenant.is_none_or(|t| a.tenant == t))
            .collect();
        match (found.as_slice(), tenant) {
            ([one], _) => Ok(one.id),
            ([], None) => bail!("no service account named \"{account}\""),
            ([], Some(tenant)) => {
                bail!("no service account named \"{account}\" in tenant \"{tenant}\"")
            }
            (several, _) => {
                let tenants: Vec<&str> = several.iter().map(|a| a.tenant.as_str()).collect();
                bail!(
                    "several service accounts are named \"{account}\", in tenants {}: pass --tenant or use the id",
                    tenants.join(", ")
                )
            }
        }
    }

    /// Every account named exactly `name` that the caller sees (one per tenant at most).
    async fn accounts_named(&self, name: &str) -> anyhow::Result<Vec<AccountDto>> {
        let mut params = ListParams {
            name: Some(name.to_owned()),
            page_size: Some(MAX_PAGE_SIZE),
            ..ListParams::default()
        };
        let mut named = Vec::new();
        for page in 1.. {
            params.page = Some(page);
            let found: AccountPageDto = self
                .call(Method::GET, "/api/v1/serviceaccounts", Some(&params), NONE)
                .await?;
            let last = found.service_accounts.is_empty();
            named.extend(found.service_accounts);
            if last || named.len() as u64 >= found.total_count {
                break;
            }
        }
        Ok(named)
    }
}

/// `name` as one URL path segment: every byte outside the unreserved set percent-encoded.
pub fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
