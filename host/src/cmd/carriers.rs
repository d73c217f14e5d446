//! `waybill carriers`: every carrier the guesser knows, with aliases and formats, and what
//! tracks it here: its own plugin, the upstream aggregator (`$WAYBILL_UPSTREAM`), or
//! nothing (the guesser names it, no plugin answers for it).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use waybill_core::guess::{CarrierEntry, Guesser};
use waybill_host::plugin::registry::{plugin_dir, upstream, Registry};

use super::guess::OutputFormat;

#[derive(Args, Debug)]
pub struct CarriersArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// What tracks a carrier in this installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum TrackedBy {
    /// Its own plugin (the plugin's file name).
    Plugin {
        /// The plugin file.
        file: String,
    },
    /// The upstream aggregator, a loaded plugin of that code.
    Upstream {
        /// The aggregator's code.
        aggregator: String,
    },
    /// No plugin here: the guesser knows the carrier, nothing tracks it.
    Nothing,
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    entry: &'a CarrierEntry,
    tracked_by: TrackedBy,
}

pub fn run(args: CarriersArgs) -> anyhow::Result<ExitCode> {
    let registry = Registry::load(&plugin_dir(None))?;
    let upstream = upstream(None);
    let tracked_by = |code: &str| match registry.route(code, upstream.as_deref()) {
        Some(p) if p.manifest().codes.iter().any(|c| c == code) => TrackedBy::Plugin {
            file: p
                .file()
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        Some(p) => TrackedBy::Upstream {
            aggregator: p.manifest().codes.first().cloned().unwrap_or_default(),
        },
        None => TrackedBy::Nothing,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for entry in Guesser::embedded().catalog().iter() {
        let by = tracked_by(&entry.code);
        match args.format {
            OutputFormat::Json => {
                serde_json::to_writer(
                    &mut out,
                    &Row {
                        entry,
                        tracked_by: by,
                    },
                )?;
                out.write_all(b"\n")?;
            }
            OutputFormat::Text => writeln!(
                out,
                "{}\t{} / {}\taliases: {}\tformats: {}\ttracked by: {}",
                entry.code,
                entry.name_zh,
                entry.name_en,
                entry.aliases.join(", "),
                entry.formats.join(", "),
                match &by {
                    TrackedBy::Plugin { file } => format!("plugin {file}"),
                    TrackedBy::Upstream { aggregator } => format!("upstream {aggregator}"),
                    TrackedBy::Nothing => "nothing (no plugin; set WAYBILL_UPSTREAM)".into(),
                }
            )?,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
