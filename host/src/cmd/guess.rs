//! `waybill guess`: which carrier issued a tracking number.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde::Serialize;
use waybill_core::guess::{Candidate, Guesser};
use waybill_host::plugin::registry::{plugin_dir, Registry};

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
                    guesser,
                    line,
                    args.format,
                    &mut candidates,
                    &mut out,
                )?);
            }
        } else {
            invalid += usize::from(!write_one(
                guesser,
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

/// Writes the line for one number; returns whether the input was a valid number.
fn write_one<'g>(
    guesser: &'g Guesser,
    number: &str,
    format: OutputFormat,
    candidates: &mut Vec<Candidate<'g>>,
    out: &mut impl Write,
) -> io::Result<bool> {
    let result = guesser.guess_into(number, candidates);
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
            write!(out, "{number}\t")?;
            if let Some(error) = &error {
                write!(out, "error: {error}")?;
            } else if candidates.is_empty() {
                out.write_all(b"unknown")?;
            }
            for (i, c) in candidates.iter().enumerate() {
                if i > 0 {
                    out.write_all(b"  ")?;
                }
                write!(
                    out,
                    "{}/{} ({}, {})",
                    c.carrier,
                    c.format,
                    c.checksum.as_str(),
                    c.score
                )?;
            }
            out.write_all(b"\n")?;
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
            Guesser::embedded(),
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
        assert!(
            text.starts_with("73100123456789\tzhongtong/zto_14 (none,"),
            "{text}"
        );
        assert!(text.contains("dhl/dhl_ecommerce_14"));
    }
}
