//! Every format against the prost messages of its vendored proto (crates/formats), the
//! independent encoder and decoder: bodies are built with them and read back with them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::wire::{encode_bytes, encode_key};
use super::*;
use prost::Message;
use prost::encoding::encode_varint;
use tollgate_formats::{loki, otlp, remote_write_v1 as rw1, remote_write_v2 as rw2};

fn p(text: &str) -> Policy {
    Policy::parse(text).unwrap()
}

fn limits() -> WriteLimits {
    WriteLimits::default()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn unsnappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(bytes).unwrap()
}

fn at(kind: ItemKind, index: usize) -> Item {
    Item { kind, index }
}

// ---- remote write 1.0 ----

fn rw1_body(series: &[&[(&str, &str)]]) -> Vec<u8> {
    let request = rw1::WriteRequest {
        timeseries: series
            .iter()
            .map(|labels| rw1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| rw1::Label {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                samples: vec![rw1::Sample {
                    value: 7.0,
                    timestamp: 1000,
                }],
            })
            .collect(),
    };
    snappy(&request.encode_to_vec())
}

fn rw1_labels(body: &[u8]) -> Vec<Vec<(String, String)>> {
    rw1::WriteRequest::decode(&*unsnappy(body))
        .unwrap()
        .timeseries
        .into_iter()
        .map(|s| s.labels.into_iter().map(|l| (l.name, l.value)).collect())
        .collect()
}

#[test]
fn media_types() {
    let rw = WriteRoute::RemoteWrite;
    let v2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    assert_eq!(
        rw.format(Some("application/x-protobuf"), Some("snappy")),
        Ok(WriteFormat::RemoteWrite1)
    );
    assert_eq!(
        rw.format(
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("snappy")
        ),
        Ok(WriteFormat::RemoteWrite1)
    );
    assert_eq!(
        rw.format(Some(v2), Some("snappy")),
        Ok(WriteFormat::RemoteWrite2)
    );
    for (ct, ce) in [
        (Some("application/x-protobuf"), None),
        (Some("application/x-protobuf"), Some("gzip")),
        (Some("application/json"), Some("snappy")),
        (None, Some("snappy")),
        (
            Some("application/x-protobuf;proto=other.Request"),
            Some("snappy"),
        ),
    ] {
        assert!(rw.format(ct, ce).is_err(), "{ct:?} {ce:?}");
    }
    let logs = WriteRoute::Otlp(Signal::Logs);
    assert_eq!(
        logs.format(Some("application/json; charset=utf-8"), None),
        Ok(WriteFormat::OtlpJson(Signal::Logs))
    );
    assert_eq!(
        logs.format(Some("application/x-protobuf"), Some("identity")),
        Ok(WriteFormat::OtlpProtobuf(Signal::Logs))
    );
    assert!(
        logs.format(Some("application/x-protobuf"), Some("deflate"))
            .is_err()
    );
    assert!(logs.format(Some("text/plain"), None).is_err());
    assert_eq!(
        WriteRoute::LokiPush.format(Some("application/x-protobuf"), None),
        Ok(WriteFormat::LokiProtobuf)
    );
    assert_eq!(
        WriteRoute::LokiPush.format(Some("application/json"), None),
        Ok(WriteFormat::LokiJson)
    );
    assert!(
        WriteRoute::LokiPush
            .format(Some("application/json"), Some("br"))
            .is_err()
    );
}

#[test]
fn remote_write_1_forcing_adds_sorted_labels_and_keeps_samples() {
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let body = rw1_body(&[
        &[("__name__", "up"), ("job", "x")],
        &[("__name__", "up"), ("kube_namespace", "team-a")],
        &[("__name__", "up"), ("kube_namespace", ""), ("zone", "1")],
    ]);
    let forced = force(WriteFormat::RemoteWrite1, &policy, &body, &limits())
        .unwrap()
        .unwrap();
    assert_eq!(
        rw1_labels(&forced),
        [
            pairs(&[
                ("__name__", "up"),
                ("job", "x"),
                ("kube_namespace", "team-a")
            ]),
            pairs(&[("__name__", "up"), ("kube_namespace", "team-a")]),
            pairs(&[
                ("__name__", "up"),
                ("kube_namespace", "team-a"),
                ("zone", "1")
            ]),
        ]
    );
    assert_eq!(
        decode_labels_for_tests(&forced).unwrap(),
        rw1_labels(&forced)
    );
    let decoded = rw1::WriteRequest::decode(&*unsnappy(&forced)).unwrap();
    assert!(decoded.timeseries.iter().all(|s| s.samples
        == [rw1::Sample {
            value: 7.0,
            timestamp: 1000
        }]));
    // Forcing again changes nothing; and ext_authz accepts the forced body.
    let again = force(WriteFormat::RemoteWrite1, &policy, &forced, &limits())
        .unwrap()
        .unwrap();
    assert_eq!(unsnappy(&again), unsnappy(&forced));
    assert!(check(WriteFormat::RemoteWrite1, &policy, &forced, &limits()).is_ok());
}

#[test]
fn remote_write_1_refusals() {
    let rw = WriteFormat::RemoteWrite1;
    let policy = p(r#"{kube_namespace="team-a", env=~"prod|dev"}"#);
    let other = rw1_body(&[
        &[("__name__", "up"), ("env", "prod")],
        &[("env", "prod"), ("kube_namespace", "team-b")],
    ]);
    let err = force(rw, &policy, &other, &limits()).unwrap_err();
    assert_eq!(
        err,
        WriteError::ForcedLabelConflict {
            at: at(ItemKind::Series, 1),
            label: "kube_namespace".into()
        }
    );
    assert!(!err.to_string().contains("team-b"), "no other value: {err}");
    assert_eq!(err.status(), 403);

    let outside = rw1_body(&[&[("__name__", "up"), ("env", "test")]]);
    assert!(matches!(
        force(rw, &policy, &outside, &limits()),
        Err(WriteError::OutsidePolicy {
            at: Item { index: 0, .. },
            ..
        })
    ));
    let unforced = rw1_body(&[&[("__name__", "up"), ("env", "prod")]]);
    assert!(matches!(
        check(rw, &policy, &unforced, &limits()),
        Err(WriteError::OutsidePolicy { .. })
    ));
    let duplicate = rw1_body(&[&[("kube_namespace", "team-a"), ("kube_namespace", "team-b")]]);
    assert!(matches!(
        check(rw, &policy, &duplicate, &limits()),
        Err(WriteError::DuplicateLabel { .. })
    ));

    let or_policy = p(r#"{team="a"} or {team="b"}"#);
    assert!(forced_labels(&or_policy).is_empty());
    let b = rw1_body(&[&[("team", "b")], &[("team", "a")]]);
    assert!(force(rw, &or_policy, &b, &limits()).is_ok());
    let c = rw1_body(&[&[("team", "b")], &[("team", "c")]]);
    assert!(matches!(
        force(rw, &or_policy, &c, &limits()),
        Err(WriteError::OutsidePolicy {
            at: Item { index: 1, .. },
            ..
        })
    ));

    assert!(matches!(
        check(rw, &policy, b"not snappy at all", &limits()),
        Err(WriteError::Snappy(_)) | Err(WriteError::Protobuf { .. })
    ));
    let garbage = snappy(&[0x0a, 0xff]);
    assert!(matches!(
        check(rw, &policy, &garbage, &limits()),
        Err(WriteError::Protobuf { .. })
    ));
    let tight = WriteLimits {
        max_items: 1,
        ..limits()
    };
    assert_eq!(
        check(rw, &or_policy, &b, &tight),
        Err(WriteError::TooManyItems {
            kind: ItemKind::Series,
            max: 1
        })
    );
    let tiny = WriteLimits {
        max_decoded_bytes: 4,
        ..limits()
    };
    assert!(matches!(
        check(rw, &or_policy, &b, &tiny),
        Err(WriteError::DecodedTooLarge { .. })
    ));
    let small = WriteLimits {
        max_body_bytes: 4,
        ..limits()
    };
    assert_eq!(check(rw, &or_policy, &b, &small).unwrap_err().status(), 413);
}

/// The fast path remembers that the last series' policy labels passed: every series whose
/// values differ in any way (a value, a missing or an extra label) is judged again, in both modes.
#[test]
fn remote_write_1_every_changed_series_is_judged_again() {
    let rw = WriteFormat::RemoteWrite1;
    let policy = p(r#"{kube_namespace="team-a", env=~"prod|dev"}"#);
    let ok: &[(&str, &str)] = &[("env", "prod"), ("kube_namespace", "team-a"), ("x", "1")];
    let cases: [(&[(&str, &str)], bool); 7] = [
        (
            &[("env", "prod"), ("kube_namespace", "team-a"), ("x", "2")],
            true,
        ),
        (&[("env", "dev"), ("kube_namespace", "team-a")], true),
        (&[("env", "test"), ("kube_namespace", "team-a")], false),
        (&[("env", "prod"), ("kube_namespace", "team-b")], false),
        (&[("kube_namespace", "team-a")], false),
        (&[("env", "prod"), ("x", "1")], false),
        (
            &[
                ("env", "prod"),
                ("kube_namespace", "team-a"),
                ("kube_namespace2", "x"),
            ],
            true,
        ),
    ];
    for (second, passes) in cases {
        // After a passing series, and after a passing series twice (the remembered verdict).
        for (body, index) in [
            (rw1_body(&[ok, second, ok]), 1),
            (rw1_body(&[ok, ok, second]), 2),
        ] {
            let checked = check(rw, &policy, &body, &limits());
            let forced = force(rw, &p(r#"{env=~"prod|dev"}"#), &body, &limits());
            if passes {
                assert_eq!(checked, Ok(()), "{second:?}");
                assert!(forced.is_ok(), "{second:?}");
            } else {
                assert!(
                    matches!(checked, Err(WriteError::OutsidePolicy { at: Item { index: i, .. }, .. }) if i == index),
                    "{second:?}: {checked:?}"
                );
            }
        }
    }
    // Forcing: the forced label joins what is judged, the remembered verdict included.
    let force_ns = p(r#"{kube_namespace="team-a", env=~"prod|dev"}"#);
    let body = rw1_body(&[&[("env", "prod")], &[("env", "prod")], &[("env", "test")]]);
    assert!(matches!(
        force(rw, &force_ns, &body, &limits()),
        Err(WriteError::OutsidePolicy {
            at: Item { index: 2, .. },
            ..
        })
    ));
    let body = rw1_body(&[&[("env", "prod")], &[("env", "prod")], &[("env", "dev")]]);
    assert!(force(rw, &force_ns, &body, &limits()).unwrap().is_some());
}

#[test]
fn remote_write_1_unknown_fields_survive() {
    // A series with an exemplar-like field 3 and a histogram-like field 4, and a request with
    // metadata (field 3): all kept.
    let mut ts = Vec::new();
    let mut label = Vec::new();
    encode_bytes(1, b"job", &mut label);
    encode_bytes(2, b"x", &mut label);
    encode_bytes(1, &label, &mut ts);
    encode_bytes(3, b"exemplar-bytes", &mut ts);
    encode_bytes(4, b"histogram-bytes", &mut ts);
    let mut body = Vec::new();
    encode_bytes(1, &ts, &mut body);
    encode_bytes(3, b"metadata-bytes", &mut body);
    let forced = force(
        WriteFormat::RemoteWrite1,
        &p(r#"{ns="a"}"#),
        &snappy(&body),
        &limits(),
    )
    .unwrap()
    .unwrap();
    let plain = unsnappy(&forced);
    for kept in ["exemplar-bytes", "histogram-bytes", "metadata-bytes"] {
        assert!(
            plain.windows(kept.len()).any(|w| w == kept.as_bytes()),
            "{kept} kept"
        );
    }
}

/// A body read as one version of remote write carries none of the other's fields: an
/// upstream that reads the other version (by its own reading of `Content-Type`, or because it
/// knows only 1.0) would write those series unconfined.
#[test]
fn remote_write_refuses_the_other_versions_series() {
    let policy = p(r#"{ns="a"}"#);
    let mut v1 = unsnappy(&rw1_body(&[&[("__name__", "up"), ("ns", "a")]]));
    let v2_series = unsnappy(&rw2_body(&[&[("__name__", "evil"), ("ns", "other")]]));
    v1.extend_from_slice(&v2_series);
    let mut v2 = unsnappy(&rw2_body(&[&[("__name__", "up"), ("ns", "a")]]));
    encode_bytes(1, b"\x0a\x0b\x0a\x03job\x12\x04evil", &mut v2);
    for (format, body) in [
        (WriteFormat::RemoteWrite1, &v1),
        (WriteFormat::RemoteWrite2, &v2),
    ] {
        for result in [
            force(format, &policy, &snappy(body), &limits()).map(|_| ()),
            check(format, &policy, &snappy(body), &limits()),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.status(), 400, "{format:?}: {err}");
            assert!(err.to_string().contains("field in a"), "{format:?}: {err}");
        }
    }
}

/// The fast path (sorted labels) and the general one (the same labels reversed) agree: on the
/// bytes they write whatever follows the labels (fields the fast path skips by hand or leaves to
/// the general walk), and on the conflict they report (the first of the policy's forced labels).
#[test]
fn remote_write_1_fast_and_general_paths_agree() {
    let rw = WriteFormat::RemoteWrite1;
    let label = |name: &str, value: &str| {
        rw1::Label {
            name: name.into(),
            value: value.into(),
        }
        .encode_to_vec()
    };
    let series_body = |labels: &[(&str, &str)], rest: &[u8]| {
        let mut series = Vec::new();
        for (name, value) in labels {
            encode_bytes(1, &label(name, value), &mut series);
        }
        series.extend_from_slice(rest);
        let mut body = Vec::new();
        encode_bytes(1, &series, &mut body);
        snappy(&body)
    };
    let sample = rw1::Sample {
        value: 1.5,
        timestamp: 9,
    }
    .encode_to_vec();
    let mut rests: Vec<Vec<u8>> = vec![Vec::new()];
    let mut samples = Vec::new();
    encode_bytes(2, &sample, &mut samples);
    encode_bytes(2, &sample, &mut samples);
    rests.push(samples.clone());
    // A two-byte length, a varint field, a field number above 15 (a two-byte key).
    let mut long = samples.clone();
    encode_bytes(3, &[7; 200], &mut long);
    rests.push(long);
    let mut varint = samples.clone();
    encode_key(5, 0, &mut varint);
    encode_varint(300, &mut varint);
    rests.push(varint);
    let mut high = samples.clone();
    encode_bytes(16, b"later schema", &mut high);
    rests.push(high);
    let policy = p(r#"{kube_namespace="team-a", job=~"node|api"}"#);
    let sorted = [("__name__", "up"), ("job", "node"), ("zone", "z")];
    let mut reversed = sorted;
    reversed.reverse();
    for rest in &rests {
        let fast = force(rw, &policy, &series_body(&sorted, rest), &limits())
            .unwrap()
            .unwrap();
        let general = force(rw, &policy, &series_body(&reversed, rest), &limits())
            .unwrap()
            .unwrap();
        assert_eq!(unsnappy(&fast), unsnappy(&general), "rest {rest:?}");
        assert_eq!(
            rw1_labels(&fast),
            [pairs(&[
                ("__name__", "up"),
                ("job", "node"),
                ("kube_namespace", "team-a"),
                ("zone", "z")
            ])]
        );
        assert!(unsnappy(&fast).ends_with(rest));
        assert_eq!(check(rw, &policy, &fast, &limits()), Ok(()));
    }
    // A label after the samples (next to them, or after a varint field): the general path
    // reads it, wherever the fast path stopped.
    let mut after_varint = samples.clone();
    encode_key(5, 0, &mut after_varint);
    encode_varint(1, &mut after_varint);
    for mut label_after in [samples.clone(), after_varint] {
        encode_bytes(1, &label("a", "1"), &mut label_after);
        let forced = force(rw, &policy, &series_body(&sorted, &label_after), &limits())
            .unwrap()
            .unwrap();
        assert_eq!(
            rw1_labels(&forced),
            [pairs(&[
                ("__name__", "up"),
                ("a", "1"),
                ("job", "node"),
                ("kube_namespace", "team-a"),
                ("zone", "z")
            ])]
        );
    }
    // A field cut short after the labels is refused, as the general walk refuses it.
    let mut cut = samples.clone();
    cut.extend_from_slice(&[0x12, 0x20, 1, 2, 3]);
    for refused in [
        force(rw, &policy, &series_body(&sorted, &cut), &limits()).map(|_| ()),
        check(rw, &policy, &series_body(&sorted, &cut), &limits()),
    ] {
        assert!(
            matches!(refused, Err(WriteError::Protobuf { .. })),
            "{refused:?}"
        );
    }
    // A `Label` with a field after its value (a later schema's) is not the canonical form: its
    // value is what protobuf reads, not the bytes up to the label's end.
    let mut extended = label("kube_namespace", "team-a");
    encode_bytes(3, b"later", &mut extended);
    let mut series = Vec::new();
    encode_bytes(1, &label("job", "node"), &mut series);
    encode_bytes(1, &extended, &mut series);
    series.extend_from_slice(&samples);
    let mut body = Vec::new();
    encode_bytes(1, &series, &mut body);
    assert_eq!(check(rw, &policy, &snappy(&body), &limits()), Ok(()));
    let forced = force(rw, &policy, &snappy(&body), &limits())
        .unwrap()
        .unwrap();
    assert_eq!(
        rw1_labels(&forced),
        [pairs(&[("job", "node"), ("kube_namespace", "team-a")])]
    );
    assert!(unsnappy(&forced).windows(5).any(|w| w == b"later"));
    // Conflicts: the first forced label (by name: a selector keeps its matchers sorted) is the
    // one reported, also when a name is forced twice.
    for (policy, labels, conflict) in [
        (r#"{b="2", a="1"}"#, [("a", "x"), ("b", "y")], "a"),
        (r#"{a="1", b="2"}"#, [("a", "x"), ("b", "y")], "a"),
        (r#"{a="1", b="2"}"#, [("a", "1"), ("b", "y")], "b"),
        (r#"{a="1", a="2"}"#, [("a", "1"), ("c", "y")], "a"),
        (r#"{a="1", a="2"}"#, [("a", ""), ("c", "y")], "a"),
        (r#"{a="1", a="2"}"#, [("b", "x"), ("c", "y")], "a"),
        (r#"{c="1", c="2"}"#, [("a", "x"), ("b", "y")], "c"),
    ] {
        let mut reversed = labels;
        reversed.reverse();
        for labels in [labels, reversed] {
            assert_eq!(
                force(rw, &p(policy), &series_body(&labels, &samples), &limits()),
                Err(WriteError::ForcedLabelConflict {
                    at: at(ItemKind::Series, 0),
                    label: conflict.into()
                }),
                "{policy} {labels:?}"
            );
        }
    }
}

// ---- remote write 2.0 ----

fn rw2_body(series: &[&[(&str, &str)]]) -> Vec<u8> {
    let mut symbols = vec![String::new(), "help text".to_owned()];
    let mut index = |s: &str| match symbols.iter().position(|x| x == s) {
        Some(i) => i as u32,
        None => {
            symbols.push(s.to_owned());
            (symbols.len() - 1) as u32
        }
    };
    let timeseries = series
        .iter()
        .map(|labels| rw2::TimeSeries {
            labels_refs: labels
                .iter()
                .flat_map(|(n, v)| [index(n), index(v)])
                .collect(),
            samples: vec![rw2::Sample {
                value: 1.5,
                timestamp: 10,
            }],
            metadata: Some(rw2::Metadata {
                r#type: 2,
                help_ref: 1,
                unit_ref: 0,
            }),
            ..Default::default()
        })
        .collect();
    snappy(
        &rw2::Request {
            symbols,
            timeseries,
        }
        .encode_to_vec(),
    )
}

fn rw2_decode(body: &[u8]) -> (rw2::Request, Vec<Vec<(String, String)>>) {
    let request = rw2::Request::decode(&*unsnappy(body)).unwrap();
    let labels = request
        .timeseries
        .iter()
        .map(|s| {
            s.labels_refs
                .chunks(2)
                .map(|pair| {
                    (
                        request.symbols[pair[0] as usize].clone(),
                        request.symbols[pair[1] as usize].clone(),
                    )
                })
                .collect()
        })
        .collect();
    (request, labels)
}

#[test]
fn remote_write_2_forces_through_the_symbol_table() {
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let body = rw2_body(&[
        &[("__name__", "up"), ("zone", "z")],
        &[("__name__", "up"), ("kube_namespace", "team-a")],
    ]);
    let forced = force(WriteFormat::RemoteWrite2, &policy, &body, &limits())
        .unwrap()
        .unwrap();
    let (request, labels) = rw2_decode(&forced);
    assert_eq!(
        labels,
        [
            pairs(&[
                ("__name__", "up"),
                ("kube_namespace", "team-a"),
                ("zone", "z")
            ]),
            pairs(&[("__name__", "up"), ("kube_namespace", "team-a")]),
        ]
    );
    // Existing references (metadata's help text) still point where they did.
    assert_eq!(request.symbols[0], "");
    for series in &request.timeseries {
        let help = series.metadata.as_ref().unwrap().help_ref as usize;
        assert_eq!(request.symbols[help], "help text");
        assert_eq!(series.samples.len(), 1);
    }
    assert!(check(WriteFormat::RemoteWrite2, &policy, &forced, &limits()).is_ok());
    assert!(matches!(
        check(WriteFormat::RemoteWrite2, &policy, &body, &limits()),
        Err(WriteError::OutsidePolicy { .. })
    ));
    let conflict = rw2_body(&[&[("kube_namespace", "team-b")]]);
    assert_eq!(
        force(WriteFormat::RemoteWrite2, &policy, &conflict, &limits())
            .unwrap_err()
            .status(),
        403
    );
}

#[test]
fn remote_write_2_malformed_references() {
    let policy = p(r#"{ns="a"}"#);
    let bad_ref = rw2::Request {
        symbols: vec![String::new(), "ns".into()],
        timeseries: vec![rw2::TimeSeries {
            labels_refs: vec![1, 9],
            ..Default::default()
        }],
    };
    let odd = rw2::Request {
        symbols: vec![String::new(), "ns".into()],
        timeseries: vec![rw2::TimeSeries {
            labels_refs: vec![1],
            ..Default::default()
        }],
    };
    let no_empty_first = rw2::Request {
        symbols: vec!["ns".into()],
        timeseries: vec![],
    };
    for request in [bad_ref, odd, no_empty_first] {
        let body = snappy(&request.encode_to_vec());
        let err = force(WriteFormat::RemoteWrite2, &policy, &body, &limits()).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
    // Unpacked labels_refs (wire type 0) are read like packed ones.
    let mut series = Vec::new();
    for r in [1u64, 2] {
        encode_key(1, 0, &mut series);
        encode_varint(r, &mut series);
    }
    let mut body = Vec::new();
    encode_bytes(4, b"", &mut body);
    encode_bytes(4, b"ns", &mut body);
    encode_bytes(4, b"b", &mut body);
    encode_bytes(5, &series, &mut body);
    assert_eq!(
        force(
            WriteFormat::RemoteWrite2,
            &policy,
            &snappy(&body),
            &limits()
        ),
        Err(WriteError::ForcedLabelConflict {
            at: at(ItemKind::Series, 0),
            label: "ns".into()
        })
    );
}

// ---- OTLP ----

fn kv(key: &str, value: &str) -> otlp::common::KeyValue {
    otlp::common::KeyValue {
        key: key.into(),
        value: Some(otlp::common::AnyValue {
            value: Some(otlp::common::any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(attributes: Vec<otlp::common::KeyValue>) -> Option<otlp::resource::Resource> {
    Some(otlp::resource::Resource {
        attributes,
        ..Default::default()
    })
}

fn logs_request(
    resources: Vec<Option<otlp::resource::Resource>>,
    record_attributes: Vec<otlp::common::KeyValue>,
) -> otlp::logs_service::ExportLogsServiceRequest {
    otlp::logs_service::ExportLogsServiceRequest {
        resource_logs: resources
            .into_iter()
            .map(|resource| otlp::logs::ResourceLogs {
                resource,
                scope_logs: vec![otlp::logs::ScopeLogs {
                    log_records: vec![otlp::logs::LogRecord {
                        attributes: record_attributes.clone(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn resource_strings(resource: &Option<otlp::resource::Resource>) -> Vec<(String, String)> {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(otlp::common::any_value::Value::StringValue(s)) => s.clone(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[test]
fn otlp_protobuf_forces_resource_attributes() {
    let format = WriteFormat::OtlpProtobuf(Signal::Logs);
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let request = logs_request(
        vec![
            resource(vec![kv("service.name", "api")]),
            None,
            resource(vec![kv("kube.namespace", "team-a")]),
        ],
        vec![kv("level", "info")],
    );
    let body = request.encode_to_vec();
    let forced = force(format, &policy, &body, &limits()).unwrap().unwrap();
    let decoded = otlp::logs_service::ExportLogsServiceRequest::decode(&*forced).unwrap();
    assert_eq!(
        resource_strings(&decoded.resource_logs[0].resource),
        pairs(&[("service.name", "api"), ("kube_namespace", "team-a")])
    );
    assert_eq!(
        resource_strings(&decoded.resource_logs[1].resource),
        pairs(&[("kube_namespace", "team-a")])
    );
    // Already within (through the dot-to-underscore mapping): left as sent.
    assert_eq!(decoded.resource_logs[2], request.resource_logs[2]);
    // Everything else kept.
    for (got, sent) in decoded.resource_logs.iter().zip(&request.resource_logs) {
        assert_eq!(got.scope_logs, sent.scope_logs);
    }
    assert!(check(format, &policy, &forced, &limits()).is_ok());
    assert!(matches!(
        check(format, &policy, &body, &limits()),
        Err(WriteError::OutsidePolicy {
            at: Item { index: 0, .. },
            ..
        })
    ));
    // Nothing to force: no rewrite.
    let within = logs_request(vec![resource(vec![kv("kube_namespace", "team-a")])], vec![]);
    assert_eq!(
        force(format, &policy, &within.encode_to_vec(), &limits()),
        Ok(None)
    );
}

#[test]
fn otlp_refusals() {
    let format = WriteFormat::OtlpProtobuf(Signal::Logs);
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let cases = [
        (
            logs_request(vec![resource(vec![kv("kube_namespace", "team-b")])], vec![]),
            "conflict",
        ),
        (
            logs_request(
                vec![resource(vec![
                    kv("kube.namespace", "team-a"),
                    kv("kube_namespace", "team-a"),
                ])],
                vec![],
            ),
            "two attributes for one label",
        ),
        (
            logs_request(
                vec![resource(vec![otlp::common::KeyValue {
                    key: "kube_namespace".into(),
                    value: Some(otlp::common::AnyValue {
                        value: Some(otlp::common::any_value::Value::IntValue(3)),
                    }),
                    ..Default::default()
                }])],
                vec![],
            ),
            "not a string",
        ),
        (
            logs_request(vec![resource(vec![])], vec![kv("kube.namespace", "team-b")]),
            "a log record attribute overriding the resource",
        ),
        (
            logs_request(
                vec![resource(vec![])],
                vec![kv("kube__namespace", "team-b")],
            ),
            "an attribute a receiver that folds runs of _ reads as the policy label",
        ),
        (
            logs_request(
                vec![resource(vec![kv("kube..namespace", "team-b")])],
                vec![],
            ),
            "a resource attribute folded to the policy label",
        ),
    ];
    for (request, why) in cases {
        let err = force(format, &policy, &request.encode_to_vec(), &limits()).unwrap_err();
        assert_eq!(err.status(), 403, "{why}: {err}");
        assert!(!err.to_string().contains("team-b"), "{why}: {err}");
    }
    // A deeper attribute repeating the resource's value is fine.
    let same = logs_request(vec![resource(vec![])], vec![kv("kube_namespace", "team-a")]);
    assert!(force(format, &policy, &same.encode_to_vec(), &limits()).is_ok());
    // Metrics: job and instance come from service.* attributes; refused.
    let job = p(r#"{job="a"}"#);
    let metrics = otlp::metrics_service::ExportMetricsServiceRequest::default();
    assert!(matches!(
        force(
            WriteFormat::OtlpProtobuf(Signal::Metrics),
            &job,
            &metrics.encode_to_vec(),
            &limits()
        ),
        Err(WriteError::PolicyNotEnforceable(_))
    ));
}

#[test]
fn otlp_metrics_and_traces_inner_attributes() {
    use otlp::metrics::{self as m, metric::Data};
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let point = |attrs| m::NumberDataPoint {
        attributes: attrs,
        exemplars: vec![m::Exemplar {
            filtered_attributes: vec![kv("kube_namespace", "team-b")],
            ..Default::default()
        }],
        ..Default::default()
    };
    let metrics = otlp::metrics_service::ExportMetricsServiceRequest {
        resource_metrics: vec![m::ResourceMetrics {
            resource: resource(vec![]),
            scope_metrics: vec![m::ScopeMetrics {
                metrics: vec![m::Metric {
                    name: "x".into(),
                    data: Some(Data::Sum(m::Sum {
                        data_points: vec![point(vec![])],
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let err = force(
        WriteFormat::OtlpProtobuf(Signal::Metrics),
        &policy,
        &metrics.encode_to_vec(),
        &limits(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::InnerConflict {
                place: "an exemplar attribute",
                ..
            }
        ),
        "{err}"
    );

    use otlp::trace as t;
    let traces = otlp::trace_service::ExportTraceServiceRequest {
        resource_spans: vec![t::ResourceSpans {
            resource: None,
            scope_spans: vec![t::ScopeSpans {
                spans: vec![t::Span {
                    name: "s".into(),
                    links: vec![t::span::Link {
                        attributes: vec![kv("kube/namespace", "x")],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let err = force(
        WriteFormat::OtlpProtobuf(Signal::Traces),
        &policy,
        &traces.encode_to_vec(),
        &limits(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::InnerConflict {
                place: "a span link attribute",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn otlp_json() {
    let format = WriteFormat::OtlpJson(Signal::Traces);
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"spans":[{"name":"s","attributes":[{"key":"http.method","value":{"stringValue":"GET"}}]}]}]},{"scope_spans":[]}]}"#;
    let forced = force(format, &policy, body, &limits()).unwrap().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&forced).unwrap();
    for resource in value["resourceSpans"].as_array().unwrap() {
        let attributes = resource["resource"]["attributes"].as_array().unwrap();
        assert!(
            attributes.contains(
                &serde_json::json!({"key":"kube_namespace","value":{"stringValue":"team-a"}})
            ),
            "{resource}"
        );
    }
    assert_eq!(
        value["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"],
        "s"
    );
    assert!(check(format, &policy, &forced, &limits()).is_ok());
    assert!(check(format, &policy, body, &limits()).is_err());

    let refused: &[(&[u8], u16)] = &[
        (br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"kube_namespace","value":{"stringValue":"team-b"}}]}}]}"#, 403),
        (br#"{"resourceSpans":[],"resource_spans":[]}"#, 400),
        (br#"{"resourceSpans":[{"resource":{"attributes":[],"attributes":[]}}]}"#, 400),
        (br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"kube_namespace","value":{"string_value":"team-a","intValue":"1"}}]}}]}"#, 403),
        (br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"events":[{"attributes":[{"key":"kube_namespace","value":{"stringValue":"b"}}]}]}]}]}]}"#, 403),
        (b"[1]", 400),
        (b"{", 400),
    ];
    for (body, status) in refused {
        let err = force(format, &policy, body, &limits()).unwrap_err();
        assert_eq!(
            err.status(),
            *status,
            "{}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---- Loki ----

fn loki_body(streams: &[(&str, &[(&str, &str)])]) -> Vec<u8> {
    let request = loki::PushRequest {
        streams: streams
            .iter()
            .map(|(labels, metadata)| loki::StreamAdapter {
                labels: (*labels).into(),
                entries: vec![loki::EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: 1,
                        nanos: 2,
                    }),
                    line: "a line with {braces}".into(),
                    structured_metadata: metadata
                        .iter()
                        .map(|(n, v)| loki::LabelPairAdapter {
                            name: (*n).into(),
                            value: (*v).into(),
                        })
                        .collect(),
                    parsed: vec![],
                }],
                hash: 42,
            })
            .collect(),
        format: String::new(),
    };
    snappy(&request.encode_to_vec())
}

#[test]
fn loki_protobuf() {
    let policy = p(r#"{namespace="team-a"}"#);
    let body = loki_body(&[
        (r#"{app="api", level="info"}"#, &[("trace_id", "1")]),
        (r#"{namespace="team-a", note="say \"hi\"\n"}"#, &[]),
    ]);
    let forced = force(WriteFormat::LokiProtobuf, &policy, &body, &limits())
        .unwrap()
        .unwrap();
    let request = loki::PushRequest::decode(&*unsnappy(&forced)).unwrap();
    assert_eq!(
        request.streams[0].labels,
        r#"{app="api", level="info", namespace="team-a"}"#
    );
    assert_eq!(request.streams[0].hash, 0, "the stale hash is dropped");
    assert_eq!(request.streams[0].entries[0].line, "a line with {braces}");
    assert_eq!(
        request.streams[1].labels,
        r#"{namespace="team-a", note="say \"hi\"\n"}"#
    );
    assert_eq!(
        request.streams[1].hash, 42,
        "an unchanged stream is kept as sent"
    );
    // The printed labels read back as the same set.
    assert_eq!(
        crate::promql::parse_label_set(&request.streams[0].labels).unwrap(),
        pairs(&[("app", "api"), ("level", "info"), ("namespace", "team-a")])
    );
    assert!(check(WriteFormat::LokiProtobuf, &policy, &forced, &limits()).is_ok());
    assert!(check(WriteFormat::LokiProtobuf, &policy, &body, &limits()).is_err());

    for (labels, metadata, status) in [
        (r#"{namespace="team-b"}"#, &[][..], 403),
        (r#"{app="x"}"#, &[("namespace", "team-b")][..], 403),
        (r#"{app=~"x"}"#, &[][..], 400),
        (r#"up{app="x"}"#, &[][..], 400),
        (r#"{app="x", app="y"}"#, &[][..], 400),
        ("not labels", &[][..], 400),
    ] {
        let err = force(
            WriteFormat::LokiProtobuf,
            &policy,
            &loki_body(&[(labels, metadata)]),
            &limits(),
        )
        .unwrap_err();
        assert_eq!(err.status(), status, "{labels}: {err}");
    }
}

#[test]
fn loki_json() {
    let policy = p(r#"{namespace="team-a"}"#);
    let body = br#"{"streams":[{"stream":{"app":"api"},"values":[["1700000000000000000","line {x}",{"trace_id":"1"}]]}]}"#;
    let forced = force(WriteFormat::LokiJson, &policy, body, &limits())
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&forced).unwrap();
    assert_eq!(
        value["streams"][0]["stream"],
        serde_json::json!({"app": "api", "namespace": "team-a"})
    );
    assert_eq!(value["streams"][0]["values"][0][1], "line {x}");
    assert!(check(WriteFormat::LokiJson, &policy, &forced, &limits()).is_ok());
    for (body, status) in [
        (
            &br#"{"streams":[{"stream":{"namespace":"team-b"},"values":[]}]}"#[..],
            403,
        ),
        (
            br#"{"streams":[{"stream":{"namespace":"team-a","namespace":"team-b"}}]}"#,
            400,
        ),
        (
            br#"{"streams":[{"stream":{},"values":[["1","l",{"namespace":"b"}]]}]}"#,
            403,
        ),
        (br#"{"streams":[{"labels":"{namespace=\"b\"}"}]}"#, 400),
        (br#"{"streams":{}}"#, 400),
        // Loki matches keys regardless of case and would write `Streams`, unchecked.
        (
            br#"{"streams":[],"Streams":[{"stream":{"namespace":"b"},"values":[]}]}"#,
            400,
        ),
        // Loki unescapes a label name twice: `namespac\u0065` would be `namespace` to it.
        (
            br#"{"streams":[{"stream":{"namespace":"team-a","namespac\\u0065":"b"},"values":[]}]}"#,
            400,
        ),
        (br#"{"streams":[{"stream":{"1a":"x"},"values":[]}]}"#, 400),
        (
            br#"{"streams":[{"stream":{},"values":[["1","l",{"namespac\\u0065":"b"}]]}]}"#,
            400,
        ),
    ] {
        let err = force(WriteFormat::LokiJson, &policy, body, &limits()).unwrap_err();
        assert_eq!(
            err.status(),
            status,
            "{}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn remote_write_1_any_label_layout() {
    // Labels after the samples, unsorted, non-canonical (a value longer than 127 bytes): the
    // general path reads them, and the result is what the fast path gives for the plain form.
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let long = "v".repeat(200);
    let mut series = Vec::new();
    encode_bytes(
        2,
        &rw1::Sample {
            value: 1.0,
            timestamp: 5,
        }
        .encode_to_vec(),
        &mut series,
    );
    for (n, v) in [("zone", "z"), ("__name__", "up"), ("long", long.as_str())] {
        encode_bytes(
            1,
            &rw1::Label {
                name: n.into(),
                value: v.into(),
            }
            .encode_to_vec(),
            &mut series,
        );
    }
    let mut body = Vec::new();
    encode_bytes(1, &series, &mut body);
    let forced = force(
        WriteFormat::RemoteWrite1,
        &policy,
        &snappy(&body),
        &limits(),
    )
    .unwrap()
    .unwrap();
    let decoded = rw1::WriteRequest::decode(&*unsnappy(&forced)).unwrap();
    assert_eq!(
        rw1_labels(&forced),
        [pairs(&[
            ("__name__", "up"),
            ("kube_namespace", "team-a"),
            ("long", long.as_str()),
            ("zone", "z")
        ])]
    );
    assert_eq!(
        decoded.timeseries[0].samples,
        [rw1::Sample {
            value: 1.0,
            timestamp: 5
        }]
    );
    // Several forced labels land in name order, an empty one is set, not doubled.
    let two = p(r#"{b="2", a="1", d="4"}"#);
    let body = rw1_body(&[&[("c", "x"), ("d", "")]]);
    let forced = force(WriteFormat::RemoteWrite1, &two, &body, &limits())
        .unwrap()
        .unwrap();
    assert_eq!(
        rw1_labels(&forced),
        [pairs(&[("a", "1"), ("b", "2"), ("c", "x"), ("d", "4")])]
    );
    // Invalid UTF-8 in a label the policy does not name passes as sent; in one it names, 400.
    let mut raw = Vec::new();
    encode_bytes(1, b"other", &mut raw);
    encode_bytes(2, &[0xff], &mut raw);
    let mut series = Vec::new();
    encode_bytes(1, &raw, &mut series);
    let mut body = Vec::new();
    encode_bytes(1, &series, &mut body);
    assert!(
        force(
            WriteFormat::RemoteWrite1,
            &policy,
            &snappy(&body),
            &limits()
        )
        .is_ok()
    );
    let named = p(r#"{other="x"}"#);
    assert_eq!(
        check(WriteFormat::RemoteWrite1, &named, &snappy(&body), &limits())
            .unwrap_err()
            .status(),
        400
    );
}

proptest::proptest! {
    /// Forcing remote write 1.0 against a model, read back with prost: the sent labels sorted
    /// by name, the policy's label added (or set where sent empty), samples as sent; a
    /// conflicting value refuses the body. Sent in order (the fast path), reversed or with a
    /// value over 127 bytes (the general path), in one batch with a plain series after it (the
    /// scratch buffers carry nothing from one series or body to the next).
    #[test]
    fn remote_write_1_forcing_matches_a_model(
        sent in proptest::collection::btree_map(
            "[a-z_]{0,3}|kube_namespace",
            "|team-a|other|[a-z]{1,3}",
            0..8,
        ),
        reversed: bool,
        long: bool,
    ) {
        let policy = p(r#"{kube_namespace="team-a"}"#);
        let mut labels: Vec<(String, String)> = sent.clone().into_iter().collect();
        if long && let Some((_, value)) = labels.first_mut() {
            *value = "v".repeat(130);
        }
        let mut expected = labels.clone();
        if reversed {
            labels.reverse();
        }
        let conflict = match expected.iter_mut().find(|(n, _)| n == "kube_namespace") {
            Some((_, value)) if value.is_empty() => {
                *value = "team-a".into();
                false
            }
            Some((_, value)) => value != "team-a",
            None => {
                expected.push(("kube_namespace".into(), "team-a".into()));
                expected.sort();
                false
            }
        };
        let borrowed: Vec<(&str, &str)> =
            labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let body = rw1_body(&[&borrowed, &[("__name__", "up")]]);
        let forced = force(WriteFormat::RemoteWrite1, &policy, &body, &limits());
        if conflict {
            let refused = matches!(forced, Err(WriteError::ForcedLabelConflict { .. }));
            proptest::prop_assert!(refused);
        } else {
            let forced = forced.unwrap().unwrap();
            proptest::prop_assert_eq!(
                rw1_labels(&forced),
                [expected, pairs(&[("__name__", "up"), ("kube_namespace", "team-a")])]
            );
            let decoded = rw1::WriteRequest::decode(&*unsnappy(&forced)).unwrap();
            let sample = rw1::Sample { value: 7.0, timestamp: 1000 };
            let samples_kept = decoded.timeseries.iter().all(|s| s.samples == [sample]);
            proptest::prop_assert!(samples_kept);
            let checked = check(WriteFormat::RemoteWrite1, &policy, &forced, &limits());
            proptest::prop_assert!(checked.is_ok());
        }
    }
}

#[test]
fn gzip_bodies_are_read_through_and_compressed_again() {
    use std::io::{Read, Write};
    let gz = |plain: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(plain).unwrap();
        e.finish().unwrap()
    };
    let gunzip = |body: &[u8]| {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(body)
            .read_to_end(&mut plain)
            .unwrap();
        plain
    };
    let route = WriteRoute::Otlp(Signal::Logs);
    assert_eq!(
        route.format(Some("application/x-protobuf"), Some("gzip")),
        Ok(WriteFormat::OtlpProtobuf(Signal::Logs))
    );
    assert_eq!(
        WriteRoute::LokiPush.format(Some("application/json"), Some("GZIP")),
        Ok(WriteFormat::LokiJson)
    );
    assert!(
        WriteRoute::LokiPush
            .format(Some("application/x-protobuf"), Some("gzip"))
            .is_err()
    );
    assert!(
        WriteRoute::RemoteWrite
            .format(Some("application/x-protobuf"), Some("gzip"))
            .is_err()
    );

    let format = WriteFormat::OtlpProtobuf(Signal::Logs);
    let policy = p(r#"{kube_namespace="team-a"}"#);
    let plain =
        logs_request(vec![resource(vec![kv("service.name", "api")])], vec![]).encode_to_vec();
    let forced = force_encoded(format, Some("gzip"), &policy, &gz(&plain), &limits())
        .unwrap()
        .unwrap();
    let decoded = otlp::logs_service::ExportLogsServiceRequest::decode(&*gunzip(&forced)).unwrap();
    assert_eq!(
        resource_strings(&decoded.resource_logs[0].resource),
        pairs(&[("service.name", "api"), ("kube_namespace", "team-a")])
    );
    assert!(check_encoded(format, Some("gzip"), &policy, &forced, &limits()).is_ok());
    assert!(check_encoded(format, Some("gzip"), &policy, &gz(&plain), &limits()).is_err());

    // A second gzip member is read too (Go's reader reads it): its resource is checked.
    let other = logs_request(vec![resource(vec![kv("kube_namespace", "team-b")])], vec![]);
    let within = logs_request(vec![resource(vec![kv("kube_namespace", "team-a")])], vec![]);
    let mut two = gz(&within.encode_to_vec());
    two.extend(gz(&other.encode_to_vec()));
    let err = check_encoded(format, Some("gzip"), &policy, &two, &limits()).unwrap_err();
    assert_eq!(err.status(), 403, "{err}");

    // Bounded while it streams; garbage is 400.
    let bomb = gz(&vec![0u8; 1 << 20]);
    let small = WriteLimits {
        max_decoded_bytes: 1 << 16,
        ..limits()
    };
    assert_eq!(
        force_encoded(format, Some("gzip"), &policy, &bomb, &small),
        Err(WriteError::DecompressesTooLarge { max: 1 << 16 })
    );
    assert_eq!(
        force_encoded(format, Some("gzip"), &policy, b"not gzip", &limits())
            .unwrap_err()
            .status(),
        400
    );
}
