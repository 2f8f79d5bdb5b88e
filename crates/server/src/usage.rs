//! Token last-used times, recorded off the hot path: a check notes the token's newest use in a
//! map behind a short lock, waking no task, and a background task takes the map and writes it in
//! one batch every interval, and once more when every recorder is gone. At most
//! [`MAX_PENDING`] tokens wait between two writes; a use of any other is dropped until the next:
//! last-used is advisory, checks are not.

use crate::directory::Directory;
use crate::model::now_secs;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// Tokens waiting for the next write (16 bytes each, and the map's overhead).
const MAX_PENDING: usize = 65_536;

/// The newest use of each token since the last write.
type Pending = Mutex<HashMap<i64, i64>>;

#[derive(Clone)]
pub struct UsageRecorder {
    pending: Arc<Pending>,
    /// Never sent on: the flusher learns that every recorder is gone when its receiver closes.
    _alive: mpsc::Sender<()>,
}

impl UsageRecorder {
    /// Starts the flusher; it writes every `interval` and once more when every recorder is gone.
    pub fn spawn<S: Store>(
        directory: Arc<Directory<S>>,
        interval: Duration,
    ) -> (UsageRecorder, tokio::task::JoinHandle<()>) {
        let pending = Arc::new(Pending::default());
        let (alive, gone) = mpsc::channel(1);
        let task = tokio::spawn(flush_loop(directory, pending.clone(), gone, interval));
        (
            UsageRecorder {
                pending,
                _alive: alive,
            },
            task,
        )
    }

    pub fn record(&self, token_id: i64) {
        let at = now_secs();
        // Nothing panics while holding the lock; a poisoned map is still a map of times.
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_PENDING && !pending.contains_key(&token_id) {
            return;
        }
        let newest = pending.entry(token_id).or_insert(at);
        *newest = (*newest).max(at);
    }
}

async fn flush_loop<S: Store>(
    directory: Arc<Directory<S>>,
    pending: Arc<Pending>,
    mut gone: mpsc::Receiver<()>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // `None` once every recorder is dropped (nothing is ever sent).
            None = gone.recv() => break,
            _ = tick.tick() => flush(&directory, &pending).await,
        }
    }
    flush(&directory, &pending).await;
}

async fn flush<S: Store>(directory: &Directory<S>, pending: &Pending) {
    // Taken whole under the lock (its memory goes with it), written after.
    let taken = std::mem::take(&mut *pending.lock().unwrap_or_else(PoisonError::into_inner));
    let batch: Vec<(i64, i64)> = taken.into_iter().collect();
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    if let Err(err) = directory.store().touch_tokens(batch).await {
        tracing::warn!(error = %err, tokens = count, "could not record token last-used times");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_pending_tokens_wait_and_each_keeps_its_newest_use() {
        let (alive, _gone) = mpsc::channel(1);
        let recorder = UsageRecorder {
            pending: Arc::new(Pending::default()),
            _alive: alive,
        };
        recorder.pending.lock().unwrap().insert(7, i64::MAX);
        for id in 0..MAX_PENDING as i64 + 10 {
            recorder.record(id);
        }
        let pending = recorder.pending.lock().unwrap();
        assert_eq!(pending.len(), MAX_PENDING);
        assert_eq!(pending.get(&7), Some(&i64::MAX), "a newer use is kept");
        assert!(pending.get(&0).is_some_and(|at| *at > 0 && *at < i64::MAX));
        assert!(
            !pending.contains_key(&(MAX_PENDING as i64 + 5)),
            "dropped when full"
        );
    }
}
