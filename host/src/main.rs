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
    /// List pushes that ran out of delivery attempts.
    DeadLetters(cmd::dead_letters::DeadLettersArgs),
    /// Re-drive dead-lettered pushes.
    Redeliver(cmd::redeliver::RedeliverArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => cmd::version::run(),
        Command::DeadLetters(args) => cmd::dead_letters::run(args),
        Command::Redeliver(args) => cmd::redeliver::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("waybill: {err:#}");
            ExitCode::from(2)
        }
    }
}
