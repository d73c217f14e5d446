//! `waybill config`: print the documented default configuration, or check a file.

use std::path::PathBuf;
use std::process::ExitCode;

use waybill_host::config::{Config, DEFAULT_TOML};

/// Options of `waybill config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print the default configuration file, every key documented.
    #[arg(long, conflicts_with = "check")]
    pub default: bool,
    /// Check a configuration file and print the effective settings (file, then
    /// WAYBILL_* environment), with secrets shown as `<redacted>`.
    #[arg(long)]
    pub check: Option<PathBuf>,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = args.check {
        let mut config = Config::from_file(&path)?;
        config.apply_env(|k| std::env::var(k).ok())?;
        let mut effective = toml::Value::try_from(&config)?;
        redact_secrets(&mut effective);
        print!("{}", toml::to_string(&effective)?);
        return Ok(ExitCode::SUCCESS);
    }
    // With no option the default is printed too: it is the only other thing to show.
    let _ = args.default;
    print!("{DEFAULT_TOML}");
    Ok(ExitCode::SUCCESS)
}

/// What `config --check` prints in place of a secret.
const REDACTED: &str = "<redacted>";

/// Replaces every secret in the effective configuration: carrier credentials (any key
/// whose name says key, secret, password, token or check word) and the password of a
/// database URL. The output of `--check` lands in terminals, tickets and CI logs; it must
/// show that a secret is set, never what it is.
fn redact_secrets(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (name, v) in table.iter_mut() {
                match v {
                    toml::Value::String(text) if names_a_secret(name) && !text.is_empty() => {
                        *text = REDACTED.to_owned();
                    }
                    toml::Value::String(text) if text.contains("://") => {
                        *text = waybill_host::store::location::redact(text);
                    }
                    _ => redact_secrets(v),
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "secret",
        "password",
        "passwd",
        "token",
        "checkword",
        "check_word",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_output_shows_that_secrets_are_set_but_not_what_they_are() {
        let mut config: toml::Value = toml::from_str(
            r#"
            [server]
            database = "postgres://waybill:hunter2@db.internal/waybill"
            bind = "127.0.0.1:8080"
            [carriers.fedex]
            client_id = "public-id"
            client_secret = "s3cr3t"
            api_key = "AK-123"
            base_url = "https://apis.fedex.com"
            [carriers.shunfeng]
            checkword = "cw-9"
            empty_key = ""
            "#,
        )
        .unwrap();
        redact_secrets(&mut config);
        let printed = toml::to_string(&config).unwrap();
        for secret in ["hunter2", "s3cr3t", "AK-123", "cw-9"] {
            assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        }
        assert!(printed.contains("postgres://waybill:***@db.internal/waybill"));
        assert!(printed.contains("public-id") && printed.contains("https://apis.fedex.com"));
        // An unset secret stays visibly unset: that is what `--check` is for.
        assert!(printed.contains("empty_key = \"\""));
    }
}
