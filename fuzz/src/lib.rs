//! Shared setup for the fuzz targets that drive the server in process: one app over a store in a
//! temporary directory, seeded through the admin API once per fuzzing process; and the regex
//! generator of the `regex` target ([`regex_gen`], shared with the Go-oracle test).

pub mod regex_gen;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::sync::OnceLock;
use tollgate_server::admin::AdminConfig;
use tollgate_server::api::router;
use tollgate_server::config::ServeConfig;
use tollgate_server::serve::App;
use tower::ServiceExt;

/// A label policy of a seeded account, for targets that check enforcement.
pub const TEAM_A: &str = r#"{namespace="team-a"}"#;

pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub app: App,
    router: axum::Router,
    /// The all-tenant bootstrap admin.
    pub admin_token: String,
    /// Seeded callers: an `acme` admin, an `acme` viewer restricted to [`TEAM_A`], an unrestricted
    /// `acme` editor and a `globex` writer.
    pub tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

/// The process-wide harness, built on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::new)
}

impl Harness {
    fn new() -> Harness {
        // A store on tmpfs where there is one: every admin write is an fsync.
        let dir = tempfile::Builder::new()
            .prefix("tollgate-fuzz")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let token_file = dir.path().join("bootstrap");
        let config = ServeConfig {
            store: format!("sqlite://{}", dir.path().join("fuzz.db").display()),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            grpc_listen: "127.0.0.1:0".parse().unwrap(),
            bootstrap_token_file: Some(token_file.clone()),
            admin: AdminConfig::default(),
            routes: tollgate_core::RouteTable::default(),
            write_limits: Default::default(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(App::open(&config)).unwrap();
        let router = router(app.state.clone());
        let admin_token = std::fs::read_to_string(token_file)
            .unwrap()
            .trim()
            .to_owned();
        let mut harness = Harness {
            runtime,
            app,
            router,
            admin_token,
            tokens: Vec::new(),
            _dir: dir,
        };
        for (tenant, name, role, policy) in [
            ("acme", "acme-admin", "admin", ""),
            ("acme", "ci", "viewer", TEAM_A),
            ("acme", "grafana", "editor", ""),
            ("globex", "collector", "writer", ""),
        ] {
            let body = json!({"tenant": tenant, "name": name, "role": role,
                "labelPolicy": policy, "withToken": true});
            let admin = harness.admin_token.clone();
            let (status, reply) = harness.call(
                Method::POST,
                "/api/v1/serviceaccounts",
                Some(&admin),
                body.to_string().into_bytes(),
            );
            assert_eq!(status, StatusCode::CREATED, "seeding {name}");
            let reply: Value = serde_json::from_slice(&reply).unwrap();
            harness
                .tokens
                .push(reply["token"]["token"].as_str().unwrap().to_owned());
        }
        harness
    }

    /// One admin API request through the real router; `None` when `uri` is not a valid URI.
    pub fn try_call(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
    ) -> Option<(StatusCode, Vec<u8>)> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Body::from(body)).ok()?;
        Some(self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, bytes.to_vec())
        }))
    }

    pub fn call(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        self.try_call(method, uri, bearer, body).unwrap()
    }
}
