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
    /// Guess the carrier of tracking numbers (`-` reads one per line from stdin).
    Guess(cmd::guess::GuessArgs),
    /// List every carrier the guesser knows, with aliases, names and formats.
    Carriers(cmd::carriers::CarriersArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => cmd::version::run(),
        Command::Guess(args) => cmd::guess::run(args),
        Command::Carriers(args) => cmd::carriers::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("waybill: {err:#}");
            ExitCode::from(2)
        }
    }
}
