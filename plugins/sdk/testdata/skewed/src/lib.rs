//! A root module that claims SDK 2.0.0, as a plugin built against a future SDK would.
//! Only the version matters: the loader must refuse it before looking at the layout.

use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::RStr;
use abi_stable::{export_root_module, StableAbi};

/// A future SDK's root module.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = FutureModuleRef)))]
#[sabi(missing_field(panic))]
pub struct FutureModule {
    /// The version it claims.
    #[sabi(last_prefix_field)]
    pub sdk_version: RStr<'static>,
}

impl RootModule for FutureModuleRef {
    abi_stable::declare_root_module_statics! {FutureModuleRef}
    const BASE_NAME: &'static str = "waybill_carrier";
    const NAME: &'static str = "waybill_carrier";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("2.0.0");
}

/// The exported root module.
#[export_root_module]
pub fn root() -> FutureModuleRef {
    FutureModule {
        sdk_version: RStr::from_str("2.0.0"),
    }
    .leak_into_prefix()
}
