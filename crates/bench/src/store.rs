//! `store`: admin write latency on each store backend, and replica-to-replica propagation on
//! PostgreSQL. Servers run in this process (two on one database for the replicas), on a
//! throwaway PostgreSQL cluster; the Check path is not involved (it reads memory).

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_e2e::admin_request;
use tollgate_e2e::postgres::PgCluster;
use tollgate_server::config::{FileConfig, Overrides, ServeConfig};
use tollgate_server::serve::{RunningServer, Server};

/// A server on `store`, and the directory holding its bootstrap token file.
async fn serve(store: &str, dir: &std::path::Path, name: &str) -> anyhow::Result<RunningServer> {
    let overrides = Overrides {
        store: Some(store.to_owned()),
        http_listen: Some("127.0.0.1:0".parse()?),
        grpc_listen: Some("127.0.0.1:0".parse()?),
        bootstrap_token_file: Some(dir.join(format!("{name}.token"))),
        ..Overrides::default()
    };
    let config = ServeConfig::resolve(overrides, FileConfig::default())?;
    Ok(Server::bind(&config).await?.spawn())
}

/// The admin token whichever server bootstrapped wrote.
fn admin_token(dir: &std::path::Path) -> anyhow::Result<String> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "token") {
            return Ok(std::fs::read_to_string(path)?.trim().to_owned());
        }
    }
    bail!("no bootstrap token file")
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len().saturating_sub(1)) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `writes` token creations and as many revocations through `url`; their latencies.
async fn admin_writes(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    writes: usize,
) -> anyhow::Result<Vec<Duration>> {
    let account = admin_request(
        http,
        url,
        token,
        Method::POST,
        "/api/v1/serviceaccounts",
        Some(json!({"name": "bench", "role": "viewer"})),
    )
    .await?;
    let id = account["id"].as_i64().context("account id")?;
    let mut samples = Vec::with_capacity(writes * 2);
    for i in 0..writes {
        let started = Instant::now();
        let created = admin_request(
            http,
            url,
            token,
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": format!("t{i}")})),
        )
        .await?;
        samples.push(started.elapsed());
        let token_id = created["id"].as_i64().context("token id")?;
        let started = Instant::now();
        admin_request(
            http,
            url,
            token,
            Method::DELETE,
            &format!("/api/v1/serviceaccounts/{id}/tokens/{token_id}"),
            None,
        )
        .await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

async fn revision(http: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let health: Value = http
        .get(format!("{url}/healthz"))
        .send()
        .await?
        .json()
        .await?;
    health["revision"].as_u64().context("revision")
}

fn report(what: &str, samples: &mut [Duration]) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!(
        "{what}: p50 {}, p99 {} ({} writes)",
        ms(p50),
        ms(p99),
        samples.len()
    );
}

pub async fn run(writes: usize) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    let server = serve(&sqlite, dir.path(), "sqlite").await?;
    let url = format!("http://{}", server.http_addr);
    let mut samples = admin_writes(&http, &url, &admin_token(dir.path())?, writes).await?;
    report(
        "admin write latency, SQLite (synchronous=FULL)",
        &mut samples,
    );
    server.stop().await?;

    // fsync on, like SQLite's synchronous=FULL: both latencies include the disk.
    let Some(cluster) = PgCluster::start_with(true).map_err(anyhow::Error::msg)? else {
        bail!("PostgreSQL is not installed (make postgres)");
    };
    cluster
        .create_database("tollgate")
        .map_err(anyhow::Error::msg)?;
    let pg_dir = tempfile::tempdir()?;
    let store = cluster.url("tollgate");
    let a = serve(&store, pg_dir.path(), "a").await?;
    let b = serve(&store, pg_dir.path(), "b").await?;
    let token = admin_token(pg_dir.path())?;
    let (a_url, b_url) = (
        format!("http://{}", a.http_addr),
        format!("http://{}", b.http_addr),
    );
    let mut samples = admin_writes(&http, &a_url, &token, writes).await?;
    report(
        "admin write latency, PostgreSQL (local cluster, fsync on)",
        &mut samples,
    );

    // One write through A, then B's snapshot polled every millisecond until it has it.
    let mut propagation = Vec::with_capacity(writes);
    let account = admin_request(
        &http,
        &a_url,
        &token,
        Method::POST,
        "/api/v1/serviceaccounts",
        Some(json!({"name": "propagation", "role": "viewer"})),
    )
    .await?;
    let id = account["id"].as_i64().context("account id")?;
    for i in 0..writes {
        admin_request(
            &http,
            &a_url,
            &token,
            Method::POST,
            &format!("/api/v1/serviceaccounts/{id}/tokens"),
            Some(json!({"name": format!("p{i}")})),
        )
        .await?;
        let target = revision(&http, &a_url).await?;
        let started = Instant::now();
        while revision(&http, &b_url).await? < target {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("replica B never caught up with revision {target}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        propagation.push(started.elapsed());
    }
    let p99 = percentile(&mut propagation, 0.99);
    report(
        "replica-to-replica propagation, PostgreSQL (write acknowledged to other snapshot)",
        &mut propagation,
    );
    println!(
        "target: replica propagation p99 <= 1 s: {} {}",
        ms(p99),
        if p99 <= Duration::from_secs(1) {
            "MET"
        } else {
            "MISSED"
        }
    );
    a.stop().await?;
    b.stop().await?;
    Ok(())
}
