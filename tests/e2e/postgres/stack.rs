//! The pieces of the replica suite: a replica process, a database, the two-endpoint Envoy
//! bootstrap, and polling helpers.

use reqwest::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::postgres::PgCluster;
use tollgate_e2e::{Envoy, Mode, admin_request, bootstrap, send, tollgate_binary};

/// One replica: the real binary, so it can be SIGKILLed; killed when dropped.
pub(super) struct Replica {
    child: Child,
    pub(super) url: String,
    pub(super) grpc: u16,
    token_file: PathBuf,
    log: PathBuf,
}

impl Replica {
    /// Starts the binary on ports it picks itself (no race with other tests for a port), and
    /// reads them from its log.
    pub(super) fn start(store: &str, dir: &Path, name: &str) -> Replica {
        let token_file = dir.join(format!("{name}.token"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(tollgate_binary().unwrap())
            .args([
                "serve",
                "--http-listen=127.0.0.1:0",
                "--grpc-listen=127.0.0.1:0",
            ])
            // From the environment, as a Deployment passes it from a Secret.
            .env("TOLLGATE_STORE", store)
            .env("TOLLGATE_BOOTSTRAP_TOKEN_FILE", &token_file)
            .env("TOLLGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            child,
            url: String::new(),
            grpc: 0,
            token_file,
            log,
        }
    }

    /// Waits for both listeners' log lines; fills in `url` and `grpc`.
    pub(super) async fn wait_listening(&mut self) {
        let addr = |log: &str, message: &str| {
            let line = log.lines().find(|line| line.contains(message))?;
            let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
            addr.parse::<std::net::SocketAddr>().ok()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if let (Some(http), Some(grpc)) = (
                addr(&log, "admin API listening"),
                addr(&log, "gRPC (ext_authz"),
            ) {
                self.url = format!("http://{http}");
                self.grpc = grpc.port();
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "replica exited:\n{log}"
            );
            assert!(Instant::now() < deadline, "replica not listening:\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster with database `tollgate`, or `None` (skip) where PostgreSQL is missing.
pub(super) fn database() -> Option<(PgCluster, String)> {
    let cluster = PgCluster::start().unwrap()?;
    cluster.create_database("tollgate").unwrap();
    let url = cluster.url("tollgate");
    Some((cluster, url))
}

pub(super) async fn healthz(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http.get(format!("{url}/healthz")).send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

pub(super) async fn wait_healthy(http: &reqwest::Client, replica: &mut Replica) {
    replica.wait_listening().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthz(http, &replica.url).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "replica did not come up:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn revision(http: &reqwest::Client, url: &str) -> u64 {
    healthz(http, url).await.unwrap()["revision"]
        .as_u64()
        .unwrap()
}

/// How long until `url`'s snapshot reaches `target` (polled every 5 ms, at most 5 s).
pub(super) async fn until_revision(http: &reqwest::Client, url: &str, target: u64) -> Duration {
    let started = Instant::now();
    while revision(http, url).await < target {
        assert!(started.elapsed() < Duration::from_secs(5), "{url} stuck");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Starts two replicas at once on an empty database; returns them and the admin token. Exactly
/// one of them bootstrapped (the other's token file, if it wrote one, is gone).
pub(super) async fn two_replicas(store: &str, dir: &Path) -> (Replica, Replica, String) {
    let http = reqwest::Client::new();
    let mut a = Replica::start(store, dir, "a");
    let mut b = Replica::start(store, dir, "b");
    wait_healthy(&http, &mut a).await;
    wait_healthy(&http, &mut b).await;
    let tokens: Vec<String> = [&a.token_file, &b.token_file]
        .into_iter()
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .map(|token| token.trim().to_owned())
        .collect();
    assert_eq!(tokens.len(), 1, "one bootstrap admin token: {tokens:?}");
    let admins = admin_request(
        &http,
        &b.url,
        &tokens[0],
        Method::GET,
        "/api/v1/serviceaccounts",
        None,
    )
    .await
    .unwrap();
    assert_eq!(admins["totalCount"], 1, "one bootstrap admin: {admins}");
    (a, b, tokens[0].clone())
}

/// `envoy/ext-authz.yaml` with both replicas as endpoints, gRPC health checks every 250 ms
/// (two failures eject: one slow answer on a loaded machine must not) and no panic routing (a
/// dead replica gets no checks), as a mesh would set it up.
pub(super) fn two_endpoint_envoy(a: u16, b: u16, upstream: u16) -> String {
    two_endpoints(&Mode::ExtAuthz, a, b, upstream, true)
}

/// The bootstrap of `mode` with both replicas in the `tollgate` cluster, with the health checks
/// above or without any.
pub(super) fn two_endpoints(
    mode: &Mode,
    a: u16,
    b: u16,
    upstream: u16,
    health_checks: bool,
) -> String {
    let config = bootstrap(mode, a, upstream).unwrap();
    let endpoint = |port: u16| {
        format!(
            "        - endpoint:\n            address:\n              socket_address: {{ address: 127.0.0.1, port_value: {port} }}\n"
        )
    };
    // no_traffic_interval too: gRPC calls from filters do not count as traffic, and its
    // default (60 s) would leave a dead replica marked healthy.
    let checks = "    health_checks:\n    - timeout: 1s\n      interval: 0.25s\n      \
         no_traffic_interval: 0.25s\n      no_traffic_healthy_interval: 0.25s\n      \
         unhealthy_threshold: 2\n      healthy_threshold: 1\n      grpc_health_check: {}\n    \
         common_lb_config: { healthy_panic_threshold: { value: 0 } }\n";
    let anchor = "    load_assignment:\n      cluster_name: tollgate\n";
    assert!(config.contains(anchor) && config.contains(&endpoint(a)));
    let checks = if health_checks { checks } else { "" };
    config
        .replace(anchor, &format!("{checks}{anchor}"))
        .replace(&endpoint(a), &format!("{}{}", endpoint(a), endpoint(b)))
}

/// Envoy's view of the `tollgate` cluster's hosts (health flags), for failure messages.
pub(super) async fn hosts(envoy: &Envoy) -> String {
    let url = format!("http://{}/clusters", envoy.admin);
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let stats = format!("http://{}/stats?filter=tollgate|ext_authz", envoy.admin);
    let stats = reqwest::get(stats).await.unwrap().text().await.unwrap();
    let stats = stats.lines().filter(|line| !line.ends_with(": 0"));
    text.lines()
        .filter(|line| line.starts_with("tollgate::") && line.contains("health_flags"))
        .chain(stats)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) async fn query(http: &reqwest::Client, envoy: &Envoy, token: &str) -> u16 {
    send(
        http.get(format!("{}/api/v1/query?query=up", envoy.url()))
            .bearer_auth(token),
    )
    .await
    .status
}

pub(super) fn p(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}
