//! `waybill config`: print the documented default configuration, or check a file.

use std::path::PathBuf;
use std::process::ExitCode;

use waybill_host::config::{Config, DEFAULT_TOML};

/// Options of `waybill config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print the default configuration file, every key documented.
    #[arg(long, conflicts_with = "check")]
    pub default: bool,
    /// Check a configuration file and print the effective settings (file, then
    /// WAYBILL_* environment).
    #[arg(long)]
    pub check: Option<PathBuf>,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = args.check {
        let mut config = Config::from_file(&path)?;
        config.apply_env(|k| std::env::var(k).ok())?;
        print!("{}", toml::to_string(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    // With no option the default is printed too: it is the only other thing to show.
    let _ = args.default;
    print!("{DEFAULT_TOML}");
    Ok(ExitCode::SUCCESS)
}
