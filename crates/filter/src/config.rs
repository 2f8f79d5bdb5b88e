//! The proxy-wasm filter's configuration: JSON, camelCase, unknown fields rejected. Parsed and
//! checked once per configuration push into a [`FilterSettings`] every request shares; any
//! error rejects the configuration (the filter's `on_configure` returns false), never a default.
//!
//! ```json
//! {
//!   "cluster": "tollgate",
//!   "timeoutMs": 500,
//!   "cache": { "capacity": 10000, "ttlSeconds": 60, "negativeTtlSeconds": 5 },
//!   "feed": { "intervalMs": 1000, "push": true, "membership": true },
//!   "failureMode": "deny",
//!   "routes": [ { "methods": ["GET"], "path": "/api/v1/query", "scope": "metrics:read", "labels": "promqlQuery" } ],
//!   "writeLimits": { "maxBodyBytes": 4194304, "maxDecodedBytes": 33554432, "maxItems": 20000, "maxLabelsPerItem": 128 },
//!   "maxAnswerBytes": 16777216
//! }
//! ```
//! `failureMode` is `"deny"` (default) or `{"staleIfError": {"maxStalenessSeconds": 30}}`;
//! `routes` defaults to the built-in table; `writeLimits` to the values shown. `maxAnswerBytes`
//! bounds an answer the filter buffers to hide an account's policy labels (decoded size; over it
//! the answer is 502).
//!
//! `feed.push` opens a Watch stream on which the server pushes changes as they commit (the poll
//! every `intervalMs` runs only while the stream is down or silent). `feed.membership` (needs
//! `push`) refuses, inside Envoy, a token the server's membership filter of live tokens does not
//! contain, while the stream is up; while it is down such tokens are resolved as before.

use serde::Deserialize;
use std::time::Duration;
use tollgate_core::route::{RouteError, RouteRule, RouteTable};
use tollgate_core::write::WriteLimits;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    cluster: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    feed: RawFeed,
    #[serde(default)]
    failure_mode: FailureMode,
    routes: Option<Vec<RouteRule>>,
    #[serde(default)]
    write_limits: WriteLimits,
    #[serde(default = "default_max_answer_bytes")]
    max_answer_bytes: u64,
}

fn default_timeout_ms() -> u64 {
    500
}

fn default_max_answer_bytes() -> u64 {
    16 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCache {
    #[serde(default = "default_capacity")]
    capacity: usize,
    #[serde(default = "default_ttl")]
    ttl_seconds: u64,
    #[serde(default = "default_negative_ttl")]
    negative_ttl_seconds: u64,
}

impl Default for RawCache {
    fn default() -> RawCache {
        RawCache {
            capacity: default_capacity(),
            ttl_seconds: default_ttl(),
            negative_ttl_seconds: default_negative_ttl(),
        }
    }
}

fn default_capacity() -> usize {
    10_000
}
fn default_ttl() -> u64 {
    60
}
fn default_negative_ttl() -> u64 {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFeed {
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_true")]
    push: bool,
    #[serde(default = "default_true")]
    membership: bool,
}

impl Default for RawFeed {
    fn default() -> RawFeed {
        RawFeed {
            interval_ms: default_interval_ms(),
            push: true,
            membership: true,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_interval_ms() -> u64 {
    1000
}

/// What the filter does when the server cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum FailureMode {
    /// Deny (503) whatever the cache holds: revocations can no longer be learned.
    #[default]
    Deny,
    /// Keep serving cached grants for at most this long after the server was last reached;
    /// revocations already received still win.
    StaleIfError {
        #[serde(rename = "maxStalenessSeconds")]
        max_staleness_seconds: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("plugin configuration is not valid JSON for the Tollgate filter: {0}")]
    Json(String),
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error(
        "cluster must name the Envoy cluster of the Tollgate server: 1 to 100 printable ASCII characters"
    )]
    EmptyCluster,
    #[error("writeLimits: {0}")]
    WriteLimits(String),
    #[error("routes: {0}")]
    Route(#[from] RouteError),
    #[error(
        "feed.membership needs feed.push: the membership filter is trusted only while changes are pushed"
    )]
    MembershipWithoutPush,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct FilterSettings {
    pub cluster: String,
    pub timeout: Duration,
    pub cache_capacity: usize,
    pub cache_ttl: Duration,
    pub negative_ttl: Duration,
    pub feed_interval: Duration,
    /// Changes pushed on a Watch stream (the poll is the fallback).
    pub push: bool,
    /// Unknown tokens refused by the membership filter while the stream is up.
    pub membership: bool,
    pub failure_mode: FailureMode,
    pub routes: RouteTable,
    /// Bounds on the write bodies the filter reads (remote write, OTLP, Loki push).
    pub write_limits: WriteLimits,
    /// The largest answer buffered to hide policy labels.
    pub max_answer_bytes: usize,
}

impl FilterSettings {
    /// How long cached grants stay trustworthy without a successful feed poll, in deny mode:
    /// three missed polls (at least three seconds), then the filter answers 503.
    pub fn feed_grace(&self) -> Duration {
        (self.feed_interval * 3).max(Duration::from_secs(3))
    }

    /// How long the push stream may stay silent (its heartbeat is `feed_interval`) before it
    /// counts as down: the poll resumes and the membership filter is no longer trusted.
    pub fn push_silence(&self) -> Duration {
        self.feed_interval * 2
    }

    pub fn parse(bytes: &[u8]) -> Result<FilterSettings, ConfigError> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|err| ConfigError::Json(err.to_string()))?;
        // The cluster is passed to Envoy inside a serialized GrpcService through an SDK call
        // that takes a &str: a short printable ASCII name keeps those bytes valid UTF-8.
        if raw.cluster.trim().is_empty()
            || raw.cluster.len() > 100
            || !raw.cluster.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::EmptyCluster);
        }
        let range = |field, value: u64, min, max| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                })
            }
        };
        let timeout = range("timeoutMs", raw.timeout_ms, 10, 60_000)?;
        let capacity = range("cache.capacity", raw.cache.capacity as u64, 1, 10_000_000)?;
        let ttl = range("cache.ttlSeconds", raw.cache.ttl_seconds, 1, 86_400)?;
        let negative = range(
            "cache.negativeTtlSeconds",
            raw.cache.negative_ttl_seconds,
            0,
            3_600,
        )?;
        let interval = range("feed.intervalMs", raw.feed.interval_ms, 100, 60_000)?;
        if raw.feed.membership && !raw.feed.push {
            return Err(ConfigError::MembershipWithoutPush);
        }
        let max_answer = range("maxAnswerBytes", raw.max_answer_bytes, 1024, 1 << 30)?;
        if let FailureMode::StaleIfError {
            max_staleness_seconds,
        } = raw.failure_mode
        {
            range(
                "failureMode.staleIfError.maxStalenessSeconds",
                max_staleness_seconds,
                1,
                86_400,
            )?;
        }
        let routes = match raw.routes {
            Some(rules) => RouteTable::new(rules)?,
            None => RouteTable::default(),
        };
        raw.write_limits
            .validate()
            .map_err(ConfigError::WriteLimits)?;
        Ok(FilterSettings {
            cluster: raw.cluster,
            timeout: Duration::from_millis(timeout),
            cache_capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
            cache_ttl: Duration::from_secs(ttl),
            negative_ttl: Duration::from_secs(negative),
            feed_interval: Duration::from_millis(interval),
            push: raw.feed.push,
            membership: raw.feed.membership,
            failure_mode: raw.failure_mode,
            routes,
            write_limits: raw.write_limits,
            max_answer_bytes: usize::try_from(max_answer).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_form() {
        let minimal = FilterSettings::parse(br#"{"cluster":"tollgate"}"#).unwrap();
        assert_eq!(minimal.timeout, Duration::from_millis(500));
        assert_eq!(
            (
                minimal.cache_capacity,
                minimal.cache_ttl.as_secs(),
                minimal.negative_ttl.as_secs()
            ),
            (10_000, 60, 5)
        );
        assert_eq!(minimal.failure_mode, FailureMode::Deny);
        assert_eq!(minimal.routes, RouteTable::default());
        assert_eq!(minimal.feed_grace(), Duration::from_secs(3));

        let full = FilterSettings::parse(
            br#"{"cluster":"c","timeoutMs":200,"cache":{"capacity":5,"ttlSeconds":10,"negativeTtlSeconds":0},
                "feed":{"intervalMs":250},"failureMode":{"staleIfError":{"maxStalenessSeconds":30}},
                "routes":[{"methods":["GET"],"path":"/q","scope":"metrics:read","labels":"promqlQuery"}]}"#,
        )
        .unwrap();
        assert_eq!(
            full.failure_mode,
            FailureMode::StaleIfError {
                max_staleness_seconds: 30
            }
        );
        assert_eq!(full.routes.rules().len(), 1);
        assert_eq!(full.feed_interval, Duration::from_millis(250));
        assert!(full.push && full.membership);
        let polled =
            FilterSettings::parse(br#"{"cluster":"c","feed":{"push":false,"membership":false}}"#)
                .unwrap();
        assert!(!polled.push && !polled.membership);
    }

    #[test]
    fn every_error_rejects_the_configuration() {
        let cases: [(&[u8], &str); 12] = [
            (br#"{"cluster":"c","feed":{"push":false}}"#, "membership without push"),
            (b"", "not JSON"),
            (b"{}", "cluster missing"),
            (br#"{"cluster":""}"#, "empty cluster"),
            (br#"{"cluster":"c","colour":1}"#, "unknown field"),
            (br#"{"cluster":"c","cache":{"size":1}}"#, "unknown nested field"),
            (br#"{"cluster":"c","timeoutMs":0}"#, "timeout out of range"),
            (br#"{"cluster":"c","cache":{"capacity":0}}"#, "capacity out of range"),
            (br#"{"cluster":"c","feed":{"intervalMs":5}}"#, "interval out of range"),
            (br#"{"cluster":"c","failureMode":"open"}"#, "unknown failure mode"),
            (br#"{"cluster":"c","failureMode":{"staleIfError":{"maxStalenessSeconds":0}}}"#, "zero staleness"),
            (br#"{"cluster":"c","routes":[{"methods":["get"],"path":"/q","scope":"metrics:read"}]}"#, "bad route"),
        ];
        for (input, why) in cases {
            assert!(FilterSettings::parse(input).is_err(), "{why}");
        }
    }
}
