//! What every request context of one VM shares: the compiled configuration, the grant cache,
//! the feed cursor and the metric ids.

use crate::cache::GrantCache;
use crate::config::FilterSettings;
use crate::host::Host;
use prost::Message;
use std::cell::RefCell;
use std::time::Duration;
use tollgate_core::membership::Membership;
use tollgate_core::{DenyReason, TokenHash};

/// `envoy.config.core.v3.GrpcService` with only `envoy_grpc.cluster_name`: Envoy parses the
/// dispatch target as this message first; a bare cluster name can abort Envoy.
#[derive(Clone, PartialEq, prost::Message)]
struct GrpcService {
    #[prost(message, optional, tag = "1")]
    envoy_grpc: Option<EnvoyGrpc>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EnvoyGrpc {
    #[prost(string, tag = "1")]
    cluster_name: String,
}

#[derive(Debug, Default)]
pub struct Feed {
    /// The revision of the last change applied; `None` until the first poll answers.
    pub cursor: Option<u64>,
    /// Before the first poll: the lowest revision of any grant we cached, so the first poll
    /// starts there and misses no revocation of it.
    pub floor: Option<u64>,
    /// When the server last answered a poll, in ms.
    pub last_ok_ms: Option<u64>,
    /// The poll in flight, if any.
    pub pending: Option<u32>,
    /// The Watch stream, if open.
    pub stream: Option<u32>,
    /// When the stream last delivered a message, in ms (`None` until its first).
    pub pushed_ms: Option<u64>,
    /// When the stream was opened, in ms.
    pub stream_opened_ms: Option<u64>,
    /// The server does not offer Watch (an older server): poll only.
    pub push_unsupported: bool,
    /// Live token hashes at the cursor (see `tollgate_core::membership`).
    pub membership: Option<Membership>,
}

impl Feed {
    /// Whether changes are being pushed right now: the stream delivered within `silence`. Only
    /// then is every addition known within milliseconds, so only then may the membership filter
    /// refuse a token.
    pub fn pushing(&self, now_ms: u64, silence: Duration) -> bool {
        let silence = u64::try_from(silence.as_millis()).unwrap_or(u64::MAX);
        self.stream.is_some()
            && self
                .pushed_ms
                .is_some_and(|at| now_ms.saturating_sub(at) <= silence)
    }

    /// `true`: no live token has this hash, and the filter saying so is current.
    pub fn certainly_unknown(&self, hash: &TokenHash, now_ms: u64, silence: Duration) -> bool {
        self.pushing(now_ms, silence)
            && self
                .membership
                .as_ref()
                .is_some_and(|membership| !membership.may_contain(hash))
    }
}

pub struct Metrics {
    pub allowed: Option<u32>,
    denied: Vec<(DenyReason, Option<u32>)>,
    pub cache_hits: Option<u32>,
    pub cache_misses: Option<u32>,
    pub server_errors: Option<u32>,
    pub feed_lag_ms: Option<u32>,
    pub membership_refused: Option<u32>,
}

impl Metrics {
    fn define(host: &dyn Host) -> Metrics {
        Metrics {
            allowed: host.define_counter("tollgate.allowed"),
            denied: DenyReason::ALL
                .iter()
                .map(|r| {
                    (
                        *r,
                        host.define_counter(&format!("tollgate.denied.{}", r.as_str())),
                    )
                })
                .collect(),
            cache_hits: host.define_counter("tollgate.cache.hits"),
            cache_misses: host.define_counter("tollgate.cache.misses"),
            server_errors: host.define_counter("tollgate.server.errors"),
            feed_lag_ms: host.define_gauge("tollgate.feed.lag_ms"),
            membership_refused: host.define_counter("tollgate.membership.refused"),
        }
    }

    pub fn denied(&self, reason: DenyReason) -> Option<u32> {
        self.denied
            .iter()
            .find(|(r, _)| *r == reason)
            .and_then(|(_, id)| *id)
    }
}

pub struct Shared {
    pub settings: FilterSettings,
    /// The serialized GrpcService naming the server's cluster.
    pub upstream: Vec<u8>,
    pub cache: RefCell<GrantCache>,
    pub feed: RefCell<Feed>,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(settings: FilterSettings, host: &dyn Host) -> Shared {
        let upstream = GrpcService {
            envoy_grpc: Some(EnvoyGrpc {
                cluster_name: settings.cluster.clone(),
            }),
        }
        .encode_to_vec();
        Shared {
            cache: RefCell::new(GrantCache::new(settings.cache_capacity)),
            upstream,
            feed: RefCell::new(Feed::default()),
            metrics: Metrics::define(host),
            settings,
        }
    }
}
