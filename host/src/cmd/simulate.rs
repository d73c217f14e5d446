//! `waybill simulate`: run the sandbox carrier's simulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;
use waybill_core::clock::ScaledClock;
use waybill_sandbox_sim::journey::SimConfig;
use waybill_sandbox_sim::server::{Simulator, SystemClock};

/// Options of `waybill simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub bind: SocketAddr,
    /// How many times faster than real time the simulated clock runs (3600: an hour a second).
    #[arg(long, default_value_t = 1.0)]
    pub clock_speed: f64,
    /// API key clients must send in X-Api-Key (default: none checked).
    #[arg(long, env = "WAYBILL_SANDBOX_API_KEY")]
    pub api_key: Option<String>,
    /// JSON file with simulator settings (seed, international_rate, rates).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    if !(args.clock_speed.is_finite() && args.clock_speed > 0.0) {
        anyhow::bail!(
            "--clock-speed must be a positive number, got {}",
            args.clock_speed
        );
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<SimConfig>(&text)
                .with_context(|| format!("bad simulator settings in {}", path.display()))?
        }
        None => SimConfig::default(),
    };
    if let Some(key) = args.api_key {
        config.api_key = key;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let clock = Arc::new(ScaledClock::new(
            SystemClock,
            Timestamp::now(),
            args.clock_speed,
        ));
        let sim = Simulator::start(args.bind, clock, config).await?;
        println!(
            "sandbox simulator listening on {} (clock x{}); Ctrl-C to stop",
            sim.base_url(),
            args.clock_speed
        );
        stop_signal().await?;
        sim.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, or SIGTERM on Unix (how test harnesses and service managers stop a process).
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}
