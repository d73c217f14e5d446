//! `waybill import FILE.csv`: subscribes every row (company,number,phone,from,to) through
//! a running daemon's `POST /poll`.
//!
//! The file is streamed: rows are read as slots free, so memory stays flat and the first
//! request leaves at once whatever the file's size. Before reading anything the daemon is
//! asked `/healthz`; a daemon that stops answering part way ends the run with the line from
//! which rows were not sent, instead of one "rejected" line per remaining row.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Requests in flight at once (the daemon commits concurrent subscriptions together, so
    /// more in flight means fewer, larger commits).
    #[arg(long, default_value_t = 64)]
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

/// A reader that remembers where the line breaks it passed on are, so a record's line is
/// known without rescanning the file: csv counts records, not physical lines. Only the
/// breaks csv has buffered ahead of the current record are kept.
struct LineBreaks<R> {
    inner: R,
    offset: u64,
    /// Offsets of `\r` (false) and `\n` (true) bytes not yet behind the current record.
    breaks: VecDeque<(u64, bool)>,
    /// Newlines before the first kept break.
    newlines_before: u64,
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                self.breaks.push_back((self.offset + i as u64, b == b'\n'));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineBreaks<R> {
    /// The 1-based line of the first byte at or after `start` that is not a line break.
    fn line_at(&mut self, mut start: u64) -> u64 {
        while let Some(&(at, newline)) = self.breaks.front() {
            if at > start {
                break;
            }
            // A break at the start itself is a blank line before the record.
            if at == start {
                start += 1;
            }
            self.newlines_before += u64::from(newline);
            self.breaks.pop_front();
        }
        self.newlines_before + 1
    }
}

/// The rows of a CSV source, read one at a time.
pub struct Rows<R: Read> {
    reader: csv::Reader<LineBreaks<R>>,
    record: csv::StringRecord,
    index: u64,
}

impl<R: Read> Rows<R> {
    /// Rows of `source`.
    pub fn new(source: R) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(LineBreaks {
                inner: source,
                offset: 0,
                breaks: VecDeque::new(),
                newlines_before: 0,
            });
        Rows {
            reader,
            record: csv::StringRecord::new(),
            index: 0,
        }
    }

    /// Bytes read so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = anyhow::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.index += 1;
            match self.reader.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => {
                    return Some(
                        Err(e).with_context(|| format!("CSV error near record {}", self.index)),
                    )
                }
            }
            let start = self.record.position().map_or(0, |p| p.byte());
            let line = self.reader.get_mut().line_at(start);
            let record = &self.record;
            let field = |n: usize| record.get(n).unwrap_or("").to_owned();
            if self.index == 1 && field(0).eq_ignore_ascii_case("company") {
                continue;
            }
            if record.iter().all(str::is_empty) {
                continue;
            }
            return Some(Ok(Row {
                line,
                company: field(0),
                number: field(1),
                phone: field(2),
                from: field(3),
                to: field(4),
            }));
        }
    }
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

/// What the daemon said about one row.
enum Outcome {
    /// The daemon answered with this `returnCode` and message.
    Answered(String, String),
    /// No answer: the request or the connection failed.
    Unreachable(String),
}

async fn subscribe(client: &reqwest::Client, endpoint: &str, param: &str) -> Outcome {
    // 502 is kuaidi100's "server busy": the row was not taken (the daemon's per-key rate
    // limit, or a busy server), so it is sent again after a pause instead of being reported
    // as rejected. The pause grows so a throttled import settles at the allowed rate.
    let mut pause = std::time::Duration::from_millis(20);
    for _ in 0..BUSY_RETRIES {
        match subscribe_once(client, endpoint, param).await {
            Outcome::Answered(code, _) if code == "502" => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            outcome => return outcome,
        }
    }
    subscribe_once(client, endpoint, param).await
}

/// How often a row answered "server busy" is sent again before it counts as rejected.
const BUSY_RETRIES: usize = 12;

async fn subscribe_once(client: &reqwest::Client, endpoint: &str, param: &str) -> Outcome {
    let sent = client
        .post(endpoint)
        .form(&[("schema", "json"), ("param", param)])
        .send()
        .await;
    match sent {
        Ok(resp) => match resp.json::<serde_json::Value>().await {
            Ok(v) => Outcome::Answered(
                v["returnCode"].as_str().unwrap_or("?").to_owned(),
                v["message"].as_str().unwrap_or("").to_owned(),
            ),
            Err(e) => Outcome::Answered("?".into(), format!("unreadable answer: {e}")),
        },
        Err(e) => Outcome::Unreachable(e.to_string()),
    }
}

/// Counters shared with the progress reporter.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    ok: AtomicU64,
    duplicates: AtomicU64,
}

/// Consecutive unanswered requests after which the daemon counts as gone: more than a full
/// window of in-flight requests, so one dropped connection does not end an import.
fn give_up_after(concurrency: usize) -> u64 {
    (concurrency as u64 * 2).max(8)
}

/// Reports progress: a bar on a terminal, otherwise a line every few seconds (logs and CI
/// capture stay readable).
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    total_bytes: u64,
}

impl Progress {
    fn new(total_bytes: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total_bytes);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}%  eta {eta}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last_line: now,
            total_bytes,
        }
    }

    fn update(&mut self, bytes: u64, done: u64) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / elapsed;
        match &self.bar {
            Some(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!("{done} rows  {rate:.0} rows/s"));
            }
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                let share = bytes as f64 / self.total_bytes.max(1) as f64;
                let eta = if share > 0.0 {
                    elapsed * (1.0 - share) / share
                } else {
                    0.0
                };
                eprintln!(
                    "import: {done} rows, {rate:.0} rows/s, {:.0} % of the file, eta {eta:.0} s",
                    share * 100.0
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let file =
        File::open(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut rows = Rows::new(BufReader::with_capacity(1 << 16, file));
    let base = args.url.trim_end_matches('/').to_owned();
    let endpoint = format!("{base}/poll");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let args = Arc::new(args);
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let health = format!("{base}/healthz");
        match client.get(&health).send().await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => anyhow::bail!("the daemon at {base} is not healthy: {health} answered {}", resp.status()),
            Err(e) => anyhow::bail!("no daemon answers at {base} ({e}); start it with `waybill serve` or pass --url"),
        }

        let tally = Arc::new(Tally::default());
        let unanswered_in_a_row = Arc::new(AtomicU64::new(0));
        let limit = give_up_after(args.concurrency);
        let mut progress = Progress::new(total_bytes);
        let mut rejected: Vec<(Row, String, String)> = Vec::new();
        let mut unsent_from: Option<(u64, String)> = None;
        let mut tasks = JoinSet::new();
        let collect = |joined: Option<Result<(Row, Outcome), tokio::task::JoinError>>,
                           rejected: &mut Vec<(Row, String, String)>,
                           unsent_from: &mut Option<(u64, String)>| {
            let Some(Ok((row, outcome))) = joined else {
                return;
            };
            match outcome {
                Outcome::Answered(code, message) => match code.as_str() {
                    "200" => drop(tally.ok.fetch_add(1, Ordering::Relaxed)),
                    "501" => drop(tally.duplicates.fetch_add(1, Ordering::Relaxed)),
                    _ => rejected.push((row, code, message)),
                },
                Outcome::Unreachable(e) => {
                    let first = unsent_from.get_or_insert((row.line, e.clone()));
                    first.0 = first.0.min(row.line);
                    rejected.push((row, "unsent".into(), e));
                }
            }
            tally.done.fetch_add(1, Ordering::Relaxed);
        };
        while let Some(row) = rows.next() {
            let row = row.with_context(|| format!("in {}", args.file.display()))?;
            while tasks.len() >= args.concurrency.max(1) {
                let joined = tasks.join_next().await;
                collect(joined, &mut rejected, &mut unsent_from);
            }
            if unanswered_in_a_row.load(Ordering::Relaxed) >= limit {
                unsent_from.get_or_insert((row.line, "the daemon stopped answering".into()));
                break;
            }
            progress.update(rows.bytes_read(), tally.done.load(Ordering::Relaxed));
            let (client, endpoint, args) = (client.clone(), endpoint.clone(), args.clone());
            let streak = unanswered_in_a_row.clone();
            tasks.spawn(async move {
                let outcome = subscribe(&client, &endpoint, &param_of(&row, &args)).await;
                match outcome {
                    Outcome::Unreachable(_) => streak.fetch_add(1, Ordering::Relaxed),
                    Outcome::Answered(..) => streak.swap(0, Ordering::Relaxed),
                };
                (row, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            collect(Some(joined), &mut rejected, &mut unsent_from);
        }
        progress.update(rows.bytes_read(), tally.done.load(Ordering::Relaxed));
        progress.finish();
        rejected.sort_by_key(|(row, _, _)| row.line);
        let (ok, duplicates) = (
            tally.ok.load(Ordering::Relaxed),
            tally.duplicates.load(Ordering::Relaxed),
        );
        let answered_rejects = rejected.iter().filter(|r| r.1 != "unsent").count();
        println!(
            "{ok} subscribed, {duplicates} already subscribed (501), {answered_rejects} rejected ({:.1} s)",
            progress.started.elapsed().as_secs_f64()
        );
        for (row, code, message) in rejected.iter().filter(|r| r.1 != "unsent") {
            let company = if row.company.is_empty() { "(auto)" } else { &row.company };
            println!("line {}: {company} {} → {code}: {message}", row.line, row.number);
        }
        if let Some((line, why)) = unsent_from {
            let unsent = rejected.len() - answered_rejects;
            println!(
                "the daemon at {base} stopped answering ({why}): {unsent} rows in flight were not \
                 acknowledged and rows from line {line} on were not sent; rerun the import \
                 (subscribed rows answer 501)"
            );
            return anyhow::Ok(ExitCode::from(2));
        }
        anyhow::Ok(if rejected.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_rows(data: &[u8]) -> Vec<Row> {
        Rows::new(data)
            .collect::<anyhow::Result<_>>()
            .expect("rows")
    }

    #[test]
    fn rows_skip_the_header_and_blank_lines_and_keep_their_line_numbers() {
        let csv =
            "company,number,phone,from,to\nsandbox,SB000001\n\n,SB000002,1234,广东省,北京市\n";
        let rows = read_rows(csv.as_bytes());
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
    fn a_quoted_newline_does_not_shift_the_next_rows_line() {
        let rows = read_rows(b"sandbox,\"SB\n1\"\r\n\r\n\r\nsandbox,SB2\n");
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 5]);
    }

    #[test]
    fn invalid_utf8_names_its_record() {
        let bad = b"sandbox,SB1\nsandbox,SB\xff2\n".as_slice();
        let err = Rows::new(bad)
            .collect::<anyhow::Result<Vec<_>>>()
            .expect_err("invalid UTF-8");
        assert!(format!("{err:#}").contains("record 2"), "{err:#}");
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
        let row = read_rows(b",SB1").remove(0);
        let v: serde_json::Value = serde_json::from_str(&param_of(&row, &args)).expect("json");
        assert_eq!(v["parameters"]["autoCom"], "1");
        assert_eq!(v["parameters"]["resultv2"], "4");
        assert_eq!(v["key"], "K");
    }
}
