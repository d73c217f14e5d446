//! `waybill migrate`: copies a whole SQLite store into an empty PostgreSQL database, with
//! the SQLite store's secret key, and checks the copy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use waybill_host::store::copy::{self, CopyError};
use waybill_host::store::secrets::{self, SecretKey, SECRET_KEY_ENV};
use waybill_host::store::sqlite::DB_FILE;
use waybill_host::store::{
    location, PgStore, SqliteStore, Store, StoreLocation, POSTGRES_KEY_FILE,
};

#[derive(Args)]
pub struct MigrateArgs {
    /// The SQLite store to copy: `sqlite:PATH`, a database file, or a data directory (its
    /// `waybill.db`). Stop the daemons using it first: what they write during the copy is
    /// not copied.
    #[arg(long)]
    pub from: String,
    /// The empty PostgreSQL database to copy into (`postgres://…`).
    #[arg(long)]
    pub to: String,
    /// Data directory of the daemons that will use PostgreSQL: the secret key is written
    /// to `<dir>/postgres.key` unless WAYBILL_SECRET_KEY is set. Default: the directory
    /// of the SQLite database.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Connections to PostgreSQL (the copy itself uses one).
    #[arg(long, default_value_t = 2)]
    pub pool_size: u32,
}

/// Rows between two progress lines when stderr is not a terminal (a multiple of the
/// batch size, so the lines come).
const LINE_EVERY: u64 = 20 * copy::ROWS_PER_BATCH as u64;

/// The text whose lookup hash tells whether two keys are the same key.
const SAME_KEY_PROBE: &str = "waybill migrate: same key?";

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let db = sqlite_path(&args.from)?;
    let url = match StoreLocation::parse(&args.to)? {
        StoreLocation::Postgres(url) => url,
        other => bail!("--to must be a postgres:// URL, not {other}"),
    };
    let shown_url = location::redact(&url);
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let source = SqliteStore::open_file(&db)
            .await
            .with_context(|| format!("cannot open the SQLite store {}", db.display()))?;
        let key_in_env = std::env::var_os(SECRET_KEY_ENV).is_some();
        let key_origin = if key_in_env {
            SECRET_KEY_ENV.to_owned()
        } else {
            secrets::key_file(&db).display().to_string()
        };
        let key = SecretKey::for_database(&db)
            .with_context(|| format!("cannot read the secret key ({key_origin})"))?;

        // Decided before anything is written: a key file that holds another key would
        // leave the daemons unable to read the copy.
        let key_file = data_dir.join(POSTGRES_KEY_FILE);
        let write_key_file = if key_in_env {
            false
        } else {
            match std::fs::read_to_string(&key_file) {
                Ok(text) => {
                    let existing = SecretKey::from_hex(&text, &key_file.display().to_string())?;
                    if existing.lookup(SAME_KEY_PROBE) != key.lookup(SAME_KEY_PROBE) {
                        bail!(
                            "{} holds another secret key than the SQLite store's ({key_origin}); \
                             daemons would not read the copy. Move it away or pass another \
                             --data-dir; nothing was copied",
                            key_file.display()
                        );
                    }
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", key_file.display()))
                }
            }
        };

        let target = PgStore::open(&url, key, args.pool_size)
            .await
            .with_context(|| {
                format!(
                    "cannot open {shown_url} with the SQLite store's secret key ({key_origin}); \
                     nothing was copied"
                )
            })?;

        let started = Instant::now();
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} rows {per_sec}")
                .context("progress bar template")?
                .progress_chars("=> "),
        );
        let mut current = "";
        let counts = copy::copy_store(&source, &target, |table, done, total| {
            if table != current {
                current = table;
                bar.set_prefix(table);
                bar.set_length(total);
                bar.reset();
            }
            bar.set_position(done);
            // Without a terminal (a log, a CI job) the bar is hidden: a line per table and
            // one per LINE_EVERY rows instead.
            if bar.is_hidden() && (done == 0 || done % LINE_EVERY == 0) {
                eprintln!("copying {table}: {done}/{total} rows");
            }
        })
        .await;
        bar.finish_and_clear();
        let counts = match counts {
            Ok(counts) => counts,
            Err(e @ CopyError::TargetNotEmpty { .. }) => {
                return Err(e).context(format!("nothing was copied into {shown_url}"))
            }
            Err(e) => {
                return Err(e).context(format!(
                    "the copy into {shown_url} failed and was rolled back"
                ))
            }
        };
        let copied_in = started.elapsed();
        let copied: u64 = counts.iter().map(|c| c.rows).sum();

        let checked = copy::verify(&source, &target)
            .await
            .context("verifying the copy")?;
        let verified_in = started.elapsed() - copied_in;
        println!("{:<20} {:>12} {:>12}", "TABLE", "SQLITE", "POSTGRESQL");
        for t in &checked.tables {
            let flag = if t.sqlite == t.postgres {
                ""
            } else {
                "  MISMATCH"
            };
            println!("{:<20} {:>12} {:>12}{flag}", t.table, t.sqlite, t.postgres);
        }
        println!(
            "copied {copied} rows in {:.1} s; compared {} subscriptions (every {}th, with \
             traces, pushes and push ids) and {} tenants' keys in {:.1} s",
            copied_in.as_secs_f64(),
            checked.subscriptions_sampled,
            copy::SAMPLE_EVERY,
            checked.tenants_checked,
            verified_in.as_secs_f64()
        );
        source.close().await;
        target.close().await;
        if !checked.mismatches.is_empty() {
            for m in &checked.mismatches {
                eprintln!("waybill: mismatch: {m}");
            }
            bail!(
                "the copy in {shown_url} differs from the SQLite store in {} places (did a \
                 daemon write to either during the copy?); do not start daemons on it",
                checked.mismatches.len()
            );
        }

        if write_key_file {
            let key_text = std::fs::read_to_string(secrets::key_file(&db))
                .with_context(|| format!("cannot read the secret key file {key_origin}"))?;
            location::create_private_dir(&data_dir)
                .and_then(|()| location::create_private_file(&key_file))
                .and_then(|()| std::fs::write(&key_file, key_text))
                .with_context(|| {
                    format!(
                        "the copy is complete, but the secret key could not be written to {}; \
                         copy {key_origin} there yourself",
                        key_file.display()
                    )
                })?;
            println!(
                "secret key written to {} (a copy of {key_origin}): every daemon using \
                 {shown_url} needs this key, in its data directory's {POSTGRES_KEY_FILE} or \
                 in {SECRET_KEY_ENV}",
                key_file.display()
            );
        } else if key_in_env {
            println!(
                "secret key: {SECRET_KEY_ENV} (the SQLite store's): every daemon using \
                 {shown_url} needs it set to the same value"
            );
        } else {
            println!(
                "secret key: {} (already there, the same key): every daemon using {shown_url} \
                 needs this key, in its data directory's {POSTGRES_KEY_FILE} or in \
                 {SECRET_KEY_ENV}",
                key_file.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The SQLite file `--from` names: `sqlite:PATH`, a file, or a data directory. It must
/// exist: opening a missing one would create an empty store and "copy" nothing.
fn sqlite_path(from: &str) -> anyhow::Result<PathBuf> {
    let path = if Path::new(from).is_dir() {
        Path::new(from).join(DB_FILE)
    } else {
        match StoreLocation::parse(from)? {
            StoreLocation::Sqlite(path) => path,
            other => bail!("--from must be an SQLite store (sqlite:PATH or a path), not {other}"),
        }
    };
    if !path.is_file() {
        bail!("there is no SQLite database at {}", path.display());
    }
    Ok(path)
}
