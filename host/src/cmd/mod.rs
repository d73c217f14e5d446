//! One module per subcommand; each has `run(...) -> anyhow::Result<ExitCode>`.

pub mod bench_dispatch;
pub mod bench_eta;
pub mod carriers;
pub mod config;
pub mod dead_letters;
pub mod demo;
pub mod guess;
pub mod import;
pub mod migrate;
pub mod normalize;
pub mod plugins;
pub mod problems;
pub mod redeliver;
pub mod serve;
pub mod simulate;
pub mod tenant;
pub mod track;
pub mod usage;
pub mod version;

/// `--format` of commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON.
    Json,
}
