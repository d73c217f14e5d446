//! Loading plugins: one file ([`load`]) or a directory ([`load_dir`]).
//!
//! Each file is opened with `abi_stable`'s `lib_header_from_path` and checked with
//! `init_root_module` (not the convenience loaders, which cache one module per interface
//! type and would allow a single carrier). The checks, in order:
//!
//! 1. the file is a shared library exporting an `abi_stable` root module;
//! 2. its SDK version has the host's major ([`SDK_VERSION`]);
//! 3. the root module's layout matches (abi_stable's layout check);
//! 4. its manifest parses and is sane ([`Manifest::validate`]).
//!
//! A file failing any check is refused with a [`LoadError`] naming the file; the others
//! still load. Libraries are never unloaded (abi_stable leaks them on purpose).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::sabi_types::VersionNumber;

use crate::ffi::{
    ffi_query_context, with_ffi_config, with_ffi_query, with_ffi_response, CarrierModuleRef,
    FfiInstance, SDK_VERSION,
};
use crate::plugin::StepMachine;
use crate::types::{Config, HttpResponse, Manifest, PluginError, Query, Step};

/// File name prefix of plugin libraries (after the platform's `lib`).
pub const FILE_STEM_PREFIX: &str = "waybill_carrier_";

/// Why a file was not loaded. `Display` gives one line: `<file>: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// Not a shared library, or one without a root module.
    NotAPlugin {
        /// The file.
        file: PathBuf,
        /// What the dynamic loader or abi_stable said.
        reason: String,
    },
    /// Built against an SDK with another major version.
    SdkVersion {
        /// The file.
        file: PathBuf,
        /// The host's SDK version.
        expected: String,
        /// The plugin's SDK version.
        found: String,
    },
    /// The root module's layout is not the host's (a different or corrupted SDK build).
    Layout {
        /// The file.
        file: PathBuf,
        /// The host's SDK version.
        expected: String,
        /// The SDK version the plugin claims.
        found: String,
        /// First line of abi_stable's layout report.
        detail: String,
    },
    /// The manifest is missing, unreadable or insane.
    Manifest {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A carrier code already provided by a file loaded earlier.
    DuplicateCode {
        /// The refused file.
        file: PathBuf,
        /// The code.
        code: String,
        /// The file that keeps the code.
        first: PathBuf,
    },
}

impl LoadError {
    /// The refused file.
    pub fn file(&self) -> &Path {
        match self {
            LoadError::NotAPlugin { file, .. }
            | LoadError::SdkVersion { file, .. }
            | LoadError::Layout { file, .. }
            | LoadError::Manifest { file, .. }
            | LoadError::DuplicateCode { file, .. } => file,
        }
    }

    /// The reason, without the file name.
    pub fn reason(&self) -> String {
        match self {
            LoadError::NotAPlugin { reason, .. } => format!("not a waybill plugin: {reason}"),
            LoadError::SdkVersion {
                expected, found, ..
            } => format!(
                "built for waybill SDK {found}, this host expects SDK {expected} (same major version); rebuild the plugin"
            ),
            LoadError::Layout {
                expected,
                found,
                detail,
                ..
            } => format!(
                "root module layout does not match SDK {expected} (plugin says SDK {found}): {detail}"
            ),
            LoadError::Manifest { reason, .. } => format!("bad manifest: {reason}"),
            LoadError::DuplicateCode { code, first, .. } => format!(
                "carrier code `{code}` is already provided by {}",
                first.display()
            ),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file().display(), self.reason())
    }
}

impl std::error::Error for LoadError {}

/// A plugin library that passed every check.
pub struct LoadedPlugin {
    file: PathBuf,
    sdk_version: String,
    manifest: Manifest,
    module: CarrierModuleRef,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("file", &self.file)
            .field("sdk_version", &self.sdk_version)
            .field("codes", &self.manifest.codes)
            .finish()
    }
}

impl LoadedPlugin {
    /// The library file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The SDK version the plugin was built with.
    pub fn sdk_version(&self) -> &str {
        &self.sdk_version
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Builds an instance with this configuration (credentials included).
    pub fn instantiate(&self, config: &Config) -> Result<LoadedInstance, PluginError> {
        let instantiate = self.module.instantiate();
        let result = with_ffi_config(config, |pairs| instantiate(pairs));
        match result.into_result() {
            Ok(handle) if handle.is_null() => {
                Err(PluginError::internal("plugin returned a null instance"))
            }
            Ok(handle) => Ok(LoadedInstance {
                module: self.module,
                handle,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// An instance of a loaded plugin. Calls are thread-safe: plugin types are `Send + Sync`.
pub struct LoadedInstance {
    module: CarrierModuleRef,
    handle: FfiInstance,
}

// SAFETY: the handle points to a `P: CarrierPlugin`, which is `Send + Sync` by the trait's
// bounds, and the module's functions only take `&P`.
unsafe impl Send for LoadedInstance {}
// SAFETY: as above.
unsafe impl Sync for LoadedInstance {}

impl StepMachine for LoadedInstance {
    fn start(&self, query: &Query) -> Step {
        match self.module.start_with_context() {
            Some(start) => {
                let context = ffi_query_context(query);
                with_ffi_query(query, |q| start(&self.handle, q, &context)).into()
            }
            // A plugin built with SDK 1.0 never reads the clock or nonce.
            None => {
                let start = self.module.start();
                with_ffi_query(query, |q| start(&self.handle, q)).into()
            }
        }
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        let resume = self.module.resume();
        with_ffi_response(response, |r| resume(&self.handle, state.into(), r)).into()
    }
}

impl Drop for LoadedInstance {
    fn drop(&mut self) {
        let handle = std::mem::replace(&mut self.handle, FfiInstance::null());
        (self.module.drop_instance())(handle);
    }
}

fn version_of(text: &str) -> Option<VersionNumber> {
    let mut parts = text.split('.').map(|p| p.trim().parse::<u32>().ok());
    Some(VersionNumber {
        major: parts.next()??,
        minor: parts.next()??,
        patch: parts.next().unwrap_or(Some(0))?,
    })
}

/// Whether a plugin built for SDK `found` can be loaded by this host.
///
/// ```
/// use waybill_sdk::loader::is_compatible;
/// assert!(is_compatible("1.0.0"));
/// assert!(is_compatible("1.7.2"));
/// assert!(!is_compatible("2.0.0"));
/// assert!(!is_compatible("garbage"));
/// ```
pub fn is_compatible(found: &str) -> bool {
    match (version_of(SDK_VERSION), version_of(found)) {
        (Some(host), Some(plugin)) => host.major == plugin.major,
        _ => false,
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.trim().chars().take(200).collect()
}

/// Refuses an ELF file whose program or section headers point past its end.
///
/// The dynamic loader maps a truncated library's segments beyond the end of the file and
/// the process dies of `SIGBUS` when it touches them, so a cut-off download or a half
/// copied file must be refused before `dlopen`. Only 64-bit little-endian ELF is
/// checked; anything else is left to the dynamic loader.
pub fn check_truncation(bytes_len: u64, head: &[u8]) -> Result<(), String> {
    let u16_at = |at: usize| -> Option<u64> {
        Some(u64::from(u16::from_le_bytes(
            head.get(at..at + 2)?.try_into().ok()?,
        )))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(head.get(at..at + 8)?.try_into().ok()?))
    };
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return Ok(());
    }
    let truncated = |what: &str, end: u64| {
        format!("truncated file: its {what} ends at byte {end}, but the file has {bytes_len} bytes")
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Ok(());
    };
    let (Some(shoff), Some(shentsize), Some(shnum)) = (u64_at(0x28), u16_at(0x3A), u16_at(0x3C))
    else {
        return Ok(());
    };
    let table_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if table_end > bytes_len {
        return Err(truncated("program header table", table_end));
    }
    if shoff != 0 {
        let end = shoff.saturating_add(shentsize.saturating_mul(shnum));
        if end > bytes_len {
            return Err(truncated("section header table", end));
        }
    }
    const PT_LOAD: u32 = 1;
    for i in 0..phnum {
        let Ok(at) = usize::try_from(phoff + i * phentsize) else {
            break;
        };
        let (Some(kind), Some(offset), Some(size)) = (u32_at(at), u64_at(at + 8), u64_at(at + 32))
        else {
            // The table is past what was read: leave it to the dynamic loader.
            break;
        };
        let end = offset.saturating_add(size);
        if kind == PT_LOAD && end > bytes_len {
            return Err(truncated("loadable segment", end));
        }
    }
    Ok(())
}

fn check_file(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = Vec::with_capacity(8192);
    f.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    check_truncation(len, &head)
}

/// Loads one plugin file and checks it.
pub fn load(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let file = path.to_path_buf();
    check_file(path).map_err(|reason| LoadError::NotAPlugin {
        file: file.clone(),
        reason,
    })?;
    let header = lib_header_from_path(path).map_err(|e| LoadError::NotAPlugin {
        file: file.clone(),
        reason: match e {
            LibraryError::OpenError { err, .. } => first_line(&err.to_string()),
            LibraryError::GetSymbolError { .. } => {
                "it exports no abi_stable root module".to_owned()
            }
            LibraryError::InvalidAbiHeader(h) => format!(
                "built with abi_stable header {}.{}, expected {}.{}",
                h.abi_major,
                h.abi_minor,
                abi_stable::library::AbiHeader::VALUE.abi_major,
                abi_stable::library::AbiHeader::VALUE.abi_minor
            ),
            other => first_line(&other.to_string()),
        },
    })?;

    let found = header.version_strings().to_string();
    if !is_compatible(&found) {
        return Err(LoadError::SdkVersion {
            file,
            expected: SDK_VERSION.to_owned(),
            found,
        });
    }

    let module = header
        .init_root_module::<CarrierModuleRef>()
        .map_err(|e| LoadError::Layout {
            file: file.clone(),
            expected: SDK_VERSION.to_owned(),
            found: found.clone(),
            detail: first_line(&e.to_string()),
        })?;

    let json = match (module.manifest_json())().into_result() {
        Ok(json) => json.into_string(),
        Err(e) => {
            return Err(LoadError::Manifest {
                file,
                reason: PluginError::from(e).to_string(),
            })
        }
    };
    let manifest: Manifest = serde_json::from_str(&json).map_err(|e| LoadError::Manifest {
        file: file.clone(),
        reason: format!("unreadable JSON: {e}"),
    })?;
    manifest.validate().map_err(|reason| LoadError::Manifest {
        file: file.clone(),
        reason,
    })?;

    Ok(LoadedPlugin {
        file,
        sdk_version: module.sdk_version().as_str().to_owned(),
        manifest,
        module,
    })
}

/// What [`load_dir`] found.
#[derive(Debug, Default)]
pub struct DirLoad {
    /// Plugins that loaded, in file-name order.
    pub loaded: Vec<LoadedPlugin>,
    /// Files refused, each with its reason.
    pub refused: Vec<LoadError>,
}

/// Whether a file name looks like a plugin library (`libwaybill_carrier_*.so` on Linux).
///
/// ```
/// use waybill_sdk::loader::is_plugin_file_name;
/// assert!(is_plugin_file_name("libwaybill_carrier_hexi.so"));
/// assert!(!is_plugin_file_name("libwaybill_sdk.so"));
/// assert!(!is_plugin_file_name("libwaybill_carrier_hexi.rlib"));
/// ```
pub fn is_plugin_file_name(name: &str) -> bool {
    name.strip_prefix(std::env::consts::DLL_PREFIX)
        .and_then(|rest| rest.strip_suffix(std::env::consts::DLL_SUFFIX))
        .is_some_and(|stem| {
            stem.len() > FILE_STEM_PREFIX.len() && stem.starts_with(FILE_STEM_PREFIX)
        })
}

/// Loads every `libwaybill_carrier_*.so` in `dir`, in file-name order. A file whose
/// carrier code was already taken by an earlier file is refused.
///
/// Fails only when the directory cannot be read.
pub fn load_dir(dir: &Path) -> std::io::Result<DirLoad> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(is_plugin_file_name))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(load_files(&files))
}

/// Loads these files in order (see [`load_dir`]).
pub fn load_files(files: &[PathBuf]) -> DirLoad {
    let mut out = DirLoad::default();
    let mut owners: HashMap<String, PathBuf> = HashMap::new();
    for file in files {
        match load(file) {
            Ok(plugin) => {
                let taken = plugin
                    .manifest
                    .codes
                    .iter()
                    .find_map(|c| owners.get(c).map(|first| (c.clone(), first.clone())));
                if let Some((code, first)) = taken {
                    out.refused.push(LoadError::DuplicateCode {
                        file: file.clone(),
                        code,
                        first,
                    });
                    continue;
                }
                for code in &plugin.manifest.codes {
                    owners.insert(code.clone(), file.clone());
                }
                out.loaded.push(plugin);
            }
            Err(e) => out.refused.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_file_is_refused_as_not_a_plugin_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("waybill-sdk-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("libwaybill_carrier_bad.so");
        std::fs::write(&bad, "this is not a library\n").unwrap();
        std::fs::write(dir.join("README.txt"), "ignored").unwrap();
        let found = load_dir(&dir).unwrap();
        assert!(found.loaded.is_empty());
        assert_eq!(found.refused.len(), 1);
        let line = found.refused[0].to_string();
        assert!(line.contains("libwaybill_carrier_bad.so"), "{line}");
        assert!(line.contains("not a waybill plugin"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A minimal ELF64 header with one program header, `PT_LOAD` of `filesz` bytes.
    fn elf(filesz: u64, file_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; file_len.max(120)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3A].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes());
        b[64 + 32..64 + 40].copy_from_slice(&filesz.to_le_bytes());
        b
    }

    #[test]
    fn a_library_cut_short_is_refused_before_the_dynamic_loader_maps_it() {
        let whole = elf(4096, 4096);
        assert_eq!(check_truncation(4096, &whole), Ok(()));
        let cut = &whole[..1024];
        let e = check_truncation(1024, cut).unwrap_err();
        assert!(
            e.contains("truncated") && e.contains("4096") && e.contains("1024"),
            "{e}"
        );
        // Not ELF at all: the dynamic loader says why.
        assert_eq!(check_truncation(5, b"hello"), Ok(()));
    }

    #[test]
    fn sdk_major_must_match() {
        assert!(is_compatible(SDK_VERSION));
        assert!(!is_compatible("0.1.0"));
        assert!(!is_compatible("2.0.0"));
    }

    #[test]
    fn version_refusal_names_both_versions() {
        let e = LoadError::SdkVersion {
            file: "/p/libwaybill_carrier_x.so".into(),
            expected: "1.0.0".into(),
            found: "2.0.0".into(),
        };
        let line = e.to_string();
        assert!(line.starts_with("/p/libwaybill_carrier_x.so: "));
        assert!(line.contains("2.0.0") && line.contains("1.0.0"));
    }
}
