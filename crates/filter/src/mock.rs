//! A recording host for native tests of the filter (and of anything built on it). Compiled
//! only with the `mock-host` feature, which the module Envoy loads never has.

use crate::host::{Host, Level};
use std::cell::RefCell;
use std::time::Duration;

/// What the filter asked of the host, in order (for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SetHeader(String, Option<String>),
    ReplaceBody(String),
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Resume,
    SetResponseHeader(String, Option<String>),
    ReplaceResponseBody(String),
    Dispatch {
        method: String,
        message: Vec<u8>,
    },
    OpenStream {
        stream: u32,
        method: String,
        message: Vec<u8>,
    },
    CancelStream(u32),
}

/// A recording host for native tests of the filter (and of anything built on it).
#[derive(Default)]
pub struct MockHost {
    pub now_ms: RefCell<u64>,
    pub headers: RefCell<Vec<(String, String)>>,
    pub body: RefCell<Vec<u8>>,
    pub grpc_body: RefCell<Vec<u8>>,
    pub events: RefCell<Vec<Event>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub dispatch_fails: RefCell<bool>,
    /// The host refuses to hand out the request body.
    pub body_fails: RefCell<bool>,
    pub metrics: RefCell<Vec<(String, i64)>>,
    pub response_headers: RefCell<Vec<(String, String)>>,
    /// The response body buffered in the host; each replacement takes the place of it.
    pub response_body: RefCell<Vec<u8>>,
    next_token: RefCell<u32>,
}

impl MockHost {
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.borrow_mut())
    }

    /// The token of the last dispatched call.
    pub fn last_call(&self) -> u32 {
        *self.next_token.borrow()
    }

    pub fn metric(&self, name: &str) -> i64 {
        self.metrics
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }
}

impl Host for MockHost {
    fn now_ms(&self) -> u64 {
        *self.now_ms.borrow()
    }
    fn request_headers(&self) -> Vec<(String, String)> {
        self.headers.borrow().clone()
    }
    fn set_request_header(&self, name: &str, value: Option<&str>) {
        self.events
            .borrow_mut()
            .push(Event::SetHeader(name.to_owned(), value.map(str::to_owned)));
    }
    fn request_body(&self, size: usize) -> Result<Vec<u8>, String> {
        if *self.body_fails.borrow() {
            return Err("SerializationFailure".into());
        }
        let body = self.body.borrow();
        Ok(body[..size.min(body.len())].to_vec())
    }
    fn replace_request_body(&self, _old_size: usize, body: &[u8]) {
        self.events.borrow_mut().push(Event::ReplaceBody(
            String::from_utf8_lossy(body).into_owned(),
        ));
    }
    fn send_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.events.borrow_mut().push(Event::Respond {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }
    fn resume_request(&self) {
        self.events.borrow_mut().push(Event::Resume);
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers
            .borrow()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    fn set_response_header(&self, name: &str, value: Option<&str>) {
        self.events.borrow_mut().push(Event::SetResponseHeader(
            name.to_owned(),
            value.map(str::to_owned),
        ));
    }
    fn response_body(&self, size: usize) -> Result<Vec<u8>, String> {
        let body = self.response_body.borrow();
        Ok(body[..size.min(body.len())].to_vec())
    }
    fn replace_response_body(&self, old_size: usize, body: &[u8]) {
        let mut buffered = self.response_body.borrow_mut();
        let old_size = old_size.min(buffered.len());
        buffered.splice(..old_size, body.iter().copied());
        self.events.borrow_mut().push(Event::ReplaceResponseBody(
            String::from_utf8_lossy(body).into_owned(),
        ));
    }
    fn dispatch_grpc(
        &self,
        _upstream: &[u8],
        method: &str,
        message: &[u8],
        _timeout: Duration,
    ) -> Result<u32, String> {
        if *self.dispatch_fails.borrow() {
            return Err("BadArgument".into());
        }
        self.events.borrow_mut().push(Event::Dispatch {
            method: method.to_owned(),
            message: message.to_vec(),
        });
        let mut token = self.next_token.borrow_mut();
        *token += 1;
        Ok(*token)
    }
    fn open_grpc_stream(
        &self,
        _upstream: &[u8],
        method: &str,
        message: &[u8],
    ) -> Result<u32, String> {
        if *self.dispatch_fails.borrow() {
            return Err("BadArgument".into());
        }
        let mut token = self.next_token.borrow_mut();
        *token += 1;
        self.events.borrow_mut().push(Event::OpenStream {
            stream: *token,
            method: method.to_owned(),
            message: message.to_vec(),
        });
        Ok(*token)
    }
    fn cancel_grpc_stream(&self, stream: u32) {
        self.events.borrow_mut().push(Event::CancelStream(stream));
    }
    fn grpc_response(&self, _size: usize) -> Option<Vec<u8>> {
        Some(self.grpc_body.borrow().clone())
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut metrics = self.metrics.borrow_mut();
        metrics.push((name.to_owned(), 0));
        u32::try_from(metrics.len() - 1).ok()
    }
    fn define_gauge(&self, name: &str) -> Option<u32> {
        self.define_counter(name)
    }
    fn increment(&self, metric: Option<u32>, by: i64) {
        if let Some(i) = metric.and_then(|id| usize::try_from(id).ok())
            && let Some(entry) = self.metrics.borrow_mut().get_mut(i)
        {
            entry.1 += by;
        }
    }
    fn record(&self, metric: Option<u32>, value: u64) {
        if let Some(i) = metric.and_then(|id| usize::try_from(id).ok())
            && let Some(entry) = self.metrics.borrow_mut().get_mut(i)
        {
            entry.1 = i64::try_from(value).unwrap_or(i64::MAX);
        }
    }
    fn set_tick_period(&self, _period: Duration) {}
}
