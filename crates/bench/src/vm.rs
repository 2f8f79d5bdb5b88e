//! The filter's own work per request, in V8 without Envoy (`tollgate-bench vm`): Node runs the
//! module with TurboFan only, as Envoy's V8 does, against a host in `filter_in_v8.mjs` that
//! counts every call. Through Envoy (`tollgate-bench envoy`) a run on a shared machine varies by
//! 10-20 %, more than the filter's own work; here it is a few percent, so a change to the hit
//! path shows. Next to the empty filter and to the empty filter making a hit's host calls, as in
//! the Envoy benchmark. Node's V8 is older than Envoy's and weighs code differently (README,
//! "Benchmarks"): this ranks changes, it does not predict Envoy's cost.

use crate::envoy::NOOP_HOST_CALLS_OF_A_HIT;
use crate::median_spread;
use anyhow::{Context, bail};
use prost::Message;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use tollgate_core::{Role, Token};
use tollgate_e2e::{filter_wasm, repo_root};
use tollgate_proto::v1;

const FILTER_CONFIG: &str = r#"{"cluster":"tollgate"}"#;

struct Run {
    ns: Vec<f64>,
    calls: String,
}

/// The server's answer granting `role` under `policy`, as the module reads it.
fn resolve_answer(role: Role, policy: &str) -> String {
    let grant = v1::Grant {
        token_id: 1,
        account_id: 1,
        account: "bench".into(),
        tenant: "default".into(),
        role: role.as_str().into(),
        label_policy: policy.into(),
        expires_at: None,
        scopes: role
            .scopes()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        read_tenants: Vec::new(),
        hide_policy_labels: false,
    };
    v1::ResolveResponse {
        grant: Some(grant),
        revision: 1,
    }
    .encode_to_vec()
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect()
}

/// The script that drives a module in Node as Envoy would.
pub(crate) fn driver() -> std::path::PathBuf {
    repo_root().join("crates/bench/src/filter_in_v8.mjs")
}

/// One variant as the driver reads it: the module, its configuration, the Resolve answer (hex,
/// empty for a module that never asks), the token, the request path, and how many requests.
struct Spec<'a> {
    wasm: &'a Path,
    config: &'a str,
    resolve: &'a str,
    path: &'a str,
}

impl Spec<'_> {
    fn json(&self, token: &str, iterations: usize, rounds: usize) -> Value {
        json!({
            "wasm": self.wasm, "config": self.config, "token": token, "resolve": self.resolve,
            "path": self.path, "iterations": iterations, "rounds": rounds,
        })
    }
}

fn run_node(spec: Value) -> anyhow::Result<Run> {
    let mut command = Command::new("node");
    command
        // Envoy's V8 compiles every function with TurboFan up front (proxy-wasm-cpp-host turns
        // Liftoff off).
        .arg("--no-liftoff")
        .arg(driver())
        .arg(spec.to_string());
    let output = crate::checked_output(&mut command, "node (make bench installs Debian's nodejs)")?;
    let answer: Value = serde_json::from_slice(&output.stdout).context("node's answer")?;
    let ns = answer["ns"]
        .as_array()
        .context("no ns in node's answer")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let calls = answer["calls"]
        .as_object()
        .map(|calls| {
            calls
                .iter()
                .map(|(name, count)| format!("{name} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Ok(Run { ns, calls })
}

/// The four variants: the empty filter, its hit's host calls, a hit, a hit with a PromQL
/// rewrite (`filter`: the Tollgate module to run).
fn variants<'a>(
    noop: &'a Path,
    filter: &'a Path,
    editor: &'a str,
    viewer: &'a str,
) -> [(&'static str, Spec<'a>); 4] {
    let query = "/api/v1/query?query=up";
    let promql = "/api/v1/query?query=sum%28rate%28http_requests_total%5B5m%5D%29%29";
    let spec = |wasm, config, resolve, path| Spec {
        wasm,
        config,
        resolve,
        path,
    };
    [
        ("(c) empty wasm filter", spec(noop, "", "", query)),
        (
            "(c') host calls of a hit",
            spec(noop, NOOP_HOST_CALLS_OF_A_HIT, "", query),
        ),
        (
            "(d) tollgate filter, hit",
            spec(filter, FILTER_CONFIG, editor, query),
        ),
        (
            "(d') filter hit + PromQL",
            spec(filter, FILTER_CONFIG, viewer, promql),
        ),
    ]
}

pub fn run(iterations: usize, rounds: usize) -> anyhow::Result<()> {
    let noop = crate::envoy::noop_module()?;
    let filter = filter_wasm()?;
    let token = Token::generate().context("a token")?;
    let editor = resolve_answer(Role::Editor, "");
    let viewer = resolve_answer(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
    let mut runs = Vec::new();
    for (name, spec) in variants(&noop, &filter, &editor, &viewer) {
        let run = run_node(spec.json(token.expose_secret(), iterations, rounds))
            .with_context(|| name.to_owned())?;
        runs.push((name, run));
    }
    println!(
        "The module in Node's V8 (TurboFan only, as in Envoy; an older V8 than Envoy's: rank changes with it, do not read Envoy's cost from it), host calls answered by a JS host that counts them; {rounds} rounds x {iterations} requests; medians (min-max)"
    );
    println!(
        "{:<26} {:>20} {:>11}  host calls per request",
        "variant", "ns/request", "own work ns"
    );
    let floor = median_spread(&runs[1].1.ns).0;
    for (name, run) in &runs {
        let (median, lo, hi) = median_spread(&run.ns);
        let own = if name.starts_with("(d") {
            format!("{:.0}", median - floor)
        } else {
            "-".to_owned()
        };
        println!(
            "{name:<26} {median:>6.0} ({lo:>5.0}-{hi:<5.0}) {own:>11}  {}",
            run.calls
        );
    }
    let hit = median_spread(&runs[2].1.ns).0 - floor;
    let promql = median_spread(&runs[3].1.ns).0 - floor;
    println!(
        "(own work: ns/request beyond (c'), the empty filter making the same host calls: token check, SHA-256, cache, decision, and for (d') the remembered rewrite applied)"
    );
    println!(
        "the filter's own work on a hit: {:.2} us; with a remembered PromQL rewrite: {:.2} us",
        hit / 1000.0,
        promql / 1000.0
    );
    Ok(())
}

/// The hit and the hit with a PromQL rewrite of `module` (which must keep its function names),
/// function by function (`profile`).
pub fn profile(module: &Path, iterations: usize) -> anyhow::Result<()> {
    if iterations == 0 {
        bail!("--iterations must be at least 1: the count is per request");
    }
    let noop = crate::envoy::noop_module()?;
    let token = Token::generate().context("a token")?;
    let editor = resolve_answer(Role::Editor, "");
    let viewer = resolve_answer(Role::Viewer, r#"{kube_namespace="prometheus"}"#);
    // The driver warms up with a quarter of the requests it measures: all are counted.
    let requests = iterations + iterations / 4;
    for (name, spec) in variants(&noop, module, &editor, &viewer)
        .into_iter()
        .filter(|(name, _)| name.starts_with("(d"))
    {
        eprintln!("{name}: Node under callgrind (a minute or two)");
        crate::profile::run(
            &spec.json(token.expose_secret(), iterations, 1),
            requests,
            name,
        )?;
    }
    Ok(())
}
