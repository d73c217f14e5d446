//! `waybill dead-letters`: lists pushes that ran out of attempts.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::serve::{open_store, StoreArgs};
use super::OutputFormat;

#[derive(Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Output format (`json`: one object per line).
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

pub fn run(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let store = open_store(&args.store.load()?).await?;
        let dead = store.dead_letters(args.limit).await?;
        if args.format == OutputFormat::Json {
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
