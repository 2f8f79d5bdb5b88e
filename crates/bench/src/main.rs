//! `tollgate-bench`: measures the ext_authz Check path against its floor.
//!
//! * `trivial-server`: an always-allow tonic Check server, the floor of any ext_authz server.
//! * `check`: starts `tollgate serve` and the trivial server pinned to one core, seeds tokens,
//!   and drives both with a gRPC load client over interleaved rounds, reporting Check/s and
//!   server CPU per Check (from /proc) as medians with their spread and ratios to the floor.
//! * `check-instructions`: the same two servers run by callgrind, in instructions per Check.
//! * `promql`: the cost of PromQL enforcement on typical dashboard queries.
//! * `logql`: the same for LogQL on typical Loki queries (issue 15).
//! * `answers`: removing an account's policy labels from a 1 MB answer, against parsing and
//!   printing the same JSON (issue 15).
//! * `flood`: a flood of forged, well-formed tokens through Envoy in filter mode (issue 18).
//! * `vm`: the filter module's own work per request in Node's V8, without Envoy's noise.
//! * `store`: admin write latency on SQLite and PostgreSQL, and replica-to-replica propagation.
//!
//! The machine is shared and noisy: compare ratios within one run, never absolute figures
//! across runs.

mod check_instructions;
mod envoy;
mod flood;
mod instructions;
mod profile;
mod soak;
mod store;
mod vm;
mod writes;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "tollgate-bench", about = "Tollgate benchmark tools")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// An always-allow Check server; prints `listening ADDR` on stdout.
    TrivialServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Check/s and server CPU per Check: Tollgate next to the trivial server, same run.
    Check {
        /// Store sizes (tokens) to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds of load per target per round.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Concurrent gRPC streams (one connection each).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// CPU core the servers are pinned to (the load should run on another).
        #[arg(long, default_value_t = 0)]
        server_core: usize,
    },
    /// Through Envoy: req/s, p50/p99 and Envoy CPU per request, for each auth variant.
    Envoy {
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Connection counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "16,1")]
        connections: Vec<usize>,
    },
    /// A flood of forged, well-formed tokens through Envoy in filter mode (issue 18): server
    /// calls, Envoy CPU per forged request against a hit, and the live tokens' hit rate under it.
    Flood {
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        /// Live tokens in the store.
        #[arg(long, default_value_t = 10_000)]
        live: usize,
        /// Forged tokens the flood rotates through.
        #[arg(long, default_value_t = 50_000)]
        forged: usize,
        /// CPU core of the server (Envoy runs on core 0, wrk on core 1).
        #[arg(long, default_value_t = 1)]
        server_core: usize,
    },
    /// Revoke-to-first-denial through Envoy in filter mode: p50, p99, max.
    Revocation {
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// A long run through Envoy at a fraction of measured capacity with valid, revoked, unknown
    /// and malformed tokens and token churn, sampling RSS (`make soak`).
    Soak {
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        #[arg(long, value_enum, default_value = "filter")]
        mode: soak::SoakMode,
        /// Fraction of the measured capacity to run at.
        #[arg(long, default_value_t = 0.8)]
        fraction: f64,
        /// Concurrent client tasks.
        #[arg(long, default_value_t = 16)]
        workers: usize,
    },
    /// Microseconds per write batch confined to a policy, against snappy alone (issue 14).
    Writes {
        #[arg(long, default_value_t = 200)]
        iterations: usize,
    },
    /// The filter module's own work per request in Node's V8, without Envoy: a hit, a hit with a
    /// PromQL rewrite, next to the empty filter and its host calls (needs `node`).
    Vm {
        #[arg(long, default_value_t = 100_000)]
        iterations: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Instructions per request through Envoy run by callgrind: the empty filter, its hit's
    /// host calls, a hit, a hit with a PromQL rewrite (needs valgrind; several minutes).
    Instructions {
        #[arg(long, default_value_t = 1000)]
        requests: usize,
    },
    /// Instructions per Check of `tollgate serve` run by callgrind, next to the trivial server:
    /// unrestricted and with a PromQL rewrite (needs valgrind; about 15 seconds).
    CheckInstructions {
        #[arg(long, default_value_t = 2000)]
        checks: usize,
        /// Tokens in the store.
        #[arg(long, default_value_t = 1000)]
        tokens: usize,
        /// Keep callgrind's dumps here, for callgrind_annotate.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A filter hit's own instructions function by function, in Node's V8 under callgrind
    /// (`make bench-profile` builds a module that keeps its function names; needs valgrind).
    Profile {
        /// The filter module, with its name section.
        module: PathBuf,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
    },
    /// Microseconds per PromQL enforcement of typical dashboard queries.
    Promql {
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
    },
    /// Microseconds per LogQL enforcement of typical Loki queries.
    Logql {
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
    },
    /// Milliseconds to remove an account's policy labels from a 1 MB answer (Prometheus JSON and
    /// /federate text), against parsing and printing the same JSON in the same run.
    Answers {
        #[arg(long, default_value_t = 20)]
        iterations: usize,
    },
    /// Admin write latency p50/p99 on SQLite and PostgreSQL (a throwaway local cluster), and
    /// replica-to-replica propagation on PostgreSQL.
    Store {
        /// Token creations (and as many revocations) per backend.
        #[arg(long, default_value_t = 200)]
        writes: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A subscriber that wants nothing, for the trivial servers (in this process and as
    // `trivial-server`): with none set, tracing's `log` fallback (a dependency enables it)
    // hands every h2 and hyper span to `log`, some 11,000 instructions per Check (callgrind),
    // which `tollgate serve`, with its subscriber, never pays. The floor must not pay it either.
    if let Err(err) =
        tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default())
    {
        eprintln!("error: cannot set the tracing subscriber: {err}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Cmd::TrivialServer { listen } => trivial_server(listen).await,
            Cmd::Check {
                sizes,
                rounds,
                seconds,
                concurrency,
                server_core,
            } => {
                check_bench(
                    &sizes,
                    rounds,
                    Duration::from_secs_f64(seconds),
                    concurrency,
                    server_core,
                )
                .await
            }
            Cmd::Vm { iterations, rounds } => vm::run(iterations, rounds),
            Cmd::Instructions { requests } => instructions::run(requests).await,
            Cmd::CheckInstructions {
                checks,
                tokens,
                out,
            } => check_instructions::run(checks, tokens, out.as_deref()).await,
            Cmd::Profile { module, iterations } => vm::profile(&module, iterations),
            Cmd::Promql { iterations } => promql_bench(iterations),
            Cmd::Logql { iterations } => logql_bench(iterations),
            Cmd::Answers { iterations } => answers_bench(iterations),
            Cmd::Writes { iterations } => writes::run(iterations),
            Cmd::Soak {
                minutes,
                mode,
                fraction,
                workers,
            } => soak::run(minutes, mode, fraction, workers).await,
            Cmd::Envoy {
                rounds,
                seconds,
                connections,
            } => envoy::run(rounds, seconds, &connections, 0, 1).await,
            Cmd::Revocation { count } => envoy::revocation(count, 0).await,
            Cmd::Flood {
                rounds,
                seconds,
                live,
                forged,
                server_core,
            } => flood::run(rounds, seconds, live, forged, 0, 1, server_core).await,
            Cmd::Store { writes } => store::run(writes).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

struct AlwaysAllow;

#[tonic::async_trait]
impl Authorization for AlwaysAllow {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(envoy_types::pb::google::rpc::Status::default()),
            dynamic_metadata: None,
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
        }))
    }
}

async fn trivial_server(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(AlwaysAllow))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}

/// An always-allow Check server on a free loopback port, on this process's runtime.
async fn spawn_trivial_server() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(AlwaysAllow))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    Ok(addr)
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_seconds(self.0.id()).map(Duration::from_secs_f64)
    }
}

/// Runs `command` to its end; an exit other than success is an error carrying its stderr.
/// `what` names it, and what installs it, for the error of a command that cannot start.
fn checked_output(command: &mut Command, what: &str) -> anyhow::Result<std::process::Output> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// User + system CPU seconds a process has used so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("no directory for the current executable")?;
    for candidate in [dir.join(name), dir.join("..").join(name)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} not found next to {}: build the workspace in the same profile first",
        exe.display()
    )
}

/// Spawns `program args` pinned to `core` with a one-thread tokio runtime, run by `wrapper` (a
/// command and its arguments, such as valgrind's; empty for none).
fn spawn_pinned(
    core: usize,
    wrapper: &[String],
    program: &PathBuf,
    args: &[String],
    envs: &[(&str, String)],
) -> anyhow::Result<Process> {
    let mut command = Command::new("taskset");
    command
        .arg("-c")
        .arg(core.to_string())
        .args(wrapper)
        .arg(program)
        .args(args);
    command.env("TOKIO_WORKER_THREADS", "1");
    for (key, value) in envs {
        command.env(key, value);
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting a server under taskset")?;
    Ok(Process(child))
}

/// The trivial server (this binary's `trivial-server`) pinned to `core`, run by `wrapper`, and
/// its address once it listens (within `ready_within`).
fn start_trivial(
    core: usize,
    wrapper: &[String],
    ready_within: Duration,
) -> anyhow::Result<(Process, SocketAddr)> {
    let this = std::env::current_exe()?;
    let mut trivial = spawn_pinned(core, wrapper, &this, &["trivial-server".into()], &[])?;
    drain_stderr(&mut trivial);
    let stdout = trivial.0.stdout.take().context("trivial stdout")?;
    let addr = wait_for_address(stdout, listening_address, ready_within)?;
    Ok((trivial, addr))
}

/// The address in the trivial server's `listening ADDR` line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("listening ").and_then(|a| a.parse().ok())
}

/// Reads and discards a child's stderr, so that it never blocks on a full pipe.
fn drain_stderr(process: &mut Process) {
    if let Some(mut stderr) = process.0.stderr.take() {
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    }
}

/// Reads lines of a child's output until `pick` returns an address, then keeps draining it;
/// gives up after `within` even if the child prints nothing more.
fn wait_for_address(
    reader: impl std::io::Read + Send + 'static,
    pick: impl Fn(&str) -> Option<SocketAddr>,
    within: Duration,
) -> anyhow::Result<SocketAddr> {
    // Lines arrive from a thread that keeps draining them, so the wait has a deadline even when
    // the child is silent, and the child never blocks on a full pipe.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            // The receiver is gone once the address is found: keep draining regardless.
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = pick(&line) {
                    return Ok(addr);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("the server did not report its address within {within:?}")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the server closed its output without reporting its address (did it exit?)")
            }
        }
    }
}

fn check_request(path: &str, token: &str) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    headers.insert("authorization".to_owned(), format!("Bearer {token}"));
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: path.into(),
                    headers,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// Runs `concurrency` streams against `target` for `duration`; returns completed Checks.
/// Every answer must be an allow: a benchmark of denials would measure the wrong path.
async fn load(
    target: SocketAddr,
    request: &CheckRequest,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<u64> {
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(AuthorizationClient::connect(format!("http://{target}")).await?);
    }
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for mut client in clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let response = client.check(request.clone()).await?.into_inner();
                if response.status.as_ref().map_or(-1, |s| s.code) != 0 {
                    bail!("a Check was not allowed: {:?}", response.status);
                }
                done += 1;
            }
            Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total)
}

const TARGET_NAMES: [&str; 3] = [
    "trivial always-allow server",
    "tollgate, unrestricted token",
    "tollgate, PromQL rewrite",
];

struct Target {
    addr: SocketAddr,
    process_index: usize,
    request: CheckRequest,
}

#[derive(Default)]
struct Samples {
    rate: Vec<f64>,
    cpu_us: Vec<f64>,
}

/// The median over rounds of `costs[i] / reference[i]`: each round's cost against the reference
/// measured next to it, so the machine's drift between rounds cancels out (ratios of medians
/// taken over different moments did not).
fn round_ratio(costs: &[f64], reference: &[f64]) -> f64 {
    median_spread(&round_ratios(costs, reference)).0
}

/// `costs[i] / reference[i]` for each round.
fn round_ratios(costs: &[f64], reference: &[f64]) -> Vec<f64> {
    costs.iter().zip(reference).map(|(c, r)| c / r).collect()
}

fn median_spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    (
        median,
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

/// Seeds a store directly (one transaction per 50k tokens): the two accounts the load uses and
/// `tokens` more. Returns (unrestricted token, restricted token).
async fn seed(url: &str, tokens: usize) -> anyhow::Result<(String, String)> {
    let (unrestricted, restricted, _) = seed_keeping(url, tokens, false).await?;
    Ok((unrestricted, restricted))
}

/// [`seed`], also returning the `tokens` more (a viewer's, policy `{team="a"}`) when `keep`.
async fn seed_keeping(
    url: &str,
    tokens: usize,
    keep: bool,
) -> anyhow::Result<(String, String, Vec<String>)> {
    use tollgate_server::model::{AuditRecord, Name, NewAccount, NewToken};
    use tollgate_server::store::{SqliteStore, Store};
    let store = SqliteStore::open(url).await?;
    let audit = AuditRecord {
        at: 0,
        actor: "bench".into(),
        tenant: "default".into(),
        action: "seed".into(),
        target: "bench".into(),
        outcome: "ok".into(),
    };
    let account =
        |name: &str, role: tollgate_core::Role, policy: &str| -> anyhow::Result<NewAccount> {
            Ok(NewAccount {
                tenant: Name::parse("default")?,
                name: Name::parse(name)?,
                display_name: name.into(),
                description: String::new(),
                owner_email: String::new(),
                role: Name::parse(role.as_str())?,
                label_policy: policy.into(),
                all_tenants: false,
                read_tenants: Default::default(),
                hide_policy_labels: false,
                created_at: 0,
                created_by: "bench".into(),
            })
        };
    let new_token = |name: String| -> anyhow::Result<(tollgate_core::Token, NewToken)> {
        let token = tollgate_core::Token::generate()?;
        let new = NewToken {
            name: Name::parse(&name)?,
            hash: token.hash(),
            hint: token.hint(),
            created_at: 0,
            expires_at: None,
        };
        Ok((token, new))
    };
    let editor = store
        .create_account(
            account("bench-editor", tollgate_core::Role::Editor, "")?,
            audit.clone(),
        )
        .await?;
    let viewer = store
        .create_account(
            account(
                "bench-viewer",
                tollgate_core::Role::Viewer,
                "{kube_namespace=\"prometheus\"}",
            )?,
            audit.clone(),
        )
        .await?;
    let (unrestricted, t1) = new_token("load".into())?;
    let (restricted, t2) = new_token("load".into())?;
    store
        .create_tokens(editor.id, vec![t1], audit.clone())
        .await?;
    store
        .create_tokens(viewer.id, vec![t2], audit.clone())
        .await?;
    let filler = store
        .create_account(
            account("bench-filler", tollgate_core::Role::Viewer, "{team=\"a\"}")?,
            audit.clone(),
        )
        .await?;
    let started = Instant::now();
    let mut made = 0;
    let mut kept = Vec::new();
    while made < tokens {
        let batch = (tokens - made).min(50_000);
        let mut news = Vec::with_capacity(batch);
        for i in made..made + batch {
            let (token, new) = new_token(format!("t{i}"))?;
            if keep {
                kept.push(token.expose_secret().to_owned());
            }
            news.push(new);
        }
        store.create_tokens(filler.id, news, audit.clone()).await?;
        made += batch;
        if tokens >= 100_000 {
            eprintln!(
                "  seeded {made}/{tokens} ({:.0}/s)",
                made as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok((
        unrestricted.expose_secret().to_owned(),
        restricted.expose_secret().to_owned(),
        kept,
    ))
}

/// Resident memory now and at peak, in MiB, from /proc/PID/status.
fn rss_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Ok((
        field("VmRSS:").context("VmRSS")?,
        field("VmHWM:").context("VmHWM")?,
    ))
}

/// Starts `tollgate serve` pinned to `core` on an existing store; returns the process, its gRPC
/// address and the time from spawn to listening (the cold start).
fn start_server(
    core: usize,
    store: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(Process, SocketAddr, Duration)> {
    let (server, _, grpc, cold_start) = start_server_with_admin(core, store, dir)?;
    Ok((server, grpc, cold_start))
}

/// [`start_server`], also returning the admin API's address (its `/metrics`).
fn start_server_with_admin(
    core: usize,
    store: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(Process, SocketAddr, SocketAddr, Duration)> {
    start_server_wrapped(core, &[], Duration::from_secs(20), store, dir)
}

/// [`start_server_with_admin`], the server run by `wrapper` and given `ready_within` to start.
fn start_server_wrapped(
    core: usize,
    wrapper: &[String],
    ready_within: Duration,
    store: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(Process, SocketAddr, SocketAddr, Duration)> {
    let tollgate = sibling_binary("tollgate")?;
    let started = Instant::now();
    let mut server = spawn_pinned(
        core,
        wrapper,
        &tollgate,
        &[
            "serve".into(),
            format!("--store={store}"),
            "--http-listen=127.0.0.1:0".into(),
            "--grpc-listen=127.0.0.1:0".into(),
        ],
        &[
            (
                "TOLLGATE_BOOTSTRAP_TOKEN_FILE",
                dir.join("bootstrap").display().to_string(),
            ),
            ("TOLLGATE_LOG", "info".into()),
        ],
    )?;
    let stderr = server.0.stderr.take().context("server stderr")?;
    let admin = std::cell::Cell::new(None);
    let addr = |line: &str| -> Option<SocketAddr> {
        line.split("addr=")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok())
    };
    let grpc = wait_for_address(
        stderr,
        |line| {
            if line.contains("admin API listening") {
                admin.set(addr(line));
            }
            if !line.contains("gRPC") {
                return None;
            }
            addr(line)
        },
        ready_within,
    )?;
    let admin = admin
        .get()
        .context("the server did not report its admin API address")?;
    Ok((server, admin, grpc, started.elapsed()))
}

/// One store size under measurement: its server (stopped when dropped, before its store's
/// directory is removed: fields drop in order), and the samples of its targets.
struct RunningSize {
    tokens: usize,
    server: Process,
    _dir: tempfile::TempDir,
    cold_start: Duration,
    rss_idle: f64,
    targets: [Target; 3],
    samples: Vec<Samples>,
}

struct SizeReport {
    tokens: usize,
    cold_start: Duration,
    rss_idle: f64,
    rss_peak: f64,
    samples: Vec<Samples>,
}

async fn check_bench(
    sizes: &[usize],
    rounds: usize,
    duration: Duration,
    concurrency: usize,
    core: usize,
) -> anyhow::Result<()> {
    let (trivial, trivial_addr) = start_trivial(core, &[], Duration::from_secs(20))?;
    let query = format!(
        "/api/v1/query?query={}",
        tollgate_core::form::encode("sum(rate(http_requests_total[5m])) by (job)")
    );
    // Every size's server runs at once and the rounds go through all of them, so the
    // machine's drift over the run (it is shared) falls on every size alike: measured one size
    // after another, the first size's ratios were the noisy ones and "flat" flapped.
    let mut running = Vec::new();
    for &tokens in sizes {
        let dir = tempfile::tempdir()?;
        let store = format!("sqlite://{}", dir.path().join("bench.db").display());
        eprintln!("size {tokens}: seeding…");
        let (unrestricted, restricted) = seed(&store, tokens).await?;
        let (server, grpc, cold_start) = start_server(core, &store, dir.path())?;
        let (rss_idle, _) = rss_mib(server.0.id())?;
        let targets = [
            Target {
                addr: trivial_addr,
                process_index: 0,
                request: check_request(&query, &unrestricted),
            },
            Target {
                addr: grpc,
                process_index: 1,
                request: check_request(&query, &unrestricted),
            },
            Target {
                addr: grpc,
                process_index: 1,
                request: check_request(&query, &restricted),
            },
        ];
        for target in &targets {
            load(
                target.addr,
                &target.request,
                concurrency,
                Duration::from_millis(500),
            )
            .await?;
        }
        running.push(RunningSize {
            tokens,
            server,
            _dir: dir,
            cold_start,
            rss_idle,
            samples: targets.iter().map(|_| Samples::default()).collect(),
            targets,
        });
    }
    for _ in 0..rounds {
        for size in &mut running {
            let processes = [&trivial, &size.server];
            for (target, sample) in size.targets.iter().zip(size.samples.iter_mut()) {
                let process = processes[target.process_index];
                let cpu_before = process.cpu_time()?;
                let started = Instant::now();
                let checks = load(target.addr, &target.request, concurrency, duration).await?;
                let elapsed = started.elapsed();
                let cpu = process.cpu_time()? - cpu_before;
                sample.rate.push(checks as f64 / elapsed.as_secs_f64());
                sample
                    .cpu_us
                    .push(cpu.as_secs_f64() * 1e6 / checks.max(1) as f64);
            }
        }
    }
    let mut reports = Vec::new();
    for size in running {
        let (_, rss_peak) = rss_mib(size.server.0.id())?;
        reports.push(SizeReport {
            tokens: size.tokens,
            cold_start: size.cold_start,
            rss_idle: size.rss_idle,
            rss_peak,
            samples: size.samples,
        });
    }
    println!(
        "Check path: servers pinned to core {core} with one tokio worker, {concurrency} streams, {rounds} rounds interleaving every target of every size (all servers running) x {:.1} s per target; medians (min-max); ratios: the median of each round's ratio to the trivial server measured next to it",
        duration.as_secs_f64()
    );
    println!(
        "{:>9} {:<30} {:>22} {:>24} {:>7} {:>7} {:>10} {:>10} {:>10}",
        "tokens",
        "target",
        "Check/s",
        "CPU us/Check",
        "rate x",
        "cpu x",
        "cold start",
        "RSS MiB",
        "peak MiB"
    );
    for report in &reports {
        let floor = &report.samples[0];
        for (i, (name, sample)) in TARGET_NAMES.iter().zip(&report.samples).enumerate() {
            let (rate, rate_lo, rate_hi) = median_spread(&sample.rate);
            let (cpu, cpu_lo, cpu_hi) = median_spread(&sample.cpu_us);
            let server_columns = if i == 0 {
                String::new()
            } else {
                format!(
                    "{:>9.2}s {:>10.0} {:>10.0}",
                    report.cold_start.as_secs_f64(),
                    report.rss_idle,
                    report.rss_peak
                )
            };
            println!(
                "{:>9} {:<30} {:>8.0} ({:>5.0}-{:<5.0}) {:>8.1} ({:>5.1}-{:<5.1}) {:>7.2} {:>7.2} {}",
                report.tokens,
                name,
                rate,
                rate_lo,
                rate_hi,
                cpu,
                cpu_lo,
                cpu_hi,
                round_ratio(&sample.rate, &floor.rate),
                round_ratio(&sample.cpu_us, &floor.cpu_us),
                server_columns
            );
        }
    }
    drop(trivial);
    // A target's CPU per Check against the trivial server's in the same round, per round.
    let cpu_ratios = |r: &SizeReport, target: usize| {
        round_ratios(&r.samples[target].cpu_us, &r.samples[0].cpu_us)
    };
    let worst = |target: usize| {
        reports
            .iter()
            .map(|r| median_spread(&cpu_ratios(r, target)).0)
            .fold(0.0, f64::max)
    };
    if let (Some(first), Some(last)) = (reports.first(), reports.last()) {
        let unrestricted = worst(1);
        println!(
            "target: server CPU per Check <= 1.2x the trivial server's: worst {unrestricted:.2}x {}",
            envoy::verdict(unrestricted <= 1.2)
        );
        let rewrite = worst(2);
        println!(
            "target: server CPU per Check with a PromQL rewrite <= 1.5x the trivial server's: worst {rewrite:.2}x {}",
            envoy::verdict(rewrite <= 1.5)
        );
        // Per round: the largest size's ratio over the smallest's, both measured in that round.
        let flat = round_ratio(&cpu_ratios(last, 1), &cpu_ratios(first, 1));
        println!(
            "target: flat from {} to {} tokens (within 10%): {flat:.2}x {}",
            first.tokens,
            last.tokens,
            envoy::verdict((0.9..=1.1).contains(&flat))
        );
        println!(
            "target: {} tokens in <= 300 MB RSS: {:.0} MiB idle, {:.0} MiB peak {}",
            last.tokens,
            last.rss_idle,
            last.rss_peak,
            envoy::verdict(last.rss_peak * 1.048_576 <= 300.0)
        );
        println!(
            "target: cold start <= 3 s at {} tokens: {:.2} s {}",
            last.tokens,
            last.cold_start.as_secs_f64(),
            envoy::verdict(last.cold_start.as_secs_f64() <= 3.0)
        );
    }
    Ok(())
}

/// Loki queries of the kind dashboards and alerts send (log, metric, unwrap, pattern, binary).
const LOKI_QUERIES: &str = include_str!("../../core/benches/dashboard_queries.logql");

fn logql_bench(iterations: usize) -> anyhow::Result<()> {
    use tollgate_core::Policy;
    use tollgate_core::logql::LogqlEnforcer;
    // A label the queries do not name, so every one is rewritten rather than refused.
    let policy = Policy::parse(r#"{team="a"}"#)?;
    let enforcer = LogqlEnforcer::new(&policy)?.context("restricted policy")?;
    enforcement_bench(
        "LogQL enforcement (lex, parse, insert by span, re-parse and verify)",
        "LogQL enforcement, as for PromQL,",
        LOKI_QUERIES,
        iterations,
        |query| {
            std::hint::black_box(enforcer.rewrite_query("query", query)?);
            Ok(())
        },
    )
}

/// Microseconds per `rewrite` of each line of `queries` (median of 5 rounds of `iterations`),
/// then the median over queries against the 30 us target named by `target`.
fn enforcement_bench(
    title: &str,
    target: &str,
    queries: &str,
    iterations: usize,
    rewrite: impl Fn(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    println!("{title}, {iterations} iterations per query");
    println!("{:>8}  query", "us/query");
    let mut all = Vec::new();
    for query in queries.lines() {
        let mut times = Vec::with_capacity(5);
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..iterations {
                rewrite(std::hint::black_box(query))?;
            }
            times.push(started.elapsed().as_secs_f64() * 1e6 / iterations as f64);
        }
        let (median, _, _) = median_spread(&times);
        all.push(median);
        let short: String = query.chars().take(70).collect();
        println!("{median:>8.1}  {short}");
    }
    let (median, lo, hi) = median_spread(&all);
    println!("median over queries {median:.1} us (min {lo:.1}, max {hi:.1})");
    println!(
        "target: {target} <= 30 us at worst, median <= 10 us: worst {hi:.1} us, median {median:.1} us {}",
        envoy::verdict(hi <= 30.0 && median <= 10.0)
    );
    Ok(())
}

/// Median milliseconds of `run` over 5 rounds of `iterations`.
fn time_ms(iterations: usize, mut run: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(5);
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..iterations {
            run()?;
        }
        times.push(started.elapsed().as_secs_f64() * 1e3 / iterations as f64);
    }
    Ok(median_spread(&times).0)
}

fn answers_bench(iterations: usize) -> anyhow::Result<()> {
    use std::fmt::Write;
    use tollgate_core::Policy;
    use tollgate_core::answer::{Answer, HiddenLabels, hide};
    let hidden = HiddenLabels::of(&Policy::parse(r#"{kube_namespace="prometheus"}"#)?);
    // A query_range answer of about 1 MB: series of 30 points, as a dashboard panel gets.
    let mut json = String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
    let mut federate = String::from("# TYPE http_requests_total counter\n");
    let mut series = 0;
    while json.len() < 1_000_000 {
        if series > 0 {
            json.push(',');
        }
        write!(
            json,
            r#"{{"metric":{{"__name__":"http_requests_total","kube_namespace":"prometheus","pod":"web-{series}","code":"200"}},"values":["#
        )?;
        for point in 0..30 {
            if point > 0 {
                json.push(',');
            }
            write!(
                json,
                r#"[{}.5,"{}"]"#,
                1_700_000_000 + point * 15,
                series * 7 + point
            )?;
        }
        json.push_str("]}");
        while federate.len() < json.len() {
            writeln!(
                federate,
                r#"http_requests_total{{code="200",kube_namespace="prometheus",pod="web-{}"}} {} 1700000000000"#,
                federate.len(),
                series
            )?;
        }
        series += 1;
    }
    json.push_str("]}}");
    let mb = json.len() as f64 / 1e6;
    let query = Answer::QueryResult;
    let hide_json = time_ms(iterations, || {
        std::hint::black_box(hide(&query, 200, &hidden, json.as_bytes())?);
        Ok(())
    })?;
    let reference = time_ms(iterations, || {
        let value: serde_json::Value = serde_json::from_str(&json)?;
        std::hint::black_box(serde_json::to_vec(&value)?);
        Ok(())
    })?;
    let hide_text = time_ms(iterations, || {
        std::hint::black_box(hide(&Answer::Federate, 200, &hidden, federate.as_bytes())?);
        Ok(())
    })?;
    println!(
        "Hiding policy labels from answers (filter mode), {iterations} iterations, median of 5"
    );
    println!(
        "query_range JSON, {:.2} MB ({series} series): {hide_json:.2} ms ({:.2} ms/MB); parse + print alone {reference:.2} ms",
        mb,
        hide_json / mb
    );
    println!(
        "/federate text, {:.2} MB: {hide_text:.2} ms ({:.2} ms/MB)",
        federate.len() as f64 / 1e6,
        hide_text / (federate.len() as f64 / 1e6)
    );
    let ratio = hide_json / reference;
    println!(
        "target: hiding labels in a JSON answer <= 1.2x parsing and printing it: {ratio:.2}x {}",
        envoy::verdict(ratio <= 1.2)
    );
    Ok(())
}

/// Queries of the kind dashboards send, shared with the core's criterion benchmarks.
const DASHBOARD_QUERIES: &str = include_str!("../../core/benches/dashboard_queries.promql");

fn promql_bench(iterations: usize) -> anyhow::Result<()> {
    use tollgate_core::Policy;
    use tollgate_core::promql::Enforcer;
    let policy = Policy::parse(r#"{kube_namespace="prometheus"}"#)?;
    let enforcer = Enforcer::new(&policy)?.context("restricted policy")?;
    enforcement_bench(
        "PromQL enforcement, a query the enforcer has not rewritten before (parse, rewrite, print, re-parse and verify; its regex patterns compiled before: promql-parser keeps the last 256)",
        "PromQL enforcement of a new dashboard query",
        DASHBOARD_QUERIES,
        iterations,
        |query| {
            std::hint::black_box(enforcer.rewrite_query_afresh(query)?);
            Ok(())
        },
    )?;
    println!();
    enforcement_bench(
        "PromQL enforcement, a query the policy's enforcer rewrote before (dashboards repeat theirs on every refresh)",
        "PromQL enforcement of a repeated dashboard query",
        DASHBOARD_QUERIES,
        iterations,
        |query| {
            std::hint::black_box(enforcer.rewrite_query(query)?);
            Ok(())
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `sh -c script`, stopped when the returned process is dropped, and its stdout.
    fn output_of(script: &str) -> (Process, std::process::ChildStdout) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        (Process(child), stdout)
    }

    #[test]
    fn waiting_for_an_address_has_a_deadline_and_notices_an_exit() {
        let within = Duration::from_millis(300);
        let (_talks, stdout) = output_of("echo hi; echo listening 127.0.0.1:9");
        let found = wait_for_address(stdout, listening_address, within);
        assert_eq!(found.unwrap(), "127.0.0.1:9".parse().unwrap());
        // Silent and alive: the deadline ends the wait.
        let started = Instant::now();
        let (_silent, stdout) = output_of("sleep 2");
        let silent = wait_for_address(stdout, listening_address, within);
        assert!(silent.unwrap_err().to_string().contains("within"));
        assert!(started.elapsed() < Duration::from_secs(2));
        let (_exits, stdout) = output_of("echo hi");
        let exited = wait_for_address(stdout, listening_address, within);
        assert!(
            exited
                .unwrap_err()
                .to_string()
                .contains("closed its output")
        );
    }
}
