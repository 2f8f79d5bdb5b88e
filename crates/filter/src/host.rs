//! The host, as a trait: the real one calls `proxy_wasm::hostcalls` and keeps every `Result`
//! (the SDK's trait helpers panic on statuses they do not expect, which would kill the VM); the
//! mock records what the filter did, for native tests.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

pub trait Host {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Every request header; a value's bytes that break UTF-8 read as `!`, as ext_authz mode
    /// sees them (`tollgate_core::headers::sanitize_utf8`).
    fn request_headers(&self) -> Vec<(String, String)>;
    /// Sets (or with `None` removes) a request header.
    fn set_request_header(&self, name: &str, value: Option<&str>);
    /// The first `size` bytes of the request body buffered so far (`usize::MAX`: all of it);
    /// empty when there is none. An error is a host failure: the caller fails closed.
    fn request_body(&self, size: usize) -> Result<Vec<u8>, String>;
    fn replace_request_body(&self, old_size: usize, body: &[u8]);
    fn send_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]);
    fn resume_request(&self);
    /// A response header, read as `request_headers` reads values.
    fn response_header(&self, name: &str) -> Option<String>;
    /// Sets (or with `None` removes) a response header; only while the headers are paused.
    fn set_response_header(&self, name: &str, value: Option<&str>);
    /// The first `size` bytes of the response body buffered so far.
    fn response_body(&self, size: usize) -> Result<Vec<u8>, String>;
    fn replace_response_body(&self, old_size: usize, body: &[u8]);
    /// Dispatches a gRPC call to `tollgate.v1.Grants/<method>`; returns the call's token.
    fn dispatch_grpc(
        &self,
        upstream: &[u8],
        method: &str,
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, String>;
    /// Opens the server-streaming call `tollgate.v1.Grants/<method>` and sends its one request
    /// (closing our side); returns the stream's token.
    fn open_grpc_stream(
        &self,
        upstream: &[u8],
        method: &str,
        message: &[u8],
    ) -> Result<u32, String>;
    /// Cancels a stream we no longer read.
    fn cancel_grpc_stream(&self, stream: u32);
    /// The last gRPC answer or stream message, `size` bytes.
    fn grpc_response(&self, size: usize) -> Option<Vec<u8>>;
    fn log(&self, level: Level, message: &str);
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn define_gauge(&self, name: &str) -> Option<u32>;
    fn increment(&self, metric: Option<u32>, by: i64);
    fn record(&self, metric: Option<u32>, value: u64);
    fn set_tick_period(&self, period: Duration);
}

/// Decodes a gRPC answer (a call's response, `status` its gRPC status; or a stream message,
/// status 0) from the host's receive buffer.
pub fn read_grpc<M: prost::Message + Default>(
    host: &impl Host,
    status: u32,
    size: usize,
) -> Result<M, String> {
    if status != 0 {
        return Err(format!("gRPC status {status}"));
    }
    let bytes = host
        .grpc_response(size)
        .ok_or_else(|| "empty response".to_owned())?;
    M::decode(bytes.as_slice()).map_err(|err| err.to_string())
}

/// The real host.
pub struct HostCalls;

impl Host for HostCalls {
    fn now_ms(&self) -> u64 {
        proxy_wasm::hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn request_headers(&self) -> Vec<(String, String)> {
        // Values as bytes: the SDK's `get_map` panics on a value that is not UTF-8, which any
        // client may send (obs-text), and a panic takes the VM down for every request after.
        // Names are tokens: Envoy's codecs refuse any other byte before a filter runs.
        proxy_wasm::hostcalls::get_map_bytes(proxy_wasm::types::MapType::HttpRequestHeaders)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name, tollgate_core::headers::sanitize_utf8(value)))
            .collect()
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        if let Err(status) = proxy_wasm::hostcalls::set_map_value(
            proxy_wasm::types::MapType::HttpRequestHeaders,
            name,
            value,
        ) {
            self.log(
                Level::Error,
                &format!("cannot set request header {name}: {status:?}"),
            );
        }
    }

    fn request_body(&self, size: usize) -> Result<Vec<u8>, String> {
        proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, size)
            .map(Option::unwrap_or_default)
            .map_err(|status| format!("{status:?}"))
    }

    fn replace_request_body(&self, old_size: usize, body: &[u8]) {
        if let Err(status) = proxy_wasm::hostcalls::set_buffer(
            proxy_wasm::types::BufferType::HttpRequestBody,
            0,
            old_size,
            body,
        ) {
            self.log(
                Level::Error,
                &format!("cannot replace the request body: {status:?}"),
            );
        }
    }

    fn send_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        if let Err(err) = proxy_wasm::hostcalls::send_http_response(
            u32::from(status),
            headers.to_vec(),
            Some(body),
        ) {
            self.log(
                Level::Error,
                &format!("cannot send the local reply: {err:?}"),
            );
        }
    }

    fn resume_request(&self) {
        if let Err(status) = proxy_wasm::hostcalls::resume_http_request() {
            self.log(
                Level::Error,
                &format!("cannot resume the request: {status:?}"),
            );
        }
    }

    fn response_header(&self, name: &str) -> Option<String> {
        // Bytes, for the reason `request_headers` gives: an upstream's value need not be UTF-8.
        proxy_wasm::hostcalls::get_map_value_bytes(
            proxy_wasm::types::MapType::HttpResponseHeaders,
            name,
        )
        .ok()
        .flatten()
        .map(tollgate_core::headers::sanitize_utf8)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        if let Err(status) = proxy_wasm::hostcalls::set_map_value(
            proxy_wasm::types::MapType::HttpResponseHeaders,
            name,
            value,
        ) {
            self.log(
                Level::Error,
                &format!("cannot set response header {name}: {status:?}"),
            );
        }
    }

    fn response_body(&self, size: usize) -> Result<Vec<u8>, String> {
        proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpResponseBody, 0, size)
            .map(Option::unwrap_or_default)
            .map_err(|status| format!("{status:?}"))
    }

    fn replace_response_body(&self, old_size: usize, body: &[u8]) {
        if let Err(status) = proxy_wasm::hostcalls::set_buffer(
            proxy_wasm::types::BufferType::HttpResponseBody,
            0,
            old_size,
            body,
        ) {
            self.log(
                Level::Error,
                &format!("cannot replace the response body: {status:?}"),
            );
        }
    }

    fn dispatch_grpc(
        &self,
        upstream: &[u8],
        method: &str,
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, String> {
        // The SDK takes the upstream as &str; the serialized GrpcService of a short ASCII
        // cluster name is ASCII (the configuration enforces that).
        let upstream =
            std::str::from_utf8(upstream).map_err(|_| "cluster name is not ASCII".to_owned())?;
        proxy_wasm::hostcalls::dispatch_grpc_call(
            upstream,
            tollgate_proto::SERVICE,
            method,
            Vec::new(),
            Some(message),
            timeout,
        )
        .map_err(|status| format!("{status:?}"))
    }

    fn open_grpc_stream(
        &self,
        upstream: &[u8],
        method: &str,
        message: &[u8],
    ) -> Result<u32, String> {
        let upstream =
            std::str::from_utf8(upstream).map_err(|_| "cluster name is not ASCII".to_owned())?;
        let stream = proxy_wasm::hostcalls::open_grpc_stream(
            upstream,
            tollgate_proto::SERVICE,
            method,
            Vec::new(),
        )
        .map_err(|status| format!("{status:?}"))?;
        if let Err(status) =
            proxy_wasm::hostcalls::send_grpc_stream_message(stream, Some(message), true)
        {
            self.cancel_grpc_stream(stream);
            return Err(format!("{status:?}"));
        }
        Ok(stream)
    }

    fn cancel_grpc_stream(&self, stream: u32) {
        let _ = proxy_wasm::hostcalls::cancel_grpc_stream(stream);
    }

    fn grpc_response(&self, size: usize) -> Option<Vec<u8>> {
        proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::GrpcReceiveBuffer, 0, size)
            .ok()
            .flatten()
    }

    fn log(&self, level: Level, message: &str) {
        use proxy_wasm::types::LogLevel;
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        };
        let _ = proxy_wasm::hostcalls::log(level, message);
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        proxy_wasm::hostcalls::define_metric(proxy_wasm::types::MetricType::Counter, name).ok()
    }

    fn define_gauge(&self, name: &str) -> Option<u32> {
        proxy_wasm::hostcalls::define_metric(proxy_wasm::types::MetricType::Gauge, name).ok()
    }

    fn increment(&self, metric: Option<u32>, by: i64) {
        if let Some(id) = metric {
            let _ = proxy_wasm::hostcalls::increment_metric(id, by);
        }
    }

    fn record(&self, metric: Option<u32>, value: u64) {
        if let Some(id) = metric {
            let _ = proxy_wasm::hostcalls::record_metric(id, value);
        }
    }

    fn set_tick_period(&self, period: Duration) {
        if let Err(status) = proxy_wasm::hostcalls::set_tick_period(period) {
            self.log(
                Level::Error,
                &format!("cannot set the tick period: {status:?}"),
            );
        }
    }
}
