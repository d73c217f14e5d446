//! One module per subcommand; each has `run(...) -> anyhow::Result<ExitCode>`.

pub mod simulate;
pub mod normalize;
pub mod version;
