//! `waybill plugins`: what loaded from the plugin directory, and what was refused.

use std::process::ExitCode;

use serde_json::json;

use waybill_host::plugin::registry::{plugin_dir, Registry};

/// Lists plugins. Refused files are reported but do not make the command fail.
pub fn run(json_format: bool) -> anyhow::Result<ExitCode> {
    let registry = Registry::load(&plugin_dir(None))?;
    if json_format {
        println!("{}", serde_json::to_string_pretty(&to_json(&registry))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("plugin directory: {}", registry.dir.display());
    if registry.loaded.is_empty() {
        println!("no plugins loaded");
    }
    for p in &registry.loaded {
        let m = p.manifest();
        let caps = &m.capabilities;
        println!(
            "{}  {} / {}  (SDK {}, batch {}, phone {}, rate {})",
            m.codes.join(", "),
            m.name_zh,
            m.name_en,
            p.sdk_version(),
            caps.max_batch,
            if caps.needs_phone { "needed" } else { "no" },
            caps.rate_limit_per_sec
                .map(|r| format!("{r}/s"))
                .unwrap_or_else(|| "unknown".into())
        );
        if m.aggregator {
            println!(
                "    aggregator: tracks other companies' codes (set WAYBILL_UPSTREAM={})",
                m.canonical_code().unwrap_or_default()
            );
        }
        println!("    file: {}", p.file().display());
        for k in &m.config_keys {
            println!(
                "    config {}{}: {}",
                k.name,
                if k.required { " (required)" } else { "" },
                k.doc
            );
        }
    }
    for r in &registry.refused {
        println!("refused {r}");
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(registry: &Registry) -> serde_json::Value {
    let plugins: Vec<_> = registry
        .loaded
        .iter()
        .map(|p| {
            let m = p.manifest();
            json!({
                "file": p.file().display().to_string(),
                "codes": m.codes,
                "name_zh": m.name_zh,
                "name_en": m.name_en,
                "sdk_version": p.sdk_version(),
                "plugin_version": m.plugin_version,
                "capabilities": m.capabilities,
                "number_rules": m.number_rules,
                "aggregator": m.aggregator,
                "config_keys": m.config_keys,
            })
        })
        .collect();
    let refused: Vec<_> = registry
        .refused
        .iter()
        .map(|r| json!({"file": r.file().display().to_string(), "reason": r.reason()}))
        .collect();
    json!({
        "dir": registry.dir.display().to_string(),
        "plugins": plugins,
        "refused": refused,
    })
}
