//! Token last-used times, recorded off the hot path: a check drops the token id into a bounded
//! channel (never waiting), and a background task writes the newest time per token in batches.
//! When the channel is full, uses are dropped: last-used is advisory, checks are not.

use crate::directory::Directory;
use crate::model::now_secs;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const CHANNEL_CAPACITY: usize = 65_536;

#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<(i64, i64)>,
}

impl UsageRecorder {
    /// Starts the flusher; it writes every `interval` and once more when every recorder is gone.
    pub fn spawn<S: Store>(
        directory: Arc<Directory<S>>,
        interval: Duration,
    ) -> (UsageRecorder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(flush_loop(directory, rx, interval));
        (UsageRecorder { tx }, task)
    }

    pub fn record(&self, token_id: i64) {
        let _ = self.tx.try_send((token_id, now_secs()));
    }
}

async fn flush_loop<S: Store>(
    directory: Arc<Directory<S>>,
    mut rx: mpsc::Receiver<(i64, i64)>,
    interval: Duration,
) {
    let mut pending: HashMap<i64, i64> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some((id, at)) => {
                    let newest = pending.entry(id).or_insert(at);
                    *newest = (*newest).max(at);
                }
                None => break,
            },
            _ = tick.tick() => flush(&directory, &mut pending).await,
        }
    }
    flush(&directory, &mut pending).await;
}

async fn flush<S: Store>(directory: &Directory<S>, pending: &mut HashMap<i64, i64>) {
    if pending.is_empty() {
        return;
    }
    let batch: Vec<(i64, i64)> = pending.drain().collect();
    let count = batch.len();
    if let Err(err) = directory.store().touch_tokens(batch).await {
        tracing::warn!(error = %err, tokens = count, "could not record token last-used times");
    }
}
