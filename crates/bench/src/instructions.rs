//! Instructions per request through a real Envoy run by callgrind (`valgrind --tool=callgrind`):
//! the empty wasm filter, the empty filter making a hit's host calls, and the Tollgate filter on
//! a hit and on a hit with a PromQL rewrite. CPU time per request moves 10-20 % between runs on
//! this shared machine; an instruction count is the same to within a fraction of a percent, so
//! a change to the hit path shows even when it is smaller than the noise of `envoy`. It counts
//! work, not stalls: Envoy runs these instructions at a lower rate than a hot loop does.

use crate::envoy::{bootstrap, grpc_cluster, wasm_filter};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tollgate_e2e::{Envoy, Tollgate, filter_wasm};

/// Requests before the counters are zeroed: the module compiled, the grant cached, the
/// connection open.
const WARM_UP: usize = 200;
/// The slowest feed (60 s) keeps the filter's timer work (polls, stream heartbeats) out of the count:
/// under callgrind a run lasts minutes, and that work would land on the requests. The longest
/// timeout (60 s) lets the first request's Resolve finish: Envoy under callgrind on a busy
/// machine took over the default 500 ms, and the warm-up got a 503.
const QUIET_FEED: &str = r#"{"cluster":"tollgate","timeoutMs":60000,"feed":{"intervalMs":60000}}"#;

pub async fn run(requests: usize) -> anyhow::Result<()> {
    if requests == 0 {
        bail!("--requests must be at least 1: the count is per request");
    }
    require_valgrind()?;
    let tollgate = Tollgate::start().await?;
    let (_, _, unrestricted) = tollgate
        .account_with_token(json!({"name": "bench-editor", "role": "editor"}))
        .await;
    let restricted = crate::envoy::restricted_viewer(&tollgate).await;
    let noop = crate::envoy::noop_module()?;
    let filter = filter_wasm()?;
    let cluster = grpc_cluster("tollgate", tollgate.grpc_addr.port());
    let variants = [
        (
            "(c) empty wasm filter",
            bootstrap(&wasm_filter(&noop, ""), "[]"),
            &unrestricted,
        ),
        (
            "(c') host calls of a hit",
            bootstrap(
                &wasm_filter(&noop, crate::envoy::NOOP_HOST_CALLS_OF_A_HIT),
                "[]",
            ),
            &unrestricted,
        ),
        (
            "(d) tollgate filter, hit",
            bootstrap(&wasm_filter(&filter, QUIET_FEED), &cluster),
            &unrestricted,
        ),
        (
            "(d') filter hit + PromQL",
            bootstrap(&wasm_filter(&filter, QUIET_FEED), &cluster),
            &restricted,
        ),
    ];
    let dir = tempfile::tempdir()?;
    let mut counts = Vec::new();
    for (index, (name, config, token)) in variants.iter().enumerate() {
        eprintln!("{name}: starting Envoy under callgrind (a minute or two)");
        let out = dir.path().join(format!("callgrind.{index}"));
        let count = measure(config, token, requests, &out).await?;
        eprintln!("{name}: {count:.0} instructions per request");
        counts.push(count);
    }
    tollgate.stop().await;

    println!();
    println!(
        "Envoy --concurrency 1 run by callgrind; {requests} requests over one HTTP/1.1 connection after {WARM_UP} to warm up; instructions per request, all of Envoy's threads"
    );
    println!(
        "{:<28} {:>12} {:>9} {:>10}",
        "variant", "instr/req", "over (c)", "over (c')"
    );
    for ((name, _, _), count) in variants.iter().zip(&counts) {
        let over_floor = if name.starts_with("(d") {
            format!("{:.2}x", count / counts[1])
        } else {
            String::new()
        };
        println!(
            "{:<28} {:>12.0} {:>8.2}x {:>10}",
            name,
            count,
            count / counts[0],
            over_floor
        );
    }
    println!(
        "the host calls of a hit: {:.0} instructions; the filter's own work on a hit: {:.0}; with a PromQL rewrite: {:.0}",
        counts[1] - counts[0],
        counts[2] - counts[1],
        counts[3] - counts[1]
    );
    Ok(())
}

/// Instructions per request of `requests` requests, counted from after the warm-up.
async fn measure(config: &str, token: &str, requests: usize, out: &Path) -> anyhow::Result<f64> {
    // V8 writes the code it runs: callgrind must see every change to it.
    let wrapper = callgrind_wrapper(out, &["--smc-check=all-non-file"]);
    let envoy = Envoy::start_wrapped(config, &wrapper, Duration::from_secs(600)).await?;
    let url = format!("{}/api/v1/query?query=up", envoy.url());
    let client = reqwest::Client::new();
    send(&client, &url, token, WARM_UP).await?;
    let pid = envoy.pid().to_string();
    callgrind_control("-z", &pid)?;
    send(&client, &url, token, requests).await?;
    callgrind_control("-d", &pid)?;
    drop(envoy);
    Ok(dumped_instructions(out, 1)? / requests as f64)
}

/// Valgrind and its callgrind_control, or an error saying what installs them.
pub(crate) fn require_valgrind() -> anyhow::Result<()> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool).arg("--help").output().is_ok();
        if !found {
            bail!("{tool} is missing: install Debian's valgrind");
        }
    }
    Ok(())
}

/// The command line that runs a program under callgrind, its dumps named after `out`.
pub(crate) fn callgrind_wrapper(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    wrapper.extend(extra.iter().map(|arg| (*arg).to_owned()));
    wrapper
}

/// The instructions in callgrind's dump number `index` (1 for the first `callgrind_control
/// -d`): what ran since the counters were last zeroed or dumped.
pub(crate) fn dumped_instructions(out: &Path, index: usize) -> anyhow::Result<f64> {
    let dump = std::path::PathBuf::from(format!("{}.{index}", out.display()));
    let text = std::fs::read_to_string(&dump)
        .with_context(|| format!("reading callgrind's dump {}", dump.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("summary:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no summary line in callgrind's dump")
}

/// `count` requests, one after another on one connection; each must be answered 2xx.
async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    count: usize,
) -> anyhow::Result<()> {
    for _ in 0..count {
        let response = client.get(url).bearer_auth(token).send().await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("{url} answered {status}: a refusal would measure the wrong path");
        }
    }
    Ok(())
}

pub(crate) fn callgrind_control(action: &str, pid: &str) -> anyhow::Result<()> {
    crate::checked_output(
        Command::new("callgrind_control").args([action, pid]),
        &format!("callgrind_control {action} {pid}"),
    )
    .map(drop)
}
