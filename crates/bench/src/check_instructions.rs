//! Instructions per Check of the ext_authz server run by callgrind, next to the trivial
//! always-allow server: the exact form of `check`'s CPU ratios. CPU per Check moves 10-20 %
//! between rounds on this shared machine; an instruction count does not, so a change to the
//! Check path shows even when it is smaller than that noise. It counts user-space work only:
//! the kernel's share (socket reads and writes, alike for every server) is left out, so these
//! ratios are larger than `check`'s CPU ratios. The server's own timers (the snapshot refresh
//! every second) fall into the count too: 12 instructions per Check, measured.

use crate::instructions::{
    callgrind_control, callgrind_wrapper, dumped_instructions, require_valgrind,
};
use crate::{Process, check_request, seed, start_server_wrapped, start_trivial};
use anyhow::{Context, bail};
use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tonic::transport::Channel;

/// Checks on each target before the counters are zeroed: connections open, caches filled.
const WARM_UP: usize = 200;
/// A server under callgrind starts some 50 times slower than without it.
const READY_WITHIN: Duration = Duration::from_secs(120);

pub async fn run(checks: usize, tokens: usize, out: Option<&Path>) -> anyhow::Result<()> {
    if checks == 0 {
        bail!("--checks must be at least 1: the count is per Check");
    }
    require_valgrind()?;
    let scratch = tempfile::tempdir()?;
    let out = out.unwrap_or(scratch.path());
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the output directory {}", out.display()))?;
    let store = format!("sqlite://{}", scratch.path().join("bench.db").display());
    eprintln!("seeding {tokens} tokens…");
    let (unrestricted, restricted) = seed(&store, tokens).await?;
    let query = format!(
        "/api/v1/query?query={}",
        tollgate_core::form::encode("sum(rate(http_requests_total[5m])) by (job)")
    );

    eprintln!("trivial server: starting under callgrind");
    let trivial_out = out.join("callgrind.trivial");
    let (trivial, trivial_addr) =
        start_trivial(0, &callgrind_wrapper(&trivial_out, &[]), READY_WITHIN)?;
    let floor = measure(
        &trivial,
        &trivial_out,
        &[Target::new(trivial_addr, &query, &unrestricted, false)],
        checks,
    )
    .await?;
    drop(trivial);

    eprintln!("tollgate serve: starting under callgrind");
    let server_out = out.join("callgrind.tollgate");
    let (server, _, grpc, _) = start_server_wrapped(
        0,
        &callgrind_wrapper(&server_out, &[]),
        READY_WITHIN,
        &store,
        scratch.path(),
    )?;
    let counts = measure(
        &server,
        &server_out,
        &[
            Target::new(grpc, &query, &unrestricted, false),
            Target::new(grpc, &query, &restricted, true),
        ],
        checks,
    )
    .await?;
    drop(server);

    let floor = floor
        .first()
        .copied()
        .context("no count for the trivial server")?;
    println!();
    println!(
        "Check path run by callgrind, {tokens} tokens; {checks} Checks one after another on one connection after {WARM_UP} to warm up; user-space instructions per Check, all of the server's threads"
    );
    // Not "target": BENCHMARKS.md gathers lines starting with it as the targets.
    println!("{:<30} {:>12} {:>9}", "server", "instr/Check", "over (a)");
    let rows = [
        ("(a) trivial always-allow server", floor),
        ("(b) tollgate, unrestricted", counts[0]),
        ("(c) tollgate, PromQL rewrite", counts[1]),
    ];
    for (name, count) in rows {
        println!("{name:<30} {count:>12.0} {:>8.2}x", count / floor);
    }
    if out != scratch.path() {
        println!(
            "function by function: callgrind_annotate {}.1 (trivial), {}.1 (unrestricted), {}.2 (rewrite)",
            trivial_out.display(),
            server_out.display(),
            server_out.display()
        );
    }
    Ok(())
}

/// A server's address and the Check it is sent; `rewrites`: whether its answer must carry a
/// query rewrite (so that row measures the path it names).
struct Target {
    addr: SocketAddr,
    request: CheckRequest,
    rewrites: bool,
}

impl Target {
    fn new(addr: SocketAddr, path: &str, token: &str, rewrites: bool) -> Target {
        Target {
            addr,
            request: check_request(path, token),
            rewrites,
        }
    }
}

/// Instructions per Check of each target in turn, on `process` run by callgrind writing to
/// `out`: every target warmed up first, then the counters zeroed, then one dump per target.
async fn measure(
    process: &Process,
    out: &Path,
    targets: &[Target],
    checks: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut clients = Vec::new();
    for target in targets {
        let mut client = AuthorizationClient::connect(format!("http://{}", target.addr)).await?;
        send(&mut client, target, WARM_UP).await?;
        clients.push(client);
    }
    let pid = process.0.id().to_string();
    callgrind_control("-z", &pid)?;
    let mut counts = Vec::new();
    for (index, (client, target)) in clients.iter_mut().zip(targets).enumerate() {
        send(client, target, checks).await?;
        callgrind_control("-d", &pid)?;
        counts.push(dumped_instructions(out, index + 1)? / checks as f64);
    }
    Ok(counts)
}

/// `count` Checks one after another; each must be allowed, rewritten or not as `target` says.
async fn send(
    client: &mut AuthorizationClient<Channel>,
    target: &Target,
    count: usize,
) -> anyhow::Result<()> {
    for _ in 0..count {
        let response = client.check(target.request.clone()).await?.into_inner();
        if response.status.as_ref().map_or(-1, |s| s.code) != 0 {
            bail!("a Check was not allowed: {:?}", response.status);
        }
        let rewritten = match response.http_response {
            Some(HttpResponse::OkResponse(ok)) => !ok.query_parameters_to_set.is_empty(),
            _ => false,
        };
        if rewritten != target.rewrites {
            bail!(
                "a Check was answered with{} a query rewrite: that row would measure the wrong path",
                if rewritten { "" } else { "out" }
            );
        }
    }
    Ok(())
}
