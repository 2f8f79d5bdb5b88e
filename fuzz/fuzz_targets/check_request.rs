//! ext_authz Check: an arbitrary HTTP request as Envoy describes it (headers, raw headers, body,
//! path and query) mapped to a request view and decided against the live snapshot.
//! Invariants: no panic, the encoded answer decodes, and a request without a seeded token is
//! never allowed.
#![no_main]

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tollgate_fuzz::harness;

/// Input, as text: `<METHOD> <path>\n` then header lines `name: value` until an empty line, then
/// the body. `$0` to `$4` in a header value stand for the seeded tokens (`$4` the admin's). A
/// header line starting with `~` goes into `header_map` as raw bytes (Envoy's
/// `encode_raw_headers`); a request line ending in ` RAW` sends the body as `raw_body`.
fn request(data: &[u8], tokens: &[&str]) -> Option<(HttpRequest, bool)> {
    let text = std::str::from_utf8(data).ok()?;
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.split('\n');
    let request_line = lines.next()?;
    let (request_line, raw_body) = match request_line.strip_suffix(" RAW") {
        Some(line) => (line, true),
        None => (request_line, false),
    };
    let (method, path) = request_line.split_once(' ')?;
    let mut seeded = false;
    let mut headers = HashMap::new();
    let mut raw = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let mut value = value.trim_start().to_owned();
        for (i, token) in tokens.iter().enumerate() {
            let placeholder = format!("${i}");
            if value.contains(&placeholder) {
                seeded = true;
                value = value.replace(&placeholder, token);
            }
        }
        match name.strip_prefix('~') {
            Some(name) => raw.push(HeaderValue {
                key: name.to_owned(),
                raw_value: value.into_bytes(),
                ..HeaderValue::default()
            }),
            None => {
                headers.insert(name.to_owned(), value);
            }
        }
    }
    let mut http = HttpRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        header_map: (!raw.is_empty()).then_some(HeaderMap { headers: raw }),
        size: i64::try_from(body.len()).unwrap_or(-1),
        ..HttpRequest::default()
    };
    if raw_body {
        http.raw_body = body.as_bytes().to_vec();
    } else {
        http.body = body.to_owned();
    }
    Some((http, seeded))
}

fuzz_target!(|data: &[u8]| {
    let harness = harness();
    let tokens: Vec<&str> = harness
        .tokens
        .iter()
        .chain([&harness.admin_token])
        .map(String::as_str)
        .collect();
    let Some((http, seeded)) = request(data, &tokens) else {
        return;
    };
    let check = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    };
    // The answer as encoded for the wire must decode (prost, as Envoy's parser would).
    let response = harness.app.authz.check(&check).unwrap().decode().unwrap();
    let allowed = response.status.as_ref().is_some_and(|s| s.code == 0);
    assert!(seeded || !allowed, "allowed without a token: {check:?}");
});
