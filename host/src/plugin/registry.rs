//! Finding and loading plugin libraries, and instantiating them with configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use waybill_core::carrier::Normalizer;
use waybill_core::guess::{GuessError, Guesser};
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

/// The environment variable naming the aggregator plugin (e.g. `kuaidi100`) that tracks
/// company codes without a dedicated plugin.
pub const UPSTREAM_ENV: &str = "WAYBILL_UPSTREAM";

/// The configured upstream aggregator: `configured` (from the configuration file) if
/// given, else `$WAYBILL_UPSTREAM`; `None` when neither is set or it is blank.
pub fn upstream(configured: Option<&str>) -> Option<String> {
    configured
        .map(str::to_owned)
        .or_else(|| std::env::var(UPSTREAM_ENV).ok())
        .map(|u| u.trim().to_ascii_lowercase())
        .filter(|u| !u.is_empty())
}

/// Which plugin tracks a company code: its own plugin, else the upstream aggregator.
///
/// `manifests` are the loaded plugins' manifests in load order; the answer is an index.
/// A dedicated plugin always wins. Otherwise the code goes to `upstream` when a loaded
/// plugin answers for that code and declares itself an aggregator; a plugin that is not
/// an aggregator is never handed someone else's waybills.
pub fn route_index(manifests: &[&Manifest], code: &str, upstream: Option<&str>) -> Option<usize> {
    let code = code.trim().to_ascii_lowercase();
    if let Some(i) = manifests.iter().position(|m| m.codes.contains(&code)) {
        return Some(i);
    }
    let upstream = upstream?.trim().to_ascii_lowercase();
    manifests
        .iter()
        .position(|m| m.aggregator && m.codes.contains(&upstream))
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

/// A loaded plugin whose number rules the guesser refused (its carrier still works).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRefusal {
    /// The plugin file.
    pub file: PathBuf,
    /// Why, in one line.
    pub reason: String,
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

    /// The carrier guesser with the embedded rules plus every loaded plugin's number
    /// rules. A plugin whose rules the guesser refuses is left out and logged (see
    /// [`Registry::guesser_report`]); it does not stop the others.
    ///
    /// # Errors
    ///
    /// None come from plugins; the `Result` keeps room for host-level rule files.
    pub fn guesser(&self) -> Result<Guesser, GuessError> {
        let (guesser, refused) = self.guesser_report();
        for r in &refused {
            tracing::warn!(file = %r.file.display(), "plugin number rules refused: {}", r.reason);
        }
        Ok(guesser)
    }

    /// Like [`Registry::guesser`], returning the plugins whose rules were refused.
    pub fn guesser_report(&self) -> (Guesser, Vec<RuleRefusal>) {
        let mut guesser = Guesser::default();
        let mut refused = Vec::new();
        for plugin in &self.loaded {
            if let Err(e) = plugin.manifest().add_rules_to(&mut guesser) {
                refused.push(RuleRefusal {
                    file: plugin.file().to_path_buf(),
                    reason: e.to_string(),
                });
            }
        }
        (guesser, refused)
    }

    /// The plugin that tracks `code`: its dedicated plugin, else the `upstream`
    /// aggregator (see [`route_index`] and [`upstream`]).
    pub fn route(&self, code: &str, upstream: Option<&str>) -> Option<&LoadedPlugin> {
        let manifests: Vec<&Manifest> = self.loaded.iter().map(LoadedPlugin::manifest).collect();
        route_index(&manifests, code, upstream).map(|i| &self.loaded[i])
    }

    /// Like [`Registry::carrier`], routing a code without a dedicated plugin to the
    /// `upstream` aggregator. The carrier's waybills keep their own company code, which
    /// the aggregator receives as `QueryWaybill::company`.
    pub fn routed_carrier(
        &self,
        code: &str,
        upstream: Option<&str>,
        normalizer: Arc<dyn Normalizer>,
    ) -> anyhow::Result<PluginCarrier> {
        let plugin = self.route(code, upstream).with_context(|| {
            format!(
                "no plugin for carrier `{code}` in {} (loaded: {}){}",
                self.dir.display(),
                self.codes().join(", "),
                match upstream {
                    Some(u) => format!("; upstream `{u}` is not a loaded aggregator plugin"),
                    None => format!("; set {UPSTREAM_ENV} to route it to an aggregator"),
                }
            )
        })?;
        let manifest = plugin.manifest();
        let code = manifest.canonical_code().unwrap_or(code);
        self.carrier(
            code,
            &config_from_env(manifest),
            normalizer,
            settings_from_env(manifest),
        )
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
                "plugin {} refused its configuration{}",
                plugin.file().display(),
                missing_keys_hint(plugin.manifest(), config)
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

/// Where each required key the configuration lacks would come from, so an operator reads
/// the variable and the table to set instead of only the key's name.
fn missing_keys_hint(manifest: &Manifest, config: &Config) -> String {
    let Some(code) = manifest.canonical_code() else {
        return String::new();
    };
    let missing: Vec<String> = manifest
        .config_keys
        .iter()
        .filter(|k| k.required && config.get(&k.name).is_none_or(str::is_empty))
        .map(|k| {
            format!(
                "`{}` ({}): set {} or `{}` in [carriers.{code}]",
                k.name,
                k.doc,
                env_var_name(code, &k.name),
                k.name
            )
        })
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!("; missing {}", missing.join("; "))
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
    use waybill_sdk::ConfigKey;

    #[test]
    fn env_var_names_are_upper_case_with_underscores() {
        assert_eq!(
            env_var_name("hexi", "client-secret"),
            "WAYBILL_HEXI_CLIENT_SECRET"
        );
    }

    #[test]
    fn a_missing_required_key_names_its_variable_and_its_table() {
        let m = Manifest {
            codes: vec!["acme".into()],
            config_keys: vec![ConfigKey::secret("api_key", "the API key")],
            ..Default::default()
        };
        let hint = missing_keys_hint(&m, &Config::new());
        assert!(
            hint.contains("WAYBILL_ACME_API_KEY") && hint.contains("`api_key` in [carriers.acme]"),
            "{hint}"
        );
        let given = Config::from_pairs([("api_key", "k")]);
        assert_eq!(missing_keys_hint(&m, &given), "");
    }

    #[test]
    fn a_missing_directory_gives_an_empty_registry() {
        let r = Registry::load(Path::new("/nonexistent/waybill/plugins")).unwrap();
        assert!(r.loaded.is_empty() && r.refused.is_empty());
    }

    fn manifest(codes: &[&str], aggregator: bool) -> Manifest {
        Manifest {
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            aggregator,
            ..Default::default()
        }
    }

    #[test]
    fn a_code_without_its_own_plugin_goes_to_the_upstream_aggregator() {
        let sf = manifest(&["shunfeng", "sf"], false);
        let k100 = manifest(&["kuaidi100"], true);
        let all = [&sf, &k100];
        assert_eq!(route_index(&all, "SF", Some("kuaidi100")), Some(0));
        assert_eq!(route_index(&all, "yuantong", Some("kuaidi100")), Some(1));
        assert_eq!(route_index(&all, "yuantong", None), None);
        assert_eq!(route_index(&all, "yuantong", Some("kdniao")), None);
    }

    #[test]
    fn a_plugin_that_is_not_an_aggregator_is_never_an_upstream() {
        let sf = manifest(&["shunfeng"], false);
        assert_eq!(route_index(&[&sf], "yuantong", Some("shunfeng")), None);
    }

    #[test]
    fn upstream_setting_is_trimmed_and_lower_case() {
        assert_eq!(upstream(Some(" Kuaidi100 ")), Some("kuaidi100".into()));
        assert_eq!(upstream(Some("  ")), None);
    }

    #[test]
    fn configured_dir_wins() {
        assert_eq!(plugin_dir(Some(Path::new("/x"))), PathBuf::from("/x"));
    }
}
