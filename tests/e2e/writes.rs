//! Issue 14 (OTLP and Loki push): a label-restricted writer's telemetry carries its policy in the
//! body itself, through Envoy to a recording upstream that keeps the bytes it received, decoded
//! here with `tollgate_formats`' prost types (independent of the core's wire-level reader).
//!
//! * OTLP from a real client: the OpenTelemetry Python SDK's OTLP/HTTP protobuf exporters
//!   (tests/clients/otlp_send.py) send a counter, a log record and a span. Filter mode forces
//!   `kube_namespace="team-a"` onto every resource that lacks an attribute mapping to the label
//!   (Prometheus's translation: `kube.namespace` maps to `kube_namespace`); a resource in another
//!   namespace, or a data point, log record or span attribute contradicting it, is 403 and
//!   nothing arrives. ext_authz mode accepts an SDK whose resource already carries the namespace
//!   and refuses one without.
//! * OTLP/HTTP JSON and protobuf built by hand, on the OTLP routes of Prometheus, Mimir and Loki.
//! * Loki push: snappy protobuf `PushRequest` (labels as a selector string) and JSON.
//! * An unrestricted writer's bodies arrive byte-identical; an unknown content type from a
//!   restricted writer is 415 and never arrives.

use prost::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tollgate_e2e::{
    Envoy, MARKER, Mode, Recorded, RecordingUpstream, Through, Tollgate, bootstrap, otlp_send, send,
};
use tollgate_formats::loki;
use tollgate_formats::otlp::{
    common, logs, logs_service, metrics, metrics_service, resource, trace, trace_service,
};

const POLICY: &str = r#"{kube_namespace="team-a"}"#;
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
const SIGNALS: [&str; 3] = ["metrics", "logs", "traces"];
const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Envoy in `mode` in front of a recording upstream, with a restricted and an unrestricted writer.
struct Rig {
    envoy: Envoy,
    upstream: RecordingUpstream,
    /// Writer confined to [`POLICY`].
    writer: String,
    /// Writer with no label policy.
    free: String,
    tollgate: Tollgate,
}

impl Rig {
    async fn start(mode: &Mode) -> Rig {
        let tollgate = Tollgate::start().await.unwrap();
        let (_, _, writer) = tollgate
            .account_with_token(
                json!({"name": "collector", "role": "writer", "labelPolicy": POLICY}),
            )
            .await;
        let (_, _, free) = tollgate
            .account_with_token(json!({"name": "platform", "role": "writer"}))
            .await;
        let upstream = RecordingUpstream::start().await.unwrap();
        let envoy = Envoy::start(
            &bootstrap(mode, tollgate.grpc_addr.port(), upstream.addr.port()).unwrap(),
        )
        .await
        .unwrap();
        Rig {
            envoy,
            upstream,
            writer,
            free,
            tollgate,
        }
    }

    /// POSTs `body` through Envoy as `token`, tagged with `marker`.
    async fn post(
        &self,
        token: &str,
        path: &str,
        content_type: &str,
        marker: &str,
        body: impl Into<reqwest::Body>,
    ) -> Through {
        self.post_with(token, path, &[("content-type", content_type)], marker, body)
            .await
    }

    /// Like [`Rig::post`], with `headers` as given.
    async fn post_with(
        &self,
        token: &str,
        path: &str,
        headers: &[(&str, &str)],
        marker: &str,
        body: impl Into<reqwest::Body>,
    ) -> Through {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.envoy.url()))
            .bearer_auth(token)
            .header(MARKER, marker);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request.body(body)).await
    }

    /// The SDK's one batch of each signal, tagged with `marker`; the script's JSON summary.
    async fn sdk(&self, token: &str, marker: &str, args: &[&str]) -> Value {
        let header = format!("{MARKER}={marker}");
        let mut all = vec!["--header", header.as_str()];
        all.extend_from_slice(args);
        otlp_send(&self.envoy.url(), token, &all).await.unwrap()
    }

    /// The requests tagged `marker` that reached the upstream, asserting there are `count`.
    fn arrived(&self, marker: &str, count: usize) -> Vec<Recorded> {
        let got = self.upstream.marked(marker);
        assert_eq!(
            got.len(),
            count,
            "{marker}: {count} request(s) reach the upstream, got {:?}\n{}",
            got.iter().map(|r| &r.path).collect::<Vec<_>>(),
            self.envoy.log()
        );
        got
    }

    /// The one request tagged `marker` that reached the upstream.
    fn arrived_one(&self, marker: &str) -> Recorded {
        self.arrived(marker, 1).remove(0)
    }

    fn never_arrived(&self, marker: &str) {
        self.arrived(marker, 0);
    }

    async fn stop(self) {
        self.tollgate.stop().await;
    }
}

/// A 403 `label_policy_violation` whose message names the offending item (e.g. `stream 1`) and
/// the label, and no other namespace's value.
fn assert_violation(reply: &Through, what: &str, item: &str) {
    assert_eq!(
        (reply.status, reply.json["reason"].as_str()),
        (403, Some("label_policy_violation")),
        "{what}: {}",
        reply.text
    );
    let message = reply.json["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(item) && message.contains("kube_namespace"),
        "{what}: names {item} and the label: {}",
        reply.text
    );
    assert!(
        !reply.text.contains("team-b"),
        "{what}: names no other value: {}",
        reply.text
    );
}

fn assert_passed(reply: &Through, what: &str) {
    assert!(
        (200..300).contains(&reply.status),
        "{what}: {} {}",
        reply.status,
        reply.text
    );
}

fn assert_unsupported(reply: &Through, what: &str) {
    assert_eq!(
        (reply.status, reply.json["reason"].as_str()),
        (415, Some("unsupported_media_type")),
        "{what}: {}",
        reply.text
    );
}

// ---------------------------------------------------------------------------------------------
// OTLP helpers

/// Prometheus's translation of an attribute key to a label name.
fn label_of(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn kv(key: &str, value: &str) -> common::KeyValue {
    common::KeyValue {
        key: key.into(),
        value: Some(common::AnyValue {
            value: Some(common::any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn kvs(pairs: &[(&str, &str)]) -> Vec<common::KeyValue> {
    pairs.iter().map(|(k, v)| kv(k, v)).collect()
}

fn string_value(value: Option<&common::AnyValue>) -> Option<&str> {
    match value?.value.as_ref()? {
        common::any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// The (key, string value) of each attribute whose key maps to `label`.
fn mapping<'a>(attributes: &'a [common::KeyValue], label: &str) -> Vec<(&'a str, &'a str)> {
    attributes
        .iter()
        .filter(|a| label_of(&a.key) == label)
        .map(|a| {
            (
                a.key.as_str(),
                string_value(a.value.as_ref()).unwrap_or("<not a string>"),
            )
        })
        .collect()
}

fn attribute<'a>(attributes: &'a [common::KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| string_value(a.value.as_ref()))
}

/// What an OTLP protobuf request carries: each resource, and per resource the names of its
/// metrics, the bodies of its log records or the names of its spans.
fn otlp_decode(request: &Recorded) -> Vec<(resource::Resource, Vec<String>)> {
    let gunzipped;
    let body = if request.header("content-encoding") == "gzip" {
        use std::io::Read;
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&request.body[..])
            .read_to_end(&mut plain)
            .unwrap_or_else(|e| panic!("{}: gzip: {e}", request.path));
        gunzipped = plain;
        &gunzipped[..]
    } else {
        &request.body[..]
    };
    let signal = request.path.rsplit('/').next().unwrap_or_default();
    match signal {
        "metrics" => metrics_service::ExportMetricsServiceRequest::decode(body)
            .unwrap_or_else(|e| panic!("{}: {e}", request.path))
            .resource_metrics
            .into_iter()
            .map(|r| {
                let names = r
                    .scope_metrics
                    .iter()
                    .flat_map(|s| &s.metrics)
                    .map(|m| m.name.clone())
                    .collect();
                (r.resource.unwrap_or_default(), names)
            })
            .collect(),
        "logs" => logs_service::ExportLogsServiceRequest::decode(body)
            .unwrap_or_else(|e| panic!("{}: {e}", request.path))
            .resource_logs
            .into_iter()
            .map(|r| {
                let bodies = r
                    .scope_logs
                    .iter()
                    .flat_map(|s| &s.log_records)
                    .map(|l| string_value(l.body.as_ref()).unwrap_or_default().to_owned())
                    .collect();
                (r.resource.unwrap_or_default(), bodies)
            })
            .collect(),
        "traces" => trace_service::ExportTraceServiceRequest::decode(body)
            .unwrap_or_else(|e| panic!("{}: {e}", request.path))
            .resource_spans
            .into_iter()
            .map(|r| {
                let names = r
                    .scope_spans
                    .iter()
                    .flat_map(|s| &s.spans)
                    .map(|s| s.name.clone())
                    .collect();
                (r.resource.unwrap_or_default(), names)
            })
            .collect(),
        other => panic!("not an OTLP signal path: {other} ({})", request.path),
    }
}

/// The payload the SDK script sends for `signal`.
fn sdk_payload(signal: &str) -> Vec<String> {
    vec![
        match signal {
            "metrics" => "e2e_requests",
            "logs" => "e2e log line",
            _ => "e2e-span",
        }
        .to_owned(),
    ]
}

/// Every export of the SDK succeeded (2xx).
fn assert_exported(summary: &Value, what: &str) {
    for signal in SIGNALS {
        assert_eq!(
            (
                summary[signal]["result"].as_str(),
                summary[signal]["status"].as_u64()
            ),
            (Some("SUCCESS"), Some(200)),
            "{what}, {signal}: {summary}"
        );
    }
}

/// Every export of the SDK failed with a 403 label_policy_violation.
fn assert_export_refused(summary: &Value, what: &str) {
    for signal in SIGNALS {
        let body: Value = serde_json::from_str(summary[signal]["body"].as_str().unwrap_or(""))
            .unwrap_or_default();
        assert_eq!(
            (
                summary[signal]["result"].as_str(),
                summary[signal]["status"].as_u64(),
                body["reason"].as_str()
            ),
            (Some("FAILURE"), Some(403), Some("label_policy_violation")),
            "{what}, {signal}: {summary}"
        );
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains("kube_namespace") && !message.contains("team-b"),
            "{what}, {signal}: names the label and no other value: {message}"
        );
    }
}

/// The SDK's three requests tagged `marker`, one per signal, checked by `check` on each
/// resource (after its payload arrived intact).
fn sdk_arrived(rig: &Rig, marker: &str, check: impl Fn(&str, &resource::Resource)) {
    let mut got = rig.arrived(marker, 3);
    got.sort_by_key(|r| r.path.clone());
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/logs", "/v1/metrics", "/v1/traces"], "{marker}");
    for request in &got {
        let signal = request.path.rsplit('/').next().unwrap_or_default();
        assert!(
            request.header("content-type").starts_with(PROTOBUF),
            "{marker} {signal}: {:?}",
            request.headers
        );
        let resources = otlp_decode(request);
        assert_eq!(resources.len(), 1, "{marker} {signal}: one resource");
        for (resource, payload) in &resources {
            assert_eq!(payload, &sdk_payload(signal), "{marker} {signal}: payload");
            assert_eq!(
                attribute(&resource.attributes, "service.name"),
                Some("checkout"),
                "{marker} {signal}: the SDK's own attributes stay: {:?}",
                resource.attributes
            );
            check(signal, resource);
        }
    }
}

async fn otlp_sdk_through_filter(rig: &Rig) {
    let w = rig.writer.as_str();
    // No namespace on the resource: every resource arrives with the forced attribute.
    let summary = rig
        .sdk(w, "sdk-bare", &["--resource", "service.name=checkout"])
        .await;
    assert_exported(&summary, "resource without the namespace");
    sdk_arrived(rig, "sdk-bare", |signal, resource| {
        assert_eq!(
            mapping(&resource.attributes, "kube_namespace"),
            [("kube_namespace", "team-a")],
            "{signal}: forced: {:?}",
            resource.attributes
        );
    });

    // An attribute that maps to the label (`kube.namespace`) with the policy's value: kept as
    // sent, no second attribute added.
    let summary = rig
        .sdk(
            w,
            "sdk-dotted",
            &[
                "--resource",
                "service.name=checkout",
                "--resource",
                "kube.namespace=team-a",
            ],
        )
        .await;
    assert_exported(&summary, "kube.namespace=team-a");
    sdk_arrived(rig, "sdk-dotted", |signal, resource| {
        assert_eq!(
            mapping(&resource.attributes, "kube_namespace"),
            [("kube.namespace", "team-a")],
            "{signal}: {:?}",
            resource.attributes
        );
    });

    // Data points, log records and spans that agree with the forced value pass.
    let summary = rig
        .sdk(
            w,
            "sdk-deep-same",
            &[
                "--resource",
                "service.name=checkout",
                "--attribute",
                "kube_namespace=team-a",
            ],
        )
        .await;
    assert_exported(&summary, "record attribute kube_namespace=team-a");
    sdk_arrived(rig, "sdk-deep-same", |signal, resource| {
        assert_eq!(
            mapping(&resource.attributes, "kube_namespace"),
            [("kube_namespace", "team-a")],
            "{signal}: {:?}",
            resource.attributes
        );
    });

    // gzip (the SDK's `compression=gzip`, the Collector's default): read through, forced, and
    // compressed again, so the upstream gets what the headers say.
    let summary = rig
        .sdk(
            w,
            "sdk-gzip",
            &[
                "--resource",
                "service.name=checkout",
                "--compression",
                "gzip",
            ],
        )
        .await;
    assert_exported(&summary, "gzip");
    for request in rig.arrived("sdk-gzip", 3) {
        assert_eq!(
            request.header("content-encoding"),
            "gzip",
            "{}: forced bodies arrive gzipped again",
            request.path
        );
    }
    sdk_arrived(rig, "sdk-gzip", |signal, resource| {
        assert_eq!(
            mapping(&resource.attributes, "kube_namespace"),
            [("kube_namespace", "team-a")],
            "gzip {signal}: forced: {:?}",
            resource.attributes
        );
    });

    // Another namespace, under either spelling, or below the resource: refused, never arrives.
    for (marker, args) in [
        (
            "sdk-other",
            ["--resource", "kube_namespace=team-b"].as_slice(),
        ),
        ("sdk-other-dotted", &["--resource", "kube.namespace=team-b"]),
        (
            "sdk-deep-other",
            &[
                "--resource",
                "service.name=checkout",
                "--attribute",
                "kube_namespace=team-b",
            ],
        ),
        (
            "sdk-deep-other-dotted",
            &[
                "--resource",
                "kube_namespace=team-a",
                "--attribute",
                "kube.namespace=team-b",
            ],
        ),
    ] {
        let summary = rig.sdk(w, marker, args).await;
        assert_export_refused(&summary, marker);
        rig.never_arrived(marker);
    }
}

async fn otlp_sdk_through_ext_authz(rig: &Rig) {
    let w = rig.writer.as_str();
    // The SDK's resource carries the namespace (as a resource processor or OTEL_RESOURCE_ATTRIBUTES
    // would set it): accepted, and arrives as sent.
    for (marker, key) in [
        ("sdk-within", "kube_namespace"),
        ("sdk-within-dotted", "kube.namespace"),
    ] {
        let resource_attr = format!("{key}=team-a");
        let summary = rig
            .sdk(
                w,
                marker,
                &[
                    "--resource",
                    "service.name=checkout",
                    "--resource",
                    &resource_attr,
                ],
            )
            .await;
        assert_exported(&summary, marker);
        sdk_arrived(rig, marker, |signal, resource| {
            assert_eq!(
                mapping(&resource.attributes, "kube_namespace"),
                [(key, "team-a")],
                "{marker} {signal}: as sent: {:?}",
                resource.attributes
            );
        });
    }
    // Without the namespace, in another, or contradicted below the resource: refused.
    for (marker, args) in [
        (
            "sdk-bare",
            ["--resource", "service.name=checkout"].as_slice(),
        ),
        ("sdk-other", &["--resource", "kube_namespace=team-b"]),
        (
            "sdk-deep-other",
            &[
                "--resource",
                "kube_namespace=team-a",
                "--attribute",
                "kube_namespace=team-b",
            ],
        ),
    ] {
        let summary = rig.sdk(w, marker, args).await;
        assert_export_refused(&summary, marker);
        rig.never_arrived(marker);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_sdk_is_forced_through_the_filter() {
    let rig = Rig::start(&Mode::Filter(FAST.into())).await;
    otlp_sdk_through_filter(&rig).await;
    // An unrestricted writer's resources arrive untouched.
    let summary = rig
        .sdk(
            &rig.free,
            "sdk-free",
            &["--resource", "service.name=checkout"],
        )
        .await;
    assert_exported(&summary, "unrestricted");
    sdk_arrived(&rig, "sdk-free", |signal, resource| {
        assert!(
            mapping(&resource.attributes, "kube_namespace").is_empty(),
            "{signal}: untouched: {:?}",
            resource.attributes
        );
    });
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_sdk_is_checked_through_ext_authz() {
    let rig = Rig::start(&Mode::ExtAuthz).await;
    otlp_sdk_through_ext_authz(&rig).await;
    let summary = rig
        .sdk(
            &rig.free,
            "sdk-free",
            &["--resource", "service.name=checkout"],
        )
        .await;
    assert_exported(&summary, "unrestricted");
    rig.arrived("sdk-free", 3);
    rig.stop().await;
}

// ---------------------------------------------------------------------------------------------
// OTLP built by hand: JSON, and protobuf on every OTLP route

/// An OTLP/HTTP JSON logs request, one resource per attribute set.
fn otlp_json_logs(resources: &[&[(&str, &str)]]) -> Value {
    let resource_logs: Vec<Value> = resources
        .iter()
        .enumerate()
        .map(|(i, attributes)| {
            let attributes: Vec<Value> = attributes
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                .collect();
            json!({
                "resource": {"attributes": attributes},
                "scopeLogs": [{
                    "scope": {"name": "e2e"},
                    "logRecords": [{
                        "timeUnixNano": "1700000000000000000",
                        "severityNumber": 9,
                        "severityText": "INFO",
                        "body": {"stringValue": format!("line {i}")},
                        "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}]
                    }]
                }]
            })
        })
        .collect();
    json!({ "resourceLogs": resource_logs })
}

/// An OTLP/HTTP JSON metrics request (one gauge per resource).
fn otlp_json_metrics(resources: &[&[(&str, &str)]]) -> Value {
    let resource_metrics: Vec<Value> = resources
        .iter()
        .map(|attributes| {
            let attributes: Vec<Value> = attributes
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                .collect();
            json!({
                "resource": {"attributes": attributes},
                "scopeMetrics": [{
                    "scope": {"name": "e2e"},
                    "metrics": [{
                        "name": "e2e_gauge",
                        "gauge": {"dataPoints": [{"asDouble": 1.5, "timeUnixNano": "1700000000000000000"}]}
                    }]
                }]
            })
        })
        .collect();
    json!({ "resourceMetrics": resource_metrics })
}

/// The resources of an OTLP JSON request, whatever the signal.
fn json_resources(body: &Value) -> Vec<Value> {
    ["resourceMetrics", "resourceLogs", "resourceSpans"]
        .iter()
        .filter_map(|k| body[*k].as_array())
        .flatten()
        .cloned()
        .collect()
}

/// `body` with every resource attribute mapping to `kube_namespace` removed.
fn without_namespace(body: &Value) -> Value {
    let mut body = body.clone();
    for key in ["resourceMetrics", "resourceLogs", "resourceSpans"] {
        if let Some(list) = body[key].as_array_mut() {
            for r in list {
                if let Some(attributes) = r["resource"]["attributes"].as_array_mut() {
                    attributes
                        .retain(|a| label_of(a["key"].as_str().unwrap_or("")) != "kube_namespace");
                }
            }
        }
    }
    body
}

/// The (key, value) of a JSON resource's attributes that map to `kube_namespace`.
fn json_mapping(resource: &Value) -> Vec<(String, Value)> {
    resource["resource"]["attributes"]
        .as_array()
        .map(|attributes| {
            attributes
                .iter()
                .filter(|a| label_of(a["key"].as_str().unwrap_or("")) == "kube_namespace")
                .map(|a| {
                    (
                        a["key"].as_str().unwrap_or("").to_owned(),
                        a["value"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn otlp_proto_metrics(resources: &[&[(&str, &str)]]) -> Vec<u8> {
    metrics_service::ExportMetricsServiceRequest {
        resource_metrics: resources
            .iter()
            .map(|attributes| metrics::ResourceMetrics {
                resource: Some(resource::Resource {
                    attributes: kvs(attributes),
                    ..Default::default()
                }),
                scope_metrics: vec![metrics::ScopeMetrics {
                    scope: Some(common::InstrumentationScope {
                        name: "e2e".into(),
                        ..Default::default()
                    }),
                    metrics: vec![metrics::Metric {
                        name: "e2e_gauge".into(),
                        data: Some(metrics::metric::Data::Gauge(metrics::Gauge {
                            data_points: vec![metrics::NumberDataPoint {
                                attributes: kvs(&[("http.route", "/x")]),
                                time_unix_nano: 1_700_000_000_000_000_000,
                                value: Some(metrics::number_data_point::Value::AsDouble(1.5)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn otlp_proto_logs(resources: &[&[(&str, &str)]]) -> Vec<u8> {
    logs_service::ExportLogsServiceRequest {
        resource_logs: resources
            .iter()
            .map(|attributes| logs::ResourceLogs {
                resource: Some(resource::Resource {
                    attributes: kvs(attributes),
                    ..Default::default()
                }),
                scope_logs: vec![logs::ScopeLogs {
                    log_records: vec![logs::LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000,
                        severity_number: 9,
                        body: Some(common::AnyValue {
                            value: Some(common::any_value::Value::StringValue("e2e_line".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn otlp_proto_traces(resources: &[&[(&str, &str)]]) -> Vec<u8> {
    trace_service::ExportTraceServiceRequest {
        resource_spans: resources
            .iter()
            .map(|attributes| trace::ResourceSpans {
                resource: Some(resource::Resource {
                    attributes: kvs(attributes),
                    ..Default::default()
                }),
                scope_spans: vec![trace::ScopeSpans {
                    spans: vec![trace::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "e2e_span".into(),
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_100_000_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Every OTLP write route of the default table, with a protobuf body builder for its signal.
fn otlp_routes() -> Vec<(&'static str, fn(&[&[(&str, &str)]]) -> Vec<u8>)> {
    vec![
        ("/v1/metrics", otlp_proto_metrics),
        ("/v1/logs", otlp_proto_logs),
        ("/v1/traces", otlp_proto_traces),
        ("/api/v1/otlp/v1/metrics", otlp_proto_metrics),
        ("/otlp/v1/metrics", otlp_proto_metrics),
        ("/otlp/v1/logs", otlp_proto_logs),
    ]
}

const BARE: &[(&str, &str)] = &[("service.name", "a")];
const WITHIN: &[(&str, &str)] = &[("service.name", "b"), ("kube_namespace", "team-a")];
const OTHER: &[(&str, &str)] = &[("service.name", "c"), ("kube_namespace", "team-b")];
const AMBIGUOUS: &[(&str, &str)] = &[("kube.namespace", "team-a"), ("kube_namespace", "team-a")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_bodies_are_forced_through_the_filter() {
    let rig = Rig::start(&Mode::Filter(FAST.into())).await;
    let w = rig.writer.clone();

    // JSON: the resource without the namespace gains it; the one with it is kept; nothing else
    // in the body changes.
    let sent = otlp_json_logs(&[BARE, WITHIN]);
    let reply = rig
        .post(&w, "/v1/logs", JSON, "json-logs", sent.to_string())
        .await;
    assert_passed(&reply, "JSON logs");
    let got = rig.arrived_one("json-logs");
    assert!(
        got.header("content-type").starts_with(JSON),
        "{:?}",
        got.headers
    );
    let received: Value = serde_json::from_slice(&got.body).unwrap();
    for (i, r) in json_resources(&received).iter().enumerate() {
        assert_eq!(
            json_mapping(r),
            [(
                "kube_namespace".to_owned(),
                json!({"stringValue": "team-a"})
            )],
            "JSON resource {i}: {r}"
        );
    }
    assert_eq!(
        without_namespace(&received),
        without_namespace(&sent),
        "only the namespace changes"
    );

    let sent = otlp_json_metrics(&[BARE]);
    let reply = rig
        .post(&w, "/v1/metrics", JSON, "json-metrics", sent.to_string())
        .await;
    assert_passed(&reply, "JSON metrics");
    let received: Value = serde_json::from_slice(&rig.arrived_one("json-metrics").body).unwrap();
    assert_eq!(
        json_mapping(&json_resources(&received)[0]),
        [(
            "kube_namespace".to_owned(),
            json!({"stringValue": "team-a"})
        )],
        "{received}"
    );
    assert_eq!(without_namespace(&received), without_namespace(&sent));

    // JSON in another namespace (second resource): the whole request is refused.
    let reply = rig
        .post(
            &w,
            "/v1/metrics",
            JSON,
            "json-other",
            otlp_json_metrics(&[BARE, OTHER]).to_string(),
        )
        .await;
    assert_violation(&reply, "JSON team-b", "resource 1");
    rig.never_arrived("json-other");

    // Below the resource: a log record attribute that agrees passes as sent; one that maps to
    // the label with another value, or a scope attribute that does, refuses the request.
    let mut sent = otlp_json_logs(&[BARE]);
    sent["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "kube.namespace", "value": {"stringValue": "team-a"}}));
    let reply = rig
        .post(&w, "/v1/logs", JSON, "json-record-same", sent.to_string())
        .await;
    assert_passed(&reply, "record attribute kube.namespace=team-a");
    let received: Value =
        serde_json::from_slice(&rig.arrived_one("json-record-same").body).unwrap();
    assert_eq!(without_namespace(&received), without_namespace(&sent));

    let mut sent = otlp_json_logs(&[BARE]);
    sent["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "kube.namespace", "value": {"stringValue": "team-b"}}));
    let reply = rig
        .post(&w, "/v1/logs", JSON, "json-record-other", sent.to_string())
        .await;
    assert_violation(
        &reply,
        "record attribute kube.namespace=team-b",
        "resource 0",
    );
    rig.never_arrived("json-record-other");

    let mut request =
        logs_service::ExportLogsServiceRequest::decode(&otlp_proto_logs(&[BARE])[..]).unwrap();
    request.resource_logs[0].scope_logs[0].scope = Some(common::InstrumentationScope {
        name: "e2e".into(),
        attributes: kvs(&[("kube_namespace", "team-b")]),
        ..Default::default()
    });
    let reply = rig
        .post(
            &w,
            "/v1/logs",
            PROTOBUF,
            "proto-scope-other",
            request.encode_to_vec(),
        )
        .await;
    assert_violation(
        &reply,
        "scope attribute kube_namespace=team-b",
        "resource 0",
    );
    rig.never_arrived("proto-scope-other");

    // Two attributes mapping to the label: ambiguous, refused.
    let reply = rig
        .post(
            &w,
            "/v1/logs",
            JSON,
            "json-ambiguous",
            otlp_json_logs(&[AMBIGUOUS]).to_string(),
        )
        .await;
    assert!(
        matches!(reply.status, 400 | 403),
        "ambiguous: {} {}",
        reply.status,
        reply.text
    );
    rig.never_arrived("json-ambiguous");

    // Protobuf on every OTLP route (Prometheus's, Mimir's and Loki's too).
    for (path, build) in otlp_routes() {
        let marker = format!("proto{}", path.replace('/', "-"));
        let reply = rig
            .post(&w, path, PROTOBUF, &marker, build(&[BARE, WITHIN]))
            .await;
        assert_passed(&reply, path);
        let got = rig.arrived_one(&marker);
        assert_eq!(got.path, path);
        let resources = otlp_decode(&got);
        assert_eq!(resources.len(), 2, "{path}");
        for (i, (resource, payload)) in resources.iter().enumerate() {
            assert_eq!(
                mapping(&resource.attributes, "kube_namespace"),
                [("kube_namespace", "team-a")],
                "{path} resource {i}: {:?}",
                resource.attributes
            );
            assert_eq!(payload.len(), 1, "{path} resource {i}: payload kept");
        }
        assert_eq!(
            attribute(&resources[0].0.attributes, "service.name"),
            Some("a"),
            "{path}"
        );

        let marker = format!("proto-other{}", path.replace('/', "-"));
        let reply = rig
            .post(&w, path, PROTOBUF, &marker, build(&[WITHIN, OTHER]))
            .await;
        assert_violation(&reply, path, "resource 1");
        rig.never_arrived(&marker);
    }

    unsupported_and_unrestricted_otlp(&rig).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_bodies_are_checked_through_ext_authz() {
    let rig = Rig::start(&Mode::ExtAuthz).await;
    let w = rig.writer.clone();

    // Every resource within the policy: passes byte for byte.
    let sent = otlp_json_logs(&[WITHIN, &[("kube.namespace", "team-a")]]).to_string();
    let reply = rig
        .post(&w, "/v1/logs", JSON, "json-within", sent.clone())
        .await;
    assert_passed(&reply, "JSON within");
    assert_eq!(rig.arrived_one("json-within").body, sent.as_bytes());

    // One resource lacks the namespace, or has another: refused.
    for (marker, resources) in [
        ("json-bare", [WITHIN, BARE]),
        ("json-other", [WITHIN, OTHER]),
    ] {
        let reply = rig
            .post(
                &w,
                "/v1/metrics",
                JSON,
                marker,
                otlp_json_metrics(&resources).to_string(),
            )
            .await;
        assert_violation(&reply, marker, "resource 1");
        rig.never_arrived(marker);
    }

    for (path, build) in otlp_routes() {
        let marker = format!("proto{}", path.replace('/', "-"));
        let sent = build(&[WITHIN]);
        let reply = rig.post(&w, path, PROTOBUF, &marker, sent.clone()).await;
        assert_passed(&reply, path);
        let got = rig.arrived_one(&marker);
        assert_eq!(got.body, sent, "{path}: as sent");

        let marker = format!("proto-bare{}", path.replace('/', "-"));
        let reply = rig
            .post(&w, path, PROTOBUF, &marker, build(&[WITHIN, BARE]))
            .await;
        assert_violation(&reply, path, "resource 1");
        rig.never_arrived(&marker);
    }

    unsupported_and_unrestricted_otlp(&rig).await;
    rig.stop().await;
}

/// Both modes: an unknown content type from the restricted writer is 415 and never arrives; the
/// unrestricted writer's bodies, whatever they are, arrive byte-identical.
async fn unsupported_and_unrestricted_otlp(rig: &Rig) {
    for path in ["/v1/metrics", "/v1/logs", "/otlp/v1/logs"] {
        let marker = format!("plain{}", path.replace('/', "-"));
        let reply = rig
            .post(&rig.writer, path, "text/plain", &marker, "e2e_gauge 1\n")
            .await;
        assert_unsupported(&reply, path);
        rig.never_arrived(&marker);
    }
    // An encoding it cannot read: 415 too, never passed on unread.
    let reply = rig
        .post_with(
            &rig.writer,
            "/v1/metrics",
            &[("content-type", PROTOBUF), ("content-encoding", "br")],
            "otlp-br",
            otlp_proto_metrics(&[BARE]),
        )
        .await;
    assert_unsupported(&reply, "OTLP content-encoding br");
    rig.never_arrived("otlp-br");
    let json_body = otlp_json_logs(&[BARE, OTHER]).to_string();
    let proto_body = otlp_proto_metrics(&[BARE, OTHER]);
    for (marker, path, content_type, body) in [
        ("free-json", "/v1/logs", JSON, json_body.into_bytes()),
        ("free-proto", "/otlp/v1/metrics", PROTOBUF, proto_body),
        (
            "free-plain",
            "/v1/metrics",
            "text/plain",
            b"anything".to_vec(),
        ),
    ] {
        let reply = rig
            .post(&rig.free, path, content_type, marker, body.clone())
            .await;
        assert_passed(&reply, marker);
        assert_eq!(
            rig.arrived_one(marker).body,
            body,
            "{marker}: byte-identical"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Loki push

const PUSH: &str = "/loki/api/v1/push";

/// Parses a Loki stream selector `{name="value", ...}` (Go string escapes in values).
fn parse_selector(text: &str) -> BTreeMap<String, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a selector: {text:?}"));
    let mut out = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut name = String::new();
        while let Some(c) = chars
            .peek()
            .copied()
            .filter(|c| c.is_alphanumeric() || *c == '_')
        {
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        assert_eq!(chars.next(), Some('='), "{text:?}: `=` after {name}");
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        assert_eq!(chars.next(), Some('"'), "{text:?}: quoted value of {name}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(c) => value.push(c),
                    None => panic!("{text:?}: unterminated escape"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("{text:?}: unterminated value of {name}"),
            }
        }
        assert!(
            out.insert(name.clone(), value).is_none(),
            "{text:?}: {name} twice"
        );
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A Loki `PushRequest` with one stream per selector, two entries each.
fn loki_request(selectors: &[&str]) -> loki::PushRequest {
    loki::PushRequest {
        streams: selectors
            .iter()
            .enumerate()
            .map(|(i, selector)| loki::StreamAdapter {
                labels: (*selector).to_owned(),
                entries: (0..2)
                    .map(|j| loki::EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000 + j,
                            nanos: 7,
                        }),
                        line: format!("stream {i} line {j} level=info"),
                        structured_metadata: vec![loki::LabelPairAdapter {
                            name: "trace_id".into(),
                            value: format!("t{i}{j}"),
                        }],
                        parsed: vec![],
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: String::new(),
    }
}

/// The body Promtail sends: the snappy block format of the encoded request.
fn snappy(request: &loki::PushRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

fn unsnappy(body: &[u8]) -> loki::PushRequest {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .unwrap_or_else(|e| panic!("the upstream's body is not snappy: {e}"));
    loki::PushRequest::decode(&raw[..]).unwrap()
}

/// A Loki JSON push: one stream per label set, two values each.
fn loki_json(streams: &[&[(&str, &str)]]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .enumerate()
        .map(|(i, stream)| {
            json!({
                "stream": labels(stream),
                "values": [
                    ["1700000000000000007", format!("stream {i} line 0")],
                    ["1700000001000000007", format!("stream {i} line 1"), {"trace_id": "t1"}]
                ]
            })
        })
        .collect();
    json!({ "streams": streams })
}

const SEL_BARE: &str = r#"{app="api", pod="api-0"}"#;
const SEL_WITHIN: &str = r#"{app="web", kube_namespace="team-a"}"#;
const SEL_OTHER: &str = r#"{app="db", kube_namespace="team-b"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_push_is_forced_through_the_filter() {
    let rig = Rig::start(&Mode::Filter(FAST.into())).await;
    let w = rig.writer.clone();

    // Protobuf: every stream gets the namespace; entries are untouched.
    let sent = loki_request(&[SEL_BARE, SEL_WITHIN]);
    let reply = rig
        .post(&w, PUSH, PROTOBUF, "loki-proto", snappy(&sent))
        .await;
    assert_passed(&reply, "Loki protobuf");
    let got = rig.arrived_one("loki-proto");
    assert!(
        got.header("content-type").starts_with(PROTOBUF)
            && got.header("content-encoding").is_empty(),
        "as Promtail sends it: {:?}",
        got.headers
    );
    let received = unsnappy(&got.body);
    assert_eq!(received.streams.len(), 2);
    let expected = [
        labels(&[
            ("app", "api"),
            ("pod", "api-0"),
            ("kube_namespace", "team-a"),
        ]),
        labels(&[("app", "web"), ("kube_namespace", "team-a")]),
    ];
    for (i, (stream, expected)) in received.streams.iter().zip(&expected).enumerate() {
        assert_eq!(
            &parse_selector(&stream.labels),
            expected,
            "stream {i}: {:?}",
            stream.labels
        );
        assert_eq!(
            stream.entries, sent.streams[i].entries,
            "stream {i}: entries kept"
        );
    }

    // JSON: likewise.
    let sent = loki_json(&[
        &[("app", "api")],
        &[("app", "web"), ("kube_namespace", "team-a")],
    ]);
    let reply = rig
        .post(&w, PUSH, JSON, "loki-json", sent.to_string())
        .await;
    assert_passed(&reply, "Loki JSON");
    let received: Value = serde_json::from_slice(&rig.arrived_one("loki-json").body).unwrap();
    let streams = received["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{received}");
    assert_eq!(
        streams[0]["stream"],
        json!({"app": "api", "kube_namespace": "team-a"})
    );
    assert_eq!(
        streams[1]["stream"],
        json!({"app": "web", "kube_namespace": "team-a"})
    );
    for (i, stream) in streams.iter().enumerate() {
        assert_eq!(
            stream["values"], sent["streams"][i]["values"],
            "stream {i}: values kept"
        );
    }

    // A stream in another namespace: the whole push is refused, in either format.
    let reply = rig
        .post(
            &w,
            PUSH,
            PROTOBUF,
            "loki-proto-other",
            snappy(&loki_request(&[SEL_BARE, SEL_OTHER])),
        )
        .await;
    assert_violation(&reply, "Loki protobuf team-b", "stream 1");
    rig.never_arrived("loki-proto-other");
    let reply = rig
        .post(
            &w,
            PUSH,
            JSON,
            "loki-json-other",
            loki_json(&[&[("app", "api")], &[("kube_namespace", "team-b")]]).to_string(),
        )
        .await;
    assert_violation(&reply, "Loki JSON team-b", "stream 1");
    rig.never_arrived("loki-json-other");

    unsupported_and_unrestricted_loki(&rig).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_push_is_checked_through_ext_authz() {
    let rig = Rig::start(&Mode::ExtAuthz).await;
    let w = rig.writer.clone();

    // Every stream within the policy: passes byte for byte.
    let sent = snappy(&loki_request(&[
        SEL_WITHIN,
        r#"{kube_namespace="team-a",app="api"}"#,
    ]));
    let reply = rig
        .post(&w, PUSH, PROTOBUF, "loki-proto", sent.clone())
        .await;
    assert_passed(&reply, "Loki protobuf within");
    assert_eq!(rig.arrived_one("loki-proto").body, sent);
    let sent = loki_json(&[&[("app", "web"), ("kube_namespace", "team-a")]]).to_string();
    let reply = rig.post(&w, PUSH, JSON, "loki-json", sent.clone()).await;
    assert_passed(&reply, "Loki JSON within");
    assert_eq!(rig.arrived_one("loki-json").body, sent.as_bytes());

    // A stream without the namespace, or in another: refused, in either format.
    for (marker, selectors) in [
        ("loki-proto-bare", [SEL_WITHIN, SEL_BARE]),
        ("loki-proto-other", [SEL_WITHIN, SEL_OTHER]),
    ] {
        let reply = rig
            .post(
                &w,
                PUSH,
                PROTOBUF,
                marker,
                snappy(&loki_request(&selectors)),
            )
            .await;
        assert_violation(&reply, marker, "stream 1");
        rig.never_arrived(marker);
    }
    for (marker, stream) in [
        ("loki-json-bare", [("app", "api")]),
        ("loki-json-other", [("kube_namespace", "team-b")]),
    ] {
        let body = loki_json(&[&[("kube_namespace", "team-a")], &stream]).to_string();
        let reply = rig.post(&w, PUSH, JSON, marker, body).await;
        assert_violation(&reply, marker, "stream 1");
        rig.never_arrived(marker);
    }

    unsupported_and_unrestricted_loki(&rig).await;
    rig.stop().await;
}

/// Both modes: text/plain from the restricted writer is 415 and never arrives; the unrestricted
/// writer's pushes, in another namespace even, arrive byte-identical.
async fn unsupported_and_unrestricted_loki(rig: &Rig) {
    let reply = rig
        .post(&rig.writer, PUSH, "text/plain", "loki-plain", "a line\n")
        .await;
    assert_unsupported(&reply, "Loki text/plain");
    rig.never_arrived("loki-plain");
    let reply = rig
        .post_with(
            &rig.writer,
            PUSH,
            &[("content-type", PROTOBUF), ("content-encoding", "br")],
            "loki-br",
            snappy(&loki_request(&[SEL_BARE])),
        )
        .await;
    assert_unsupported(&reply, "Loki content-encoding br");
    rig.never_arrived("loki-br");

    let proto = snappy(&loki_request(&[SEL_BARE, SEL_OTHER]));
    let json_body = loki_json(&[&[("app", "api")], &[("kube_namespace", "team-b")]])
        .to_string()
        .into_bytes();
    for (marker, content_type, body) in [
        ("loki-free-proto", PROTOBUF, proto),
        ("loki-free-json", JSON, json_body),
    ] {
        let reply = rig
            .post(&rig.free, PUSH, content_type, marker, body.clone())
            .await;
        assert_passed(&reply, marker);
        assert_eq!(
            rig.arrived_one(marker).body,
            body,
            "{marker}: byte-identical"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies a wire-level reader could misread

/// A protobuf message body: `fields` (each an encoded message) under field number 1, repeated.
fn repeated_field_1(fields: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for field in fields {
        prost::encoding::bytes::encode(1, field, &mut body);
    }
    body
}

/// Both modes: an item with no resource or stream labels at all is forced (filter) or refused
/// (ext_authz); a field given twice, which a decoder would merge or let the last one win, is
/// refused whatever its values; a non-string attribute value for the label is refused; a
/// content type with parameters is read like the bare one.
async fn edge_bodies(rig: &Rig, filter: bool) {
    let w = rig.writer.clone();

    // An OTLP ResourceLogs without a resource, protobuf and JSON.
    let mut request =
        logs_service::ExportLogsServiceRequest::decode(&otlp_proto_logs(&[BARE])[..]).unwrap();
    request.resource_logs[0].resource = None;
    let reply = rig
        .post(
            &w,
            "/v1/logs",
            PROTOBUF,
            "no-resource",
            request.encode_to_vec(),
        )
        .await;
    let mut json_body = otlp_json_logs(&[BARE]);
    json_body["resourceLogs"][0]
        .as_object_mut()
        .unwrap()
        .remove("resource");
    let json_reply = rig
        .post(
            &w,
            "/v1/logs",
            JSON,
            "no-resource-json",
            json_body.to_string(),
        )
        .await;
    // A Loki JSON stream without its `stream` object.
    let loki_body = json!({"streams": [{"values": [["1700000000000000000", "x"]]}]});
    let loki_reply = rig
        .post(&w, PUSH, JSON, "no-stream", loki_body.to_string())
        .await;
    if filter {
        assert_passed(&reply, "no resource");
        let resources = otlp_decode(&rig.arrived_one("no-resource"));
        assert_eq!(
            mapping(&resources[0].0.attributes, "kube_namespace"),
            [("kube_namespace", "team-a")],
            "a resource is added: {:?}",
            resources[0].0.attributes
        );
        assert_passed(&json_reply, "no resource (JSON)");
        let received: Value =
            serde_json::from_slice(&rig.arrived_one("no-resource-json").body).unwrap();
        assert_eq!(
            json_mapping(&json_resources(&received)[0]),
            [(
                "kube_namespace".to_owned(),
                json!({"stringValue": "team-a"})
            )],
            "{received}"
        );
        assert_passed(&loki_reply, "no stream");
        let received: Value = serde_json::from_slice(&rig.arrived_one("no-stream").body).unwrap();
        assert_eq!(
            received["streams"][0]["stream"],
            json!({"kube_namespace": "team-a"}),
            "{received}"
        );
    } else {
        assert_violation(&reply, "no resource", "resource 0");
        rig.never_arrived("no-resource");
        assert_violation(&json_reply, "no resource (JSON)", "resource 0");
        rig.never_arrived("no-resource-json");
        assert_violation(&loki_reply, "no stream", "stream 0");
        rig.never_arrived("no-stream");
    }

    // Fields given twice: refused, never arrive. Loki: a stream's `labels` twice (protobuf keeps
    // the last); OTLP: a ResourceLogs' `resource` twice (protobuf merges them); JSON: a key twice.
    let entries = loki_request(&[SEL_BARE]).streams[0].entries.clone();
    let stream = [
        loki::StreamAdapter {
            labels: r#"{kube_namespace="team-a"}"#.into(),
            entries,
            hash: 0,
        }
        .encode_to_vec(),
        loki::StreamAdapter {
            labels: r#"{kube_namespace="team-b"}"#.into(),
            ..Default::default()
        }
        .encode_to_vec(),
    ]
    .concat();
    let loki_twice = snap::raw::Encoder::new()
        .compress_vec(&repeated_field_1(&[stream]))
        .unwrap();
    let scope_logs = logs_service::ExportLogsServiceRequest::decode(&otlp_proto_logs(&[BARE])[..])
        .unwrap()
        .resource_logs[0]
        .scope_logs
        .clone();
    let resource_logs = [
        logs::ResourceLogs {
            resource: Some(resource::Resource {
                attributes: kvs(WITHIN),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        logs::ResourceLogs {
            resource: Some(resource::Resource {
                attributes: kvs(&[("kube.namespace", "team-b")]),
                ..Default::default()
            }),
            scope_logs,
            ..Default::default()
        }
        .encode_to_vec(),
    ]
    .concat();
    let otlp_twice = repeated_field_1(&[resource_logs]);
    let loki_json_twice = r#"{"streams":[{"stream":{"kube_namespace":"team-a","kube_namespace":"team-b"},"values":[["1700000000000000000","x"]]}]}"#;
    let otlp_json_twice = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"kube_namespace","value":{"stringValue":"team-a"}}]},"resource":{"attributes":[{"key":"kube_namespace","value":{"stringValue":"team-b"}}]},"scopeLogs":[]}]}"#;
    for (marker, path, content_type, body) in [
        ("loki-labels-twice", PUSH, PROTOBUF, loki_twice),
        ("otlp-resource-twice", "/v1/logs", PROTOBUF, otlp_twice),
        (
            "loki-key-twice",
            PUSH,
            JSON,
            loki_json_twice.as_bytes().to_vec(),
        ),
        (
            "otlp-key-twice",
            "/v1/logs",
            JSON,
            otlp_json_twice.as_bytes().to_vec(),
        ),
    ] {
        let reply = rig.post(&w, path, content_type, marker, body).await;
        assert!(
            matches!(reply.status, 400 | 403),
            "{marker}: refused: {} {}",
            reply.status,
            reply.text
        );
        rig.never_arrived(marker);
    }

    // The label's attribute with a value that is not a string: refused.
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"kube_namespace","value":{"intValue":"5"}}]},"scopeLogs":[]}]}"#;
    let reply = rig.post(&w, "/v1/logs", JSON, "int-value", body).await;
    assert_violation(&reply, "intValue", "resource 0");
    rig.never_arrived("int-value");

    // `application/json; charset=utf-8` is JSON.
    let sent = otlp_json_logs(&[WITHIN]);
    let reply = rig
        .post(
            &w,
            "/v1/logs",
            "application/json; charset=utf-8",
            "charset",
            sent.to_string(),
        )
        .await;
    assert_passed(&reply, "charset");
    let received: Value = serde_json::from_slice(&rig.arrived_one("charset").body).unwrap();
    assert_eq!(received, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_bodies_through_the_filter() {
    let rig = Rig::start(&Mode::Filter(FAST.into())).await;
    edge_bodies(&rig, true).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_bodies_through_ext_authz() {
    let rig = Rig::start(&Mode::ExtAuthz).await;
    edge_bodies(&rig, false).await;
    rig.stop().await;
}
