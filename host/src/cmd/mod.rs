//! One module per subcommand; each has `run(...) -> anyhow::Result<ExitCode>`.

pub mod dead_letters;
pub mod redeliver;
pub mod version;
