//! One module per subcommand; each has `run(...) -> anyhow::Result<ExitCode>`.

pub mod carriers;
pub mod guess;
pub mod version;
