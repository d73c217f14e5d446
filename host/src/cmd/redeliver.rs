//! `waybill redeliver`: re-drives dead-lettered pushes from their first attempt: named
//! ones, those of a time range (`--since`), or all.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::serve::{open_store, StoreArgs};

#[derive(Args)]
pub struct RedeliverArgs {
    /// Push ids to re-drive (see `waybill dead-letters`).
    pub push_ids: Vec<String>,
    /// Re-drive every dead letter.
    #[arg(long, conflicts_with = "push_ids")]
    pub all: bool,
    /// Re-drive the dead letters created at or after this instant (RFC 3339, such as
    /// `2026-12-01T00:00:00Z`): replays the pushes an outage lost.
    #[arg(long, conflicts_with_all = ["push_ids", "all"])]
    pub since: Option<jiff::Timestamp>,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: RedeliverArgs) -> anyhow::Result<ExitCode> {
    if args.push_ids.is_empty() && !args.all && args.since.is_none() {
        bail!("name the push ids to re-drive, or pass --since TIME or --all");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let store = open_store(&args.store.load()?).await?;
        // The daemon's clock decides when the retry is due; "now" by the wall clock means
        // "at the daemon's next round" for a real-time daemon.
        let now = jiff::Timestamp::now();
        let (redriven, superseded) = store.redeliver(&args.push_ids, args.since, now).await?;
        println!("re-driven: {redriven}");
        if superseded > 0 {
            println!(
                "superseded: {superseded} (a newer push of the same waybill already carries \
                 the full trace; sending the older one would go backwards)"
            );
        }
        store.close().await;
        Ok(if redriven + superseded == 0 && !args.push_ids.is_empty() {
            eprintln!("waybill: none of the given push ids is a dead letter");
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}
