//! A flood of forged, well-formed tokens through Envoy in filter mode (issue 18): a store of
//! live tokens, a server whose Watch stream carries the membership filter of their hashes, and
//! wrk sending tokens with valid checksums that nobody issued. Measured in interleaved rounds,
//! a fresh Envoy (`--concurrency 1`, pinned) for each variant:
//!
//! * (a) a hit: one live token, the reference for Envoy CPU per request;
//! * (a') hits on every live token in turn (they all fit the filter's cache): the legitimate
//!   hit rate and req/s alone;
//! * (b) the flood: forged tokens in turn, every one refused;
//! * (c) (a') and (b) at once, two wrk processes on the load core.
//!
//! Server calls are the delta of the server's `tollgate_grants_calls_total{method="resolve"}`
//! over each measured window; refusals inside Envoy the delta of the filter's
//! `tollgate.membership.refused` counter.

use crate::envoy::{
    Credentials, Expect, WrkRun, bootstrap, grpc_cluster, verdict, wasm_filter, wrk_finish,
    wrk_spawn,
};
use crate::median_spread;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate_core::membership::Membership;
use tollgate_core::{Token, TokenHash};
use tollgate_e2e::{Envoy, filter_wasm};

const CONNECTIONS: usize = 16;
/// The filter's default configuration: membership filter on, negative entries kept 5 s.
const FILTER_CONFIG: &str = r#"{"cluster":"tollgate"}"#;
/// "Unchanged": the live tokens' hit rate under the flood within this many points of alone.
const HIT_RATE_POINTS: f64 = 1.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hit,
    Live,
    Flood,
    LiveUnderFlood,
}

struct Variant {
    name: &'static str,
    kind: Kind,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "(a) hit, one live token",
        kind: Kind::Hit,
    },
    Variant {
        name: "(a') hits, live tokens in turn",
        kind: Kind::Live,
    },
    Variant {
        name: "(b) flood, forged tokens",
        kind: Kind::Flood,
    },
    Variant {
        name: "(c) (a') + (b) at once",
        kind: Kind::LiveUnderFlood,
    },
];

#[derive(Default, Clone)]
struct Sample {
    /// Live (legitimate) requests and their rate, p99.
    live_requests: Vec<f64>,
    live_rps: Vec<f64>,
    live_p99_us: Vec<f64>,
    /// Forged requests and their rate, p99.
    forged_requests: Vec<f64>,
    forged_rps: Vec<f64>,
    forged_p99_us: Vec<f64>,
    /// Envoy CPU per request (all requests of the window).
    cpu_us: Vec<f64>,
    /// Server Resolve calls in the window.
    resolves: Vec<f64>,
    /// Forged tokens refused by the membership filter in the window.
    refused: Vec<f64>,
}

/// Writes `tokens` one a line and a wrk script that sends the next one with each request.
fn rotation(dir: &Path, name: &str, tokens: &[String]) -> anyhow::Result<Credentials> {
    let list = dir.join(format!("{name}.txt"));
    std::fs::write(&list, tokens.join("\n") + "\n")?;
    let script = dir.join(format!("{name}.lua"));
    std::fs::write(
        &script,
        format!(
            "local tokens = {{}}\nfor line in io.lines(\"{}\") do tokens[#tokens + 1] = line end\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  return wrk.format(nil, nil, {{[\"Authorization\"] = \"Bearer \" .. tokens[i]}})\nend\n",
            list.display()
        ),
    )?;
    Ok(Credentials::Rotate(script))
}

/// The server's Resolve calls so far, from its admin `/metrics`.
async fn resolve_calls(http: &reqwest::Client, admin: SocketAddr) -> anyhow::Result<f64> {
    let text = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("tollgate_grants_calls_total{method=\"resolve\"} "))
        .context("no tollgate_grants_calls_total{method=\"resolve\"} on the server's /metrics")?
        .trim()
        .parse()
        .context("Resolve calls")
}

/// Envoy's `wasmcustom.tollgate.*` counters, by short name.
async fn filter_stats(
    http: &reqwest::Client,
    envoy: &Envoy,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let text = http
        .get(format!(
            "http://{}/stats?filter=^wasmcustom\\.tollgate\\.",
            envoy.admin
        ))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((
                name.strip_prefix("wasmcustom.tollgate.")?.to_owned(),
                value.trim().parse().ok()?,
            ))
        })
        .collect())
}

async fn refused(http: &reqwest::Client, envoy: &Envoy) -> anyhow::Result<f64> {
    Ok(filter_stats(http, envoy)
        .await?
        .get("membership.refused")
        .copied()
        .unwrap_or(0.0))
}

/// Sends forged tokens (not the flood's) until the membership filter refuses one: the Watch
/// stream is open and has delivered the filter.
async fn wait_for_membership(
    http: &reqwest::Client,
    envoy: &Envoy,
    url: &str,
    probes: &[String],
) -> anyhow::Result<()> {
    let started = Instant::now();
    for probe in probes.iter().cycle() {
        let status = http.get(url).bearer_auth(probe).send().await?.status();
        if status != 401 {
            bail!("a forged token got {status}, not 401");
        }
        if refused(http, envoy).await? > 0.0 {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(15) {
            bail!(
                "the membership filter refused no forged token within 15 s: the Watch stream did not open or carried no filter\n{}",
                envoy.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no probe tokens")
}

/// Sends every live token once, `CONNECTIONS` at a time: all of them in the filter's cache.
async fn warm_live(http: &reqwest::Client, url: &str, tokens: &[String]) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in tokens.chunks(tokens.len().div_ceil(CONNECTIONS).max(1)) {
        let (http, url, chunk) = (http.clone(), url.to_owned(), chunk.to_vec());
        tasks.spawn(async move {
            for token in chunk {
                let status = http.get(&url).bearer_auth(&token).send().await?.status();
                if status != 200 {
                    bail!("a live token got {status} in the warm-up");
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// How many `forged` tokens a membership filter like the server's (built from the same live
/// hashes, sized the same way) cannot rule out.
fn false_positives(live: &[TokenHash], forged: &[TokenHash]) -> usize {
    let n = live.len();
    let filter = Membership::build(n.saturating_add(n / 4), live);
    forged.iter().filter(|h| filter.may_contain(h)).count()
}

fn hashes(tokens: &[String]) -> anyhow::Result<Vec<TokenHash>> {
    tokens
        .iter()
        .map(|t| Token::parse(t).map(|t| t.hash()).context("a token"))
        .collect()
}

/// The flood bench: see the module's documentation.
pub async fn run(
    rounds: usize,
    seconds: u64,
    live: usize,
    forged: usize,
    envoy_core: usize,
    load_core: usize,
    server_core: usize,
) -> anyhow::Result<()> {
    if live < 2 {
        bail!("--live must be at least 2 (the seed's two load accounts)");
    }
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("bench.db").display());
    eprintln!("seeding {live} live tokens…");
    let (unrestricted, restricted, fillers) = crate::seed_keeping(&store, live - 2, true).await?;
    let mut live_tokens = vec![unrestricted.clone(), restricted];
    live_tokens.extend(fillers);
    let (_server, admin, grpc, _) =
        crate::start_server_with_admin(server_core, &store, dir.path())?;
    let forged_tokens = (0..forged)
        .map(|_| Token::generate().map(|t| t.expose_secret().to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let probes = (0..64)
        .map(|_| Token::generate().map(|t| t.expose_secret().to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let hit = rotation(dir.path(), "hit", std::slice::from_ref(&unrestricted))?;
    let everyone = rotation(dir.path(), "live", &live_tokens)?;
    let flood = rotation(dir.path(), "flood", &forged_tokens)?;
    let config = bootstrap(
        &wasm_filter(&filter_wasm()?, FILTER_CONFIG),
        &grpc_cluster("tollgate", grpc.port()),
    );
    let http = reqwest::Client::new();
    let path = "/api/v1/query?query=up";
    let mut samples = vec![Sample::default(); VARIANTS.len()];
    for round in 0..rounds {
        for (variant, sample) in VARIANTS.iter().zip(samples.iter_mut()) {
            let envoy = Envoy::start_on(&config, Some(envoy_core)).await?;
            let url = format!("{}{path}", envoy.url());
            wait_for_membership(&http, &envoy, &url, &probes).await?;
            let wrk = |credentials: &Credentials, seconds: u64| {
                wrk_spawn(&url, credentials, CONNECTIONS, seconds, load_core)
            };
            // Warm-up: compiles the module, opens connections, fills the cache. Every live
            // token must be cached before the window (wrk's rotation starts from the first
            // token again with each run): send each once first.
            if matches!(variant.kind, Kind::Live | Kind::LiveUnderFlood) {
                warm_live(&http, &url, &live_tokens).await?;
            }
            match variant.kind {
                Kind::Hit => {
                    wrk_finish(wrk(&hit, 1)?, Expect::Success)?;
                }
                Kind::Live => {}
                Kind::Flood => {
                    wrk_finish(wrk(&flood, 1)?, Expect::Refusal)?;
                }
                Kind::LiveUnderFlood => {
                    let live = wrk(&everyone, 1)?;
                    let forged = wrk(&flood, 1)?;
                    wrk_finish(live, Expect::Success)?;
                    wrk_finish(forged, Expect::Refusal)?;
                }
            }
            let resolves_before = resolve_calls(&http, admin).await?;
            let refused_before = refused(&http, &envoy).await?;
            let cpu_before = crate::cpu_seconds(envoy.pid())?;
            let (live_run, forged_run): (Option<WrkRun>, Option<WrkRun>) = match variant.kind {
                Kind::Hit => (
                    Some(wrk_finish(wrk(&hit, seconds)?, Expect::Success)?),
                    None,
                ),
                Kind::Live => (
                    Some(wrk_finish(wrk(&everyone, seconds)?, Expect::Success)?),
                    None,
                ),
                Kind::Flood => (
                    None,
                    Some(wrk_finish(wrk(&flood, seconds)?, Expect::Refusal)?),
                ),
                Kind::LiveUnderFlood => {
                    let live = wrk(&everyone, seconds)?;
                    let forged = wrk(&flood, seconds)?;
                    (
                        Some(wrk_finish(live, Expect::Success)?),
                        Some(wrk_finish(forged, Expect::Refusal)?),
                    )
                }
            };
            let cpu = crate::cpu_seconds(envoy.pid())? - cpu_before;
            let refused_now = refused(&http, &envoy).await? - refused_before;
            let resolves = resolve_calls(&http, admin).await? - resolves_before;
            let mut requests = 0.0;
            if let Some(run) = &live_run {
                requests += run.requests;
                sample.live_requests.push(run.requests);
                sample.live_rps.push(run.rps);
                sample.live_p99_us.push(run.p99_us);
            }
            if let Some(run) = &forged_run {
                requests += run.requests;
                sample.forged_requests.push(run.requests);
                sample.forged_rps.push(run.rps);
                sample.forged_p99_us.push(run.p99_us);
                // Item 4 of the bench's brief: the refusals must come from the membership
                // filter, not from the server.
                if refused_now <= 0.0 {
                    bail!(
                        "{}: the membership filter refused no forged token: it was not in effect",
                        variant.name
                    );
                }
            }
            sample.cpu_us.push(cpu * 1e6 / requests.max(1.0));
            sample.resolves.push(resolves);
            sample.refused.push(refused_now);
            drop(envoy);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("flood: round {}/{rounds} done", round + 1);
    }

    let bootstrap_token = std::fs::read_to_string(dir.path().join("bootstrap"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| Token::parse(t).is_ok());
    let mut live_hashes = hashes(&live_tokens)?;
    if let Some(token) = &bootstrap_token {
        live_hashes.extend(hashes(std::slice::from_ref(token))?);
    }
    let fp = false_positives(&live_hashes, &hashes(&forged_tokens)?);

    let med = |values: &[f64]| median_spread(values).0;
    println!();
    println!(
        "Flood of forged, well-formed tokens (issue 18): Envoy --concurrency 1 on core {envoy_core}, filter {FILTER_CONFIG} (membership filter on the Watch stream), a fresh Envoy per variant; server on core {server_core}; wrk -t1 -c{CONNECTIONS} per load on core {load_core}; {} live tokens{}, {forged} forged; {rounds} interleaved rounds x {seconds} s; medians (min-max)",
        live_tokens.len(),
        if bootstrap_token.is_some() {
            " (+ the bootstrap admin's)"
        } else {
            ""
        }
    );
    println!(
        "{:<34} {:>22} {:>8} {:>11} {:>7} {:>9} {:>11} {:>9}",
        "variant", "req/s", "p99 us", "CPU us/req", "cpu/(a)", "Resolves", "per forged", "refused"
    );
    let hit_cpu = med(&samples[0].cpu_us);
    for (variant, sample) in VARIANTS.iter().zip(&samples) {
        let rows: Vec<(&str, &[f64], &[f64])> = match variant.kind {
            Kind::Hit | Kind::Live => vec![("", &sample.live_rps, &sample.live_p99_us)],
            Kind::Flood => vec![("", &sample.forged_rps, &sample.forged_p99_us)],
            Kind::LiveUnderFlood => vec![
                (": live", &sample.live_rps, &sample.live_p99_us),
                (": forged", &sample.forged_rps, &sample.forged_p99_us),
            ],
        };
        for (i, (suffix, rps, p99)) in rows.into_iter().enumerate() {
            let (rate, lo, hi) = median_spread(rps);
            let name = format!("{}{suffix}", variant.name);
            if i > 0 {
                println!(
                    "{name:<34} {rate:>8.0} ({lo:>5.0}-{hi:<5.0}) {:>8.0}",
                    med(p99)
                );
                continue;
            }
            let cpu = med(&sample.cpu_us);
            let per_forged = if sample.forged_requests.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{:.4}",
                    med(&sample.resolves) / med(&sample.forged_requests).max(1.0)
                )
            };
            println!(
                "{name:<34} {rate:>8.0} ({lo:>5.0}-{hi:<5.0}) {:>8.0} {cpu:>11.1} {:>7.2} {:>9.0} {per_forged:>11} {:>9.0}",
                med(p99),
                cpu / hit_cpu,
                med(&sample.resolves),
                med(&sample.refused),
            );
        }
    }
    println!(
        "(CPU us/req: Envoy's CPU over all requests of the window; Resolves: the server's Resolve calls in the window; refused: forged tokens the membership filter refused inside Envoy)"
    );

    let flood_sample = &samples[2];
    let calls = med(&flood_sample.resolves);
    let flood_requests = med(&flood_sample.forged_requests);
    println!(
        "target: a flood of forged, well-formed tokens makes 0 server calls: {calls:.0} Resolve calls in {seconds} s of {flood_requests:.0} forged requests ({:.3}% of them) {}",
        100.0 * calls / flood_requests.max(1.0),
        verdict(calls == 0.0)
    );
    println!(
        "how: a replica of the server's membership filter (a Bloom filter, {} bits per token, sized for 1.25x the live tokens) lets {fp} of the {forged} forged tokens through ({:.4}%); each would be resolved when an Envoy worker first sees it, then refused from that worker's negative cache for 5 s (negativeTtlSeconds). Every other forged token is refused inside Envoy.",
        tollgate_core::membership::BITS_PER_TOKEN,
        100.0 * fp as f64 / forged.max(1) as f64
    );
    let cpu_ratio = med(&flood_sample.cpu_us) / hit_cpu;
    println!(
        "target: Envoy CPU per forged request <= 1.2x a hit: {cpu_ratio:.2}x {}",
        verdict(cpu_ratio <= 1.2)
    );
    // Every Resolve call of a window counted as a live token's miss: a lower bound on the live
    // hit rate (under the flood the false positives' calls are in it too).
    let hit_rate = |sample: &Sample| {
        let rates: Vec<f64> = sample
            .resolves
            .iter()
            .zip(&sample.live_requests)
            .map(|(calls, requests)| 100.0 * (1.0 - calls / requests.max(1.0)))
            .collect();
        med(&rates)
    };
    let (alone, under) = (hit_rate(&samples[1]), hit_rate(&samples[3]));
    println!(
        "target: legitimate hit rate unchanged under the flood ({} live tokens, {forged} forged; within {HIT_RATE_POINTS} point, every Resolve call in the window counted as a live miss): {alone:.2}% alone, >= {under:.2}% under the flood {}",
        live_tokens.len(),
        verdict(under >= alone - HIT_RATE_POINTS)
    );
    let (live_alone, live_under) = (med(&samples[1].live_rps), med(&samples[3].live_rps));
    let total_under = live_under + med(&samples[3].forged_rps);
    println!(
        "live tokens' req/s under the flood: {:.2}x alone; Envoy's one core serves both loads: live + forged {:.2}x the live tokens alone (not a target: a closed-loop flood on a saturated core takes its share of it)",
        live_under / live_alone,
        total_under / live_alone
    );
    Ok(())
}
