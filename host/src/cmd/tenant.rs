//! `waybill tenant add NAME` / `waybill tenant list`: the accounts that may subscribe.

use std::process::ExitCode;

use waybill_host::store::{NewTenant, Store, StoreError};

use super::serve::{open_store, StoreArgs};
use super::OutputFormat;

/// `waybill tenant …`.
#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with a fresh random key and customer id and print them.
    Add {
        /// Display name.
        name: String,
        /// Use this key instead of a random one.
        #[arg(long)]
        key: Option<String>,
        /// Use this customer id instead of a random one.
        #[arg(long)]
        customer: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tenants (keys are shown; treat the output as secret).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `n` random bytes as upper-case hex (kuaidi100 keys and customer ids look like this).
fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf)
        .map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02X}")).collect())
}

pub fn run(cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd {
            TenantCommand::Add {
                name,
                key,
                customer,
                format,
                store,
            } => {
                let name = name.trim().to_owned();
                if name.is_empty() {
                    anyhow::bail!("the tenant name is empty");
                }
                let config = store.load()?;
                let store = open_store(&config).await?;
                let new = NewTenant {
                    name,
                    key: match key {
                        Some(k) if !k.trim().is_empty() => k.trim().to_owned(),
                        _ => random_hex(16)?,
                    },
                    customer: Some(match customer {
                        Some(c) if !c.trim().is_empty() => c.trim().to_owned(),
                        _ => random_hex(16)?,
                    }),
                };
                let tenant = match store.create_tenant(&new, jiff::Timestamp::now()).await {
                    Ok(t) => t,
                    Err(StoreError::DuplicateTenantKey) => {
                        anyhow::bail!("another tenant already has this key")
                    }
                    Err(e) => return Err(e.into()),
                };
                store.close().await;
                let customer = tenant.customer.unwrap_or_default();
                if format == OutputFormat::Json {
                    println!(
                        "{}",
                        serde_json::json!({"name": tenant.name, "key": tenant.key, "customer": customer})
                    );
                } else {
                    println!("name:     {}", tenant.name);
                    println!("key:      {}", tenant.key);
                    println!("customer: {customer}");
                }
                Ok(ExitCode::SUCCESS)
            }
            TenantCommand::List { format, store } => {
                let config = store.load()?;
                let store = open_store(&config).await?;
                let tenants = store.list_tenants().await?;
                store.close().await;
                for t in &tenants {
                    if format == OutputFormat::Json {
                        println!(
                            "{}",
                            serde_json::json!({"id": t.id, "name": t.name, "key": t.key,
                                "customer": t.customer, "created_at": t.created_at.to_string()})
                        );
                    } else {
                        println!(
                            "{:>4}  {:<20} {}  {}",
                            t.id,
                            t.name,
                            t.key,
                            t.customer.as_deref().unwrap_or("-")
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
