//! The root context of one VM: parses the configuration once per push, polls the change feed
//! on a tick, and evicts what it reports from this VM's cache.

use crate::config::FilterSettings;
use crate::host::{Host, Level};
use crate::shared::Shared;
use prost::Message;
use std::rc::Rc;
use tollgate_core::TokenHash;
use tollgate_proto::v1;

/// Changes asked per poll.
const FEED_BATCH: u32 = 1000;

pub struct Root<H: Host> {
    host: Rc<H>,
    shared: Option<Rc<Shared>>,
}

impl<H: Host> Root<H> {
    pub fn new(host: Rc<H>) -> Root<H> {
        Root { host, shared: None }
    }

    pub fn shared(&self) -> Option<Rc<Shared>> {
        self.shared.clone()
    }

    /// Parses and installs a configuration; `false` rejects it (Envoy refuses the config).
    pub fn configure(&mut self, configuration: Option<&[u8]>) -> bool {
        let Some(bytes) = configuration else {
            self.host
                .log(Level::Critical, "tollgate: no plugin configuration");
            return false;
        };
        match FilterSettings::parse(bytes) {
            Ok(settings) => {
                self.host.set_tick_period(settings.feed_interval);
                self.shared = Some(Rc::new(Shared::new(settings, self.host.as_ref())));
                true
            }
            Err(err) => {
                self.host.log(
                    Level::Critical,
                    &format!("tollgate: configuration rejected: {err}"),
                );
                false
            }
        }
    }

    pub fn on_tick(&mut self) {
        let Some(shared) = &self.shared else { return };
        let now = self.host.now_ms();
        let feed = shared.feed.borrow();
        if let Some(last) = feed.last_ok_ms {
            self.host
                .record(shared.metrics.feed_lag_ms, now.saturating_sub(last));
        }
        let pending = feed.pending.is_some();
        drop(feed);
        if !pending {
            self.poll();
        }
    }

    fn poll(&mut self) {
        let Some(shared) = &self.shared else { return };
        let since = {
            let feed = shared.feed.borrow();
            feed.cursor.or(feed.floor)
        };
        let request = v1::ChangesRequest {
            since,
            limit: FEED_BATCH,
        };
        match self.host.dispatch_grpc(
            &shared.upstream,
            tollgate_proto::CHANGES,
            &request.encode_to_vec(),
            shared.settings.timeout,
        ) {
            Ok(call) => shared.feed.borrow_mut().pending = Some(call),
            Err(err) => {
                self.host.increment(shared.metrics.server_errors, 1);
                self.host.log(
                    Level::Warn,
                    &format!("tollgate: cannot poll the change feed: {err}"),
                );
            }
        }
    }

    pub fn on_grpc_response(&mut self, call: u32, status: u32, size: usize) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if shared.feed.borrow().pending != Some(call) {
            return;
        }
        shared.feed.borrow_mut().pending = None;
        let response = if status == 0 {
            self.host
                .grpc_response(size)
                .ok_or_else(|| "empty response".to_owned())
                .and_then(|bytes| {
                    v1::ChangesResponse::decode(bytes.as_slice()).map_err(|err| err.to_string())
                })
        } else {
            Err(format!("gRPC status {status}"))
        };
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                self.host.increment(shared.metrics.server_errors, 1);
                self.host.log(
                    Level::Warn,
                    &format!("tollgate: change feed poll failed: {err}"),
                );
                return;
            }
        };
        {
            let mut cache = shared.cache.borrow_mut();
            if response.resync {
                cache.clear();
            }
            for change in &response.changes {
                match TokenHash::try_from(change.token_hash.as_slice()) {
                    Ok(hash) => {
                        cache.evict(&hash);
                    }
                    // An unreadable change could be a revocation: drop everything.
                    Err(_) => cache.clear(),
                }
            }
        }
        let now = self.host.now_ms();
        {
            let mut feed = shared.feed.borrow_mut();
            feed.cursor = Some(response.revision);
            feed.last_ok_ms = Some(now);
        }
        if response.more {
            self.poll();
        }
    }
}
