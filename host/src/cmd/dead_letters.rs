//! `waybill dead-letters`: lists pushes that ran out of attempts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use waybill_host::store::{SqliteStore, Store, DEFAULT_DATA_DIR};

#[derive(Args)]
pub struct DeadLettersArgs {
    /// Data directory of the daemon.
    #[arg(long, env = "WAYBILL_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let store = SqliteStore::open_dir(&args.data_dir)
            .await
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
        let dead = store.dead_letters(args.limit).await?;
        if args.json {
            for p in &dead {
                let line = serde_json::json!({
                    "push_id": p.push_id,
                    "subscription_id": p.subscription_id,
                    "seq": p.seq,
                    "url": p.url,
                    "attempts": p.attempt,
                    "created_at": p.created_at.to_string(),
                    "dead_at": p.finished_at.map(|t| t.to_string()),
                    "last_error": p.last_error,
                });
                println!("{line}");
            }
        } else if dead.is_empty() {
            println!("no dead letters");
        } else {
            println!(
                "{:<14} {:>8} {:<25} {:<40} LAST ERROR",
                "PUSH ID", "ATTEMPTS", "DEAD AT", "URL"
            );
            for p in &dead {
                println!(
                    "{:<14} {:>8} {:<25} {:<40} {}",
                    p.push_id,
                    p.attempt,
                    p.finished_at.map(|t| t.to_string()).unwrap_or_default(),
                    p.url,
                    p.last_error.as_deref().unwrap_or("")
                );
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}
