//! `tollgate serve`: open the store, publish the snapshot, bootstrap, and serve until a signal.

use crate::admin::Admin;
use crate::api::{AppState, router};
use crate::config::ServeConfig;
use crate::directory::Directory;
use crate::store::SqliteStore;
use anyhow::Context;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tollgate_core::Token;

/// A server bound to its ports, not yet serving.
pub struct Server {
    pub http_addr: SocketAddr,
    listener: TcpListener,
    state: Arc<AppState<SqliteStore>>,
}

impl Server {
    /// Opens the store, loads the snapshot, runs the one-time bootstrap and binds the ports.
    /// Any failure (unreadable, locked or corrupt store; port in use) is an error, not a panic.
    pub async fn bind(config: &ServeConfig) -> anyhow::Result<Server> {
        let store = SqliteStore::open(&config.store)
            .await
            .with_context(|| format!("cannot open store {}", config.store))?;
        let directory = Arc::new(
            Directory::open(store)
                .await
                .context("cannot load grants from the store")?,
        );
        let admin = Admin::new(directory, config.admin.clone());
        let file = config.bootstrap_token_file.clone();
        let created = admin
            .bootstrap(|token| deliver_bootstrap_token(token, file.as_deref()))
            .await
            .context("cannot create the bootstrap admin")?;
        if created {
            tracing::info!(
                tenant = "default",
                account = "bootstrap-admin",
                "created the bootstrap admin"
            );
        }
        let listener = TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_listen))?;
        Ok(Server {
            http_addr: listener.local_addr()?,
            listener,
            state: Arc::new(AppState::new(admin)),
        })
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.http_addr, "admin API listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("admin API server failed")
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
