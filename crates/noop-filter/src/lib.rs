//! Does nothing per request: measured next to the Tollgate filter, it shows what any V8 filter
//! costs Envoy before it does any work. Configured with [`HOST_CALLS_OF_A_HIT`], it makes the
//! host calls the Tollgate filter makes for a cache hit and nothing else: the floor of a filter
//! that must read every request header and set the identity headers, so that `make bench`
//! tells the host calls' share of the hit's cost from the filter's own work.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

/// The configuration that turns on the hit's host calls.
pub const HOST_CALLS_OF_A_HIT: &str = "host-calls-of-a-hit";

#[derive(Default)]
struct Root {
    /// The counter a hit increments twice (cache hit, allowed); `None`: do nothing per request.
    hit_calls: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let configuration = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        if configuration == HOST_CALLS_OF_A_HIT.as_bytes() {
            self.hit_calls = hostcalls::define_metric(MetricType::Counter, "noop.hits").ok();
            return self.hit_calls.is_some();
        }
        configuration.is_empty()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Pass {
            hit_calls: self.hit_calls,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Pass {
    hit_calls: Option<u32>,
}

impl Context for Pass {}

impl HttpContext for Pass {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(counter) = self.hit_calls {
            // As `tollgate_filter::gate` on a hit: the headers once, the clock once, two
            // counters, three identity headers set and the credential removed.
            let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
            let _ = hostcalls::get_current_time();
            let _ = hostcalls::increment_metric(counter, 1);
            let value = if headers.is_empty() { "-" } else { "bench" };
            for name in ["x-tollgate-account", "x-tollgate-tenant", "x-scope-orgid"] {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
            }
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "authorization", None);
            let _ = hostcalls::increment_metric(counter, 1);
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}
