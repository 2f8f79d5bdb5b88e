//! The Tollgate proxy-wasm filter: the fast path inside Envoy. A thin shell over
//! `tollgate-core`: callbacks adapt host calls ([`host::Host`]) to the core's decisions and hold
//! no policy logic. Each Envoy worker runs its own VM with its own cache and feed poller.

pub mod answer;
pub mod cache;
pub mod config;
pub mod gate;
pub mod host;
#[cfg(feature = "mock-host")]
pub mod mock;
pub mod root;
pub mod shared;

use gate::{Flow, RequestGate};
use host::{Host, HostCalls, Level};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use root::Root;
use std::rc::Rc;

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

struct RootShell(Root<HostCalls>, Rc<HostCalls>);

impl Context for RootShell {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        self.0
            .on_grpc_response(token_id, status_code, response_size);
    }

    fn on_grpc_stream_message(&mut self, token_id: u32, message_size: usize) {
        self.0.on_stream_message(token_id, message_size);
    }

    fn on_grpc_stream_close(&mut self, token_id: u32, status_code: u32) {
        self.0.on_stream_close(token_id, status_code);
    }
}

impl RootContext for RootShell {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let configuration = proxy_wasm::hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten();
        self.0.configure(configuration.as_deref())
    }

    fn on_tick(&mut self) {
        self.0.on_tick();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let gate = self
            .0
            .shared()
            .map(|shared| RequestGate::new(self.1.clone(), shared, context_id));
        Some(Box::new(HttpShell(gate, self.1.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// `None` only if Envoy creates a request context for a VM whose configuration was refused.
struct HttpShell(Option<RequestGate<HostCalls>>, Rc<HostCalls>);

impl HttpShell {
    fn unconfigured(&self) -> Action {
        self.1.send_response(503, &[("content-type", "application/json")], br#"{"error":"the Tollgate filter has no valid configuration","reason":"authorizer_unavailable"}"#);
        Action::Pause
    }
}

impl Context for HttpShell {
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        if let Some(gate) = &mut self.0 {
            gate.on_grpc_response(token_id, status_code, response_size);
        }
    }
}

impl HttpContext for HttpShell {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match &mut self.0 {
            Some(gate) => action(gate.on_request_headers(end_of_stream)),
            None => self.unconfigured(),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.0 {
            Some(gate) => action(gate.on_request_body(body_size, end_of_stream)),
            None => Action::Pause,
        }
    }

    // The SDK's default returns Continue, which resumes a paused request whole (headers,
    // buffered body, trailers): the gate decides here as in every request callback.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        match &mut self.0 {
            Some(gate) => action(gate.on_request_trailers()),
            None => Action::Pause,
        }
    }

    // A response reaches this filter only for a request already allowed (the upstream never
    // saw a paused one) or as a local reply (ours or Envoy's), which must go out. Only an
    // answer that must lose the account's policy labels is held (see `answer`).
    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match &mut self.0 {
            Some(gate) => action(gate.on_response_headers(end_of_stream)),
            None => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.0 {
            Some(gate) => action(gate.on_response_body(body_size, end_of_stream)),
            None => Action::Continue,
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        match &mut self.0 {
            Some(gate) => action(gate.on_response_trailers()),
            None => Action::Continue,
        }
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        HostCalls.log(Level::Critical, &format!("tollgate: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        let host = Rc::new(HostCalls);
        Box::new(RootShell(Root::new(host.clone()), host))
    });
}}
