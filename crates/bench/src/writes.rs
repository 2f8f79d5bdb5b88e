//! `tollgate-bench writes`: what confining a write body costs, per batch of 1000 samples, as a
//! ratio to snappy decoding and re-encoding the same batch in the same run (the least any body
//! rewrite must do; for uncompressed OTLP, a prost decode and encode). Issue 14's target, for
//! remote write: at most 2x, in each mode.

use std::time::Instant;

use anyhow::Context;
use prost::Message;
use tollgate_core::Policy;
use tollgate_core::write::{Signal, WriteFormat, WriteLimits, check, force};
use tollgate_formats::{loki, otlp, remote_write_v1 as rw1};

const SAMPLES: usize = 1000;

/// A remote write 1.0 batch as Prometheus sends it: 1000 series of 8 labels, one sample each,
/// without the policy's label (so the filter adds it to every series).
fn remote_write_batch() -> Vec<u8> {
    let timeseries = (0..SAMPLES)
        .map(|i| rw1::TimeSeries {
            labels: [
                ("__name__", format!("http_requests_total_{}", i % 20)),
                ("code", format!("{}", 200 + i % 5)),
                ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                ("job", "node".to_owned()),
                ("method", "GET".to_owned()),
                ("pod", format!("api-{}", i % 50)),
                ("route", format!("/v1/items/{}", i % 13)),
                ("zone", "eu-west-1a".to_owned()),
            ]
            .into_iter()
            .map(|(name, value)| rw1::Label {
                name: name.to_owned(),
                value,
            })
            .collect(),
            samples: vec![rw1::Sample {
                value: i as f64,
                timestamp: 1_700_000_000_000 + i as i64,
            }],
        })
        .collect();
    snappy(&rw1::WriteRequest { timeseries }.encode_to_vec())
}

/// 1000 log lines in 10 streams (Loki protobuf), and 1000 data points under 10 resources (OTLP).
fn loki_batch() -> Vec<u8> {
    let streams = (0..10)
        .map(|s| loki::StreamAdapter {
            labels: format!(r#"{{app="api-{s}", level="info"}}"#),
            entries: (0..SAMPLES / 10)
                .map(|i| loki::EntryAdapter {
                    line: format!("GET /v1/items/{i} 200 {s}ms"),
                    ..Default::default()
                })
                .collect(),
            hash: 0,
        })
        .collect();
    snappy(
        &loki::PushRequest {
            streams,
            format: String::new(),
        }
        .encode_to_vec(),
    )
}

fn otlp_batch() -> Vec<u8> {
    use otlp::common::{AnyValue, KeyValue, any_value::Value};
    use otlp::metrics::{self as m, metric::Data};
    let kv = |k: &str, v: String| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v)),
        }),
        ..Default::default()
    };
    let resource_metrics = (0..10)
        .map(|r| m::ResourceMetrics {
            resource: Some(otlp::resource::Resource {
                attributes: vec![kv("service.name", format!("api-{r}"))],
                ..Default::default()
            }),
            scope_metrics: vec![m::ScopeMetrics {
                metrics: vec![m::Metric {
                    name: "http.server.requests".to_owned(),
                    data: Some(Data::Sum(m::Sum {
                        data_points: (0..SAMPLES / 10)
                            .map(|i| m::NumberDataPoint {
                                attributes: vec![kv("http.route", format!("/v1/items/{i}"))],
                                time_unix_nano: 1_700_000_000_000_000_000,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    otlp::metrics_service::ExportMetricsServiceRequest { resource_metrics }.encode_to_vec()
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .unwrap_or_default()
}

/// Microseconds per call of each of `fs`, over 7 rounds of `iterations` that take turns (one
/// round of each in every round), so the machine's drift falls on all of them alike.
fn interleaved(
    iterations: usize,
    fs: &mut [&mut dyn FnMut() -> anyhow::Result<()>],
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut rounds = vec![Vec::with_capacity(7); fs.len()];
    for _ in 0..7 {
        for (f, times) in fs.iter_mut().zip(rounds.iter_mut()) {
            let started = Instant::now();
            for _ in 0..iterations {
                f()?;
            }
            times.push(started.elapsed().as_secs_f64() * 1e6 / iterations as f64);
        }
    }
    Ok(rounds)
}

fn median(values: &[f64]) -> f64 {
    crate::median_spread(values).0
}

pub fn run(iterations: usize) -> anyhow::Result<()> {
    let policy = Policy::parse(r#"{kube_namespace="team-a"}"#)?;
    let limits = WriteLimits::default();
    println!(
        "Write bodies under a label policy, {SAMPLES} samples per batch, us per batch (median of 7 interleaved rounds of {iterations}; ratios: the median of the rounds' ratios)"
    );
    let batches = [
        (
            "remote write 1.0",
            WriteFormat::RemoteWrite1,
            remote_write_batch(),
            true,
        ),
        (
            "Loki push (protobuf)",
            WriteFormat::LokiProtobuf,
            loki_batch(),
            true,
        ),
        (
            "OTLP metrics (protobuf)",
            WriteFormat::OtlpProtobuf(Signal::Metrics),
            otlp_batch(),
            false,
        ),
    ];
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>8} {:>8}",
        "format", "bytes", "reference", "filter", "ratio", "ext_authz"
    );
    for (name, format, body, snappy_framed) in &batches {
        // The reference: the least a body rewrite does. Snappy decode and re-encode for a
        // compressed body, into buffers kept from one round to the next as `force` keeps its
        // own (a fresh body-sized buffer costs its zeroing and page faults: not the work), and
        // with one encoder (its hash table allocated once, as `force` keeps it); for OTLP,
        // decoding and encoding the request with prost.
        let (mut plain, mut packed) = (Vec::new(), Vec::new());
        let mut encoder = snap::raw::Encoder::new();
        let mut reference = || {
            let again = if *snappy_framed {
                plain.resize(snap::raw::decompress_len(body)?, 0);
                snap::raw::Decoder::new().decompress(body, &mut plain)?;
                packed.resize(snap::raw::max_compress_len(plain.len()), 0);
                let len = encoder.compress(&plain, &mut packed)?;
                packed[..len].to_vec()
            } else {
                otlp::metrics_service::ExportMetricsServiceRequest::decode(&body[..])?
                    .encode_to_vec()
            };
            std::hint::black_box(again);
            Ok(())
        };
        let forced = force(*format, &policy, body, &limits)?.context("the batch needs forcing")?;
        let mut filter = || {
            std::hint::black_box(force(*format, &policy, body, &limits)?);
            Ok(())
        };
        let mut ext_authz = || {
            check(*format, &policy, &forced, &limits)?;
            Ok(())
        };
        let rounds = interleaved(
            iterations,
            &mut [&mut reference, &mut filter, &mut ext_authz],
        )?;
        let [reference, filter, ext_authz] = <[Vec<f64>; 3]>::try_from(rounds)
            .map_err(|_| anyhow::anyhow!("three series of rounds"))?;
        let (filter_ratio, ext_authz_ratio) = (
            crate::round_ratio(&filter, &reference),
            crate::round_ratio(&ext_authz, &reference),
        );
        println!(
            "{name:<24} {:>8} {:>10.1} {:>10.1} {filter_ratio:>7.2}x {ext_authz_ratio:>7.2}x",
            body.len(),
            median(&reference),
            median(&filter),
        );
        if *format == WriteFormat::RemoteWrite1 {
            for (mode, ratio) in [("filter", filter_ratio), ("ext_authz", ext_authz_ratio)] {
                println!(
                    "target: remote write batch of {SAMPLES} samples, {mode} <= 2x snappy decode + re-encode: {ratio:.2}x {}",
                    crate::envoy::verdict(ratio <= 2.0)
                );
            }
        }
    }
    Ok(())
}
