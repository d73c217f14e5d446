//! `waybill carriers`: every carrier the guesser knows, with aliases and formats.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Args;
use waybill_core::guess::Guesser;

use super::guess::OutputFormat;

#[derive(Args, Debug)]
pub struct CarriersArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub fn run(args: CarriersArgs) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for entry in Guesser::embedded().catalog().iter() {
        match args.format {
            OutputFormat::Json => {
                serde_json::to_writer(&mut out, entry)?;
                out.write_all(b"\n")?;
            }
            OutputFormat::Text => writeln!(
                out,
                "{}\t{} / {}\taliases: {}\tformats: {}",
                entry.code,
                entry.name_zh,
                entry.name_en,
                entry.aliases.join(", "),
                entry.formats.join(", ")
            )?,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
