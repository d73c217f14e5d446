//! Group commit for subscriptions: many concurrent `subscribe` calls share one
//! transaction, so one durable commit (one fsync) serves a whole batch.
//!
//! Each HTTP request hands its subscription to [`SubscribeBatcher::subscribe`] and waits
//! for its own outcome; a single writer task drains whatever has queued up (up to
//! `max_batch`) and writes it with [`Store::subscribe_many`]. Under light load a batch is
//! one row and nothing waits; under heavy load batches grow by themselves.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{NewSubscription, Store, StoreError, SubscribeOutcome};

type Reply = oneshot::Sender<Result<SubscribeOutcome, Arc<StoreError>>>;

/// Why a batched subscribe failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The batch's transaction failed; every subscription in it was refused.
    #[error("{0}")]
    Store(Arc<StoreError>),
    /// The writer task has stopped (the daemon is shutting down).
    #[error("the subscription writer has stopped")]
    Stopped,
}

/// Queues subscriptions for the group-commit writer. Cheap to clone.
#[derive(Clone)]
pub struct SubscribeBatcher {
    tx: mpsc::Sender<(NewSubscription, Reply)>,
}

impl SubscribeBatcher {
    /// Starts the writer on a thread of its own. `max_batch` caps one transaction;
    /// `queue` caps waiting subscriptions (callers wait when it is full);
    /// `monthly_limit` is passed to [`Store::subscribe_many`] (0: no limit).
    ///
    /// Why a thread: a batch is a dozen statements, each a round trip to sqlx's SQLite
    /// thread. On the daemon's runtime every return leg waited in the run queue behind the
    /// HTTP tasks the last batch had just woken, so under load the SQLite thread sat idle
    /// between statements and a third of the CPU went unused. On its own thread the writer
    /// is polled the moment a statement returns. Falls back to a task if no thread can be
    /// started.
    pub fn spawn(
        store: Arc<dyn Store>,
        max_batch: usize,
        queue: usize,
        monthly_limit: u32,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let max_batch = max_batch.max(1);
        // The thread takes the parts when it has a runtime; whatever is left here after
        // it reported back (or failed to start) runs as a task instead.
        let parts = Arc::new(std::sync::Mutex::new(Some((store, rx))));
        let theirs = parts.clone();
        let (ready, is_ready) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("subscribe-writer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let taken = runtime
                    .as_ref()
                    .ok()
                    .and_then(|_| theirs.lock().ok().and_then(|mut p| p.take()));
                drop(ready);
                if let (Ok(runtime), Some((store, rx))) = (runtime, taken) {
                    runtime.block_on(writer(store, rx, max_batch, monthly_limit));
                }
            });
        match spawned {
            Ok(_) => {
                // Returns when the thread dropped `ready`.
                let _ = is_ready.recv();
            }
            Err(e) => tracing::warn!(error = %e, "cannot start the subscription writer thread"),
        }
        let left = parts.lock().ok().and_then(|mut p| p.take());
        if let Some((store, rx)) = left {
            tokio::spawn(writer(store, rx, max_batch, monthly_limit));
        }
        Self { tx }
    }

    /// Subscribes through the next batch and waits for this subscription's outcome.
    pub async fn subscribe(&self, sub: NewSubscription) -> Result<SubscribeOutcome, BatchError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((sub, reply))
            .await
            .map_err(|_| BatchError::Stopped)?;
        match wait.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(BatchError::Store(e)),
            Err(_) => Err(BatchError::Stopped),
        }
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(NewSubscription, Reply)>,
    max_batch: usize,
    monthly_limit: u32,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let (subs, replies): (Vec<_>, Vec<_>) = std::mem::take(&mut batch).into_iter().unzip();
        match store.subscribe_many(&subs, monthly_limit).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone away (request cancelled); nothing to do.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = subs.len(), "subscription batch failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::store::{NewTenant, SqliteStore, SubscribeOptions};

    #[tokio::test]
    async fn concurrent_subscribes_all_get_their_own_outcome() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(SqliteStore::open_dir(dir.path()).await.expect("store"));
        let t0: Timestamp = "2024-05-01T00:00:00Z".parse().expect("ts");
        let tenant = store
            .create_tenant(
                &NewTenant {
                    name: "t".into(),
                    key: "k".into(),
                    customer: None,
                },
                t0,
            )
            .await
            .expect("tenant");
        let batcher = SubscribeBatcher::spawn(store.clone(), 64, 1024, 4);
        let mut tasks = tokio::task::JoinSet::new();
        // 200 distinct numbers, each subscribed twice: one of each pair is a duplicate.
        for i in 0..400 {
            let b = batcher.clone();
            let sub = NewSubscription {
                tenant_id: tenant.id,
                company: "sandbox".into(),
                number: format!("SB{}", i % 200),
                phone: None,
                from: None,
                to: None,
                callback_url: "http://x/cb".into(),
                salt: None,
                dialect: "kuaidi100".into(),
                dialect_params: Default::default(),
                options: SubscribeOptions::default(),
                next_check_at: t0,
                created_at: t0,
            };
            tasks.spawn(async move { b.subscribe(sub).await });
        }
        let (mut created, mut duplicates) = (0, 0);
        while let Some(r) = tasks.join_next().await {
            match r.expect("task").expect("subscribe") {
                SubscribeOutcome::Created { .. } => created += 1,
                SubscribeOutcome::Duplicate { .. } => duplicates += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((created, duplicates), (200, 200));
        assert_eq!(store.stats().await.expect("stats").polling, 200);
    }
}
