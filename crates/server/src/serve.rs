//! `tollgate serve`: open the store, publish the snapshot, bootstrap, and serve until a signal.

use crate::config::ServeConfig;
use crate::directory::Directory;
use crate::grpc::authz::AuthzService;
use crate::grpc::grants::GrantsService;
use crate::grpc::wire::CheckServer;
use crate::http::{AppState, router};
use crate::metrics::{CheckMetrics, GrantsMetrics};
use crate::service::Admin;
use crate::store::{self, ChangeListener};
use crate::usage::UsageRecorder;
use anyhow::Context;
use axum::serve::ListenerExt;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_core::Token;
use tollgate_proto::v1::grants_server::GrantsServer;

/// How often the snapshot catches up with the store (other writers; healing after a failure).
/// With PostgreSQL, other replicas' writes are pushed (LISTEN/NOTIFY) and this is the safety net.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How often token last-used times are written.
const USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// The server's services over an opened store, without listeners: what [`Server`] serves, and
/// what in-process harnesses (the fuzz targets) drive directly.
pub struct App {
    pub directory: Arc<Directory>,
    /// The admin API's state; [`router`] turns it into the HTTP service.
    pub state: Arc<AppState>,
    pub authz: AuthzService,
    /// Counts the filter's calls (shared by the Grants service and `/metrics`).
    pub grants: Arc<GrantsMetrics>,
    /// Writes last-used times; ends once every recorder is dropped.
    pub usage_task: tokio::task::JoinHandle<()>,
}

impl App {
    /// Opens the store, loads the snapshot and runs the one-time bootstrap. Any failure
    /// (unreadable, locked or corrupt store) is an error, not a panic.
    pub async fn open(config: &ServeConfig) -> anyhow::Result<App> {
        let store = store::open(&config.store)
            .await
            .with_context(|| format!("cannot open store {}", store::redact_url(&config.store)))?;
        let directory = Arc::new(
            Directory::open(store)
                .await
                .context("cannot load grants from the store")?,
        );
        let (usage, usage_task) = UsageRecorder::spawn(directory.clone(), USAGE_FLUSH_INTERVAL);
        let metrics = Arc::new(CheckMetrics::default());
        let grants = Arc::new(GrantsMetrics::default());
        let routes = Arc::new(config.routes.clone());
        let admin = Admin::new(directory.clone(), config.admin.clone(), routes.clone());
        let file = config.bootstrap_token_file.clone();
        let delivered = AtomicBool::new(false);
        let created = admin
            .bootstrap(|token| {
                delivered.store(true, Ordering::Relaxed);
                deliver_bootstrap_token(token, file.as_deref())
            })
            .await
            .context("cannot create the bootstrap admin")?;
        if created {
            tracing::info!(
                tenant = "default",
                account = "bootstrap-admin",
                "created the bootstrap admin"
            );
        } else if delivered.load(Ordering::Relaxed) {
            lost_bootstrap_race(file.as_deref());
        }
        // Another replica may have written (bootstrapped, even) since the grants were loaded:
        // catch up before serving, not at the first periodic refresh.
        directory
            .refresh()
            .await
            .context("cannot load grants from the store")?;
        Ok(App {
            authz: AuthzService::new(directory.clone(), routes, metrics.clone(), usage.clone())
                .with_write_limits(config.write_limits),
            state: Arc::new(AppState::new(admin, metrics, grants.clone(), usage)),
            grants,
            directory,
            usage_task,
        })
    }
}

/// A server bound to its ports, not yet serving.
pub struct Server {
    /// Admin API, /metrics, /healthz, /openapi.json.
    pub http_addr: SocketAddr,
    /// ext_authz Check, gRPC health and reflection.
    pub grpc_addr: SocketAddr,
    http_listener: TcpListener,
    grpc_listener: TcpListener,
    app: App,
}

impl Server {
    /// Opens the app (see [`App::open`]) and binds the ports; a port in use is an error.
    pub async fn bind(config: &ServeConfig) -> anyhow::Result<Server> {
        let app = App::open(config).await?;
        let http_listener = TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen on {} (HTTP)", config.http_listen))?;
        let grpc_listener = TcpListener::bind(config.grpc_listen)
            .await
            .with_context(|| format!("cannot listen on {} (gRPC)", config.grpc_listen))?;
        Ok(Server {
            http_addr: http_listener.local_addr()?,
            grpc_addr: grpc_listener.local_addr()?,
            http_listener,
            grpc_listener,
            app,
        })
    }

    /// Serves until `shutdown` completes, then drains in-flight requests on both ports and
    /// writes pending last-used times.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            directory,
            state,
            authz,
            grants,
            usage_task,
        } = self.app;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<CheckServer>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tollgate_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("cannot build the gRPC reflection service")?;
        let refresher = tokio::spawn(directory.clone().refresh_loop(REFRESH_INTERVAL));
        let pushed = directory
            .store()
            .listen()
            .map(|listener| tokio::spawn(refresh_on_change(directory.clone(), listener)));

        tracing::info!(addr = %self.http_addr, "admin API listening");
        tracing::info!(addr = %self.grpc_addr, "gRPC (ext_authz, grants, health, reflection) listening");
        // TCP_NODELAY on both ports: a response written in parts must not wait for an ACK.
        let http_listener = self.http_listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
        });
        let http = axum::serve(http_listener, router(state))
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let grpc = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(CheckServer::new(authz))
            .add_service(GrantsServer::new(
                GrantsService::new(directory.clone())
                    .with_metrics(grants)
                    .with_shutdown(stop_rx.clone()),
            ))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(self.grpc_listener)
                    .with_nodelay(Some(true)),
                stopped(stop_rx),
            );
        let signal = async move {
            shutdown.await;
            health.set_not_serving::<CheckServer>().await;
            let _ = stop_tx.send(true);
        };
        let (http_result, grpc_result, ()) = tokio::join!(http.into_future(), grpc, signal);
        refresher.abort();
        if let Some(pushed) = pushed {
            pushed.abort();
        }
        // Every recorder is gone with the servers: the flusher writes what is pending and ends.
        if tokio::time::timeout(Duration::from_secs(5), usage_task)
            .await
            .is_err()
        {
            tracing::warn!("gave up waiting for last-used times to be written");
        }
        http_result.context("admin API server failed")?;
        grpc_result.context("gRPC server failed")?;
        Ok(())
    }
}

/// Refreshes the snapshot whenever another replica's write may have committed: the push half
/// of propagation (the periodic catch-up is the other). Ends when the task is aborted.
async fn refresh_on_change(directory: Arc<crate::directory::Directory>, listener: ChangeListener) {
    loop {
        listener.changed().await;
        // A failure marks the snapshot stale and is logged by the periodic loop's next round.
        if let Err(err) = directory.refresh().await {
            tracing::debug!(error = %err, "snapshot refresh after a change notification failed");
        }
    }
}

/// Another replica bootstrapped the shared store first: the token this one delivered was never
/// committed. Its file is removed so that nobody mistakes it for the admin's.
fn lost_bootstrap_race(file: Option<&Path>) {
    match file {
        Some(path) => {
            if let Err(err) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove the unused bootstrap token file");
            }
            tracing::warn!(
                path = %path.display(),
                "another replica created the bootstrap admin first; its token is in that replica's file, not this one"
            );
        }
        None => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "The bootstrap token above is NOT valid: another replica created the bootstrap admin first (see its output)."
            );
        }
    }
}

/// Writes the bootstrap token to `file` (mode 0600) or, without one, to stderr.
fn deliver_bootstrap_token(token: &Token, file: Option<&Path>) -> std::io::Result<()> {
    match file {
        Some(path) => {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)?;
            // An existing file keeps its mode on open: tighten it before writing the secret.
            out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            writeln!(out, "{}", token.expose_secret())?;
            out.sync_all()?;
            tracing::info!(path = %path.display(), "bootstrap admin token written");
            Ok(())
        }
        None => {
            let mut err = std::io::stderr().lock();
            writeln!(err, "Bootstrap admin token (shown once, store it now):")?;
            writeln!(err, "{}", token.expose_secret())?;
            Ok(())
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// A server serving in the background; stops on [`RunningServer::stop`] or when dropped.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Serves on a background task (for tests and embedding).
    pub fn spawn(self) -> RunningServer {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (http_addr, grpc_addr) = (self.http_addr, self.grpc_addr);
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        RunningServer {
            http_addr,
            grpc_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

impl RunningServer {
    /// Stops gracefully and reports how serving ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("server task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
