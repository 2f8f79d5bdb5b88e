//! The root context of one VM: parses the configuration once per push, keeps a Watch stream
//! open on which the server pushes changes as they commit (polling the feed on a tick while the
//! stream is down or silent), and evicts what they report from this VM's cache.

use crate::config::FilterSettings;
use crate::host::{Host, Level, read_grpc};
use crate::shared::Shared;
use prost::Message;
use std::rc::Rc;
use tollgate_core::TokenHash;
use tollgate_core::membership::Membership;
use tollgate_proto::v1;

/// Changes asked per poll.
const FEED_BATCH: u32 = 1000;
/// When the first tick comes after a configuration.
const FIRST_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// gRPC status UNIMPLEMENTED: the server predates Watch.
const GRPC_UNIMPLEMENTED: u32 = 12;

pub struct Root<H: Host> {
    host: Rc<H>,
    shared: Option<Rc<Shared>>,
    /// The tick runs at the feed interval (after the quick first one).
    ticking: bool,
}

impl<H: Host> Root<H> {
    pub fn new(host: Rc<H>) -> Root<H> {
        Root {
            host,
            shared: None,
            ticking: false,
        }
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
                // The first tick comes soon, to open the change stream (then every interval).
                self.host
                    .set_tick_period(FIRST_TICK.min(settings.feed_interval));
                self.ticking = false;
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
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if !self.ticking {
            self.host.set_tick_period(shared.settings.feed_interval);
            self.ticking = true;
        }
        let now = self.host.now_ms();
        let (pending, stream, pushing) = {
            let feed = shared.feed.borrow();
            if let Some(last) = feed.last_ok_ms {
                self.host
                    .record(shared.metrics.feed_lag_ms, now.saturating_sub(last));
            }
            (
                feed.pending.is_some(),
                feed.stream,
                feed.pushing(now, shared.settings.push_silence()),
            )
        };
        let wanted = shared.settings.push && !shared.feed.borrow().push_unsupported;
        match stream {
            None if wanted => self.open_stream(&shared),
            // Open but silent past its heartbeat: a half-dead connection. Start over.
            Some(stream) if !pushing && self.silent_since_open(&shared, now) => {
                self.host.cancel_grpc_stream(stream);
                self.stream_ended(&shared, "silent past its heartbeat");
                self.open_stream(&shared);
            }
            _ => {}
        }
        if !pending && !pushing {
            self.poll();
        }
    }

    /// A stream that delivered nothing for the silence bound since it opened (or since its last
    /// message) is dead even if the connection is not closed.
    fn silent_since_open(&self, shared: &Shared, now: u64) -> bool {
        let feed = shared.feed.borrow();
        let silence = u64::try_from(shared.settings.push_silence().as_millis()).unwrap_or(u64::MAX);
        feed.pushed_ms
            .or(feed.stream_opened_ms)
            .is_some_and(|at| now.saturating_sub(at) > silence)
    }

    fn open_stream(&mut self, shared: &Shared) {
        let since = {
            let feed = shared.feed.borrow();
            feed.cursor.or(feed.floor)
        };
        let request = v1::WatchRequest {
            since,
            heartbeat_ms: u32::try_from(shared.settings.feed_interval.as_millis())
                .unwrap_or(u32::MAX),
            membership: shared.settings.membership,
        };
        match self.host.open_grpc_stream(
            &shared.upstream,
            tollgate_proto::WATCH,
            &request.encode_to_vec(),
        ) {
            Ok(stream) => {
                let mut feed = shared.feed.borrow_mut();
                feed.stream = Some(stream);
                feed.pushed_ms = None;
                feed.stream_opened_ms = Some(self.host.now_ms());
            }
            Err(err) => {
                self.host.increment(shared.metrics.server_errors, 1);
                self.host.log(
                    Level::Warn,
                    &format!("tollgate: cannot open the change stream: {err}"),
                );
            }
        }
    }

    fn stream_ended(&self, shared: &Shared, why: &str) {
        {
            let mut feed = shared.feed.borrow_mut();
            feed.stream = None;
            feed.pushed_ms = None;
            feed.stream_opened_ms = None;
        }
        self.host.increment(shared.metrics.server_errors, 1);
        self.host.log(
            Level::Warn,
            &format!("tollgate: the change stream ended ({why}); polling until it is back"),
        );
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
        match self.read_changes(status, size) {
            Ok(response) => {
                let more = response.more;
                self.apply(&shared, response);
                if more {
                    self.poll();
                }
            }
            Err(err) => {
                self.host.increment(shared.metrics.server_errors, 1);
                self.host.log(
                    Level::Warn,
                    &format!("tollgate: change feed poll failed: {err}"),
                );
            }
        }
    }

    /// A message on the Watch stream.
    pub fn on_stream_message(&mut self, stream: u32, size: usize) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if shared.feed.borrow().stream != Some(stream) {
            return;
        }
        match self.read_changes(0, size) {
            Ok(response) => {
                self.apply(&shared, response);
                shared.feed.borrow_mut().pushed_ms = Some(self.host.now_ms());
            }
            Err(err) => {
                // A message we cannot read may carry a revocation: drop the stream (and what
                // it told us) and start over from the cursor.
                self.host.cancel_grpc_stream(stream);
                shared.feed.borrow_mut().membership = None;
                self.stream_ended(&shared, &format!("unreadable message: {err}"));
            }
        }
    }

    /// The Watch stream closed (`status`: its gRPC status).
    pub fn on_stream_close(&mut self, stream: u32, status: u32) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if shared.feed.borrow().stream != Some(stream) {
            return;
        }
        if status == GRPC_UNIMPLEMENTED {
            shared.feed.borrow_mut().push_unsupported = true;
            self.host.log(
                Level::Warn,
                "tollgate: the server does not push changes (no Grants/Watch): polling only",
            );
        }
        self.stream_ended(&shared, &format!("gRPC status {status}"));
    }

    fn read_changes(&self, status: u32, size: usize) -> Result<v1::ChangesResponse, String> {
        read_grpc(self.host.as_ref(), status, size)
    }

    /// Applies a feed answer, polled or pushed: evicts what changed, keeps the membership filter
    /// current, and moves the cursor. The two sources may interleave; each answer continues
    /// from a revision at or below the cursor, so the cursor only moves forward (but a resync
    /// starts over).
    fn apply(&self, shared: &Shared, response: v1::ChangesResponse) {
        let mut feed = shared.feed.borrow_mut();
        let mut cache = shared.cache.borrow_mut();
        if response.resync {
            cache.clear();
            feed.membership = None;
        }
        for change in &response.changes {
            match TokenHash::try_from(change.token_hash.as_slice()) {
                Ok(hash) => {
                    cache.evict(&hash);
                    if change.kind != v1::change::Kind::Revoked as i32
                        && let Some(membership) = &mut feed.membership
                    {
                        membership.insert(&hash);
                    }
                }
                // An unreadable change could be a revocation: drop everything (and an
                // addition we cannot read must not be refused by the membership filter).
                Err(_) => {
                    cache.clear();
                    feed.membership = None;
                }
            }
        }
        drop(cache);
        if let Some(wire) = response.membership {
            // A filter older than the cursor lacks additions applied since: keep the one that
            // has them (the stream carries on from the new filter's revision anyway).
            let current = feed.cursor.is_none_or(|cursor| response.revision >= cursor);
            if response.resync || current || feed.membership.is_none() {
                match Membership::from_parts(wire.bits, wire.hashes) {
                    Ok(membership) => feed.membership = Some(membership),
                    Err(err) => {
                        feed.membership = None;
                        self.host.log(
                            Level::Warn,
                            &format!("tollgate: membership filter refused: {err}"),
                        );
                    }
                }
            }
        }
        feed.cursor = if response.resync {
            Some(response.revision)
        } else {
            Some(
                feed.cursor
                    .map_or(response.revision, |c| c.max(response.revision)),
            )
        };
        feed.last_ok_ms = Some(self.host.now_ms());
    }
}
