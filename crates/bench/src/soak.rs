//! `make soak`: a long run through Envoy at a fraction (80 %) of the capacity measured at the
//! start of the same run, with a mix of valid (plain and PromQL-rewritten), revoked, unknown and
//! malformed tokens, while tokens are issued and revoked in the background. Samples the RSS of
//! the server and of Envoy. Fails when any request gets an answer other than the one its token
//! should get, or when memory grows.

use crate::envoy::{bootstrap, ext_authz, grpc_cluster, wasm_filter};
use crate::{Process, rss_mib, sibling_binary};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tollgate_core::Token;
use tollgate_e2e::{Envoy, admin_request, filter_wasm, free_port};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SoakMode {
    Filter,
    ExtAuthz,
}

/// What a request carries, and so what it must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    ValidPromql,
    Revoked,
    Unknown,
    Malformed,
}

impl Kind {
    /// Out of every ten requests: 5 valid, 2 valid with a PromQL rewrite, 1 revoked, 1 unknown
    /// (a fresh token each time, so the filter's negative cache keeps turning over), 1 malformed.
    fn of(n: u64) -> Kind {
        match n % 10 {
            0..=4 => Kind::Valid,
            5 | 6 => Kind::ValidPromql,
            7 => Kind::Revoked,
            8 => Kind::Unknown,
            _ => Kind::Malformed,
        }
    }

    fn expected(self) -> u16 {
        match self {
            Kind::Valid | Kind::ValidPromql => 200,
            Kind::Revoked | Kind::Unknown | Kind::Malformed => 401,
        }
    }
}

const MALFORMED: &[&str] = &[
    "tgsa_short",
    "tgsa_0123456789abcdefghijABCDEFGHIJ01_000000",
    "not-a-token",
    "tgsa_0123456789abcdefghijABCDEFGHIJ0\u{e9}_1a2b3c",
];

/// Tokens in use; churn moves tokens from `valid` to `revoked`.
#[derive(Default)]
struct Pools {
    valid: RwLock<Vec<String>>,
    restricted: RwLock<Vec<String>>,
    revoked: RwLock<Vec<String>>,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    /// (kind, status or 0 for a transport error) → count, for answers that were not expected.
    unexpected: Mutex<BTreeMap<(Kind, u16), u64>>,
}

struct Admin {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Admin {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        admin_request(&self.http, &self.url, &self.token, method, path, body).await
    }

    /// Creates an account with a first token; returns (account id, token).
    async fn account(&self, body: Value) -> anyhow::Result<(i64, String)> {
        let mut body = body;
        body["withToken"] = json!(true);
        let reply = self
            .call(reqwest::Method::POST, "/api/v1/serviceaccounts", Some(body))
            .await?;
        Ok((
            reply["id"].as_i64().context("account id")?,
            reply["token"]["token"]
                .as_str()
                .context("token")?
                .to_owned(),
        ))
    }

    /// Issues a token; returns (token id, token).
    async fn token(&self, account: i64, name: &str) -> anyhow::Result<(i64, String)> {
        let reply = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/serviceaccounts/{account}/tokens"),
                Some(json!({ "name": name })),
            )
            .await?;
        Ok((
            reply["id"].as_i64().context("token id")?,
            reply["token"].as_str().context("token")?.to_owned(),
        ))
    }

    async fn revoke(&self, account: i64, token: i64) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/v1/serviceaccounts/{account}/tokens/{token}"),
            None,
        )
        .await
        .map(drop)
    }
}

/// The server binary in its own process (so its RSS is its own), on a fresh store.
async fn start_server(dir: &std::path::Path) -> anyhow::Result<(Process, Admin, u16)> {
    let (http_port, grpc_port) = (free_port()?, free_port()?);
    let token_file = dir.join("bootstrap");
    let child = Command::new(sibling_binary("tollgate")?)
        .args([
            "serve".to_owned(),
            format!("--store=sqlite://{}", dir.join("soak.db").display()),
            format!("--http-listen=127.0.0.1:{http_port}"),
            format!("--grpc-listen=127.0.0.1:{grpc_port}"),
        ])
        .env("TOLLGATE_BOOTSTRAP_TOKEN_FILE", &token_file)
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .spawn()
        .context("starting tollgate serve")?;
    let server = Process(child);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthy = http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server did not become healthy in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();
    Ok((server, Admin { http, url, token }, grpc_port))
}

/// Sends requests from `workers` tasks until `stop`, at most `rate` per second overall (no
/// limit when `None`). Each worker waits for its slot on a shared schedule, so a server that
/// cannot keep up makes the run fall behind rather than queue without bound.
#[allow(clippy::too_many_arguments)]
async fn drive(
    url: &str,
    pools: &Arc<Pools>,
    tally: &Arc<Tally>,
    workers: usize,
    rate: Option<f64>,
    duration: Duration,
    on_tick: impl Fn(Duration) + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .timeout(Duration::from_secs(5))
        .build()?;
    let started = tokio::time::Instant::now();
    let slot = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (http, pools, tally, slot, stop) = (
            http.clone(),
            pools.clone(),
            tally.clone(),
            slot.clone(),
            stop.clone(),
        );
        let plain = format!("{url}/api/v1/query?query=up");
        let promql = format!(
            "{url}/api/v1/query?query={}",
            tollgate_core::form::encode(
                "sum(rate(http_requests_total{code=~\"5..\"}[5m])) by (job)"
            )
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = slot.fetch_add(1, Ordering::Relaxed);
                if let Some(rate) = rate {
                    tokio::time::sleep_until(started + Duration::from_secs_f64(n as f64 / rate))
                        .await;
                }
                let kind = Kind::of(n);
                let pick = |pool: &RwLock<Vec<String>>| {
                    let pool = pool.read().unwrap_or_else(|p| p.into_inner());
                    // An empty pool sends no token: a 401 the tally reports as unexpected.
                    pool.get((n / 10) as usize % pool.len().max(1))
                        .cloned()
                        .unwrap_or_default()
                };
                let (target, token) = match kind {
                    Kind::Valid => (&plain, pick(&pools.valid)),
                    Kind::ValidPromql => (&promql, pick(&pools.restricted)),
                    Kind::Revoked => (&plain, pick(&pools.revoked)),
                    Kind::Unknown => (
                        &plain,
                        Token::generate()
                            .map(|t| t.expose_secret().to_owned())
                            .unwrap_or_default(),
                    ),
                    Kind::Malformed => (
                        &plain,
                        MALFORMED[(n / 10) as usize % MALFORMED.len()].to_owned(),
                    ),
                };
                let status = match http.get(target).bearer_auth(&token).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Read the body: the connection goes back to the pool only then.
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                tally.sent.fetch_add(1, Ordering::Relaxed);
                if status != kind.expected() {
                    let mut unexpected = tally.unexpected.lock().unwrap_or_else(|p| p.into_inner());
                    *unexpected.entry((kind, status)).or_default() += 1;
                }
            }
        }));
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    let deadline = started + duration;
    loop {
        tokio::select! {
            _ = ticker.tick() => on_tick(started.elapsed()),
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// Every `period`: issues a token to the churn account, and retires the oldest beyond `keep`:
/// out of the valid pool first, revoked 5 s later (after any request that picked it), and into
/// the revoked pool 5 s after that (the filter learns of revocations within its feed interval).
async fn churn(
    admin: Arc<Admin>,
    account: i64,
    pools: Arc<Pools>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(u64, u64)> {
    const KEEP: usize = 10;
    let mut live: VecDeque<(i64, String)> = VecDeque::new();
    let mut retiring: VecDeque<(Instant, i64, String, bool)> = VecDeque::new();
    let (mut issued, mut revoked_count) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let (id, token) = admin.token(account, &format!("churn-{issued}")).await?;
        issued += 1;
        pools
            .valid
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(token.clone());
        live.push_back((id, token));
        if live.len() > KEEP
            && let Some((id, token)) = live.pop_front()
        {
            pools
                .valid
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|t| *t != token);
            retiring.push_back((Instant::now(), id, token, false));
        }
        for entry in retiring.iter_mut() {
            if !entry.3 && entry.0.elapsed() >= Duration::from_secs(5) {
                admin.revoke(account, entry.1).await?;
                entry.3 = true;
                revoked_count += 1;
            }
        }
        while retiring
            .front()
            .is_some_and(|e| e.3 && e.0.elapsed() >= Duration::from_secs(10))
        {
            if let Some((_, _, token, _)) = retiring.pop_front() {
                let mut revoked = pools.revoked.write().unwrap_or_else(|p| p.into_inner());
                revoked.push(token);
                // Bounded: the newest revocations are the interesting ones.
                if revoked.len() > 64 {
                    revoked.remove(0);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok((issued, revoked_count))
}

/// One RSS sample of both processes.
struct Sample {
    at: Duration,
    sent: u64,
    server_mib: f64,
    envoy_mib: f64,
}

pub async fn run(
    minutes: f64,
    mode: SoakMode,
    fraction: f64,
    workers: usize,
) -> anyhow::Result<()> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        bail!("--fraction must be above 0 and at most 1 (got {fraction})");
    }
    if !(minutes.is_finite() && minutes >= 1.0) {
        bail!("--minutes must be at least 1: RSS is sampled every 10 s (got {minutes})");
    }
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let (server, admin, grpc_port) = start_server(dir.path()).await?;
    let admin = Arc::new(admin);
    let (_, plain) = admin
        .account(json!({"name": "soak-editor", "role": "editor"}))
        .await?;
    let (_, restricted) = admin
        .account(json!({"name": "soak-viewer", "role": "viewer", "labelPolicy": "{kube_namespace=\"prometheus\"}"}))
        .await?;
    let (churn_account, _) = admin
        .account(json!({"name": "soak-churn", "role": "editor"}))
        .await?;
    let pools = Arc::new(Pools::default());
    pools
        .valid
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .push(plain);
    pools
        .restricted
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .push(restricted);
    for i in 0..4 {
        let (id, token) = admin.token(churn_account, &format!("revoked-{i}")).await?;
        admin.revoke(churn_account, id).await?;
        pools
            .revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(token);
    }

    let cluster = grpc_cluster("tollgate", grpc_port);
    let config = match mode {
        SoakMode::Filter => bootstrap(
            &wasm_filter(&filter_wasm()?, r#"{"cluster":"tollgate"}"#),
            &cluster,
        ),
        SoakMode::ExtAuthz => bootstrap(&ext_authz("tollgate"), &cluster),
    };
    let envoy = Envoy::start(&config).await?;
    let url = envoy.url();
    let (server_pid, envoy_pid) = (server.0.id(), envoy.pid());

    // Capacity: the same mix, unthrottled, after a warm-up.
    let probe = Arc::new(Tally::default());
    drive(
        &url,
        &pools,
        &probe,
        workers,
        None,
        Duration::from_secs(3),
        |_| {},
    )
    .await?;
    let probe = Arc::new(Tally::default());
    let measured = Duration::from_secs(15);
    drive(&url, &pools, &probe, workers, None, measured, |_| {}).await?;
    let capacity = probe.sent.load(Ordering::Relaxed) as f64 / measured.as_secs_f64();
    let rate = capacity * fraction;
    println!(
        "soak ({mode:?} mode): capacity {capacity:.0} req/s with {workers} workers; running {minutes} min at {rate:.0} req/s ({:.0} %)",
        fraction * 100.0
    );
    let probe_errors = probe
        .unexpected
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();

    let tally = Arc::new(Tally::default());
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop_churn = Arc::new(AtomicBool::new(false));
    let churner = tokio::spawn(churn(
        admin.clone(),
        churn_account,
        pools.clone(),
        stop_churn.clone(),
    ));
    let (tick_tally, tick_samples) = (tally.clone(), samples.clone());
    let duration = Duration::from_secs_f64(minutes * 60.0);
    drive(&url, &pools, &tally, workers, Some(rate), duration, move |at| {
        let sent = tick_tally.sent.load(Ordering::Relaxed);
        let rss = |pid| rss_mib(pid).map(|(now, _)| now).unwrap_or(f64::NAN);
        let sample = Sample { at, sent, server_mib: rss(server_pid), envoy_mib: rss(envoy_pid) };
        let unexpected: u64 = tick_tally
            .unexpected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum();
        let mut samples = tick_samples.lock().unwrap_or_else(|p| p.into_inner());
        let previous = samples.last().map_or((Duration::ZERO, 0), |s| (s.at, s.sent));
        println!(
            "  {:>4.0} s  {:>6.0} req/s  sent {:>9}  unexpected {:>4}  server RSS {:>6.1} MiB  envoy RSS {:>6.1} MiB",
            at.as_secs_f64(),
            (sent - previous.1) as f64 / (at - previous.0).as_secs_f64().max(1e-3),
            sent,
            unexpected,
            sample.server_mib,
            sample.envoy_mib
        );
        samples.push(sample);
    })
    .await?;
    stop_churn.store(true, Ordering::Relaxed);
    let (issued, revoked) = churner.await??;

    let sent = tally.sent.load(Ordering::Relaxed);
    let unexpected = tally
        .unexpected
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner());
    // Flat memory: after the first tenth of the run (caches filling, allocators settling), the
    // peak of the second half may exceed the peak of the first half by at most 5 % or 4 MiB.
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= duration / 10).collect();
    let (first, second) = settled.split_at(settled.len() / 2);
    let peak = |part: &[&Sample], f: fn(&Sample) -> f64| {
        part.iter().map(|s| f(s)).fold(f64::NAN, f64::max)
    };
    let mut growth = Vec::new();
    for (name, f) in [
        ("server", (|s: &Sample| s.server_mib) as fn(&Sample) -> f64),
        ("envoy", |s: &Sample| s.envoy_mib),
    ] {
        let (before, after) = (peak(first, f), peak(second, f));
        let flat = after <= before + (before * 0.05).max(4.0);
        growth.push((name, before, after, flat));
    }

    println!();
    println!("| soak, {mode:?} mode | value |");
    println!("|---|---|");
    println!("| duration | {minutes} min |");
    println!("| capacity (same mix, unthrottled, {workers} workers) | {capacity:.0} req/s |");
    println!(
        "| target rate | {rate:.0} req/s ({:.0} % of capacity) |",
        fraction * 100.0
    );
    println!(
        "| achieved rate | {:.0} req/s |",
        sent as f64 / duration.as_secs_f64()
    );
    println!(
        "| requests | {sent} (5/10 valid, 2/10 valid with a PromQL rewrite, 1/10 revoked, 1/10 unknown, 1/10 malformed) |"
    );
    println!("| tokens issued / revoked during the run | {issued} / {revoked} |");
    println!(
        "| unexpected answers | {} |",
        unexpected.values().sum::<u64>()
    );
    for (name, before, after, flat) in &growth {
        println!(
            "| {name} RSS peak, first half → second half | {before:.1} → {after:.1} MiB {} |",
            if *flat { "(flat)" } else { "(GROWING)" }
        );
    }
    drop(envoy);
    drop(server);
    if !probe_errors.is_empty() || !unexpected.is_empty() {
        bail!(
            "unexpected answers (kind, status: 0 is a transport error): during the capacity probe {probe_errors:?}, during the soak {unexpected:?}"
        );
    }
    if growth.iter().any(|g| !g.3) {
        bail!("memory grew during the soak");
    }
    if sent == 0 {
        bail!("no request was sent");
    }
    Ok(())
}
