//! Starts a real server on a free loopback port over a temporary store, and stops it on drop.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use tollgate_server::admin::AdminConfig;
use tollgate_server::config::ServeConfig;
use tollgate_server::serve::{RunningServer, Server};

pub struct TestServer {
    pub url: String,
    pub grpc_addr: std::net::SocketAddr,
    pub admin_token: String,
    pub store_path: PathBuf,
    http: reqwest::Client,
    running: Option<RunningServer>,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn reason(&self) -> &str {
        self.json["reason"].as_str().unwrap_or("")
    }

    /// The status alone, for answers whose `reason` field is data (a policy check's).
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        self
    }

    #[track_caller]
    pub fn expect(self, status: u16, reason: &str) -> Reply {
        assert_eq!(
            (self.status.as_u16(), self.reason()),
            (status, reason),
            "body: {}",
            self.text
        );
        self
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(AdminConfig::default()).await
    }

    pub async fn start_with(admin: AdminConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store_path = dir.path().join("tollgate.db");
        let token_file = dir.path().join("bootstrap-token");
        let config = ServeConfig {
            store: format!("sqlite://{}", store_path.display()),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            grpc_listen: "127.0.0.1:0".parse().unwrap(),
            bootstrap_token_file: Some(token_file.clone()),
            admin,
            routes: tollgate_core::RouteTable::default(),
            write_limits: Default::default(),
        };
        let running = Server::bind(&config).await.unwrap().spawn();
        let url = format!("http://{}", running.http_addr);
        let grpc_addr = running.grpc_addr;
        let admin_token = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_owned();
        TestServer {
            url,
            grpc_addr,
            admin_token,
            store_path,
            http: reqwest::Client::new(),
            running: Some(running),
            _dir: dir,
        }
    }

    pub fn token_file(&self) -> PathBuf {
        self._dir.path().join("bootstrap-token")
    }

    /// Sends a request; `token` None sends no Authorization header.
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// A GET without a token but with `headers`; the status.
    pub async fn http_get_with(&self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut request = self.http.get(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap().status().as_u16()
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(Some(&self.admin_token.clone()), method, path, body)
            .await
    }

    /// Creates an account with a first token as the bootstrap admin; returns (id, token).
    pub async fn account_with_token(&self, body: Value) -> (i64, String) {
        let mut body = body;
        body["withToken"] = json!(true);
        let reply = self
            .admin(Method::POST, "/api/v1/serviceaccounts", Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        (
            reply.json["id"].as_i64().unwrap(),
            reply.json["token"]["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Stops the server but leaves its directory (store, token file) for a second server.
    pub async fn stop_keep_dir(mut self) {
        self.shutdown_and_wait().await;
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let _ = dir.keep();
    }

    async fn shutdown_and_wait(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
    }

    pub async fn stop(mut self) {
        self.shutdown_and_wait().await;
    }
}
