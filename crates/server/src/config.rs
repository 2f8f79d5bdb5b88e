//! Server configuration: flags, environment (`TOLLGATE_*`) and an optional TOML file, in that
//! order of precedence.

use crate::admin::AdminConfig;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tollgate_core::write::WriteLimits;
use tollgate_core::{PolicyLimits, RouteRule, RouteTable};

pub const DEFAULT_STORE: &str = "sqlite://tollgate.db";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8181";
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:9191";

/// The `--config` file. Every key is optional; flags and environment win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub store: Option<String>,
    pub http_listen: Option<SocketAddr>,
    pub grpc_listen: Option<SocketAddr>,
    /// e.g. "30d"; absent: tokens without an expiry never expire.
    pub default_token_lifetime: Option<String>,
    /// e.g. "365d"; absent: no maximum.
    pub max_token_lifetime: Option<String>,
    pub bootstrap_token_file: Option<PathBuf>,
    pub label_policy_limits: Option<LimitsConfig>,
    /// The upstream route table for ext_authz, in the filter configuration's `routes` format;
    /// the built-in table when absent.
    pub routes: Option<Vec<RouteRule>>,
    /// Bounds on the write bodies Check reads; each key optional.
    pub write_limits: Option<WriteLimitsConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteLimitsConfig {
    pub max_body_bytes: Option<usize>,
    pub max_decoded_bytes: Option<usize>,
    pub max_items: Option<usize>,
    pub max_labels_per_item: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_selectors: Option<usize>,
    pub max_matchers_per_selector: Option<usize>,
    pub unique_label_names: Option<bool>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Everything `tollgate serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub store: String,
    pub http_listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub bootstrap_token_file: Option<PathBuf>,
    pub admin: AdminConfig,
    /// What ext_authz enforces in front of upstreams (and access reviews answer for).
    pub routes: RouteTable,
    pub write_limits: WriteLimits,
}

/// Values given by flag or environment; `None` falls back to the file, then the default.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub store: Option<String>,
    pub http_listen: Option<SocketAddr>,
    pub grpc_listen: Option<SocketAddr>,
    pub default_token_lifetime: Option<String>,
    pub max_token_lifetime: Option<String>,
    pub bootstrap_token_file: Option<PathBuf>,
}

impl ServeConfig {
    pub fn resolve(flags: Overrides, file: FileConfig) -> anyhow::Result<ServeConfig> {
        let default_lifetime = flags.default_token_lifetime.or(file.default_token_lifetime);
        let max_lifetime = flags.max_token_lifetime.or(file.max_token_lifetime);
        let default_token_lifetime = default_lifetime
            .as_deref()
            .map(|v| parse_duration(v).context("default token lifetime"))
            .transpose()?;
        let max_token_lifetime = max_lifetime
            .as_deref()
            .map(|v| parse_duration(v).context("maximum token lifetime"))
            .transpose()?;
        if let (Some(default), Some(max)) = (default_token_lifetime, max_token_lifetime)
            && default > max
        {
            bail!("the default token lifetime exceeds the maximum token lifetime");
        }
        let defaults = PolicyLimits::default();
        let policy_limits = match file.label_policy_limits {
            None => defaults,
            Some(l) => PolicyLimits {
                max_selectors: l.max_selectors.unwrap_or(defaults.max_selectors),
                max_matchers_per_selector: l
                    .max_matchers_per_selector
                    .unwrap_or(defaults.max_matchers_per_selector),
                unique_label_names: l.unique_label_names.unwrap_or(defaults.unique_label_names),
            },
        };
        let routes = match file.routes {
            None => RouteTable::default(),
            Some(rules) => RouteTable::new(rules).context("routes")?,
        };
        let defaults = WriteLimits::default();
        let write_limits = match file.write_limits {
            None => defaults,
            Some(w) => WriteLimits {
                max_body_bytes: w.max_body_bytes.unwrap_or(defaults.max_body_bytes),
                max_decoded_bytes: w.max_decoded_bytes.unwrap_or(defaults.max_decoded_bytes),
                max_items: w.max_items.unwrap_or(defaults.max_items),
                max_labels_per_item: w
                    .max_labels_per_item
                    .unwrap_or(defaults.max_labels_per_item),
            },
        };
        write_limits
            .validate()
            .map_err(|why| anyhow::anyhow!("write_limits: {why}"))?;
        Ok(ServeConfig {
            routes,
            write_limits,
            store: flags
                .store
                .or(file.store)
                .unwrap_or_else(|| DEFAULT_STORE.into()),
            http_listen: match flags.http_listen.or(file.http_listen) {
                Some(addr) => addr,
                None => DEFAULT_HTTP_LISTEN.parse()?,
            },
            grpc_listen: match flags.grpc_listen.or(file.grpc_listen) {
                Some(addr) => addr,
                None => DEFAULT_GRPC_LISTEN.parse()?,
            },
            bootstrap_token_file: flags.bootstrap_token_file.or(file.bootstrap_token_file),
            admin: AdminConfig {
                default_token_lifetime,
                max_token_lifetime,
                policy_limits,
            },
        })
    }
}

/// `90` (seconds), `90s`, `15m`, `12h` or `30d`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("\"{text}\" is not a duration such as 30d, 12h, 15m or 90s"))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("\"{text}\" has unknown unit \"{unit}\" (use s, m, h or d)"),
    };
    if n == 0 {
        bail!("duration \"{text}\" must be positive");
    }
    Ok(Duration::from_secs(n.saturating_mul(factor)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_the_config_file() {
        let file: FileConfig = toml::from_str(
            r#"
            [[routes]]
            methods = ["GET"]
            path = "/custom/query"
            scope = "metrics:read"
            labels = "promqlQuery"
            "#,
        )
        .unwrap();
        let config = ServeConfig::resolve(Overrides::default(), file).unwrap();
        let rule = config.routes.find("GET", "/custom/query").unwrap();
        assert_eq!(
            rule.labels,
            tollgate_core::route::LabelEnforcement::PromqlQuery
        );
        assert!(
            config.routes.find("GET", "/api/v1/query").is_none(),
            "replaces the table"
        );

        let default = ServeConfig::resolve(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(default.routes, RouteTable::default());

        for bad in [
            "[[routes]]\nmethods = []\npath = \"/a\"\nscope = \"metrics:read\"",
            "[[routes]]\nmethods = [\"get\"]\npath = \"/a\"\nscope = \"metrics:read\"",
            "[[routes]]\nmethods = [\"GET\"]\npath = \"a\"\nscope = \"metrics:read\"",
            "[[routes]]\nmethods = [\"GET\"]\npath = \"/a\"\nscope = \"root\"",
        ] {
            let parsed: Result<FileConfig, _> = toml::from_str(bad);
            let resolved = parsed
                .map_err(anyhow::Error::from)
                .and_then(|file| ServeConfig::resolve(Overrides::default(), file));
            assert!(resolved.is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        for bad in ["", "d", "0s", "3w", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_and_file_errors() {
        let file: FileConfig = toml::from_str(
            "store = \"sqlite://file.db\"\nmax_token_lifetime = \"10d\"\n[label_policy_limits]\nmax_selectors = 2\n",
        )
        .unwrap();
        let flags = Overrides {
            store: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        let config = ServeConfig::resolve(flags, file).unwrap();
        assert_eq!(config.store, "sqlite://flag.db");
        assert_eq!(
            config.admin.max_token_lifetime,
            Some(Duration::from_secs(864_000))
        );
        assert_eq!(config.admin.policy_limits.max_selectors, 2);
        assert_eq!(config.http_listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert!(
            toml::from_str::<FileConfig>("stor = 1").is_err(),
            "unknown keys are refused"
        );
        let clash = Overrides {
            default_token_lifetime: Some("20d".into()),
            max_token_lifetime: Some("10d".into()),
            ..Overrides::default()
        };
        assert!(ServeConfig::resolve(clash, FileConfig::default()).is_err());
    }
}
