//! `waybill track COMPANY NUMBER`: one real-time query through the carrier's plugin, or
//! through the upstream aggregator (`WAYBILL_UPSTREAM`) when the carrier has none.

use std::process::ExitCode;
use std::sync::Arc;

use waybill_core::carrier::Carrier;
use waybill_core::eta::{Estimate, Lanes, Milestones};
use waybill_core::model::{Trace, Waybill};
use waybill_core::policy::SubscriptionFacts;
use waybill_core::problem::Thresholds;

use super::serve::{open_store, StoreArgs};

use waybill_core::normalize::TextNormalizer;
use waybill_host::plugin::registry::{plugin_dir, upstream, Registry};

/// What `waybill track` was asked.
pub struct TrackArgs {
    /// Carrier code.
    pub company: String,
    /// Tracking number.
    pub number: String,
    /// Phone (or its last four digits).
    pub phone: Option<String>,
    /// Destination address.
    pub to: Option<String>,
    /// JSON output.
    pub json: bool,
    /// Where the learned lanes are.
    pub store: StoreArgs,
}

/// Queries one waybill and prints its normalized trace with an arrival estimate. Exit 1
/// when the carrier answered with an error.
pub fn run(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let registry = Registry::load(&plugin_dir(None))?;
    for r in &registry.refused {
        eprintln!("waybill: plugin refused: {r}");
    }
    let company = args.company.to_ascii_lowercase();
    // A company without its own plugin goes to the upstream aggregator, if one is set.
    let carrier = registry.routed_carrier(
        &company,
        upstream(None).as_deref(),
        Arc::new(TextNormalizer::builtin().clone()),
    )?;
    let mut waybill = Waybill::new(company, args.number.trim().to_ascii_uppercase());
    waybill.phone = args.phone;
    waybill.to = args.to;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime
        .block_on(carrier.track(std::slice::from_ref(&waybill)))
        .pop()
        .unwrap_or_else(|| {
            Err(waybill_core::carrier::TrackError::BadResponse {
                message: "no outcome".into(),
            })
        });
    let outcome = outcome.map(|mut trace| {
        trace.locate(waybill.from.as_deref(), waybill.to.as_deref());
        trace
    });
    match outcome {
        Ok(trace) => {
            let (lanes, thresholds) = runtime.block_on(learned_lanes(&args.store))?;
            let now = jiff::Timestamp::now();
            let m = Milestones::of(&trace, waybill.to.as_deref());
            let eta = lanes.estimate(&waybill.company, &m, now);
            // No subscription: the flags the trace raises by itself, 401 counted from now.
            let facts = SubscriptionFacts::new(&waybill, now);
            let (flags, _) = lanes.flags(&trace, &m, &facts, &thresholds, now);
            if args.json {
                let mut v = serde_json::to_value(&trace)?;
                if let Some(obj) = v.as_object_mut() {
                    if let Some(e) = &eta {
                        obj.insert("eta".into(), serde_json::to_value(e)?);
                    }
                    if !flags.is_empty() {
                        obj.insert("problems".into(), serde_json::to_value(&flags)?);
                    }
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_table(&trace));
                for f in &flags {
                    println!(
                        "problem {} {}: {}",
                        f.kind.code(),
                        f.kind.label_zh(),
                        f.reason
                    );
                }
                if let Some(e) = &eta {
                    println!("{}", eta_line(e));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"error": e}))?
            );
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("waybill: {} {}: {e}", waybill.company, waybill.number);
            Ok(ExitCode::from(1))
        }
    }
}

/// The lanes the store has learned, when its database exists (none otherwise: the
/// estimate then says it is a cold start), and the configured problem thresholds.
/// Nothing is created.
async fn learned_lanes(args: &StoreArgs) -> anyhow::Result<(Lanes, Thresholds)> {
    let config = args.load()?;
    let mut lanes = Lanes::new(config.eta.clone());
    if config.database_path().exists() {
        let store = open_store(&config).await?;
        for (carrier, scope, stats) in store.lanes().await? {
            lanes.insert(&carrier, scope, stats);
        }
        store.close().await;
    }
    Ok((lanes, config.problems))
}

/// `eta: 2024-05-03 14:00 (p20 … – p80 …), …explanation`, China time.
pub fn eta_line(e: &Estimate) -> String {
    let china = jiff::tz::TimeZone::fixed(waybill_core::model::CHINA_OFFSET);
    let t = |at: jiff::Timestamp| {
        at.to_zoned(china.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    format!(
        "eta: {} (p20 {} – p80 {}); {}",
        t(e.arrival),
        t(e.early),
        t(e.late),
        e.explanation
    )
}

/// The trace as a table: time, place, state, text; newest first.
pub fn render_table(trace: &Trace) -> String {
    let mut out = format!(
        "{} {}  state: {}{}\n",
        trace.com,
        trace.nu,
        trace.state.name(),
        if trace.ischeck { " (signed)" } else { "" }
    );
    let rows: Vec<[String; 4]> = trace
        .data
        .iter()
        .map(|e| {
            [
                e.time.kuaidi100(),
                e.location.clone().unwrap_or_default(),
                e.state.name().to_owned(),
                e.context.clone(),
            ]
        })
        .collect();
    let header = ["TIME", "PLACE", "STATE", "TEXT"];
    let mut widths = header.map(display_width);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(display_width(cell));
        }
    }
    let mut line = |cells: [&str; 4]| {
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < 3 {
                out.push_str(&" ".repeat(widths[i] - display_width(cell) + 2));
            }
        }
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    if rows.is_empty() {
        out.push_str("(no events yet)\n");
    }
    out
}

/// Columns a string takes in a terminal: CJK characters take two.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if (c as u32) >= 0x1100 && !c.is_ascii() {
                2
            } else {
                1
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waybill_core::model::{EventTime, TrackEvent, CHINA_OFFSET};
    use waybill_core::state::State;

    #[test]
    fn table_aligns_cjk_places_and_shows_the_state() {
        let ev = |t: &str, place: &str, s| {
            TrackEvent::new(EventTime::parse(t, CHINA_OFFSET).unwrap(), "text", s)
                .with_location(place)
        };
        let trace = Trace::from_events(
            "hexi",
            "HX1",
            vec![
                ev("2024-05-01 10:00", "兰州市", State::Collected),
                ev("2024-05-02 11:00", "Wuwei", State::Delivered),
            ],
        );
        let table = render_table(&trace);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("delivered (signed)"));
        assert!(lines[2].starts_with("2024-05-02 11:00:00  Wuwei   delivered"));
        assert!(lines[3].starts_with("2024-05-01 10:00:00  兰州市  collected"));
    }
}
