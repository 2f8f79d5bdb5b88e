//! Through Envoy (`--concurrency 1`, pinned to one core; wrk on the other): throughput, p50/p99
//! latency and Envoy CPU per request, for each way of authorizing a request, each next to the
//! floor of its kind measured in the same run. Routes answer with a direct response so the auth
//! layer is the only difference between variants.

use anyhow::{Context, bail};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tollgate_e2e::{Envoy, Tollgate, filter_wasm, repo_root};

fn bootstrap(http_filters: &str, clusters: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
          http_filters:
{http_filters}          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters: {clusters}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
"#
    )
}

fn grpc_cluster(name: &str, port: u16) -> String {
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: {name}
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]
"#
    )
}

fn wasm_filter(path: &Path, configuration: &str) -> String {
    format!(
        r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: bench
                allow_on_headers_stop_iteration: true
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{configuration}'
"#,
        path.display()
    )
}

fn ext_authz(cluster: &str) -> String {
    format!(
        r#"          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              grpc_service: {{ envoy_grpc: {{ cluster_name: {cluster} }}, timeout: 1s }}
              failure_mode_allow: false
"#
    )
}

struct Variant {
    name: &'static str,
    floor: &'static str,
    config: String,
    token: String,
    path: String,
}

#[derive(Default, Clone)]
struct Sample {
    rps: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    cpu_us: Vec<f64>,
}

/// `1.23ms` → 1230.0 µs.
fn micros(text: &str) -> Option<f64> {
    let (number, unit) = text
        .trim()
        .split_at(text.trim().find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value,
        "ms" => value * 1e3,
        "s" => value * 1e6,
        _ => return None,
    })
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
        + fields.get(12).context("stime")?.parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// Runs wrk pinned to `core`; returns (requests, rps, p50 µs, p99 µs).
fn wrk(
    url: &str,
    token: &str,
    connections: usize,
    seconds: u64,
    core: usize,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let output = Command::new("taskset")
        .args([
            "-c",
            &core.to_string(),
            "wrk",
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(url)
        .output()
        .context("running wrk (make bench installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.contains("Non-2xx") {
        bail!("wrk failed or saw errors:\n{text}");
    }
    let find = |prefix: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .map(str::trim)
                .map(str::to_owned)
        })
    };
    let rps: f64 = find("Requests/sec:").context("no Requests/sec")?.parse()?;
    let p50 = find("50%").and_then(|v| micros(&v)).context("no p50")?;
    let p99 = find("99%").and_then(|v| micros(&v)).context("no p99")?;
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .context("no request count")?
        .parse()?;
    Ok((requests, rps, p50, p99))
}

fn median(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN),
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

pub async fn run(
    rounds: usize,
    seconds: u64,
    connections: usize,
    envoy_core: usize,
    load_core: usize,
) -> anyhow::Result<()> {
    let tollgate = Tollgate::start().await?;
    let trivial = crate::spawn_trivial_server().await?;
    let (_, _, unrestricted) = tollgate
        .account_with_token(json!({"name": "bench-editor", "role": "editor"}))
        .await;
    let (_, _, restricted) = tollgate.account_with_token(json!({"name": "bench-viewer", "role": "viewer", "labelPolicy": "{kube_namespace=\"prometheus\"}"})).await;
    let noop = repo_root().join("target/wasm32-wasip1/wasm/tollgate_noop_filter.wasm");
    if !noop.is_file() {
        bail!("{} is missing: make bench builds it", noop.display());
    }
    let filter = filter_wasm()?;
    let tollgate_cluster = grpc_cluster("tollgate", tollgate.grpc_addr.port());
    let query = "/api/v1/query?query=up".to_owned();
    let variants = [
        Variant {
            name: "no auth",
            floor: "no auth",
            config: bootstrap("", "[]"),
            token: unrestricted.clone(),
            path: query.clone(),
        },
        Variant {
            name: "empty wasm filter",
            floor: "empty wasm filter",
            config: bootstrap(&wasm_filter(&noop, ""), "[]"),
            token: unrestricted.clone(),
            path: query.clone(),
        },
        Variant {
            name: "tollgate filter, cache hit",
            floor: "empty wasm filter",
            config: bootstrap(
                &wasm_filter(&filter, r#"{"cluster":"tollgate"}"#),
                &tollgate_cluster,
            ),
            token: unrestricted.clone(),
            path: query.clone(),
        },
        Variant {
            name: "tollgate filter, hit + PromQL",
            floor: "empty wasm filter",
            config: bootstrap(
                &wasm_filter(&filter, r#"{"cluster":"tollgate"}"#),
                &tollgate_cluster,
            ),
            token: restricted.clone(),
            path: query.clone(),
        },
        Variant {
            name: "ext_authz, trivial server",
            floor: "ext_authz, trivial server",
            config: bootstrap(
                &ext_authz("trivial"),
                &grpc_cluster("trivial", trivial.port()),
            ),
            token: unrestricted.clone(),
            path: query.clone(),
        },
        Variant {
            name: "ext_authz, tollgate",
            floor: "ext_authz, trivial server",
            config: bootstrap(&ext_authz("tollgate"), &tollgate_cluster),
            token: unrestricted.clone(),
            path: query.clone(),
        },
    ];
    let mut samples = vec![Sample::default(); variants.len()];
    for round in 0..rounds {
        for (variant, sample) in variants.iter().zip(samples.iter_mut()) {
            let envoy = Envoy::start_on(&variant.config, Some(envoy_core)).await?;
            let url = format!("{}{}", envoy.url(), variant.path);
            // Warm-up: fills the filter's cache, compiles, opens connections.
            wrk(&url, &variant.token, connections, 1, load_core)?;
            let before = cpu_seconds(envoy.pid())?;
            let (requests, rps, p50, p99) =
                wrk(&url, &variant.token, connections, seconds, load_core)?;
            let cpu = cpu_seconds(envoy.pid())? - before;
            sample.rps.push(rps);
            sample.p50_us.push(p50);
            sample.p99_us.push(p99);
            sample.cpu_us.push(cpu * 1e6 / requests.max(1.0));
            drop(envoy);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let index = |name: &str| variants.iter().position(|v| v.name == name).unwrap_or(0);
    println!(
        "Envoy --concurrency 1 on core {envoy_core}, wrk -t1 -c{connections} on core {load_core}, {rounds} interleaved rounds x {seconds} s, direct response; medians (min-max)"
    );
    println!(
        "{:<30} {:>20} {:>9} {:>9} {:>16} {:>8} {:>8} {:>8}",
        "variant",
        "req/s",
        "p50 us",
        "p99 us",
        "Envoy CPU us/req",
        "rps/none",
        "rps/floor",
        "cpu/floor"
    );
    let none = median(&samples[0].rps).0;
    for (variant, sample) in variants.iter().zip(&samples) {
        let floor = &samples[index(variant.floor)];
        let (rps, lo, hi) = median(&sample.rps);
        let cpu = median(&sample.cpu_us).0;
        println!(
            "{:<30} {:>8.0} ({:>5.0}-{:<5.0}) {:>9.0} {:>9.0} {:>16.1} {:>8.2} {:>8.2} {:>8.2}",
            variant.name,
            rps,
            lo,
            hi,
            median(&sample.p50_us).0,
            median(&sample.p99_us).0,
            cpu,
            rps / none,
            rps / median(&floor.rps).0,
            cpu / median(&floor.cpu_us).0,
        );
    }
    tollgate.stop().await;
    Ok(())
}
