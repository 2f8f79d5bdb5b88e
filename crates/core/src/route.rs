//! Route rules: (method, path pattern) to the scope a request needs. First match wins; an
//! unmatched request is denied.
//!
//! Patterns are `/`-separated segments: a literal, `*` for exactly one segment, or a final `**`
//! for any remainder (including none).

use crate::scope::Scope;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("path pattern \"{pattern}\" must start with '/'")]
    NotAbsolute { pattern: String },
    #[error("path pattern \"{pattern}\" may use \"**\" only as its last segment")]
    RestNotLast { pattern: String },
    #[error("method \"{method}\" is not an upper-case HTTP method token")]
    BadMethod { method: String },
    #[error("a route rule needs at least one method")]
    NoMethods,
}

/// Why a request path is refused before any rule is consulted: spellings that an upstream may
/// resolve to a different route than the one we matched (dot segments, encoded separators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains a '.' or '..' segment")]
    DotSegment,
    #[error("path contains an encoded '.', '/' or '\\', or a backslash")]
    EncodedSeparator,
    #[error("path contains a control character")]
    ControlCharacter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    pub fn parse(pattern: &str) -> Result<PathPattern, RouteError> {
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(RouteError::NotAbsolute {
                pattern: pattern.to_owned(),
            });
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            segments.push(match part {
                "**" if i == last => Segment::Rest,
                "**" => {
                    return Err(RouteError::RestNotLast {
                        pattern: pattern.to_owned(),
                    });
                }
                "*" => Segment::One,
                literal => Segment::Literal(literal.to_owned()),
            });
        }
        Ok(PathPattern {
            text: pattern.to_owned(),
            segments,
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::One => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for PathPattern {
    type Error = RouteError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PathPattern::parse(&s)
    }
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> String {
        p.text
    }
}

/// How a route confines a label-restricted account to its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LabelEnforcement {
    /// PromQL in the `query` parameter is rewritten (Prometheus query, query_range, exemplars).
    PromqlQuery,
    /// Series selectors in `match[]` are rewritten, and one is added when absent (series,
    /// labels, label values, federate).
    PromqlMatch,
    /// A Prometheus remote write body (1.0 or 2.0): the filter forces the policy's equality
    /// labels on every series, ext_authz checks that every series lies within the policy.
    RemoteWrite,
    /// OTLP/HTTP bodies (protobuf or JSON), the policy applied to resource attributes; likewise.
    OtlpMetrics,
    OtlpLogs,
    OtlpTraces,
    /// A Loki push body (protobuf or JSON), the policy applied to stream labels; likewise.
    LokiPush,
    /// LogQL in the `query` parameter is rewritten: every stream selector gains the policy's
    /// matchers (Loki query, query_range, tail).
    LogqlQuery,
    /// Likewise, and when `query` is absent the policy's selector is added, since Loki then
    /// answers for every stream (labels, label values, index, patterns, detected fields).
    LogqlOptionalQuery,
    /// Stream selectors in `match[]` (and `match`) are rewritten, one added when absent
    /// (Loki series).
    LogqlSeries,
    /// The upstream applies the policy it receives in `x-tollgate-labels` (Tollgate's admin API;
    /// only for an upstream that really enforces that header).
    Upstream,
    /// The answer carries no series data (build information, query formatting), so
    /// label-restricted accounts may use it as sent.
    NoSeriesData,
    /// Nothing here can confine a query to labels: label-restricted requests are denied.
    #[default]
    Deny,
}

/// One rule of the table; serialised in the filter configuration as
/// `{"methods": ["GET"], "path": "/api/v1/query", "scope": "metrics:read", "labels": "promqlQuery"}`
/// (`labels` defaults to `deny`; `"labelPolicyHeader": true` also sends the effective policy
/// in `X-Prom-Label-Policy`, for upstreams that enforce it themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteRule {
    pub methods: Vec<String>,
    pub path: PathPattern,
    pub scope: Scope,
    #[serde(default)]
    pub labels: LabelEnforcement,
    /// Send a restricted account's effective policy in `X-Prom-Label-Policy` too (Mimir and
    /// Loki label-based access control): defence in depth, never instead of rewriting.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub label_policy_header: bool,
}

impl RouteRule {
    pub fn new(
        methods: &[&str],
        path: &str,
        scope: Scope,
        labels: LabelEnforcement,
    ) -> Result<RouteRule, RouteError> {
        let rule = RouteRule {
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            path: PathPattern::parse(path)?,
            scope,
            labels,
            label_policy_header: false,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks what serde cannot: at least one method, each an upper-case token.
    /// This rule, also sending `X-Prom-Label-Policy`.
    pub fn with_label_policy_header(mut self) -> RouteRule {
        self.label_policy_header = true;
        self
    }

    pub fn validate(&self) -> Result<(), RouteError> {
        if self.methods.is_empty() {
            return Err(RouteError::NoMethods);
        }
        for method in &self.methods {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(RouteError::BadMethod {
                    method: method.clone(),
                });
            }
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.methods.iter().any(|m| m == method) && self.path.matches(path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
}

const READ: &[&str] = &["GET", "POST"];
const GET: &[&str] = &["GET"];
const POST: &[&str] = &["POST"];

/// The Prometheus HTTP API's reads, served at the root by Prometheus and under `/prometheus` by
/// Mimir (see [`RouteTable::default`]). Grafana and other clients also call the metadata
/// endpoints: those without series data are allowed to label-restricted accounts, those that
/// list every series' metadata, rules, alerts or targets regardless of labels are not.
const PROMETHEUS_READ_RULES: &[(&[&str], &str, Scope, LabelEnforcement)] = {
    use LabelEnforcement::{Deny, NoSeriesData, PromqlMatch, PromqlQuery};
    &[
        (READ, "/api/v1/query", Scope::MetricsRead, PromqlQuery),
        (READ, "/api/v1/query_range", Scope::MetricsRead, PromqlQuery),
        (
            READ,
            "/api/v1/query_exemplars",
            Scope::MetricsRead,
            PromqlQuery,
        ),
        (READ, "/api/v1/series", Scope::MetricsRead, PromqlMatch),
        (READ, "/api/v1/labels", Scope::MetricsRead, PromqlMatch),
        (
            GET,
            "/api/v1/label/*/values",
            Scope::MetricsRead,
            PromqlMatch,
        ),
        (
            GET,
            "/api/v1/status/buildinfo",
            Scope::MetricsRead,
            NoSeriesData,
        ),
        (
            READ,
            "/api/v1/format_query",
            Scope::MetricsRead,
            NoSeriesData,
        ),
        (
            READ,
            "/api/v1/parse_query",
            Scope::MetricsRead,
            NoSeriesData,
        ),
        (GET, "/api/v1/metadata", Scope::MetricsRead, Deny),
        (GET, "/api/v1/rules", Scope::MetricsRead, Deny),
        (GET, "/api/v1/alerts", Scope::MetricsRead, Deny),
        (GET, "/api/v1/targets", Scope::MetricsRead, Deny),
    ]
};

/// Loki's read API. LogQL is rewritten for label-restricted accounts (see [`crate::logql`]), and
/// the policy also goes in `X-Prom-Label-Policy` for a Loki with label-based access control.
/// Every other Loki path (format_query, deletes, the ruler) is denied to restricted accounts or
/// not listed at all.
const LOKI_READ_RULES: &[(&[&str], &str, Scope, LabelEnforcement)] = {
    use LabelEnforcement::{LogqlOptionalQuery, LogqlQuery, LogqlSeries};
    &[
        (READ, "/loki/api/v1/query", Scope::LogsRead, LogqlQuery),
        (
            READ,
            "/loki/api/v1/query_range",
            Scope::LogsRead,
            LogqlQuery,
        ),
        (GET, "/loki/api/v1/tail", Scope::LogsRead, LogqlQuery),
        (READ, "/loki/api/v1/series", Scope::LogsRead, LogqlSeries),
        (
            READ,
            "/loki/api/v1/labels",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/label/*/values",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/index/stats",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/index/volume",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/index/volume_range",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/patterns",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/detected_fields",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/detected_field/*/values",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
        (
            READ,
            "/loki/api/v1/detected_labels",
            Scope::LogsRead,
            LogqlOptionalQuery,
        ),
    ]
};

/// The rest of the default upstream table: federation, writes, Loki's format_query, Tempo and
/// OTLP. Routes not listed (TSDB status, admin APIs, Loki deletes and ruler) are denied to
/// everyone. Tempo reads cannot be confined to labels here (TraceQL is not rewritten), so
/// label-restricted accounts are denied them. Writes carry their labels in their bodies, which
/// are confined to the policy (remote write, OTLP, Loki push: see [`crate::write`]).
const DEFAULT_RULES: &[(&[&str], &str, Scope, LabelEnforcement)] = {
    use LabelEnforcement::{
        Deny, LokiPush, OtlpLogs, OtlpMetrics, OtlpTraces, PromqlMatch, RemoteWrite,
    };
    &[
        (READ, "/federate", Scope::MetricsRead, PromqlMatch),
        (POST, "/api/v1/write", Scope::MetricsWrite, RemoteWrite),
        (POST, "/api/v1/push", Scope::MetricsWrite, RemoteWrite),
        // OTLP receivers of Prometheus and Mimir.
        (
            POST,
            "/api/v1/otlp/v1/metrics",
            Scope::MetricsWrite,
            OtlpMetrics,
        ),
        (POST, "/otlp/v1/metrics", Scope::MetricsWrite, OtlpMetrics),
        // Loki: push (its own and OTLP); its reads are LOKI_READ_RULES.
        (POST, "/loki/api/v1/push", Scope::LogsWrite, LokiPush),
        (POST, "/otlp/v1/logs", Scope::LogsWrite, OtlpLogs),
        (READ, "/loki/api/v1/format_query", Scope::LogsRead, Deny),
        // Tempo.
        (GET, "/api/traces/**", Scope::TracesRead, Deny),
        (GET, "/api/v2/traces/**", Scope::TracesRead, Deny),
        (GET, "/api/search/**", Scope::TracesRead, Deny),
        (GET, "/api/v2/search/**", Scope::TracesRead, Deny),
        // OTLP/HTTP.
        (POST, "/v1/metrics", Scope::MetricsWrite, OtlpMetrics),
        (POST, "/v1/logs", Scope::LogsWrite, OtlpLogs),
        (POST, "/v1/traces", Scope::TracesWrite, OtlpTraces),
    ]
};

/// Tollgate's own admin API: a table of its own, so that a proxy in front of an upstream never
/// matches an admin path. Label ceilings are enforced by the admin service itself.
const ADMIN_RULES: &[(&[&str], &str, Scope, LabelEnforcement)] = {
    use LabelEnforcement::Upstream;
    &[
        (
            GET,
            "/api/v1/serviceaccounts/**",
            Scope::AccountsRead,
            Upstream,
        ),
        (
            GET,
            "/api/v1/serviceaccounts",
            Scope::AccountsRead,
            Upstream,
        ),
        (
            &["POST", "PATCH", "DELETE"],
            "/api/v1/serviceaccounts/**",
            Scope::AccountsWrite,
            Upstream,
        ),
        (
            POST,
            "/api/v1/serviceaccounts",
            Scope::AccountsWrite,
            Upstream,
        ),
        (GET, "/api/v1/tenants", Scope::AccountsRead, Upstream),
        (
            &["DELETE"],
            "/api/v1/tenants/*",
            Scope::AccountsWrite,
            Upstream,
        ),
        (GET, "/api/v1/roles", Scope::AccountsRead, Upstream),
        (GET, "/api/v1/roles/*", Scope::AccountsRead, Upstream),
        (POST, "/api/v1/roles", Scope::AccountsWrite, Upstream),
        (
            &["PATCH", "DELETE"],
            "/api/v1/roles/*",
            Scope::AccountsWrite,
            Upstream,
        ),
        (POST, "/api/v1/access-review", Scope::AccountsRead, Upstream),
        // Who the caller is, and a label policy checked by the server's parser for the web
        // console: read-only, so the scope of any account manager.
        (GET, "/api/v1/whoami", Scope::AccountsRead, Upstream),
        (
            POST,
            "/api/v1/labelpolicies/validate",
            Scope::AccountsRead,
            Upstream,
        ),
        (GET, "/api/v1/audit", Scope::AccountsRead, Upstream),
    ]
};

impl RouteTable {
    pub fn new(rules: Vec<RouteRule>) -> Result<RouteTable, RouteError> {
        for rule in &rules {
            rule.validate()?;
        }
        Ok(RouteTable { rules })
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The first rule matching `method` and `path` (path without its query string).
    pub fn find(&self, method: &str, path: &str) -> Option<&RouteRule> {
        self.rules.iter().find(|rule| rule.matches(method, path))
    }
}

impl RouteTable {
    /// The admin API's routes (served by `tollgate serve`, never by an upstream).
    pub fn admin() -> RouteTable {
        RouteTable::from_static(ADMIN_RULES)
    }

    fn from_static(rules: &[(&[&str], &str, Scope, LabelEnforcement)]) -> RouteTable {
        RouteTable {
            rules: static_rules(rules, ""),
        }
    }
}

fn static_rules(
    rules: &[(&[&str], &str, Scope, LabelEnforcement)],
    prefix: &str,
) -> Vec<RouteRule> {
    rules
        .iter()
        .filter_map(|(methods, path, scope, labels)| {
            RouteRule::new(methods, &format!("{prefix}{path}"), *scope, *labels).ok()
        })
        .collect()
}

/// The upstream table: the Prometheus API (also under Mimir's `/prometheus` prefix), Loki,
/// Tempo and OTLP. Mimir's and Loki's query routes also send `X-Prom-Label-Policy`.
impl Default for RouteTable {
    fn default() -> RouteTable {
        let mut rules = static_rules(PROMETHEUS_READ_RULES, "");
        rules.extend(
            static_rules(PROMETHEUS_READ_RULES, "/prometheus")
                .into_iter()
                .map(with_policy_header_if_confined),
        );
        rules.extend(
            static_rules(LOKI_READ_RULES, "")
                .into_iter()
                .map(RouteRule::with_label_policy_header),
        );
        rules.extend(static_rules(DEFAULT_RULES, ""));
        RouteTable { rules }
    }
}

/// Mimir's reads that carry series data (the query rewrite confines them) send the header.
fn with_policy_header_if_confined(rule: RouteRule) -> RouteRule {
    if matches!(
        rule.labels,
        LabelEnforcement::PromqlQuery | LabelEnforcement::PromqlMatch
    ) {
        rule.with_label_policy_header()
    } else {
        rule
    }
}

/// Refuses request paths that different HTTP stacks could resolve differently. Runs on every
/// request: byte passes over the path, no allocation (the tests hold it to the plain
/// formulation, `check_path_as_text`).
pub fn check_path(path: &str) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Unicode's control characters (Cc): the ASCII ones, and U+0080-U+009F, which UTF-8
    // spells C2 80 to C2 9F.
    let c1_control = |pair: &[u8]| pair[0] == 0xc2 && (0x80..=0x9f).contains(&pair[1]);
    if bytes.iter().any(|b| b.is_ascii_control()) || bytes.windows(2).any(c1_control) {
        return Err(PathError::ControlCharacter);
    }
    if bytes.contains(&b'\\') {
        return Err(PathError::EncodedSeparator);
    }
    let encoded_separator = |triple: &[u8]| {
        triple[0] == b'%'
            && [b"2e", b"2f", b"5c"]
                .iter()
                .any(|hex| triple[1..].eq_ignore_ascii_case(&hex[..]))
    };
    if bytes.windows(3).any(encoded_separator) {
        return Err(PathError::EncodedSeparator);
    }
    if bytes
        .split(|b| *b == b'/')
        .any(|segment| matches!(segment, b"." | b".."))
    {
        return Err(PathError::DotSegment);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// [`check_path`] as first written, on text: the oracle of its byte passes.
    fn check_path_as_text(path: &str) -> Result<(), PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if path.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if path.contains('\\') {
            return Err(PathError::EncodedSeparator);
        }
        let lower = path.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|enc| lower.contains(enc)) {
            return Err(PathError::EncodedSeparator);
        }
        if path.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(PathError::DotSegment);
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn check_path_agrees_with_its_plain_formulation(
            path in "/?(/|\\.|%2[eEfF0]|%5[cCdD]|%|2|a|\\\\|\\?|[\\x00-\\x1f\\x7f-\\u{a0}]|\\PC){0,12}"
        ) {
            proptest::prop_assert_eq!(check_path(&path), check_path_as_text(&path), "{:?}", path);
        }
    }

    #[test]
    fn default_table_is_complete() {
        assert_eq!(
            RouteTable::default().rules().len(),
            2 * PROMETHEUS_READ_RULES.len() + LOKI_READ_RULES.len() + DEFAULT_RULES.len(),
            "the Prometheus reads twice (root and Mimir's /prometheus), the rest once"
        );
        assert_eq!(RouteTable::admin().rules().len(), ADMIN_RULES.len());
    }

    #[test]
    fn the_admin_api_is_not_an_upstream_route() {
        let upstream = RouteTable::default();
        let admin = RouteTable::admin();
        for (method, path) in [
            ("GET", "/api/v1/serviceaccounts"),
            ("DELETE", "/api/v1/serviceaccounts/3"),
            ("POST", "/api/v1/access-review"),
            ("GET", "/api/v1/audit"),
        ] {
            assert!(upstream.find(method, path).is_none(), "{method} {path}");
            assert!(admin.find(method, path).is_some(), "{method} {path}");
        }
        assert!(admin.find("GET", "/api/v1/query").is_none());
    }

    #[test]
    fn default_routes() {
        use Scope::*;
        let table = RouteTable::default();
        let cases = [
            ("GET", "/api/v1/query", Some(MetricsRead), "instant query"),
            (
                "POST",
                "/api/v1/query_range",
                Some(MetricsRead),
                "grafana posts queries",
            ),
            (
                "GET",
                "/api/v1/label/job/values",
                Some(MetricsRead),
                "label values",
            ),
            ("GET", "/api/v1/label//values", None, "empty label name"),
            (
                "GET",
                "/api/v1/label/a/b/values",
                None,
                "two segments for one *",
            ),
            ("POST", "/api/v1/write", Some(MetricsWrite), "remote write"),
            ("GET", "/api/v1/write", None, "remote write is POST only"),
            (
                "GET",
                "/api/v1/targets",
                Some(MetricsRead),
                "targets: unrestricted accounts only (the rule denies restricted ones)",
            ),
            (
                "GET",
                "/prometheus/api/v1/query",
                Some(MetricsRead),
                "Mimir's prefix",
            ),
            (
                "GET",
                "/prometheus/api/v1/status/buildinfo",
                Some(MetricsRead),
                "Grafana's buildinfo under Mimir's prefix",
            ),
            (
                "GET",
                "/prometheus/federate",
                None,
                "no federation under the prefix",
            ),
            ("GET", "/api/v1/status/tsdb", None, "tsdb status: denied"),
            ("POST", "/loki/api/v1/push", Some(LogsWrite), "loki push"),
            (
                "GET",
                "/loki/api/v1/query_range",
                Some(LogsRead),
                "loki query",
            ),
            (
                "GET",
                "/loki/api/v1/label/app/values",
                Some(LogsRead),
                "loki label values",
            ),
            (
                "POST",
                "/loki/api/v1/query",
                Some(LogsRead),
                "loki POST query",
            ),
            ("POST", "/loki/api/v1/delete", None, "loki delete: denied"),
            (
                "PUT",
                "/loki/api/v1/delete",
                None,
                "loki delete (PUT): denied",
            ),
            (
                "GET",
                "/loki/api/v1/delete",
                None,
                "loki delete list: denied",
            ),
            (
                "POST",
                "/loki/api/v1/rules/ns",
                None,
                "loki ruler write: denied",
            ),
            (
                "DELETE",
                "/loki/api/v1/rules/ns/g",
                None,
                "loki ruler delete: denied",
            ),
            ("GET", "/loki/api/v1/tail", Some(LogsRead), "loki tail"),
            ("POST", "/loki/api/v1/tail", None, "loki tail is GET only"),
            (
                "GET",
                "/api/traces/abc",
                Some(TracesRead),
                "tempo trace by id",
            ),
            ("POST", "/v1/traces", Some(TracesWrite), "otlp traces"),
            ("POST", "/v1/metrics", Some(MetricsWrite), "otlp metrics"),
            (
                "GET",
                "/api/v1/serviceaccounts",
                Some(AccountsRead),
                "list accounts",
            ),
            (
                "GET",
                "/api/v1/serviceaccounts/3/tokens",
                Some(AccountsRead),
                "list tokens",
            ),
            (
                "DELETE",
                "/api/v1/serviceaccounts/3",
                Some(AccountsWrite),
                "delete account",
            ),
            (
                "POST",
                "/api/v1/serviceaccounts",
                Some(AccountsWrite),
                "create account",
            ),
            (
                "GET",
                "/api/v1/query/",
                None,
                "trailing slash is another route",
            ),
            ("PUT", "/api/v1/query", None, "method not in rule"),
            ("GET", "/", None, "root"),
        ];
        // The admin API's rows are answered by its own table.
        let admin = RouteTable::admin();
        for (method, path, want, why) in cases {
            let rule = table
                .find(method, path)
                .or_else(|| admin.find(method, path));
            assert_eq!(rule.map(|r| r.scope), want, "{why}");
        }
    }

    #[test]
    fn label_policy_header_by_route() {
        let table = RouteTable::default();
        for (method, path, want) in [
            ("GET", "/loki/api/v1/query_range", true),
            ("GET", "/loki/api/v1/tail", true),
            ("GET", "/loki/api/v1/series", true),
            ("GET", "/loki/api/v1/format_query", false),
            ("POST", "/loki/api/v1/push", false),
            ("GET", "/prometheus/api/v1/query", true),
            ("GET", "/prometheus/api/v1/label/a/values", true),
            ("GET", "/prometheus/api/v1/status/buildinfo", false),
            ("GET", "/api/v1/query", false),
        ] {
            let rule = table.find(method, path).unwrap();
            assert_eq!(rule.label_policy_header, want, "{method} {path}");
        }
        let json = r#"{"methods":["GET"],"path":"/q","scope":"logs:read","labels":"logqlQuery","labelPolicyHeader":true}"#;
        let rule: RouteRule = serde_json::from_str(json).unwrap();
        assert!(rule.label_policy_header);
        assert_eq!(rule.labels, LabelEnforcement::LogqlQuery);
        assert_eq!(serde_json::to_string(&rule).unwrap(), json, "round trip");
        let plain =
            RouteRule::new(&["GET"], "/q", Scope::LogsRead, LabelEnforcement::Deny).unwrap();
        assert!(
            !serde_json::to_string(&plain)
                .unwrap()
                .contains("labelPolicyHeader"),
            "absent when false"
        );
    }

    #[test]
    fn pattern_and_rule_errors() {
        assert!(matches!(
            PathPattern::parse("api"),
            Err(RouteError::NotAbsolute { .. })
        ));
        assert!(matches!(
            PathPattern::parse("/a/**/b"),
            Err(RouteError::RestNotLast { .. })
        ));
        assert!(PathPattern::parse("/a/**").unwrap().matches("/a"));
        assert!(PathPattern::parse("/a/**").unwrap().matches("/a/b/c"));
        assert_eq!(
            RouteRule::new(&[], "/a", Scope::LogsRead, LabelEnforcement::Deny),
            Err(RouteError::NoMethods)
        );
        assert!(matches!(
            RouteRule::new(&["get"], "/a", Scope::LogsRead, LabelEnforcement::Deny),
            Err(RouteError::BadMethod { .. })
        ));
        let json = r#"{"methods":["GET"],"path":"/x/*","scope":"logs:read"}"#;
        let rule: RouteRule = serde_json::from_str(json).unwrap();
        assert!(rule.matches("GET", "/x/y"));
        assert_eq!(rule.labels, LabelEnforcement::Deny, "the safe default");
        let json =
            r#"{"methods":["GET"],"path":"/q","scope":"metrics:read","labels":"promqlQuery"}"#;
        assert_eq!(
            serde_json::from_str::<RouteRule>(json).unwrap().labels,
            LabelEnforcement::PromqlQuery
        );
        assert!(
            serde_json::from_str::<RouteRule>(
                r#"{"methods":["GET"],"path":"/x","scope":"logs:read","extra":1}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<RouteRule>(
                r#"{"methods":["GET"],"path":"x","scope":"logs:read"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("/api/v1/query", Ok(()), "plain"),
            (
                "/api/v1/label/a%20b/values",
                Ok(()),
                "other escapes are fine",
            ),
            ("api/v1/query", Err(PathError::NotAbsolute), "relative"),
            (
                "/loki/api/v1/../../api/v1/write",
                Err(PathError::DotSegment),
                "dot-dot",
            ),
            ("/api/v1/./query", Err(PathError::DotSegment), "dot"),
            (
                "/api/v1%2fquery",
                Err(PathError::EncodedSeparator),
                "encoded slash",
            ),
            (
                "/api/v1/%2E%2E/write",
                Err(PathError::EncodedSeparator),
                "encoded dots",
            ),
            ("/api\\v1", Err(PathError::EncodedSeparator), "backslash"),
            (
                "/api/v1/query\n",
                Err(PathError::ControlCharacter),
                "newline",
            ),
        ];
        for (path, want, why) in cases {
            assert_eq!(check_path(path), want, "{why}");
        }
    }
}
