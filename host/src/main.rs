//! `waybill`: the command line and daemon.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

// glibc malloc was ~15 % of the daemon's CPU under subscribe load (many small, short-lived
// allocations per request, freed on other threads); mimalloc handles that pattern better.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "waybill", version, about = "Self-hosted parcel tracking hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulator, daemon and a local receiver in one process: watch a few hundred
    /// sandbox parcels to the end on a fast clock and print a summary.
    Demo(cmd::demo::DemoArgs),
    /// Scale measurement: due checks per second with many active subscriptions.
    #[command(hide = true)]
    BenchDispatch(cmd::bench_dispatch::BenchDispatchArgs),
    /// ETA measurement: sandbox parcels on a few lanes, estimates scored per stage.
    #[command(hide = true)]
    BenchEta(cmd::bench_eta::BenchEtaArgs),
    /// Print the version of every part.
    Version,
    /// Run the sandbox carrier's simulator (a fake courier for demos and tests).
    Simulate(cmd::simulate::SimulateArgs),
    /// Classify trace lines: `waybill normalize TEXT...` or `waybill normalize -` (stdin).
    Normalize(cmd::normalize::Args),
    /// List loaded carrier plugins and refused files.
    Plugins {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: cmd::OutputFormat,
    },
    /// Query one waybill now through its carrier's plugin and print the trace.
    #[command(after_help = "\
Environment:
  WAYBILL_<CODE>_<KEY>  a plugin's configuration key, e.g. WAYBILL_SHUNFENG_PARTNER_ID
                        for key `partner_id` of plugin `shunfeng` (`waybill plugins` lists
                        each plugin's keys); the daemon reads [carriers.<code>] <key> too
  WAYBILL_PLUGIN_DIR    where the carrier plugins are (default: beside this binary)
  WAYBILL_UPSTREAM      the aggregator plugin (e.g. kuaidi100) that tracks a company
                        without a plugin of its own")]
    Track {
        /// Carrier code (e.g. `hexi`).
        company: String,
        /// Tracking number.
        number: String,
        /// Phone number (or its last four digits) for carriers that need it.
        #[arg(long)]
        phone: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: cmd::OutputFormat,
        /// Destination address (`广东省深圳市南山区`): places the lines and picks the lane
        /// of the arrival estimate.
        #[arg(long)]
        to: Option<String>,
        /// Where the learned lanes are read from (nothing is created or written).
        #[command(flatten)]
        store: cmd::serve::StoreArgs,
    },
    /// Guess the carrier of tracking numbers (`-` reads one per line from stdin).
    Guess(cmd::guess::GuessArgs),
    /// List every carrier the guesser knows, with aliases, names and formats.
    Carriers(cmd::carriers::CarriersArgs),
    /// List pushes that ran out of delivery attempts.
    DeadLetters(cmd::dead_letters::DeadLettersArgs),
    /// Re-drive dead-lettered pushes.
    Redeliver(cmd::redeliver::RedeliverArgs),
    /// Run the daemon: kuaidi100-compatible HTTP API, scheduler and push worker.
    Serve(cmd::serve::ServeArgs),
    /// Print the documented default configuration (`--default`) or check a file.
    Config(cmd::config::ConfigArgs),
    /// Manage tenants (the accounts that subscribe).
    #[command(subcommand)]
    Tenant(cmd::tenant::TenantCommand),
    /// Problem parcels (no update, locker timeout, refused, ...) with their reasons.
    Problems(cmd::problems::ProblemsArgs),
    /// Waybills counted per tenant in a billing month.
    Usage(cmd::usage::UsageArgs),
    /// Subscribe the rows of a CSV file (company,number,phone,from,to) through the daemon.
    Import(cmd::import::ImportArgs),
    /// Copy an SQLite store into an empty PostgreSQL database, keeping ids and the key.
    Migrate(cmd::migrate::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::BenchDispatch(args) => cmd::bench_dispatch::run(args),
        Command::BenchEta(args) => cmd::bench_eta::run(args),
        Command::Version => cmd::version::run(),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Normalize(args) => cmd::normalize::run(args),
        Command::Plugins { format } => cmd::plugins::run(format == cmd::OutputFormat::Json),
        Command::Track {
            company,
            number,
            phone,
            format,
            to,
            store,
        } => cmd::track::run(cmd::track::TrackArgs {
            company,
            number,
            phone,
            to,
            json: format == cmd::OutputFormat::Json,
            store,
        }),
        Command::Guess(args) => cmd::guess::run(args),
        Command::Carriers(args) => cmd::carriers::run(args),
        Command::DeadLetters(args) => cmd::dead_letters::run(args),
        Command::Redeliver(args) => cmd::redeliver::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::Tenant(cmd) => cmd::tenant::run(cmd),
        Command::Problems(args) => cmd::problems::run(args),
        Command::Usage(args) => cmd::usage::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("waybill: {err:#}");
            ExitCode::from(2)
        }
    }
}
