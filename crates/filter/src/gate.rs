//! One request through the filter. Decisions come from the core crate; this adapts host calls
//! to it and keeps the state between callbacks. Every pause has one way out: a resume or a local
//! reply.
//!
//! Every request callback (headers, body, trailers) pauses while a decision is pending, and only
//! [`State::Done`] lets anything continue: Envoy resumes the whole chain (headers, buffered body,
//! trailers) when any callback of a paused request returns Continue. Trailers end the body.

use crate::answer::AnswerRewrite;
use crate::cache::Entry;
use crate::config::FailureMode;
use crate::host::{Host, Level, read_grpc};
use crate::shared::Shared;
use prost::Message;
use std::rc::Rc;
use tollgate_core::decision::BodyView;
use tollgate_core::pipeline::unavailable;
use tollgate_core::{
    Authorization, Authorized, Deny, Grant, GrantLookup, RequestView, TokenHash, authorize,
    authorize_grant,
};
use tollgate_proto::{grant_from_wire, v1};

/// What a callback tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

enum State {
    Start,
    /// Waiting for the server's answer about `hash`; `fallback` is an expired entry that
    /// `staleIfError` may still serve if the server cannot answer.
    AwaitingGrant {
        hash: TokenHash,
        call: u32,
        fallback: Option<Entry>,
        /// This call already re-asks after an answer older than the feed's cursor.
        retried: bool,
    },
    /// Allowed; the body must be rewritten before the request goes on.
    AwaitingBody(Box<Authorized<Rc<Grant>>>),
    /// Allowed: the only state from which the request goes on.
    Done,
    /// Refused with a local reply: nothing of this request goes on.
    Replied,
}

/// What the cache can say about a token right now.
enum Lookup {
    Fresh(Rc<Grant>),
    Unknown,
    /// Not in the membership filter of live tokens: certainly unknown, decided here.
    NotLive,
    Unavailable,
    Miss(Option<Entry>),
}

pub struct RequestGate<H: Host> {
    host: Rc<H>,
    shared: Rc<Shared>,
    id: u32,
    state: State,
    headers: Vec<(String, String)>,
    end_of_stream: bool,
    /// The body's size once it was fully received while we were still waiting for a grant.
    body_end: Option<usize>,
    /// Set for an allowed read whose answer must lose the account's policy labels.
    answer: Option<AnswerRewrite>,
}

impl<H: Host> RequestGate<H> {
    pub fn new(host: Rc<H>, shared: Rc<Shared>, id: u32) -> RequestGate<H> {
        RequestGate {
            host,
            shared,
            id,
            state: State::Start,
            headers: Vec::new(),
            end_of_stream: false,
            body_end: None,
            answer: None,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn log(&self, level: Level, message: &str) {
        self.host.log(level, &format!("{}: {message}", self.id));
    }

    /// The request as the core reads it, borrowed from the headers read once.
    fn view(&self) -> RequestView<'_> {
        let method = self.header(":method").unwrap_or("");
        let path = self.header(":path").unwrap_or("");
        let mut view = RequestView::new(method, path);
        for (name, value) in &self.headers {
            view.observe_header(name, value);
        }
        view
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Flow {
        self.headers = self.host.request_headers();
        self.end_of_stream = end_of_stream;
        let mut fallback = None;
        // One clock read per request: every host call crosses from V8 into Envoy.
        let now_ms = self.host.now_ms();
        let outcome = {
            let view = self.view();
            let lookup = |hash: &TokenHash| self.cached(hash, now_ms, &mut fallback);
            authorize(&view, lookup, &self.shared.settings.routes, now_ms / 1000)
        };
        match outcome {
            Authorization::Allowed(authorized) => self.proceed(authorized, false),
            Authorization::Denied(deny) => self.reply(&deny),
            Authorization::NotHere(hash) => self.resolve(hash, fallback, false),
        }
    }

    /// The pipeline's lookup: this VM's cache. A miss is "not here", with the expired entry
    /// `staleIfError` may fall back on.
    fn cached(
        &self,
        hash: &TokenHash,
        now_ms: u64,
        fallback: &mut Option<Entry>,
    ) -> GrantLookup<Rc<Grant>> {
        match self.lookup(hash, now_ms) {
            Lookup::Fresh(grant) => {
                self.host.increment(self.shared.metrics.cache_hits, 1);
                GrantLookup::Found(grant)
            }
            Lookup::Unknown => {
                self.host.increment(self.shared.metrics.cache_hits, 1);
                GrantLookup::Unknown
            }
            Lookup::NotLive => {
                self.host
                    .increment(self.shared.metrics.membership_refused, 1);
                GrantLookup::Unknown
            }
            Lookup::Unavailable => GrantLookup::Unavailable,
            Lookup::Miss(expired) => {
                self.host.increment(self.shared.metrics.cache_misses, 1);
                *fallback = expired;
                GrantLookup::NotHere
            }
        }
    }

    /// Finishes the pipeline with the grant the server resolved (or `staleIfError` kept): the
    /// credential was read and looked up when the request arrived, so only the steps after the
    /// lookup run (`authorize_grant`), not the token's parsing and hashing again.
    fn authorize_resolved(&mut self, grant: Rc<Grant>, resumed: bool) -> Flow {
        let outcome = {
            let view = self.view();
            let now = self.host.now_ms() / 1000;
            authorize_grant(grant, &view, &self.shared.settings.routes, now)
        };
        match outcome {
            Ok(authorized) => self.proceed(authorized, resumed),
            Err(deny) => self.reply(&deny),
        }
    }

    fn lookup(&self, hash: &TokenHash, now: u64) -> Lookup {
        let settings = &self.shared.settings;
        let cached = self.shared.cache.borrow_mut().get(hash);
        let Some(entry) = cached else {
            return self.not_cached(hash, now);
        };
        let age = now.saturating_sub(entry.fetched_ms);
        let Some(grant) = entry.grant.clone() else {
            let negative_ttl = u64::try_from(settings.negative_ttl.as_millis()).unwrap_or(u64::MAX);
            return if age <= negative_ttl {
                Lookup::Unknown
            } else {
                self.not_cached(hash, now)
            };
        };
        let ttl = u64::try_from(settings.cache_ttl.as_millis()).unwrap_or(u64::MAX);
        if age > ttl {
            return Lookup::Miss(Some(entry));
        }
        // A cached grant is only as good as the last sign of life from the server: without a
        // working feed, revocations cannot reach us.
        let contact = self
            .shared
            .feed
            .borrow()
            .last_ok_ms
            .unwrap_or(0)
            .max(entry.fetched_ms);
        let silence = now.saturating_sub(contact);
        let grace = u64::try_from(settings.feed_grace().as_millis()).unwrap_or(u64::MAX);
        if silence <= grace || self.within_staleness(contact, now) {
            Lookup::Fresh(grant)
        } else {
            Lookup::Unavailable
        }
    }

    /// A token this VM knows nothing (current) about: refused here when the membership filter
    /// says no live token has its hash, else asked of the server.
    fn not_cached(&self, hash: &TokenHash, now_ms: u64) -> Lookup {
        let silence = self.shared.settings.push_silence();
        if self.shared.settings.membership
            && self
                .shared
                .feed
                .borrow()
                .certainly_unknown(hash, now_ms, silence)
        {
            Lookup::NotLive
        } else {
            Lookup::Miss(None)
        }
    }

    fn within_staleness(&self, contact_ms: u64, now_ms: u64) -> bool {
        match self.shared.settings.failure_mode {
            FailureMode::Deny => false,
            FailureMode::StaleIfError {
                max_staleness_seconds,
            } => now_ms.saturating_sub(contact_ms) <= max_staleness_seconds.saturating_mul(1000),
        }
    }

    fn resolve(&mut self, hash: TokenHash, fallback: Option<Entry>, retried: bool) -> Flow {
        let message = v1::ResolveRequest {
            token_hash: hash.as_bytes().to_vec(),
        }
        .encode_to_vec();
        let settings = &self.shared.settings;
        match self.host.dispatch_grpc(
            &self.shared.upstream,
            tollgate_proto::RESOLVE,
            &message,
            settings.timeout,
        ) {
            Ok(call) => {
                self.state = State::AwaitingGrant {
                    hash,
                    call,
                    fallback,
                    retried,
                };
                Flow::Pause
            }
            Err(err) => {
                self.host.increment(self.shared.metrics.server_errors, 1);
                self.log(Level::Warn, &format!("cannot ask the server: {err}"));
                if retried {
                    // Re-asking after a stale answer: the server did answer, so this is no
                    // outage that staleIfError covers.
                    return self.reply(&unavailable());
                }
                // Only the first dispatch runs before any callback paused the request.
                self.server_failed(&hash, fallback, false)
            }
        }
    }

    /// The server's answer to our Resolve.
    pub fn on_grpc_response(&mut self, call: u32, status: u32, size: usize) {
        // Not waiting for a grant: this answer changes nothing (and must not end a pause).
        if !matches!(self.state, State::AwaitingGrant { .. }) {
            self.log(
                Level::Warn,
                "answer to a call this request no longer waits for",
            );
            return;
        }
        let State::AwaitingGrant {
            hash,
            call: expected,
            fallback,
            retried,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return;
        };
        if call != expected {
            self.log(Level::Error, "answer to an unknown call");
            self.reply(&unavailable());
            return;
        }
        let response = match self.read_resolve_response(status, size) {
            Ok(response) => response,
            Err(err) => {
                self.host.increment(self.shared.metrics.server_errors, 1);
                self.log(Level::Warn, &format!("the server did not answer: {err}"));
                self.server_failed(&hash, fallback, true);
                return;
            }
        };
        let now = self.host.now_ms();
        if self.is_stale(response.revision) {
            if retried {
                self.reply(&unavailable());
            } else {
                self.resolve(hash, fallback, true);
            }
            return;
        }
        let grant = match response.grant.map(grant_from_wire).transpose() {
            Ok(grant) => grant.map(Rc::new),
            Err(err) => {
                self.log(
                    Level::Error,
                    &format!("unreadable grant from the server: {err}"),
                );
                self.reply(&unavailable());
                return;
            }
        };
        self.shared.cache.borrow_mut().insert(
            hash,
            Entry {
                grant: grant.clone(),
                fetched_ms: now,
            },
        );
        match grant {
            Some(grant) => {
                self.authorize_resolved(grant, true);
            }
            None => {
                self.reply(&Deny::unknown_token());
            }
        }
    }

    fn read_resolve_response(
        &self,
        status: u32,
        size: usize,
    ) -> Result<v1::ResolveResponse, String> {
        read_grpc(self.host.as_ref(), status, size)
    }

    /// Whether an answer at `revision` is older than the feed's cursor: it may predate a
    /// revocation the feed already reported (and evicted), so it is never cached nor trusted;
    /// the caller asks once more (another replica, or a snapshot that caught up), then fails
    /// closed. Before the first poll, the answer sets the floor the feed starts from.
    fn is_stale(&self, revision: u64) -> bool {
        let cursor = {
            let mut feed = self.shared.feed.borrow_mut();
            if feed.cursor.is_none() {
                feed.floor = Some(feed.floor.map_or(revision, |f| f.min(revision)));
            }
            feed.cursor
        };
        let Some(cursor) = cursor.filter(|cursor| revision < *cursor) else {
            return false;
        };
        self.host.increment(self.shared.metrics.server_errors, 1);
        self.log(
            Level::Warn,
            &format!(
                "stale answer from the server: revision {revision} is below the feed's {cursor}"
            ),
        );
        true
    }

    /// The server could not answer: a recent enough entry may stand in (`staleIfError`), else 503.
    /// The entry must still be cached: if the feed evicted it (revoked or changed) while the
    /// call was in flight, a received revocation wins.
    fn server_failed(&mut self, hash: &TokenHash, fallback: Option<Entry>, resumed: bool) -> Flow {
        let now = self.host.now_ms();
        let still_cached = |entry: &Entry| {
            self.shared
                .cache
                .borrow_mut()
                .get(hash)
                .is_some_and(|current| current.fetched_ms == entry.fetched_ms)
        };
        if let Some(Entry {
            grant: Some(grant),
            fetched_ms,
        }) = fallback.filter(still_cached)
        {
            let contact = self
                .shared
                .feed
                .borrow()
                .last_ok_ms
                .unwrap_or(0)
                .max(fetched_ms);
            if self.within_staleness(contact, now) {
                self.log(Level::Info, "serving a stale grant (staleIfError)");
                return self.authorize_resolved(grant, resumed);
            }
        }
        self.reply(&unavailable())
    }

    /// Applies an authorization to the request: identity headers, the rewritten URL, and the
    /// body when the route confines one.
    fn proceed(&mut self, authorized: Authorized<Rc<Grant>>, resumed: bool) -> Flow {
        let allow = &authorized.allow;
        for (name, value) in &allow.set_headers {
            self.host.set_request_header(name, Some(value));
        }
        for name in &allow.remove_headers {
            self.host.set_request_header(name, None);
        }
        if let Some(answer) = &allow.answer {
            // Ask for an answer we can read: no other encoding than gzip (which is decoded),
            // and /federate in the text format (its protobuf one would not be rewritten).
            self.host.set_request_header("accept-encoding", None);
            if answer.shape == tollgate_core::answer::Answer::Federate {
                self.host
                    .set_request_header("accept", Some("text/plain;version=0.0.4"));
            }
            self.answer = Some(AnswerRewrite::new(answer.clone()));
        }
        if !authorized.query.is_empty() {
            let target = self.header(":path").unwrap_or("");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let query = authorized.query.apply(query);
            let mut rebuilt = String::with_capacity(path.len() + 1 + query.len());
            rebuilt.push_str(path);
            rebuilt.push('?');
            rebuilt.push_str(&query);
            self.host.set_request_header(":path", Some(&rebuilt));
        }
        // A request that ended with its headers (the hit path) looks up nothing more.
        let needs_body = !self.end_of_stream && {
            let method = self.header(":method").unwrap_or("");
            authorized.needs_body(method, self.header("content-type").is_some(), false)
        };
        if needs_body {
            if let Some(size) = self.body_end {
                return match self.host.request_body(size) {
                    Ok(body) => self.finish_body(&authorized, &body, resumed),
                    Err(err) => self.body_unreadable(&err),
                };
            }
            self.state = State::AwaitingBody(Box::new(authorized));
            return Flow::Pause;
        }
        self.allowed(resumed)
    }

    fn allowed(&mut self, resumed: bool) -> Flow {
        self.host.increment(self.shared.metrics.allowed, 1);
        self.state = State::Done;
        if resumed {
            self.host.resume_request();
        }
        Flow::Continue
    }

    pub fn on_request_body(&mut self, size: usize, end_of_stream: bool) -> Flow {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => self.out_of_order("a body"),
            pending @ State::AwaitingGrant { .. } => {
                if end_of_stream {
                    self.body_end = Some(size);
                }
                self.state = pending;
                Flow::Pause
            }
            State::AwaitingBody(allow) if !end_of_stream => {
                self.state = State::AwaitingBody(allow);
                Flow::Pause
            }
            State::AwaitingBody(allow) => match self.host.request_body(size) {
                Ok(body) => self.finish_body(&allow, &body, false),
                Err(err) => self.body_unreadable(&err),
            },
            State::Done => Flow::Continue,
            State::Replied => {
                self.state = State::Replied;
                Flow::Pause
            }
        }
    }

    /// Trailers end the request: the body buffered so far is all of it. Continue here would
    /// release headers, body and trailers at once, so only [`State::Done`] continues.
    pub fn on_request_trailers(&mut self) -> Flow {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => self.out_of_order("trailers"),
            pending @ State::AwaitingGrant { .. } => {
                // The body is complete: the grant's arrival finishes it (see `proceed`).
                match self.host.request_body(usize::MAX) {
                    Ok(body) => {
                        self.body_end = Some(body.len());
                        self.state = pending;
                        Flow::Pause
                    }
                    Err(err) => self.body_unreadable(&err),
                }
            }
            State::AwaitingBody(allow) => match self.host.request_body(usize::MAX) {
                Ok(body) => self.finish_body(&allow, &body, false),
                Err(err) => self.body_unreadable(&err),
            },
            State::Done => Flow::Continue,
            State::Replied => {
                self.state = State::Replied;
                Flow::Pause
            }
        }
    }

    /// The answer's headers: held while an answer must be rewritten, else on their way.
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        match &mut self.answer {
            Some(answer) if matches!(self.state, State::Done) => {
                answer.on_headers(self.host.as_ref(), end_of_stream)
            }
            _ => Flow::Continue,
        }
    }

    pub fn on_response_body(&mut self, size: usize, end_of_stream: bool) -> Flow {
        let max = self.shared.settings.max_answer_bytes;
        match &mut self.answer {
            Some(answer) if matches!(self.state, State::Done) => {
                answer.on_body(self.host.as_ref(), size, end_of_stream, max)
            }
            _ => Flow::Continue,
        }
    }

    pub fn on_response_trailers(&mut self) -> Flow {
        let max = self.shared.settings.max_answer_bytes;
        match &mut self.answer {
            Some(answer) if matches!(self.state, State::Done) => {
                answer.on_trailers(self.host.as_ref(), max)
            }
            _ => Flow::Continue,
        }
    }

    /// A body or trailers before the headers were judged: Envoy never does this; fail closed.
    fn out_of_order(&mut self, what: &str) -> Flow {
        self.log(Level::Error, &format!("{what} before the request headers"));
        self.reply(&unavailable())
    }

    fn body_unreadable(&mut self, err: &str) -> Flow {
        self.log(
            Level::Error,
            &format!("cannot read the request body: {err}"),
        );
        self.reply(&unavailable())
    }

    /// Rewrites a complete PromQL or LogQL form body or a write body, fixing `content-length` (Envoy does not),
    /// then lets the request go on.
    fn finish_body(
        &mut self,
        authorized: &Authorized<Rc<Grant>>,
        body: &[u8],
        resumed: bool,
    ) -> Flow {
        let content_type = self.header("content-type").map(str::to_owned);
        let content_encoding = self.header("content-encoding").map(str::to_owned);
        let view = BodyView {
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            bytes: body,
            complete: true,
        };
        match authorized.rewrite_body(&view, &self.shared.settings.write_limits) {
            Err(deny) => self.reply(&deny),
            Ok(None) => self.allowed(resumed),
            Ok(Some(rewritten)) => {
                self.host.replace_request_body(body.len(), &rewritten);
                if self.header("content-length").is_some() {
                    self.host
                        .set_request_header("content-length", Some(&rewritten.len().to_string()));
                }
                self.allowed(resumed)
            }
        }
    }

    fn reply(&mut self, deny: &Deny) -> Flow {
        self.host
            .increment(self.shared.metrics.denied(deny.reason), 1);
        self.log(Level::Debug, &format!("denied: {}", deny.reason.as_str()));
        let response = deny.response();
        self.host
            .send_response(response.status, &response.headers, response.body.as_bytes());
        self.state = State::Replied;
        Flow::Pause
    }
}
