//! `waybill guess`: which carrier issued a tracking number.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;
use waybill_core::guess::{Candidate, Guesser, Prior};
use waybill_host::guess::load_prior;
use waybill_host::plugin::registry::{plugin_dir, Registry};

use super::serve::{open_store, StoreArgs};

/// Output format of `guess` and `carriers`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One readable line per item.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args, Debug)]
pub struct GuessArgs {
    /// Tracking numbers; `-` reads one number per line from stdin.
    #[arg(required = true, value_name = "NUMBER")]
    pub numbers: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Region prior that breaks ties between equally good candidates (CN, US, EU, …).
    #[arg(long, default_value = "CN")]
    pub region: String,
    /// Also use the number rules of the plugins in the plugin directory (`$WAYBILL_PLUGIN_DIR`,
    /// else next to the binary). Off by default, so the answer for a number does not depend
    /// on which plugin files happen to be installed; the daemon's autonumber always uses them.
    #[arg(long)]
    pub plugins: bool,
    /// Re-rank by what the store's confirmed waybills say about numbers of the same length
    /// and start (the daemon's learned prior); the database is the one `--config`,
    /// `--data-dir` or `--database` names. Each reason ends with the evidence.
    #[arg(long)]
    pub learned: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Serialize)]
struct JsonLine<'a, 'g> {
    number: &'a str,
    candidates: &'a [Candidate<'g>],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: GuessArgs) -> anyhow::Result<ExitCode> {
    let mut guesser;
    let guesser = if args.plugins {
        let registry = Registry::load(&plugin_dir(None))?;
        for r in &registry.refused {
            eprintln!("waybill: plugin refused: {r}");
        }
        let (with_plugins, refused) = registry.guesser_report();
        for r in &refused {
            eprintln!(
                "waybill: number rules of {} refused: {}",
                r.file.display(),
                r.reason
            );
        }
        guesser = with_plugins;
        guesser.set_region(&args.region);
        &guesser
    } else if args
        .region
        .eq_ignore_ascii_case(Guesser::embedded().region())
    {
        Guesser::embedded()
    } else {
        guesser = Guesser::default();
        guesser.set_region(&args.region);
        &guesser
    };
    let prior = if args.learned {
        Some(learned_prior(&args.store, guesser)?)
    } else {
        None
    };
    let prior = prior.as_ref();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut candidates = Vec::new();
    let mut invalid = 0usize;
    for number in &args.numbers {
        if number == "-" {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            let mut raw = Vec::with_capacity(128);
            loop {
                raw.clear();
                if input.read_until(b'\n', &mut raw)? == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&raw);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.trim().is_empty() {
                    continue;
                }
                invalid += usize::from(!write_one(
                    (guesser, prior),
                    line,
                    args.format,
                    &mut candidates,
                    &mut out,
                )?);
            }
        } else {
            invalid += usize::from(!write_one(
                (guesser, prior),
                number,
                args.format,
                &mut candidates,
                &mut out,
            )?);
        }
    }
    out.flush()?;
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The learned prior of the configured database, which must exist already.
fn learned_prior(store: &StoreArgs, guesser: &Guesser) -> anyhow::Result<Prior> {
    let config = store.load()?;
    let path = config.database_path();
    if !path.exists() {
        anyhow::bail!(
            "--learned: there is no database at {} (give --database or --data-dir)",
            path.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = open_store(&config).await?;
        let prior = load_prior(store.as_ref(), guesser, config.guess.prior_min_samples).await;
        store.close().await;
        let prior = prior.with_context(|| format!("cannot read {}", path.display()))?;
        eprintln!(
            "waybill: learned prior of {} confirmed waybills in {} (buckets of at least {})",
            prior.confirmed(),
            path.display(),
            prior.min_samples()
        );
        Ok(prior)
    })
}

/// Writes the line for one number; returns whether the input was a valid number.
fn write_one<'g>(
    (guesser, prior): (&'g Guesser, Option<&Prior>),
    number: &str,
    format: OutputFormat,
    candidates: &mut Vec<Candidate<'g>>,
    out: &mut impl Write,
) -> io::Result<bool> {
    let result = guesser.guess_into_with(number, prior, candidates);
    // Shown as given, without the surrounding blanks of a pasted or piped line.
    let number = number.trim();
    let valid = result.is_ok();
    let error = result.err().map(|e| e.to_string());
    match format {
        OutputFormat::Json => {
            let line = JsonLine {
                number,
                candidates,
                error,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        OutputFormat::Text => {
            // A person reads this: the number, then each candidate best first with the
            // sentence that explains it (the score is only an order, so it is left out).
            writeln!(out, "{number}")?;
            if let Some(error) = &error {
                writeln!(out, "  error: {error}")?;
            } else if candidates.is_empty() {
                writeln!(
                    out,
                    "  unknown: no number format of any known carrier matches"
                )?;
            }
            for (i, c) in candidates.iter().enumerate() {
                writeln!(out, "  {}. {}  {}", i + 1, c.carrier, c.reason)?;
            }
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(number: &str, format: OutputFormat) -> (String, bool) {
        let mut out = Vec::new();
        let mut candidates = Vec::new();
        let ok = write_one(
            (Guesser::embedded(), None),
            number,
            format,
            &mut candidates,
            &mut out,
        )
        .unwrap();
        (String::from_utf8(out).unwrap(), ok)
    }

    #[test]
    fn json_line_has_number_and_ranked_candidates() {
        let (text, ok) = line(" EA123456785CN\n", OutputFormat::Json);
        assert!(ok);
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["number"], "EA123456785CN");
        let first = &value["candidates"][0];
        assert_eq!(first["carrier"], "ems");
        assert_eq!(first["checksum"], "verified");
        for field in ["format", "score", "reason"] {
            assert!(!first[field].is_null(), "{field}");
        }
        assert!(value.get("error").is_none());
    }

    #[test]
    fn invalid_number_is_reported_on_its_own_line() {
        let (text, ok) = line("12\u{7}3", OutputFormat::Json);
        assert!(!ok);
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert!(value["error"]
            .as_str()
            .unwrap()
            .contains("control character"));
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn text_line_lists_candidates_best_first() {
        let (text, _) = line("73100123456789", OutputFormat::Text);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("73100123456789"));
        let first = lines.next().unwrap();
        assert!(first.starts_with("  1. zhongtong  "), "{text}");
        // The reason is the sentence, not the internal format id and score.
        assert!(first.contains("prefix"), "{first}");
        assert!(!first.contains("zto_14"), "{first}");
        assert!(lines.any(|l| l.contains(". dhl  ")), "{text}");
    }

    /// A data directory whose store has confirmed sandbox waybills `77301…` (14 digits).
    fn seeded_data_dir() -> tempfile::TempDir {
        use std::sync::Arc;

        use jiff::{SignedDuration, Timestamp};
        use waybill_core::clock::ManualClock;
        use waybill_host::latency::{LatencyProbe, VirtualDriver};
        use waybill_host::sandbox::{sandbox_numbers, SandboxOptions, SandboxStack};

        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let t0: Timestamp = "2024-06-18T08:00:00+08:00".parse().unwrap();
            let clock = Arc::new(ManualClock::new(t0));
            let stack = SandboxStack::start(SandboxOptions::new(dir.path()), clock.clone())
                .await
                .unwrap();
            let tenant = stack.tenant("shop", "k").await.unwrap();
            let numbers = sandbox_numbers("77301", 30);
            stack
                .subscribe(&tenant, &numbers, "http://127.0.0.1:9/push", "salt")
                .await
                .unwrap();
            let driver = VirtualDriver {
                engine: stack.engine.clone(),
                clock: clock.clone(),
                probe: LatencyProbe::new(),
                quantum: SignedDuration::from_mins(30),
            };
            driver
                .run_until(t0 + SignedDuration::from_hours(72))
                .await
                .unwrap();
            stack.store.close().await;
            stack.shutdown().await.unwrap();
        });
        dir
    }

    #[test]
    fn learned_uses_the_stores_confirmed_waybills_and_says_so_in_the_reason() {
        let dir = seeded_data_dir();
        let store = StoreArgs {
            config: None,
            data_dir: Some(dir.path().to_path_buf()),
            database: None,
        };
        // The sandbox carrier's own catch-all rule, as `--plugins` would add it.
        let mut guesser = Guesser::default();
        <waybill_carrier_sandbox::Sandbox as waybill_sdk::CarrierPlugin>::manifest()
            .add_rules_to(&mut guesser)
            .unwrap();
        let prior = learned_prior(&store, &guesser).unwrap();
        assert!(prior.confirmed() >= 20, "{}", prior.confirmed());
        let mut out = Vec::new();
        let mut candidates = Vec::new();
        write_one(
            (&guesser, Some(&prior)),
            "77301000000777",
            OutputFormat::Json,
            &mut candidates,
            &mut out,
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let first = &value["candidates"][0];
        assert_eq!(first["carrier"], "sandbox");
        let reason = first["reason"].as_str().unwrap();
        assert!(
            reason.contains("confirmed 14-digit numbers starting 7730: 100 % sandbox"),
            "{reason}"
        );
        // Without --learned the rules' order stands: STO's 77 + 12 digits first.
        let (text, _) = line("77301000000777", OutputFormat::Text);
        assert!(text.contains("\n  1. shentong  "), "{text}");
    }

    #[test]
    fn learned_without_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreArgs {
            config: None,
            data_dir: None,
            database: Some(dir.path().join("missing.db")),
        };
        let err = learned_prior(&store, Guesser::embedded()).unwrap_err();
        assert!(err.to_string().contains("no database at"), "{err}");
        assert!(!dir.path().join("missing.db").exists());
    }
}
