//! The daemon's configuration: a TOML file (every key optional; `waybill config --default`
//! prints [`DEFAULT_TOML`], which documents each one), then `WAYBILL_*` environment
//! variables, then command-line flags, each overriding the one before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::ApiConfig;
use crate::engine::EngineConfig;

/// The commented default configuration: every key with its default value.
pub const DEFAULT_TOML: &str = include_str!("config.default.toml");

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a bad key or value.
    #[error("bad config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with the line.
        message: String,
    },
    /// An environment variable has a value of the wrong kind.
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// The whole daemon configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening address, data location, plugins.
    pub server: ServerConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// The in-process sandbox simulator.
    pub sandbox: SandboxConfig,
    /// The scheduler and push worker.
    pub engine: EngineConfig,
    /// The carrier guesser's learned prior.
    pub guess: GuessConfig,
    /// Problem-parcel thresholds (Kdniao's 401/402/403/412), overridable per carrier.
    pub problems: waybill_core::problem::Thresholds,
    /// Arrival estimates: samples a lane needs, cold-start defaults.
    pub eta: waybill_core::eta::EtaConfig,
    /// How long ended subscriptions are kept.
    pub retention: crate::retention::RetentionConfig,
    /// Plugin configuration by carrier code: `[carriers.<code>]` with the keys the
    /// plugin's manifest declares (`waybill plugins` lists them).
    pub carriers: BTreeMap<String, BTreeMap<String, String>>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub bind: SocketAddr,
    /// Directory holding the database (and nothing else yet).
    pub data_dir: PathBuf,
    /// The database: an SQLite file (`sqlite:PATH` or a path) or a PostgreSQL URL
    /// (`postgres://…`); empty means `<data_dir>/waybill.db`.
    pub database: PathBuf,
    /// Connections to a PostgreSQL database per daemon (SQLite has its own fixed pools).
    pub pool_size: u32,
    /// Directory of carrier plugins; empty means `$WAYBILL_PLUGIN_DIR` or the binary's
    /// directory.
    pub plugin_dir: PathBuf,
    /// Longest wait for in-flight work at shutdown before giving up.
    #[serde(with = "crate::api::friendly")]
    pub shutdown_grace: jiff::SignedDuration,
    /// A connection whose request headers are not complete within this is closed.
    #[serde(with = "crate::api::friendly")]
    pub header_read_timeout: jiff::SignedDuration,
    /// A keep-alive connection with no request in flight for this long is closed (or
    /// after `header_read_timeout` if shorter: that timer also runs between requests).
    #[serde(with = "crate::api::friendly")]
    pub idle_timeout: jiff::SignedDuration,
    /// Most connections open at once; more are closed on accept (and logged).
    pub max_connections: usize,
}

impl ServerConfig {
    /// The listener's limits; a zero or negative duration is read as one millisecond so
    /// a typo cannot turn a limit off.
    pub fn limits(&self) -> crate::listen::Limits {
        let positive = |d: jiff::SignedDuration| {
            std::time::Duration::try_from(d)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(std::time::Duration::from_millis(1))
        };
        crate::listen::Limits {
            header_read_timeout: positive(self.header_read_timeout),
            idle_timeout: positive(self.idle_timeout),
            max_connections: self.max_connections.max(1),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(crate::store::DEFAULT_DATA_DIR),
            database: PathBuf::new(),
            pool_size: crate::store::postgres::DEFAULT_POOL_SIZE,
            plugin_dir: PathBuf::new(),
            shutdown_grace: jiff::SignedDuration::from_secs(30),
            header_read_timeout: jiff::SignedDuration::from_secs(30),
            idle_timeout: jiff::SignedDuration::from_secs(20),
            max_connections: 1024,
        }
    }
}

/// `[sandbox]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Run the sandbox simulator in-process and point the sandbox carrier at it.
    pub enabled: bool,
    /// How many times faster than real time the engine's and simulator's clock runs.
    pub clock_speed: f64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            clock_speed: 1.0,
        }
    }
}

/// `[guess]`: the prior the guesser learns from confirmed waybills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuessConfig {
    /// How often the daemon rebuilds the prior from the store; zero never learns.
    #[serde(with = "crate::api::friendly")]
    pub prior_refresh: jiff::SignedDuration,
    /// Fewest confirmed numbers of one length and start before they re-rank anything.
    pub prior_min_samples: u64,
}

impl Default for GuessConfig {
    fn default() -> Self {
        Self {
            prior_refresh: jiff::SignedDuration::from_hours(1),
            prior_min_samples: waybill_core::guess::DEFAULT_MIN_SAMPLES,
        }
    }
}

impl Config {
    /// Reads `path` (defaults for every key it leaves out).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `WAYBILL_*` overrides read through `var` (the process environment in the
    /// daemon; a map in tests).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let get = |name: &'static str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("WAYBILL_BIND") {
            self.server.bind = v.trim().parse().map_err(|e| ConfigError::Env {
                name: "WAYBILL_BIND",
                value: v.clone(),
                reason: format!("not an address like 127.0.0.1:8080 ({e})"),
            })?;
        }
        if let Some(v) = get("WAYBILL_DATA_DIR") {
            self.server.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("WAYBILL_DATABASE") {
            self.server.database = PathBuf::from(v);
        }
        if let Some(v) = get("WAYBILL_PLUGIN_DIR") {
            self.server.plugin_dir = PathBuf::from(v);
        }
        if let Some(v) = get("WAYBILL_ALLOW_PRIVATE_CALLBACKS") {
            self.api.allow_private_callbacks = parse_bool(&v).ok_or_else(|| ConfigError::Env {
                name: "WAYBILL_ALLOW_PRIVATE_CALLBACKS",
                value: v.clone(),
                reason: "expected true/false/1/0".into(),
            })?;
        }
        if let Some(v) = get("WAYBILL_CLOCK_SPEED") {
            self.sandbox.clock_speed = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| ConfigError::Env {
                    name: "WAYBILL_CLOCK_SPEED",
                    value: v.clone(),
                    reason: "expected a positive number".into(),
                })?;
        }
        if let Some(v) = get("WAYBILL_OWNER") {
            self.engine.owner = v;
        }
        Ok(())
    }

    /// Whether callbacks may point at private addresses: `[api] allow_private_callbacks`
    /// or `[engine] allow_private_callbacks` (either turns the check off, for subscribing
    /// and delivering alike).
    pub fn allow_private_callbacks(&self) -> bool {
        self.api.allow_private_callbacks || self.engine.allow_private_callbacks
    }

    /// The database to open (a file path or a URL).
    pub fn database_path(&self) -> PathBuf {
        if self.server.database.as_os_str().is_empty() {
            self.server.data_dir.join("waybill.db")
        } else {
            self.server.database.clone()
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    #[test]
    fn connection_limits_are_read_and_a_zero_cannot_turn_one_off() {
        let config = Config::from_toml(
            "[server]\nheader_read_timeout = \"5s\"\nidle_timeout = \"0s\"\nmax_connections = 0\n",
        )
        .unwrap();
        let limits = config.server.limits();
        assert_eq!(
            limits.header_read_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(limits.idle_timeout, std::time::Duration::from_millis(1));
        assert_eq!(limits.max_connections, 1);
    }

    #[test]
    fn the_documented_default_file_parses_to_the_built_in_defaults() {
        let mut parsed = Config::from_toml(DEFAULT_TOML).expect("default toml parses");
        let mut want = Config::default();
        // The owner defaults to host name and pid, which the file cannot know.
        parsed.engine.owner = String::new();
        want.engine.owner = String::new();
        assert_eq!(parsed, want);
    }

    #[test]
    fn every_push_table_may_be_partial_and_the_documented_presets_parse() {
        use crate::push::{PushConfig, RetryPolicy};
        let push = |text: &str| Config::from_toml(text).expect(text).engine.push;
        assert_eq!(
            push("[engine.push]\nconcurrency = 8\n"),
            PushConfig {
                concurrency: 8,
                ..PushConfig::default()
            }
        );
        // The kuaidi100 schedule as the default file's comment gives it.
        assert_eq!(
            push("[engine.push.retry]\nkind = \"fixed\"\ndelay = \"30m\"\nretries = 3\n"),
            PushConfig {
                retry: RetryPolicy::kuaidi100(),
                ..PushConfig::default()
            }
        );
        // A retry table naming only its kind, or one key, takes the other keys' defaults.
        assert_eq!(
            push("[engine.push.retry]\nkind = \"fixed\"\n").retry,
            RetryPolicy::kuaidi100()
        );
        let RetryPolicy::Exponential { first, total, .. } =
            push("[engine.push.retry]\nkind = \"exponential\"\nfirst = \"1m\"\n").retry
        else {
            panic!("not exponential");
        };
        assert_eq!(
            (first, total),
            (SignedDuration::from_mins(1), SignedDuration::from_hours(72))
        );
    }

    #[test]
    fn allow_private_callbacks_in_either_table_turns_the_check_off() {
        let c = Config::from_toml("[engine]\nallow_private_callbacks = true\n").expect("parse");
        assert!(c.allow_private_callbacks());
        let c = Config::from_toml("[api]\nallow_private_callbacks = true\n").expect("parse");
        assert!(c.allow_private_callbacks());
        assert!(!Config::default().allow_private_callbacks());
    }

    #[test]
    fn every_key_of_the_defaults_is_documented_in_the_default_file() {
        let defaults = toml::to_string(&Config::default()).expect("serialise");
        for line in defaults.lines() {
            if let Some((key, _)) = line.split_once(" = ") {
                assert!(
                    DEFAULT_TOML
                        .lines()
                        .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} ="))),
                    "key {key:?} missing from config.default.toml"
                );
            }
        }
    }

    #[test]
    fn the_monthly_subscribe_limit_defaults_to_kuaidi100s_four_and_can_be_lifted() {
        assert_eq!(Config::default().api.monthly_subscribe_limit, 4);
        let c = Config::from_toml("[api]\nmonthly_subscribe_limit = 0\n").expect("parse");
        assert_eq!(c.api.monthly_subscribe_limit, 0);
        let err = Config::from_toml("[api]\nmonthly_subscribe_limit = -1\n").expect_err("neg");
        assert!(err.contains("monthly_subscribe_limit"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported_with_their_line() {
        let err = Config::from_toml("[server]\nbnd = \"x\"\n").expect_err("unknown key");
        assert!(err.contains("bnd"), "{err}");
        let err = Config::from_toml("[api]\nquery_timeout = \"soon\"\n").expect_err("bad");
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_and_bad_values_are_refused() {
        let mut c = Config::from_toml("[server]\nbind = \"127.0.0.1:1\"\n").expect("parse");
        let env: BTreeMap<&str, &str> = [
            ("WAYBILL_BIND", "0.0.0.0:9000"),
            ("WAYBILL_ALLOW_PRIVATE_CALLBACKS", "true"),
            ("WAYBILL_DATA_DIR", "/tmp/w"),
        ]
        .into();
        c.apply_env(|k| env.get(k).map(|v| v.to_string()))
            .expect("apply");
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:9000");
        assert!(c.api.allow_private_callbacks);
        assert_eq!(c.database_path(), PathBuf::from("/tmp/w/waybill.db"));
        let err = c
            .apply_env(|k| (k == "WAYBILL_BIND").then(|| "nowhere".to_string()))
            .expect_err("bad bind");
        assert!(err.to_string().contains("WAYBILL_BIND"));
    }
}
