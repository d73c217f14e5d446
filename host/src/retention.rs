//! Retention: ended subscriptions, with their traces and pushes, are deleted some time
//! after they ended (default 90 days), optionally written to a JSON-lines file first, in
//! small transactions so checks and pushes never wait long behind them. Monthly usage is
//! kept, so billing counts survive.
//!
//! ```
//! use waybill_host::retention::RetentionConfig;
//! let c = RetentionConfig::default();
//! assert_eq!(c.keep_ended, jiff::SignedDuration::from_hours(24 * 90));
//! assert!(c.export_dir.as_os_str().is_empty());
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Subscription};

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long an ended subscription is kept after its last write; zero keeps it forever.
    #[serde(with = "crate::api::friendly")]
    pub keep_ended: SignedDuration,
    /// How often the daemon looks for subscriptions to delete.
    #[serde(with = "crate::api::friendly")]
    pub every: SignedDuration,
    /// Subscriptions deleted per transaction.
    pub batch: u32,
    /// Where each deleted subscription is written first (one JSON-lines file per pass,
    /// `ended-<time>.jsonl`); empty: not exported.
    pub export_dir: PathBuf,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            keep_ended: SignedDuration::from_hours(24 * 90),
            every: SignedDuration::from_hours(1),
            batch: 500,
            export_dir: PathBuf::new(),
        }
    }
}

/// Why a retention pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The export file could not be written; nothing more was deleted.
    #[error("cannot export to {path}: {source}")]
    Export {
        /// The file.
        path: String,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// One exported subscription: the row (without its signing salt), its trace and pushes.
#[derive(Serialize)]
struct Exported<'a> {
    subscription: &'a Subscription,
    trace: Option<waybill_core::model::Trace>,
    pushes: Vec<crate::store::OutboxPush>,
}

/// Deletes (exporting first when configured) the subscriptions that ended before
/// `now - keep_ended`, batch by batch; how many were deleted. A batch is exported and
/// flushed before it is deleted, so a failed export deletes nothing it did not write.
pub async fn purge(
    store: &dyn Store,
    config: &RetentionConfig,
    now: Timestamp,
) -> Result<u64, RetentionError> {
    if config.keep_ended <= SignedDuration::ZERO {
        return Ok(0);
    }
    let before = now.checked_sub(config.keep_ended).unwrap_or(Timestamp::MIN);
    let mut export = None;
    let mut deleted = 0;
    loop {
        let ids = store.ended_before(before, config.batch.max(1)).await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        if !config.export_dir.as_os_str().is_empty() {
            let path = config
                .export_dir
                .join(format!("ended-{}.jsonl", now.strftime("%Y%m%dT%H%M%SZ")));
            let failed = |source| RetentionError::Export {
                path: path.display().to_string(),
                source,
            };
            if export.is_none() {
                crate::store::location::create_private_dir(&config.export_dir).map_err(failed)?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(failed)?;
                export = Some(std::io::BufWriter::new(file));
            }
            let out = export.as_mut().expect("opened above");
            for mut sub in store.subscriptions_by_id(&ids).await? {
                sub.salt = None;
                let line = Exported {
                    trace: store.trace(sub.id).await?,
                    pushes: store.pushes_of(sub.id).await?,
                    subscription: &sub,
                };
                serde_json::to_writer(&mut *out, &line).map_err(|e| failed(e.into()))?;
                out.write_all(b"\n").map_err(failed)?;
            }
            out.flush().map_err(failed)?;
            out.get_ref().sync_data().map_err(failed)?;
        }
        deleted += store.delete_subscriptions(&ids).await?;
    }
}

/// Runs [`purge`] every `config.every` until `stop`, logging what it deleted.
pub async fn run(
    store: Arc<dyn Store>,
    config: RetentionConfig,
    clock: Arc<dyn waybill_core::clock::Clock>,
    stop: impl std::future::Future<Output = ()>,
) {
    let every = Duration::try_from(config.every)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(3600));
    tokio::pin!(stop);
    loop {
        match purge(store.as_ref(), &config, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "Deleted ended subscriptions past retention"),
            Err(e) => tracing::warn!(error = %e, "Retention pass failed; retrying later"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        CheckOutcome, Lease, MonitorStatus, NewSubscription, NewTenant, SqliteStore,
        SubscribeOutcome,
    };

    #[tokio::test]
    async fn ended_subscriptions_past_the_window_are_exported_then_deleted_and_usage_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).await.unwrap();
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let tenant = store
            .create_tenant(
                &NewTenant {
                    name: "t".into(),
                    key: "K".into(),
                    customer: None,
                },
                t0,
            )
            .await
            .unwrap();
        let mut ids = Vec::new();
        for n in ["SB1", "SB2", "SB3"] {
            let new = NewSubscription {
                tenant_id: tenant.id,
                company: "sandbox".into(),
                number: n.into(),
                phone: None,
                from: None,
                to: None,
                callback_url: "http://127.0.0.1:9/cb".into(),
                salt: Some("secret-salt".into()),
                dialect: "kuaidi100".into(),
                dialect_params: Default::default(),
                options: Default::default(),
                next_check_at: t0,
                created_at: t0,
            };
            match store.subscribe(&new).await.unwrap() {
                SubscribeOutcome::Created { id, .. } => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        // SB1 and SB2 end at t0; SB3 keeps polling.
        let lease = Lease::new("w", t0, SignedDuration::from_mins(1));
        for sub in store.claim_due(t0, 2, &lease).await.unwrap() {
            store
                .complete_check(&CheckOutcome {
                    subscription_id: sub.id,
                    lease_owner: "w".into(),
                    checked_at: t0,
                    status: MonitorStatus::Shutdown,
                    message: String::new(),
                    next_check_at: t0,
                    new_trace: None,
                    correction: None,
                    error: None,
                    pushes: Vec::new(),
                    problems: None,
                    eta: None,
                    lesson: None,
                })
                .await
                .unwrap();
        }
        let config = RetentionConfig {
            export_dir: dir.path().join("export"),
            ..RetentionConfig::default()
        };
        // Not yet past the window.
        let early = t0 + SignedDuration::from_hours(24 * 89);
        assert_eq!(purge(&store, &config, early).await.unwrap(), 0);
        let late = t0 + SignedDuration::from_hours(24 * 91);
        assert_eq!(purge(&store, &config, late).await.unwrap(), 2);
        assert!(store.subscription(ids[0]).await.unwrap().is_none());
        assert!(store.subscription(ids[1]).await.unwrap().is_none());
        assert!(store.subscription(ids[2]).await.unwrap().is_some());
        let month = crate::store::billing_month(t0);
        assert_eq!(store.usage(tenant.id, &month).await.unwrap(), 3);
        let exported = std::fs::read_dir(dir.path().join("export"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect::<String>();
        assert_eq!(exported.lines().count(), 2);
        assert!(exported.contains("SB1") && exported.contains("SB2"));
        assert!(!exported.contains("secret-salt"), "no secret in the export");
        assert_eq!(purge(&store, &config, late).await.unwrap(), 0);
    }
}
