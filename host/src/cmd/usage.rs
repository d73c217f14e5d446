//! `waybill usage`: waybills counted per tenant in a billing month — one per (tenant,
//! company, number) and month, however many subscriptions or queries it took.

use std::process::ExitCode;

use waybill_host::store::billing_month;

use super::serve::{open_store, StoreArgs};
use super::OutputFormat;

/// Options of `waybill usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Billing month `YYYY-MM` (China time); default the current one.
    #[arg(long)]
    pub month: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn valid_month(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(m[5..].parse::<u8>(), Ok(1..=12))
}

pub fn run(args: UsageArgs) -> anyhow::Result<ExitCode> {
    let month = args
        .month
        .clone()
        .unwrap_or_else(|| billing_month(jiff::Timestamp::now()));
    if !valid_month(&month) {
        anyhow::bail!("--month must look like 2024-05, got {month:?}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = args.store.load()?;
        let store = open_store(&config).await?;
        let tenants = store.list_tenants().await?;
        let mut total = 0;
        if args.format == OutputFormat::Text {
            println!("{:<20} {:<8} {:>10}", "TENANT", "MONTH", "WAYBILLS");
        }
        for t in &tenants {
            let n = store.usage(t.id, &month).await?;
            total += n;
            if args.format == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::json!({"tenant": t.name, "month": month, "waybills": n})
                );
            } else {
                println!("{:<20} {:<8} {:>10}", t.name, month, n);
            }
        }
        if args.format == OutputFormat::Text {
            println!("{:<20} {:<8} {:>10}", "total", month, total);
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::valid_month;

    #[test]
    fn months_are_year_dash_month() {
        assert!(valid_month("2024-05"));
        assert!(!valid_month("2024-13"));
        assert!(!valid_month("2024-5"));
        assert!(!valid_month("24-05-01"));
    }
}
