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
    /// Starts the writer task on the current runtime. `max_batch` caps one transaction;
    /// `queue` caps waiting subscriptions (callers wait when it is full);
    /// `monthly_limit` is passed to [`Store::subscribe_many`] (0: no limit).
    pub fn spawn(
        store: Arc<dyn Store>,
        max_batch: usize,
        queue: usize,
        monthly_limit: u32,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(writer(store, rx, max_batch.max(1), monthly_limit));
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
