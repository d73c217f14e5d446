//! `waybill problems`: the parcels in trouble, with their reasons, from the store.

use std::process::ExitCode;

use jiff::SignedDuration;
use waybill_host::problems::{kind_name, parse_kind, problem_parcels, ProblemFilter};

use super::serve::{open_store, StoreArgs};
use super::OutputFormat;

/// Options of `waybill problems`.
#[derive(Debug, clap::Args)]
pub struct ProblemsArgs {
    /// Only this kind: a Kdniao code (412) or a name (locker_timeout); repeatable.
    #[arg(long = "kind", value_parser = parse_kind)]
    pub kinds: Vec<waybill_core::problem::FlagKind>,
    /// Only this carrier code.
    #[arg(long)]
    pub carrier: Option<String>,
    /// Only problems active at least this long ("12h", "2d").
    #[arg(long, value_parser = parse_span)]
    pub older_than: Option<SignedDuration>,
    /// Output format (json: one parcel per line).
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_span(text: &str) -> Result<SignedDuration, String> {
    let d: SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("bad duration {text:?}: {e} (e.g. 12h, 2d)"))?;
    if d.is_negative() {
        return Err(format!("duration {text:?} is negative"));
    }
    Ok(d)
}

pub fn run(args: ProblemsArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = args.store.load()?;
        let store = open_store(&config).await?;
        let filter = ProblemFilter {
            kinds: args.kinds.clone(),
            carrier: args.carrier.clone(),
            older_than: args.older_than,
            tenant_id: None,
        };
        let now = jiff::Timestamp::now();
        let mut lanes = waybill_core::eta::Lanes::new(config.eta.clone());
        for (carrier, scope, stats) in store.lanes().await? {
            lanes.insert(&carrier, scope, stats);
        }
        let parcels =
            problem_parcels(store.as_ref(), &lanes, &config.problems, &filter, now).await?;
        store.close().await;
        let mut by_kind = std::collections::BTreeMap::new();
        for parcel in &parcels {
            for flag in &parcel.flags {
                *by_kind.entry(flag.kind).or_insert(0usize) += 1;
            }
            match args.format {
                OutputFormat::Json => println!("{}", serde_json::to_string(parcel)?),
                OutputFormat::Text => {
                    for flag in &parcel.flags {
                        println!(
                            "{:<12} {:<22} {} {:<20} since {}  {}",
                            parcel.company,
                            parcel.number,
                            flag.kind.code(),
                            kind_name(flag.kind),
                            flag.since,
                            flag.reason
                        );
                    }
                }
            }
        }
        if args.format == OutputFormat::Text {
            let counts: Vec<String> = by_kind
                .iter()
                .map(|(k, n)| format!("{} {}: {n}", k.code(), kind_name(*k)))
                .collect();
            eprintln!(
                "waybill: {} problem parcels{}{}",
                parcels.len(),
                if counts.is_empty() { "" } else { "; " },
                counts.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
