//! Finding and loading plugin libraries, and instantiating them with configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use waybill_core::carrier::Normalizer;
use waybill_sdk::loader::{self, LoadError, LoadedPlugin};
use waybill_sdk::{Config, Manifest};

use super::adapter::{AdapterSettings, PluginCarrier};

/// The environment variable that overrides the plugin directory.
pub const PLUGIN_DIR_ENV: &str = "WAYBILL_PLUGIN_DIR";

/// The plugin directory: `configured` (from the configuration file) if given, else
/// `$WAYBILL_PLUGIN_DIR`, else the directory of the running binary.
pub fn plugin_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os(PLUGIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every plugin found in one directory.
pub struct Registry {
    /// The directory searched.
    pub dir: PathBuf,
    /// Plugins that loaded.
    pub loaded: Vec<LoadedPlugin>,
    /// Files refused, with reasons (one line each).
    pub refused: Vec<LoadError>,
}

impl Registry {
    /// Loads every `libwaybill_carrier_*.so` in `dir`. A missing directory yields an
    /// empty registry; an unreadable one is an error.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let found = if dir.is_dir() {
            loader::load_dir(dir)
                .with_context(|| format!("cannot read plugin directory {}", dir.display()))?
        } else {
            loader::DirLoad::default()
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            loaded: found.loaded,
            refused: found.refused,
        })
    }

    /// The plugin answering for a carrier code.
    pub fn find(&self, code: &str) -> Option<&LoadedPlugin> {
        let code = code.to_ascii_lowercase();
        self.loaded
            .iter()
            .find(|p| p.manifest().codes.contains(&code))
    }

    /// Every code of every loaded plugin, sorted.
    pub fn codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> = self
            .loaded
            .iter()
            .flat_map(|p| p.manifest().codes.iter().map(String::as_str))
            .collect();
        codes.sort_unstable();
        codes
    }

    /// Instantiates the plugin for `code` with `config` and wraps it as a core carrier.
    pub fn carrier(
        &self,
        code: &str,
        config: &Config,
        normalizer: Arc<dyn Normalizer>,
        settings: AdapterSettings,
    ) -> anyhow::Result<PluginCarrier> {
        let plugin = self.find(code).with_context(|| {
            format!(
                "no plugin for carrier `{code}` in {} (loaded: {})",
                self.dir.display(),
                self.codes().join(", ")
            )
        })?;
        let instance = plugin.instantiate(config).with_context(|| {
            format!(
                "plugin {} refused its configuration",
                plugin.file().display()
            )
        })?;
        PluginCarrier::new(
            plugin.manifest().clone(),
            Arc::new(instance),
            normalizer,
            settings,
        )
    }
}

/// A plugin's configuration from the environment: for each key the manifest declares,
/// `WAYBILL_<CODE>_<KEY>` (upper case, `-` as `_`), e.g. `WAYBILL_HEXI_CLIENT_SECRET`.
pub fn config_from_env(manifest: &Manifest) -> Config {
    let mut config = Config::new();
    let Some(code) = manifest.canonical_code() else {
        return config;
    };
    for key in &manifest.config_keys {
        let var = env_var_name(code, &key.name);
        if let Ok(value) = std::env::var(&var) {
            config.set(&key.name, value);
        }
    }
    config
}

/// A plugin's configuration from a table (the daemon's `[carriers.<code>]`), with
/// `WAYBILL_<CODE>_<KEY>` environment variables overriding it. Keys the manifest does not
/// declare are passed through too, so the plugin can refuse them by name.
pub fn config_from_table(
    manifest: &Manifest,
    table: &std::collections::BTreeMap<String, String>,
) -> Config {
    let mut config = Config::new();
    for (key, value) in table {
        config.set(key, value.clone());
    }
    let from_env = config_from_env(manifest);
    for key in &manifest.config_keys {
        if let Some(value) = from_env.get(&key.name) {
            config.set(&key.name, value.to_owned());
        }
    }
    config
}

/// `WAYBILL_<CODE>_<KEY>`.
pub fn env_var_name(code: &str, key: &str) -> String {
    format!("WAYBILL_{code}_{key}")
        .to_ascii_uppercase()
        .replace('-', "_")
}

/// The adapter settings for a carrier, with `WAYBILL_<CODE>_RATE_LIMIT` (requests per
/// second) overriding the manifest's hint.
pub fn settings_from_env(manifest: &Manifest) -> AdapterSettings {
    let mut settings = AdapterSettings::default();
    if let Some(code) = manifest.canonical_code() {
        settings.rate_limit_per_sec = std::env::var(env_var_name(code, "rate_limit"))
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| r.is_finite() && *r > 0.0);
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_are_upper_case_with_underscores() {
        assert_eq!(
            env_var_name("hexi", "client-secret"),
            "WAYBILL_HEXI_CLIENT_SECRET"
        );
    }

    #[test]
    fn a_missing_directory_gives_an_empty_registry() {
        let r = Registry::load(Path::new("/nonexistent/waybill/plugins")).unwrap();
        assert!(r.loaded.is_empty() && r.refused.is_empty());
    }

    #[test]
    fn configured_dir_wins() {
        assert_eq!(plugin_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
