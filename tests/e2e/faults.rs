//! Faults: the real server binary killed with SIGKILL (in the middle of a stream of admin
//! writes, and under load through Envoy in both modes), and Envoy itself restarted.

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_e2e::{
    EchoUpstream, Envoy, MARKER, Mode, Tollgate, admin_request, bootstrap, free_port, send,
    tollgate_binary,
};

/// The real `tollgate serve`, a child process (so it can be SIGKILLed); killed when dropped.
struct Served {
    child: Child,
}

impl Served {
    /// Port 0 for `grpc` lets the server choose; `log` receives its stderr.
    fn start(store: &str, http: u16, grpc: u16, token_file: &Path, log: &Path) -> Served {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(tollgate_binary().unwrap())
            .args([
                "serve",
                &format!("--store={store}"),
                &format!("--http-listen=127.0.0.1:{http}"),
                &format!("--grpc-listen=127.0.0.1:{grpc}"),
            ])
            .env("TOLLGATE_BOOTSTRAP_TOKEN_FILE", token_file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Served { child }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_healthy(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every write acknowledged with a 2xx before the kill is present after the restart, and the
/// store opens cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("t.db").display());
    let token_file = dir.path().join("bootstrap");
    let http = free_port().unwrap();
    let url = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();
    let log = dir.path().join("server.log");
    let mut server = Served::start(&store, http, 0, &token_file, &log);
    wait_healthy(&client, &url).await;
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();

    // Writers keep creating accounts; the server is killed while they do.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, token, acknowledged) = (
            client.clone(),
            url.clone(),
            token.clone(),
            acknowledged.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let reply = client
                    .post(format!("{url}/api/v1/serviceaccounts"))
                    .bearer_auth(&token)
                    .json(&json!({"name": name, "role": "viewer"}))
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 201 => acknowledged.lock().unwrap().push(name),
                    Ok(r) => panic!("unexpected {} before the kill", r.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "the kill came during a stream of writes ({} acknowledged)",
        acknowledged.len()
    );

    let _restarted = Served::start(&store, http, 0, &token_file, &log);
    wait_healthy(&client, &url).await;
    // Every page: a fast machine may acknowledge more writes than one page holds.
    let mut present = Vec::new();
    for page in 1.. {
        let listed: Value = client
            .get(format!(
                "{url}/api/v1/serviceaccounts?pageSize=1000&page={page}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let accounts = listed["serviceAccounts"].as_array().unwrap();
        present.extend(
            accounts
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        if accounts.is_empty() || present.len() as u64 >= listed["totalCount"].as_u64().unwrap() {
            break;
        }
    }
    for name in &acknowledged {
        assert!(present.contains(name), "acknowledged write {name} lost");
    }
    println!(
        "{} writes acknowledged before SIGKILL, all present after restart",
        acknowledged.len()
    );
}

/// Filter configuration for the fault tests: the feed polls every 200 ms, so in the default
/// `deny` failure mode a cached grant is trusted for [`FEED_GRACE`] after the last poll.
const FAST: &str = r#"{"cluster":"tollgate","feed":{"intervalMs":200}}"#;
/// `FilterSettings::feed_grace` for [`FAST`]: three missed polls, at least 3 s.
const FEED_GRACE: Duration = Duration::from_secs(3);

/// Calls the admin API of a server process as the bootstrap admin; panics on a non-2xx answer.
async fn admin(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    admin_request(client, url, token, method, path, body)
        .await
        .unwrap()
}

/// What a load client sends, and the marker the upstream counts it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    Revoked,
    Unknown,
    Malformed,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Valid, Kind::Revoked, Kind::Unknown, Kind::Malformed];

    fn marker(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::Revoked => "revoked",
            Kind::Unknown => "unknown",
            Kind::Malformed => "malformed",
        }
    }
}

/// Where a request falls relative to the kill and the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Answered before the kill.
    Before,
    /// In flight across the kill.
    Kill,
    /// Sent after the kill, answered before the restart.
    Down,
    /// In flight across the restart.
    Restart,
    /// Sent once the restarted server answered its health check.
    After,
}

#[derive(Debug, Clone, Copy)]
struct Timeline {
    kill_start: Instant,
    kill_done: Instant,
    restart_start: Instant,
    ready: Instant,
}

#[derive(Debug)]
struct Sample {
    kind: Kind,
    sent: Instant,
    done: Instant,
    /// 0: no HTTP answer at all.
    status: u16,
    reason: Option<String>,
}

impl Sample {
    fn phase(&self, t: &Timeline) -> Phase {
        if self.done < t.kill_start {
            Phase::Before
        } else if self.sent < t.kill_done {
            Phase::Kill
        } else if self.done < t.restart_start {
            Phase::Down
        } else if self.sent < t.ready {
            Phase::Restart
        } else {
            Phase::After
        }
    }
}

/// The tokens the load clients draw from.
struct Tokens {
    valid: Vec<String>,
    revoked: Vec<String>,
    malformed: Vec<String>,
}

impl Tokens {
    /// The `authorization` header for the `n`-th request of a kind.
    fn authorization(&self, kind: Kind, n: usize) -> String {
        let token = match kind {
            Kind::Valid => self.valid[n % self.valid.len()].clone(),
            Kind::Revoked => self.revoked[n % self.revoked.len()].clone(),
            // Well-formed (checksum right), never issued: each one is a cache miss.
            Kind::Unknown => tollgate_core::Token::generate()
                .unwrap()
                .expose_secret()
                .to_owned(),
            Kind::Malformed => return self.malformed[n % self.malformed.len()].clone(),
        };
        format!("Bearer {token}")
    }
}

/// Sends requests of every kind through Envoy until `stop`, recording each answer.
async fn load_client(
    id: usize,
    envoy_url: String,
    tokens: Arc<Tokens>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let kind = Kind::ALL[(id + n) % Kind::ALL.len()];
        let sent = Instant::now();
        let reply = client
            .get(format!("{envoy_url}/api/v1/query?query=up"))
            .header(
                "authorization",
                tokens.authorization(kind, n / Kind::ALL.len()),
            )
            .header(MARKER, kind.marker())
            .send()
            .await;
        let (status, reason) = match reply {
            Ok(reply) => {
                let status = reply.status().as_u16();
                let body: Value = reply.json().await.unwrap_or(Value::Null);
                (status, body["reason"].as_str().map(str::to_owned))
            }
            Err(_) => (0, None),
        };
        samples.lock().unwrap().push(Sample {
            kind,
            sent,
            done: Instant::now(),
            status,
            reason,
        });
        n += 1;
        // Modest load: the machine is shared.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks one answer against what the mode allows in its phase; `None` if acceptable.
fn unexpected(
    sample: &Sample,
    phase: Phase,
    filter: bool,
    t: &Timeline,
    recovered: Instant,
) -> Option<String> {
    let status = sample.status;
    let ok = match (sample.kind, phase) {
        (_, _) if status == 0 => false,
        // Before the kill, and after service resumed: exact answers.
        (Kind::Valid, Phase::Before) => status == 200,
        (_, Phase::Before) => status == 401,
        (Kind::Valid, Phase::After) if sample.sent >= recovered => status == 200,
        (_, Phase::After) if sample.sent >= recovered => status == 401,
        // The server is down. ext_authz: nobody can decide, 503 for all.
        (_, Phase::Down) if !filter => status == 503,
        // Filter: a cached grant stands in only within the feed grace after the last poll
        // (which was no later than the kill); a malformed token is refused locally; an unknown
        // or revoked one may hit a negative cache entry.
        (Kind::Valid, Phase::Down) => {
            status == 503
                || (status == 200
                    && sample.sent <= t.kill_done + FEED_GRACE + Duration::from_secs(1))
        }
        (Kind::Malformed, Phase::Down) => status == 401,
        (_, Phase::Down) => status == 401 || status == 503,
        // Transitions: the old answer or 503.
        (Kind::Valid, _) => status == 200 || status == 503,
        (Kind::Malformed, _) if filter => status == 401,
        (_, _) => status == 401 || status == 503,
    };
    let reason_ok = match status {
        503 => sample.reason.as_deref() == Some("authorizer_unavailable") || !filter,
        401 => sample.reason.is_some(),
        _ => true,
    };
    (!ok || !reason_ok).then(|| {
        format!(
            "{:?} {:?} sent {:?} after the kill: {} {:?}",
            sample.kind,
            phase,
            sample.sent.saturating_duration_since(t.kill_done),
            status,
            sample.reason
        )
    })
}

/// The real server behind Envoy is SIGKILLed while clients send valid, revoked, unknown and
/// malformed tokens, then restarted on the same store and ports (Envoy keeps running).
async fn server_killed_under_load(mode: Mode) {
    let filter = matches!(mode, Mode::Filter(_));
    let name = if filter { "filter" } else { "ext_authz" };
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("t.db").display());
    let token_file = dir.path().join("bootstrap");
    let log: PathBuf = dir.path().join("server.log");
    let http = free_port().unwrap();
    let grpc = loop {
        let port = free_port().unwrap();
        if port != http {
            break port;
        }
    };
    let url = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();
    let mut server = Served::start(&store, http, grpc, &token_file, &log);
    wait_healthy(&client, &url).await;
    let admin_token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let mut issued = Vec::new();
    for i in 0..4 {
        let created = admin(
            &client,
            &url,
            &admin_token,
            Method::POST,
            "/api/v1/serviceaccounts",
            Some(json!({"name": format!("load{i}"), "role": "viewer", "withToken": true})),
        )
        .await;
        issued.push((
            created["id"].as_i64().unwrap(),
            created["token"]["id"].as_i64().unwrap(),
            created["token"]["token"].as_str().unwrap().to_owned(),
        ));
    }
    let valid: Vec<String> = issued[..2].iter().map(|(_, _, t)| t.clone()).collect();
    let revoked: Vec<String> = issued[2..].iter().map(|(_, _, t)| t.clone()).collect();
    let bad_checksum = {
        let mut t = valid[0].clone();
        let last = t.pop().unwrap();
        t.push(if last == '0' { '1' } else { '0' });
        t
    };
    let malformed = vec![
        "Bearer tgsa_nope".to_owned(),
        format!("Bearer {bad_checksum}"),
        format!("Bearer {} {}", valid[0], valid[1]),
        format!("Basic {}", valid[0]),
        "Bearer".to_owned(),
    ];

    let echo = EchoUpstream::start().await.unwrap();
    let envoy = Envoy::start(&bootstrap(&mode, grpc, echo.addr.port()).unwrap())
        .await
        .unwrap();
    let query = format!("{}/api/v1/query?query=up", envoy.url());
    // Warm the filter's cache with every valid token and one about to be revoked.
    for token in valid.iter().chain(&revoked[..1]) {
        let reply = send(client.get(&query).bearer_auth(token)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    for (id, token_id, _) in &issued[2..] {
        admin(
            &client,
            &url,
            &admin_token,
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while send(client.get(&query).bearer_auth(&revoked[0]))
        .await
        .status
        != 401
    {
        assert!(Instant::now() < deadline, "the revocation never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let warm_up = echo.received().len();

    let tokens = Arc::new(Tokens {
        valid,
        revoked,
        malformed,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..6)
        .map(|id| {
            tokio::spawn(load_client(
                id,
                envoy.url(),
                tokens.clone(),
                stop.clone(),
                samples.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let kill_start = Instant::now();
    server.kill();
    let kill_done = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let restart_start = Instant::now();
    server = Served::start(&store, http, grpc, &token_file, &log);
    wait_healthy(&client, &url).await;
    let ready = Instant::now();
    // Service must resume within a bound, without touching Envoy.
    let recovered = loop {
        let first = samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.kind == Kind::Valid && s.status == 200 && s.sent >= ready)
            .map(|s| s.done)
            .min();
        if let Some(first) = first {
            break first;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "{name}: valid tokens still refused 20 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let t = Timeline {
        kill_start,
        kill_done,
        restart_start,
        ready,
    };
    let samples = std::mem::take(&mut *samples.lock().unwrap());

    // Counts per phase and kind.
    let mut counts: BTreeMap<(Phase, Kind), BTreeMap<u16, usize>> = BTreeMap::new();
    for s in &samples {
        *counts
            .entry((s.phase(&t), s.kind))
            .or_default()
            .entry(s.status)
            .or_default() += 1;
    }
    println!(
        "{name}: server SIGKILLed under load ({} requests; down {:?}; first valid 200 {:?} after the restarted server was healthy)",
        samples.len(),
        restart_start - kill_done,
        recovered.saturating_duration_since(ready)
    );
    for ((phase, kind), statuses) in &counts {
        let get = |s: u16| statuses.get(&s).copied().unwrap_or(0);
        let other: usize = statuses
            .iter()
            .filter(|(s, _)| ![200, 401, 503].contains(*s))
            .map(|(_, n)| n)
            .sum();
        println!(
            "  {name} {:<8} {:<10} allowed {:>5}  denied {:>5}  503 {:>5}  other {:>3}",
            format!("{phase:?}"),
            kind.marker(),
            get(200),
            get(401),
            get(503),
            other
        );
    }

    // Nothing without a valid grant ever reached the upstream.
    let mut leaked = Vec::new();
    for kind in [Kind::Revoked, Kind::Unknown, Kind::Malformed] {
        let reached = echo.marked(kind.marker()).len();
        println!(
            "  {name} upstream received {reached} {} requests",
            kind.marker()
        );
        if reached > 0 {
            leaked.push((kind, reached));
        }
    }
    assert!(
        leaked.is_empty(),
        "{name}: requests without a valid grant reached the upstream: {leaked:?}"
    );
    let allowed_valid = samples
        .iter()
        .filter(|s| s.kind == Kind::Valid && s.status == 200)
        .count();
    assert_eq!(
        echo.marked(Kind::Valid.marker()).len(),
        allowed_valid,
        "{name}: the upstream saw exactly the allowed requests"
    );
    assert_eq!(
        echo.received().len(),
        warm_up + allowed_valid,
        "{name}: nothing unmarked reached the upstream"
    );

    // Every answer is one the mode may give in its phase.
    let wrong: Vec<String> = samples
        .iter()
        .filter_map(|s| unexpected(s, s.phase(&t), filter, &t, recovered))
        .collect();
    assert!(
        wrong.is_empty(),
        "{name}: {} unexpected answers, e.g. {:?}\nserver log:\n{}",
        wrong.len(),
        &wrong[..wrong.len().min(10)],
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // The outage was seen, and so was the load on each side of it.
    let seen = |phase: Phase, kind: Kind, status: u16| {
        counts
            .get(&(phase, kind))
            .and_then(|c| c.get(&status))
            .copied()
            .unwrap_or(0)
    };
    for kind in Kind::ALL {
        assert!(
            counts.contains_key(&(Phase::Before, kind))
                && counts.contains_key(&(Phase::Down, kind))
                && counts.contains_key(&(Phase::After, kind)),
            "{name}: {kind:?} requests in every phase"
        );
    }
    assert!(
        seen(Phase::Down, Kind::Valid, 503) > 0,
        "{name}: valid tokens refused once nothing vouches for them"
    );
    if filter {
        assert!(
            seen(Phase::Down, Kind::Valid, 200) > 0,
            "filter: cached grants serve within the feed grace"
        );
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_under_load_filter() {
    server_killed_under_load(Mode::Filter(FAST.into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_under_load_ext_authz() {
    server_killed_under_load(Mode::ExtAuthz).await;
}

/// Envoy's admin `/stats` counters of the filter (`wasmcustom.tollgate.*`), by short name.
async fn filter_stats(envoy: &Envoy) -> BTreeMap<String, u64> {
    let text = reqwest::get(format!(
        "http://{}/stats?filter=^wasmcustom\\.tollgate\\.",
        envoy.admin
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((
                name.strip_prefix("wasmcustom.tollgate.")?.to_owned(),
                value.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// Envoy restarted in front of a running server: the new filter starts with an empty cache,
/// resolves again, allows the valid token and still refuses the revoked one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_restarted_refills_the_filter_cache() {
    let tollgate = Tollgate::start().await.unwrap();
    let echo = EchoUpstream::start().await.unwrap();
    let config = bootstrap(
        &Mode::Filter(FAST.into()),
        tollgate.grpc_addr.port(),
        echo.addr.port(),
    )
    .unwrap();
    let (_, _, valid) = tollgate
        .account_with_token(json!({"name": "kept", "role": "viewer"}))
        .await;
    let (id, token_id, revoked) = tollgate
        .account_with_token(json!({"name": "gone", "role": "viewer"}))
        .await;
    let http = reqwest::Client::new();
    let get = |envoy: &Envoy, token: &str, marker: &str| {
        http.get(format!("{}/api/v1/query?query=up", envoy.url()))
            .bearer_auth(token)
            .header(MARKER, marker)
    };

    let envoy = Envoy::start(&config).await.unwrap();
    for _ in 0..3 {
        assert_eq!(send(get(&envoy, &valid, "warm")).await.status, 200);
    }
    assert_eq!(send(get(&envoy, &revoked, "warm")).await.status, 200);
    tollgate
        .admin(
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Until the feed brings the revocation, the cached grant may still allow it.
    while send(get(&envoy, &revoked, "revoking")).await.status != 401 {
        assert!(Instant::now() < deadline, "the revocation never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = filter_stats(&envoy).await;
    assert!(
        first["cache.misses"] >= 2 && first["cache.hits"] >= 2,
        "{first:?}"
    );
    let old_pid = envoy.pid();
    let old_url = envoy.url();
    drop(envoy);
    assert!(
        http.get(&old_url).send().await.is_err(),
        "the first Envoy is gone"
    );

    let envoy = Envoy::start(&config).await.unwrap();
    assert_ne!(envoy.pid(), old_pid);
    let fresh = filter_stats(&envoy).await;
    assert_eq!(
        (fresh["cache.misses"], fresh["cache.hits"]),
        (0, 0),
        "a new Envoy starts with an empty cache"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = send(get(&envoy, &valid, "valid")).await;
        if reply.status == 200 {
            assert_eq!(reply.json["headers"]["x-tollgate-account"], json!(["kept"]));
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert!(Instant::now() < deadline, "valid token never allowed again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        let reply = send(get(&envoy, &revoked, "revoked")).await;
        assert_eq!(
            (reply.status, reply.json["reason"].as_str()),
            (401, Some("unknown_token")),
            "{}",
            reply.text
        );
        assert_eq!(send(get(&envoy, &valid, "valid")).await.status, 200);
    }
    let refilled = filter_stats(&envoy).await;
    let brief = |stats: &BTreeMap<String, u64>| {
        [
            "cache.misses",
            "cache.hits",
            "membership.refused",
            "allowed",
            "denied.unknown_token",
        ]
        .map(|name| format!("{name} {}", stats[name]))
        .join(", ")
    };
    println!(
        "filter counters of the first Envoy: {}; of the restarted one: {}",
        brief(&first),
        brief(&refilled)
    );
    // The revoked token is refused by the server's answer (a miss) or, once the new filter's
    // Watch stream is up, by its membership filter without a call: either way, never upstream.
    assert!(
        refilled["cache.misses"] >= 1
            && refilled["cache.misses"] + refilled["membership.refused"] >= 2,
        "the valid token resolved again, the revoked one resolved or refused locally: {refilled:?}"
    );
    assert!(
        refilled["cache.hits"] >= 3,
        "then answered from the new cache: {refilled:?}"
    );
    assert!(refilled["allowed"] >= 4 && refilled["denied.unknown_token"] >= 3);
    assert_eq!(
        refilled["server.errors"], 0,
        "every Resolve of the new Envoy was answered"
    );
    assert!(
        echo.marked("revoked").is_empty(),
        "a revoked token never reached the upstream once refused"
    );
    tollgate.stop().await;
}
