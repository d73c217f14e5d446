//! A root module that claims SDK 1.1.0, the host's, but was built from a mismatched copy
//! of the SDK: `manifest_json` returns a plain string instead of a result. Only abi_stable's
//! layout check can tell, and the refusal must show where the two layouts differ.

use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RStr, RString};
use abi_stable::{export_root_module, StableAbi};

/// A root module of the right name and version but the wrong shape.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = MisshapenModuleRef)))]
#[sabi(missing_field(panic))]
pub struct MisshapenModule {
    /// The version it claims.
    pub sdk_version: RStr<'static>,
    /// The manifest, with the wrong return type.
    #[sabi(last_prefix_field)]
    pub manifest_json: extern "C" fn() -> RString,
}

impl RootModule for MisshapenModuleRef {
    abi_stable::declare_root_module_statics! {MisshapenModuleRef}
    const BASE_NAME: &'static str = "waybill_carrier";
    const NAME: &'static str = "waybill_carrier";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.1.0");
}

extern "C" fn manifest_json() -> RString {
    RString::from("{}")
}

/// The exported root module.
#[export_root_module]
pub fn root() -> MisshapenModuleRef {
    MisshapenModule {
        sdk_version: RStr::from_str("1.1.0"),
        manifest_json,
    }
    .leak_into_prefix()
}
