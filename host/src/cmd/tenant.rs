//! `waybill tenant add NAME` / `list` / `disable` / `enable` / `expire`: the accounts that
//! may subscribe, and switching their keys off (kuaidi100 returnCode 601).

use std::process::ExitCode;

use jiff::Timestamp;
use waybill_host::dialect::kdniao;
use waybill_host::store::{NewTenant, StoreError, Tenant};

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
        /// The key stops working at this instant (RFC 3339, e.g. 2025-01-01T00:00:00+08:00).
        #[arg(long)]
        expires: Option<Timestamp>,
        /// Where the tenant's Kdniao-dialect pushes go (Kdniao sets it per account).
        #[arg(long, value_name = "URL")]
        kdniao_push_url: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Switch a tenant's key off: `/poll` answers it with 601 until `enable`.
    Disable {
        /// The tenant's name, key or id.
        tenant: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Switch a disabled tenant's key back on (its expiry, if any, still applies).
    Enable {
        /// The tenant's name, key or id.
        tenant: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set when a tenant's key stops working (`/poll` then answers 601).
    Expire {
        /// The tenant's name, key or id.
        tenant: String,
        /// RFC 3339 instant (e.g. 2025-01-01T00:00:00+08:00), or `never`.
        at: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set where a tenant's Kdniao-dialect pushes go (`none` to clear it). Subscriptions
    /// made before keep the address they were made with.
    KdniaoPushUrl {
        /// The tenant's name, key or id.
        tenant: String,
        /// An http(s) URL, or `none`.
        url: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tenants. Keys are hidden unless `--show-keys` is given.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        /// Print each tenant's key (treat the output as secret).
        #[arg(long)]
        show_keys: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A push URL as given on the command line: http or https with a host.
fn push_url(text: &str) -> anyhow::Result<String> {
    let url =
        url::Url::parse(text.trim()).map_err(|e| anyhow::anyhow!("bad push URL {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        anyhow::bail!("the push URL {text:?} must be http(s)://host/...");
    }
    Ok(url.to_string())
}

/// `n` random bytes as upper-case hex (kuaidi100 keys and customer ids look like this).
fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf)
        .map_err(|e| anyhow::anyhow!("no randomness from the operating system: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02X}")).collect())
}

/// A key as `tenant list` prints it: whole only when asked, else its last four characters,
/// enough to tell keys apart in a list without putting a usable secret on a screen or in a
/// terminal log.
fn shown_key(key: &str, show: bool) -> String {
    if show {
        return key.to_owned();
    }
    let chars: Vec<char> = key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    if chars.len() <= 8 {
        "…".to_owned()
    } else {
        format!("…{tail}")
    }
}

/// The one tenant whose id, key or name is `wanted`.
fn find_tenant(tenants: &[Tenant], wanted: &str) -> anyhow::Result<Tenant> {
    let wanted = wanted.trim();
    if let Some(t) = tenants
        .iter()
        .find(|t| t.key == wanted || t.id.to_string() == wanted)
    {
        return Ok(t.clone());
    }
    let named: Vec<&Tenant> = tenants.iter().filter(|t| t.name == wanted).collect();
    match named.as_slice() {
        [one] => Ok((*one).clone()),
        [] => anyhow::bail!("no tenant has the name, key or id {wanted:?}"),
        many => anyhow::bail!(
            "{} tenants are named {wanted:?} (ids {}); give the id or key instead",
            many.len(),
            many.iter()
                .map(|t| t.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `waybill tenant disable|enable|expire`: reads the tenant, changes its access, says what
/// it did.
async fn set_access(
    store_args: StoreArgs,
    wanted: &str,
    change: impl FnOnce(&Tenant) -> (bool, Option<Timestamp>),
) -> anyhow::Result<ExitCode> {
    let config = store_args.load()?;
    let store = open_store(&config).await?;
    let tenant = find_tenant(&store.list_tenants().await?, wanted)?;
    let (disabled, expires_at) = change(&tenant);
    let found = store
        .set_tenant_access(tenant.id, disabled, expires_at)
        .await?;
    store.close().await;
    if !found {
        anyhow::bail!("tenant {} disappeared while being changed", tenant.id);
    }
    println!(
        "tenant {} ({}): {}{}",
        tenant.id,
        tenant.name,
        if disabled { "disabled" } else { "enabled" },
        expires_at
            .map(|t| format!(", key expires at {t}"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
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
                expires,
                kdniao_push_url,
                format,
                store,
            } => {
                let name = name.trim().to_owned();
                let kdniao_push_url = kdniao_push_url.map(|u| push_url(&u)).transpose()?;
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
                    Err(StoreError::DuplicateCustomer) => {
                        anyhow::bail!(
                            "another tenant already has the customer id {:?}; choose another \
                             (or leave --customer out for a random one)",
                            new.customer.as_deref().unwrap_or_default()
                        )
                    }
                    Err(e) => return Err(e.into()),
                };
                if expires.is_some() {
                    store.set_tenant_access(tenant.id, false, expires).await?;
                }
                if let Some(url) = &kdniao_push_url {
                    store.set_kdniao_push_url(tenant.id, Some(url)).await?;
                }
                store.close().await;
                let customer = tenant.customer.unwrap_or_default();
                let ebusiness = kdniao::ebusiness_id(tenant.id);
                if format == OutputFormat::Json {
                    println!(
                        "{}",
                        serde_json::json!({"name": tenant.name, "key": tenant.key,
                            "customer": customer,
                            "kdniao": {"EBusinessID": ebusiness, "AppKey": tenant.key,
                                "push_url": kdniao_push_url},
                            "native": {"authorization": format!("Bearer {}", tenant.key),
                                "base_path": "/v1"}})
                    );
                } else {
                    println!("name:     {}", tenant.name);
                    println!("key:      {}", tenant.key);
                    println!("customer: {customer}");
                    println!("kdniao:   EBusinessID {ebusiness}, AppKey = key");
                    println!(
                        "          push URL {}",
                        kdniao_push_url
                            .as_deref()
                            .unwrap_or("(none: set it with `waybill tenant kdniao-push-url`)")
                    );
                    println!("native:   /v1 with `Authorization: Bearer <key>`; webhook secret from GET /v1/webhook-secret");
                }
                Ok(ExitCode::SUCCESS)
            }
            TenantCommand::Disable { tenant, store } => {
                set_access(store, &tenant, |t| (true, t.expires_at)).await
            }
            TenantCommand::Enable { tenant, store } => {
                set_access(store, &tenant, |t| (false, t.expires_at)).await
            }
            TenantCommand::Expire { tenant, at, store } => {
                let at = match at.trim() {
                    "never" => None,
                    text => Some(text.parse::<Timestamp>().map_err(|e| {
                        anyhow::anyhow!(
                            "bad time {text:?}: {e} (give RFC 3339 with an offset, or `never`)"
                        )
                    })?),
                };
                set_access(store, &tenant, |t| (t.disabled, at)).await
            }
            TenantCommand::KdniaoPushUrl { tenant, url, store } => {
                let url = match url.trim() {
                    "none" => None,
                    text => Some(push_url(text)?),
                };
                let config = store.load()?;
                let store = open_store(&config).await?;
                let t = find_tenant(&store.list_tenants().await?, &tenant)?;
                store.set_kdniao_push_url(t.id, url.as_deref()).await?;
                store.close().await;
                println!(
                    "{}: Kdniao pushes go to {}",
                    t.name,
                    url.as_deref().unwrap_or("nowhere (cleared)")
                );
                Ok(ExitCode::SUCCESS)
            }
            TenantCommand::List {
                format,
                show_keys,
                store,
            } => {
                let config = store.load()?;
                let store = open_store(&config).await?;
                let tenants = store.list_tenants().await?;
                store.close().await;
                for t in &tenants {
                    let key = shown_key(&t.key, show_keys);
                    if format == OutputFormat::Json {
                        println!(
                            "{}",
                            serde_json::json!({"id": t.id, "name": t.name, "key": key,
                                "customer": t.customer, "created_at": t.created_at.to_string(),
                                "disabled": t.disabled,
                                "expires_at": t.expires_at.map(|e| e.to_string()),
                                "kdniao": {"EBusinessID": kdniao::ebusiness_id(t.id),
                                    "push_url": t.kdniao_push_url}})
                        );
                    } else {
                        println!(
                            "{:>4}  {:<20} {}  {}",
                            t.id,
                            t.name,
                            key,
                            t.customer.as_deref().unwrap_or("-")
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::shown_key;

    #[test]
    fn list_hides_keys_unless_asked() {
        let key = "9F2C6B1E0A7D4C3B";
        assert_eq!(shown_key(key, true), key);
        let hidden = shown_key(key, false);
        assert_eq!(hidden, "…4C3B");
        assert!(!hidden.contains("9F2C6B1E"));
        // A short key would be mostly revealed by its tail: show nothing of it.
        assert_eq!(shown_key("K1", false), "…");
        assert_eq!(shown_key("", false), "…");
    }
}
