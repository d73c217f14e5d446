//! `waybill normalize`: classify trace lines with the text normalizer.
//!
//! `waybill normalize TEXT...` classifies each argument; `waybill normalize -` reads stdin
//! and answers one line per line, streaming, so it can sit in a pipe over a large file.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;
use waybill_core::normalize::TextNormalizer;
use waybill_core::place::locate_line;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `state<TAB>codes<TAB>reason<TAB>place<TAB>text`, one line per input line: codes are
    /// `kuaidi100=STATE/ADVANCED kdniao=STATE/STATEEX`, the reason is the rule id (or
    /// `model`) with its confidence, place is kuaidi100's `areaName` or `-`.
    Text,
    /// One JSON object per input line (JSON Lines).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Trace lines to classify; `-` reads lines from standard input.
    #[arg(required = true, value_name = "TEXT")]
    pub text: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A TOML rule file to use instead of the built-in rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

/// One classified line as `--format json` prints it.
#[derive(Debug, Serialize)]
struct Record<'a> {
    text: &'a str,
    state: &'static str,
    /// kuaidi100 base `state` code.
    kuaidi100: u16,
    /// kuaidi100 advanced `statusCode` (501 locker, 304 signed from a locker, 1001 …).
    kuaidi100_advanced: u16,
    /// Kdniao `StateEx`.
    kdniao: u16,
    /// The rule id, or `model` when the statistical model answered.
    rule: &'a str,
    /// Where the line's scan happened ([`waybill_core::place`]), when it names a place.
    province: Option<&'static str>,
    city: Option<&'static str>,
    district: Option<&'static str>,
    /// kuaidi100 `areaCode` of that place (6-digit GB/T 2260 code padded to 12).
    area_code: Option<String>,
    /// The next place's city, when the line names one (发往【北京】).
    next_city: Option<&'static str>,
    /// 0..=1: the rule's documented confidence or the model's.
    confidence: f32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let owned;
    let normalizer = match &args.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read rule file {}", path.display()))?;
            owned = TextNormalizer::from_toml(&text)
                .with_context(|| format!("rule file {} refused", path.display()))?;
            &owned
        }
        None => TextNormalizer::builtin(),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match classify_all(normalizer, &args, &mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader went away (`| head`): nothing left to say, and not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write the results"),
    }
}

fn classify_all(n: &TextNormalizer, args: &Args, out: &mut impl Write) -> io::Result<()> {
    for text in &args.text {
        if text == "-" {
            classify_stream(n, &mut io::stdin().lock(), args.format, out)?;
        } else {
            write_one(n, text, args.format, out)?;
        }
    }
    Ok(())
}

/// One answer per non-blank line of `input`, written as it is read.
fn classify_stream(
    n: &TextNormalizer,
    input: &mut impl BufRead,
    format: Format,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        // Carriers' exports are not always clean UTF-8; one bad byte should not stop a
        // stream.
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        // A blank line is a gap in the export, not a trace line to classify.
        if line.trim().is_empty() {
            continue;
        }
        write_one(n, line, format, out)?;
    }
}

fn write_one(
    n: &TextNormalizer,
    text: &str,
    format: Format,
    out: &mut impl Write,
) -> io::Result<()> {
    let c = n.classify_text(text);
    let place = locate_line(text);
    let at = place.at.map(|l| l.place);
    match format {
        Format::Text => {
            let area = at.map_or_else(|| "-".to_owned(), |p| p.area_name());
            let (kdniao_state, kdniao_ex) = c.state.kdniao();
            writeln!(
                out,
                "{}\tkuaidi100={}/{} kdniao={kdniao_state}/{kdniao_ex}\t{} ({:.2})\t{area}\t{text}",
                c.state.name(),
                c.state.kuaidi100(),
                c.state.kuaidi100_advanced(),
                c.rule,
                c.confidence,
            )
        }
        Format::Json => {
            let record = Record {
                text,
                state: c.state.name(),
                kuaidi100: c.state.kuaidi100(),
                kuaidi100_advanced: c.state.kuaidi100_advanced(),
                kdniao: c.state.kdniao().1,
                rule: &c.rule,
                province: at.map(|p| p.province),
                city: at.and_then(|p| p.city),
                district: at.and_then(|p| p.district),
                area_code: at.map(|p| p.area_code()),
                next_city: place.next.and_then(|l| l.place.city),
                confidence: c.confidence,
            };
            serde_json::to_writer(&mut *out, &record).map_err(io::Error::from)?;
            out.write_all(b"\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &[&str], format: Format) -> Args {
        Args {
            text: text.iter().map(|s| s.to_string()).collect(),
            format,
            rules: None,
        }
    }

    fn output(a: &Args) -> String {
        let mut out = Vec::new();
        classify_all(TextNormalizer::builtin(), a, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_format_is_state_codes_reason_place_text() {
        let out = output(&args(&["快件已被 门卫 代签收"], Format::Text));
        let fields: Vec<&str> = out.trim_end().split('\t').collect();
        assert_eq!(fields[0], "delivered_by_proxy");
        assert_eq!(fields[1], "kuaidi100=3/303 kdniao=3/304");
        assert!(fields[2].starts_with("delivered.proxy ("), "{out}");
        assert_eq!(&fields[3..], ["-", "快件已被 门卫 代签收"]);
    }

    #[test]
    fn json_format_carries_every_dialect_code() {
        let out = output(&args(
            &["快件已放入【南山丰巢柜】，请凭取件码取件"],
            Format::Json,
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["state"], "in_locker");
        assert_eq!(v["kuaidi100"], 5);
        assert_eq!(v["kuaidi100_advanced"], 501);
        assert_eq!(v["kdniao"], 211);
        assert_eq!(v["text"], "快件已放入【南山丰巢柜】，请凭取件码取件");
        assert!(v["rule"].is_string());
        let confidence = v["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence));
    }

    #[test]
    fn a_line_no_rule_reads_is_answered_by_the_model() {
        let out = output(&args(&["收件人在外地，包裹先放我家吧"], Format::Json));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["rule"], "model");
        assert!(v["confidence"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn json_and_text_carry_the_place_and_the_next_city() {
        let line = "快件离开【深圳宝安集散中心】，发往【北京】";
        let out = output(&args(&[line], Format::Json));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(
            (&v["province"], &v["city"], &v["district"]),
            (&"广东省".into(), &"深圳市".into(), &"宝安区".into())
        );
        assert_eq!(v["area_code"], "440306000000");
        assert_eq!(v["next_city"], "北京市");
        let out = output(&args(&[line], Format::Text));
        assert!(out.contains("\t广东,深圳市,宝安区\t"), "{out}");
        let out = output(&args(&["已签收"], Format::Json));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert!(v["city"].is_null() && v["area_code"].is_null() && v["next_city"].is_null());
    }

    #[test]
    fn signed_from_a_locker_is_304() {
        let out = output(&args(&["您的快件已从丰巢快递柜取出"], Format::Json));
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["kuaidi100_advanced"], 304);
        assert_eq!(v["kuaidi100"], 3);
    }

    #[test]
    fn a_stream_skips_blank_lines_and_survives_bad_bytes() {
        let mut input: &[u8] = b"\xe5\xb7\xb2\xe7\xad\xbe\xe6\x94\xb6\r\n\n  \n\xff\xfeDelivered\n";
        let mut out = Vec::new();
        classify_stream(
            TextNormalizer::builtin(),
            &mut input,
            Format::Text,
            &mut out,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let states: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
        assert_eq!(states, ["delivered", "delivered"], "{out}");
    }

    #[test]
    fn one_line_out_per_argument() {
        let out = output(&args(&["已揽收", "派送中", "Delivered"], Format::Text));
        assert_eq!(out.lines().count(), 3);
    }
}
