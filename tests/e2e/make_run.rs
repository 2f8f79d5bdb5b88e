//! `make run`'s script against the real processes: it starts Prometheus, the server and Envoy,
//! prints the token and commands, serves through Envoy, and Ctrl-C stops everything it started.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tollgate_e2e::{free_port, repo_root, tollgate_binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_run_starts_the_stack_and_ctrl_c_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin, prom, http, grpc) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let mut script = Command::new(repo_root().join("scripts/run.sh"))
        .env("TOLLGATE_RUN_DIR", dir.path())
        .env("TOLLGATE_BIN", tollgate_binary().unwrap())
        .env("TOLLGATE_FILTER_WASM", tollgate_e2e::filter_wasm().unwrap())
        .env("LISTEN_PORT", listen.to_string())
        .env("ENVOY_ADMIN_PORT", admin.to_string())
        .env("PROMETHEUS_PORT", prom.to_string())
        .env("TOLLGATE_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("TOLLGATE_GRPC_LISTEN", format!("127.0.0.1:{grpc}"))
        .env_remove("UPSTREAM")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = script.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("make run printed its instructions");
        let done = line.contains("Ctrl-C stops everything");
        printed.push(line);
        if done {
            break;
        }
    }
    let printed = printed.join("\n");
    let token = std::fs::read_to_string(dir.path().join("bootstrap-token"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(printed.contains(&token), "the bootstrap token is printed");
    assert!(
        printed.contains("sa create ci-reader") && printed.contains("can-i GET"),
        "copy-paste commands:\n{printed}"
    );

    // The printed commands work: an account, a token, a query through Envoy to Prometheus.
    let cli = |args: &[&str]| {
        let out = Command::new(tollgate_binary().unwrap())
            .args(args)
            .args(["--output", "json"])
            .env("TOLLGATE_URL", format!("http://127.0.0.1:{http}"))
            .env("TOLLGATE_TOKEN", &token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    cli(&[
        "sa",
        "create",
        "ci-reader",
        "--role",
        "viewer",
        "--label-policy",
        r#"{kube_namespace="prometheus"}"#,
    ]);
    let issued = cli(&[
        "token",
        "create",
        "ci-reader",
        "main",
        "--expires-in",
        "30d",
    ]);
    let reader = issued["token"].as_str().unwrap();
    let reply = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{listen}/api/v1/query?query=up"))
        .bearer_auth(reader)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body["status"], "success",
        "Prometheus answered through Envoy: {body}"
    );

    // Ctrl-C: every process goes.
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(script.id().to_string())
        .status();
    let status = tokio::task::spawn_blocking(move || script.wait().unwrap())
        .await
        .unwrap();
    let _ = status;
    for port in [listen, admin, prom, http, grpc] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still served after Ctrl-C"
        );
    }
}
