//! `waybill import FILE.csv`: subscribes every row (company,number,phone,from,to) through
//! a running daemon's `POST /poll`, with a progress bar and a summary of rejected rows.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

/// Options of `waybill import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// CSV file: company,number,phone,from,to (a header row starting with `company` is
    /// skipped; phone, from and to may be empty or left out).
    pub file: PathBuf,
    /// The tenant key to subscribe with.
    #[arg(long, env = "WAYBILL_KEY")]
    pub key: String,
    /// Callback URL for the pushes.
    #[arg(long)]
    pub callback: String,
    /// Push signing salt.
    #[arg(long)]
    pub salt: Option<String>,
    /// resultv2 detail level (0, 1, 4 or 8).
    #[arg(long, default_value_t = 0)]
    pub resultv2: u8,
    /// The daemon's address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// One CSV row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line in the file.
    pub line: u64,
    /// Company code ("" asks the daemon to detect it).
    pub company: String,
    /// Tracking number.
    pub number: String,
    /// Phone.
    pub phone: String,
    /// Origin.
    pub from: String,
    /// Destination.
    pub to: String,
}

/// Reads the rows; a row that is not CSV is an error naming its line.
pub fn read_rows(data: &[u8]) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("CSV error near record {}", i + 1))?;
        // csv's own line count skips blank lines; count newlines before the record instead.
        let line = record.position().map_or(i as u64 + 1, |p| {
            let mut start = usize::try_from(p.byte()).unwrap_or(0).min(data.len());
            while start < data.len() && matches!(data[start], b'\n' | b'\r') {
                start += 1;
            }
            data[..start].iter().filter(|&&b| b == b'\n').count() as u64 + 1
        });
        let field = |n: usize| record.get(n).unwrap_or("").to_owned();
        if i == 0 && field(0).eq_ignore_ascii_case("company") {
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        rows.push(Row {
            line,
            company: field(0),
            number: field(1),
            phone: field(2),
            from: field(3),
            to: field(4),
        });
    }
    Ok(rows)
}

/// The `param` JSON of a row's subscription.
fn param_of(row: &Row, args: &ImportArgs) -> String {
    let mut parameters = serde_json::json!({
        "callbackurl": args.callback,
        "resultv2": args.resultv2.to_string(),
    });
    if let Some(salt) = &args.salt {
        parameters["salt"] = salt.clone().into();
    }
    if !row.phone.is_empty() {
        parameters["phone"] = row.phone.clone().into();
    }
    if row.company.is_empty() {
        parameters["autoCom"] = "1".into();
    }
    serde_json::json!({
        "company": row.company,
        "number": row.number,
        "from": row.from,
        "to": row.to,
        "key": args.key,
        "parameters": parameters,
    })
    .to_string()
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let data = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let rows = read_rows(&data).with_context(|| format!("in {}", args.file.display()))?;
    let endpoint = format!("{}/poll", args.url.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (ok, duplicates, rejected) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let bar = ProgressBar::new(rows.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let args = Arc::new(args);
        let mut tasks = JoinSet::new();
        let mut results: Vec<(Row, String, String)> = Vec::with_capacity(rows.len());
        for row in rows {
            while tasks.len() >= args.concurrency.max(1) {
                if let Some(Ok(r)) = tasks.join_next().await {
                    results.push(r);
                    bar.inc(1);
                }
            }
            let (client, endpoint, args) = (client.clone(), endpoint.clone(), args.clone());
            tasks.spawn(async move {
                let param = param_of(&row, &args);
                let sent = client
                    .post(&endpoint)
                    .form(&[("schema", "json"), ("param", param.as_str())])
                    .send()
                    .await;
                let (code, message) = match sent {
                    Ok(resp) => match resp.json::<serde_json::Value>().await {
                        Ok(v) => (
                            v["returnCode"].as_str().unwrap_or("?").to_owned(),
                            v["message"].as_str().unwrap_or("").to_owned(),
                        ),
                        Err(e) => ("?".into(), format!("unreadable answer: {e}")),
                    },
                    Err(e) => ("?".into(), format!("request failed: {e}")),
                };
                (row, code, message)
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        results.sort_by_key(|(row, _, _)| row.line);
        let ok = results.iter().filter(|r| r.1 == "200").count();
        let duplicates = results.iter().filter(|r| r.1 == "501").count();
        let rejected: Vec<_> = results
            .into_iter()
            .filter(|r| r.1 != "200" && r.1 != "501")
            .collect();
        anyhow::Ok((ok, duplicates, rejected))
    })?;
    println!(
        "{ok} subscribed, {duplicates} already subscribed (501), {} rejected",
        rejected.len()
    );
    for (row, code, message) in &rejected {
        println!(
            "line {}: {} {} → {code}: {message}",
            row.line,
            if row.company.is_empty() {
                "(auto)"
            } else {
                &row.company
            },
            row.number
        );
    }
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_skip_the_header_and_blank_lines_and_keep_their_line_numbers() {
        let csv =
            "company,number,phone,from,to\nsandbox,SB000001\n\n,SB000002,1234,广东省,北京市\n";
        let rows = read_rows(csv.as_bytes()).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[0].number.as_str()), (2, "SB000001"));
        assert_eq!(rows[1].line, 4);
        assert_eq!(
            (
                rows[1].company.as_str(),
                rows[1].phone.as_str(),
                rows[1].to.as_str()
            ),
            ("", "1234", "北京市")
        );
    }

    #[test]
    fn a_row_without_company_asks_for_detection() {
        let args = ImportArgs {
            file: "x".into(),
            key: "K".into(),
            callback: "http://example.com/cb".into(),
            salt: None,
            resultv2: 4,
            url: String::new(),
            concurrency: 1,
        };
        let row = read_rows(b",SB1").expect("rows").remove(0);
        let v: serde_json::Value = serde_json::from_str(&param_of(&row, &args)).expect("json");
        assert_eq!(v["parameters"]["autoCom"], "1");
        assert_eq!(v["parameters"]["resultv2"], "4");
        assert_eq!(v["key"], "K");
    }
}
