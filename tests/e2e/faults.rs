//! Faults: the real server binary killed with SIGKILL in the middle of a stream of admin writes.

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::{free_port, tollgate_binary};

fn serve(store: &str, http: u16, token_file: &std::path::Path) -> Child {
    Command::new(tollgate_binary().unwrap())
        .args([
            "serve",
            &format!("--store={store}"),
            &format!("--http-listen=127.0.0.1:{http}"),
            "--grpc-listen=127.0.0.1:0",
        ])
        .env("TOLLGATE_BOOTSTRAP_TOKEN_FILE", token_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
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
    let mut server = serve(&store, http, &token_file);
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
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "the kill came during a stream of writes ({} acknowledged)",
        acknowledged.len()
    );

    let mut restarted = serve(&store, http, &token_file);
    wait_healthy(&client, &url).await;
    let listed: Value = client
        .get(format!("{url}/api/v1/serviceaccounts?pageSize=1000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let present: Vec<&str> = listed["serviceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in &acknowledged {
        assert!(
            present.contains(&name.as_str()),
            "acknowledged write {name} lost"
        );
    }
    println!(
        "{} writes acknowledged before SIGKILL, all present after restart",
        acknowledged.len()
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
