//! `waybill`: the command line and daemon.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(name = "waybill", version, about = "Self-hosted parcel tracking hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of every part.
    Version,
    /// Run the sandbox carrier's simulator (a fake courier for demos and tests).
    Simulate(cmd::simulate::SimulateArgs),
    /// Classify trace lines: `waybill normalize TEXT...` or `waybill normalize -` (stdin).
    Normalize(cmd::normalize::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => cmd::version::run(),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Normalize(args) => cmd::normalize::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("waybill: {err:#}");
            ExitCode::from(2)
        }
    }
}
