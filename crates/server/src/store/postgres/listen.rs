//! LISTEN/NOTIFY: every write that records a change sends a notification on
//! [`super::changes::CHANNEL`] when it commits, and each replica's listener wakes its snapshot
//! refresh, so a write through one replica reaches the others' snapshots in milliseconds instead
//! of at the next periodic catch-up (which stays as the safety net).
//!
//! Notifications are lost while the listener is disconnected: on every (re)connection it wakes
//! a refresh, which reads the change feed, so nothing committed meanwhile is missed. It
//! reconnects by itself with capped exponential backoff and says so in the log.

use super::changes::CHANNEL;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A host that drops packets would otherwise hold a connection attempt for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The listener task of one replica; stops when dropped.
pub struct ChangeListener {
    wake: Arc<Notify>,
    connected: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ChangeListener {
    /// `connected` is set while the listener is connected.
    pub(super) fn spawn(pool: PgPool, connected: Arc<AtomicBool>) -> ChangeListener {
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(pool, wake.clone(), connected.clone()));
        ChangeListener {
            wake,
            connected,
            task,
        }
    }

    /// Completes when another write may have committed (a notification, or a reconnection
    /// after which notifications may have been missed). Wake-ups that come while nobody waits
    /// are kept as one, so a burst of writes costs one refresh.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Whether the listener is connected (for `/healthz`).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = tokio::time::timeout(CONNECT_TIMEOUT, PgListener::connect_with(pool))
        .await
        .map_err(|_| {
            let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
            sqlx::Error::Io(timed_out)
        })??;
    // Reconnection is this task's job (with backoff), not a silent one inside `try_recv`.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(pool: PgPool, wake: Arc<Notify>, connected: Arc<AtomicBool>) {
    let mut backoff = MIN_BACKOFF;
    let mut was_down = false;
    loop {
        let lost = match connect(&pool).await {
            Ok(mut listener) => {
                connected.store(true, Ordering::Release);
                if was_down {
                    tracing::info!(
                        "reconnected to PostgreSQL: listening for other replicas' changes again"
                    );
                } else {
                    tracing::debug!("listening for other replicas' changes");
                }
                backoff = MIN_BACKOFF;
                // Whatever committed while we were not listening.
                wake.notify_one();
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => wake.notify_one(),
                        Ok(None) => break "the connection was lost".to_owned(),
                        Err(err) => break err.to_string(),
                    }
                }
            }
            Err(err) => err.to_string(),
        };
        connected.store(false, Ordering::Release);
        was_down = true;
        // A refresh now finds out whether the database is gone (checks then fail closed).
        wake.notify_one();
        tracing::warn!(
            error = %lost,
            retry_in_ms = backoff.as_millis() as u64,
            "PostgreSQL change notifications unavailable; other replicas' writes arrive by the periodic catch-up until reconnected"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
