//! Write bodies of every format (remote write 1.0 and 2.0, OTLP protobuf and JSON for each
//! signal, Loki push protobuf and JSON) under four label policies: decoded, checked, forced,
//! and the forced body decoded again with the prost messages of the vendored protos.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tollgate_core::Policy;
use tollgate_core::write::{Signal, WriteFormat, WriteLimits, check, force, forced_labels};
use tollgate_formats::{loki, otlp, remote_write_v1 as rw1, remote_write_v2 as rw2};

const POLICIES: &[&str] = &[
    r#"{kube_namespace="team-a"}"#,
    r#"{kube_namespace="team-a", env=~"prod|dev"}"#,
    r#"{team="a"} or {team="b"}"#,
    r#"{secret!="yes"}"#,
];

const SIGNALS: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Traces];

fn format(pick: u8) -> WriteFormat {
    let signal = SIGNALS[usize::from(pick / 6) % 3];
    match pick % 6 {
        0 => WriteFormat::RemoteWrite1,
        1 => WriteFormat::RemoteWrite2,
        2 => WriteFormat::OtlpProtobuf(signal),
        3 => WriteFormat::OtlpJson(signal),
        4 => WriteFormat::LokiProtobuf,
        _ => WriteFormat::LokiJson,
    }
}

fn snappy_framed(format: WriteFormat) -> bool {
    matches!(
        format,
        WriteFormat::RemoteWrite1 | WriteFormat::RemoteWrite2 | WriteFormat::LokiProtobuf
    )
}

fn unsnappy(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("a forced body is valid snappy")
}

/// Every item's labels (resource attributes for OTLP) as the independent decoder reads them;
/// `None` when it refuses the body (the filter passes fields it does not read as they came, so
/// an invalid body stays invalid).
fn decoded_labels(format: WriteFormat, body: &[u8]) -> Option<Vec<Vec<(String, String)>>> {
    let plain = if snappy_framed(format) {
        snap::raw::Decoder::new().decompress_vec(body).ok()?
    } else {
        body.to_vec()
    };
    Some(match format {
        WriteFormat::RemoteWrite1 => rw1::WriteRequest::decode(&*plain)
            .ok()?
            .timeseries
            .into_iter()
            .map(|s| s.labels.into_iter().map(|l| (l.name, l.value)).collect())
            .collect(),
        WriteFormat::RemoteWrite2 => {
            let request = rw2::Request::decode(&*plain).ok()?;
            let symbol = |r: &u32| request.symbols.get(*r as usize).cloned();
            let mut all = Vec::new();
            for series in &request.timeseries {
                let mut labels = Vec::new();
                for pair in series.labels_refs.chunks(2) {
                    labels.push((symbol(&pair[0])?, symbol(pair.get(1)?)?));
                }
                all.push(labels);
            }
            all
        }
        WriteFormat::OtlpProtobuf(Signal::Logs) => {
            otlp::logs_service::ExportLogsServiceRequest::decode(&*plain)
                .ok()?
                .resource_logs
                .into_iter()
                .map(|r| attributes(r.resource))
                .collect()
        }
        WriteFormat::LokiProtobuf => loki::PushRequest::decode(&*plain)
            .ok()?
            .streams
            .into_iter()
            .map(|s| tollgate_core::promql::parse_label_set(&s.labels).ok())
            .collect::<Option<_>>()?,
        _ => Vec::new(),
    })
}

fn attributes(resource: Option<otlp::resource::Resource>) -> Vec<(String, String)> {
    resource
        .into_iter()
        .flat_map(|r| r.attributes)
        .filter_map(|kv| match kv.value?.value? {
            // Keys compared as labels: Prometheus's translation of every other character to `_`.
            otlp::common::any_value::Value::StringValue(s) => Some((
                kv.key
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect(),
                s,
            )),
            _ => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    // Byte 0 picks the policy, byte 1 the format; the rest is the body, compressed here for the
    // snappy formats so the fuzzer searches the protobuf, not snappy.
    let [pick, format_pick, body @ ..] = data else {
        return;
    };
    let Ok(policy) = Policy::parse(POLICIES[usize::from(*pick) % POLICIES.len()]) else {
        return;
    };
    let format = format(*format_pick);
    let sent = if snappy_framed(format) {
        snap::raw::Encoder::new()
            .compress_vec(body)
            .expect("snappy compresses")
    } else {
        body.to_vec()
    };
    let limits = WriteLimits::default();
    let checked = check(format, &policy, &sent, &limits);
    let Ok(forced) = force(format, &policy, &sent, &limits) else {
        return;
    };
    // What the check accepted, forcing leaves alone (a rewrite changes labels only when one
    // was missing, and the check's policy needs every forced label).
    let forced = match forced {
        Some(forced) => forced,
        None => sent.clone(),
    };
    // A forced body passes the check, carries every forced label, and forcing it again
    // changes nothing.
    assert!(
        check(format, &policy, &forced, &limits).is_ok(),
        "a forced body fails the check"
    );
    let decodable = decoded_labels(format, &sent).is_some();
    let after = decoded_labels(format, &forced);
    assert!(
        !decodable || after.is_some(),
        "a body the independent decoder reads is unreadable after forcing"
    );
    for labels in after.unwrap_or_default() {
        for (name, value) in forced_labels(&policy) {
            assert!(
                labels.iter().any(|(n, v)| n == name && v == value),
                "{name}={value} missing from {labels:?}"
            );
        }
        if matches!(
            format,
            WriteFormat::RemoteWrite1 | WriteFormat::RemoteWrite2
        ) {
            assert!(
                labels.windows(2).all(|w| w[0].0 <= w[1].0),
                "labels not sorted: {labels:?}"
            );
        }
    }
    match force(format, &policy, &forced, &limits).expect("forcing twice") {
        None => {}
        Some(again) if snappy_framed(format) => {
            assert_eq!(unsnappy(&again), unsnappy(&forced), "forcing is idempotent")
        }
        Some(again) => assert_eq!(again, forced, "forcing is idempotent"),
    }
    if checked.is_ok() && decodable {
        assert_eq!(
            decoded_labels(format, &sent).map(|items| items.len()),
            decoded_labels(format, &forced).map(|items| items.len()),
            "forcing keeps every item"
        );
    }
});
