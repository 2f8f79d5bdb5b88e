//! What every request context of one VM shares: the compiled configuration, the grant cache,
//! the feed cursor and the metric ids.

use crate::cache::GrantCache;
use crate::config::FilterSettings;
use crate::host::Host;
use prost::Message;
use std::cell::RefCell;
use tollgate_core::DenyReason;

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
}

pub struct Metrics {
    pub allowed: Option<u32>,
    denied: Vec<(DenyReason, Option<u32>)>,
    pub cache_hits: Option<u32>,
    pub cache_misses: Option<u32>,
    pub server_errors: Option<u32>,
    pub feed_lag_ms: Option<u32>,
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
