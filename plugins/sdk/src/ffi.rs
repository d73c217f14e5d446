//! The boundary between host and plugin: an `abi_stable` prefix-type root module and the
//! `#[repr(C)]` data that crosses it. Plugin authors never touch this module; the
//! [`export_carrier!`](crate::export_carrier) macro and the [`loader`](crate::loader) do.
//!
//! # Design
//!
//! - The root module [`CarrierModule`] is a *prefix type*: a newer SDK may append fields
//!   (after `resume`, the last prefix field), and a host reads them as optional, so old
//!   plugins keep loading. Its version strings are [`SDK_VERSION`], checked at load.
//!   SDK 1.1 appended `start_with_context` (the query's clock and nonce); a 1.0 plugin
//!   has no such field and the loader falls back to `start`.
//! - The manifest is called once per load and crosses as JSON, so manifest fields can be
//!   added without any ABI change.
//! - The hot path (`start`, `resume`) uses typed `abi_stable` structs: inputs are borrowed
//!   (`RStr`, `RSlice`), outputs are owned `RString`/`RVec` built from the plugin's own
//!   `String`/`Vec` without copying. This keeps the cost per call well under 2 µs (see
//!   `BENCHMARKS.md`).
//! - Every entry point catches panics: a panic inside a plugin becomes
//!   [`PluginError::Internal`] and never unwinds into the host.
//! - Adding a field to a hot-path struct changes its layout; that is a new SDK major
//!   version, or a new entry point appended to the prefix (e.g. `resume_v2`).

use std::ffi::c_void;

use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::StableAbi;
use waybill_core::state::State;

use crate::plugin::{guard, CarrierPlugin};
use crate::types::{
    Config, HttpRequest, HttpResponse, PluginError, Query, QueryWaybill, RawEvent, Step,
    WaybillOutcome,
};

/// The SDK (ABI) version a plugin is built against and a host expects.
///
/// Semver on the boundary: the major must match; minor versions only append prefix
/// fields or manifest keys, so plugins and hosts of different minors load each other.
pub const SDK_VERSION: &str = "1.1.0";

/// The root module every plugin exports (through [`export_carrier!`](crate::export_carrier)).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = CarrierModuleRef)))]
#[sabi(missing_field(panic))]
pub struct CarrierModule {
    /// The SDK version the plugin was compiled with.
    pub(crate) sdk_version: RStr<'static>,
    /// The manifest as JSON.
    pub(crate) manifest_json: extern "C" fn() -> RResult<RString, FfiError>,
    /// Builds an instance from configuration pairs.
    pub(crate) instantiate:
        extern "C" fn(RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>>) -> RResult<FfiInstance, FfiError>,
    /// Frees an instance.
    pub(crate) drop_instance: extern "C" fn(FfiInstance),
    /// [`CarrierPlugin::start`].
    pub(crate) start: extern "C" fn(&FfiInstance, &FfiQuery<'_>) -> FfiStep,
    /// [`CarrierPlugin::resume`].
    #[sabi(last_prefix_field)]
    pub(crate) resume: extern "C" fn(&FfiInstance, RStr<'_>, &FfiHttpResponse<'_>) -> FfiStep,
    /// SDK 1.1: [`CarrierPlugin::start`] with the host's clock and nonce. Plugins built
    /// with SDK 1.0 lack it; the host then calls `start`.
    #[sabi(missing_field(option))]
    pub(crate) start_with_context:
        extern "C" fn(&FfiInstance, &FfiQuery<'_>, &FfiQueryContext) -> FfiStep,
}

impl RootModule for CarrierModuleRef {
    abi_stable::declare_root_module_statics! {CarrierModuleRef}
    const BASE_NAME: &'static str = "waybill_carrier";
    const NAME: &'static str = "waybill_carrier";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(SDK_VERSION);
}

/// An instance of a plugin type, owned by the host, valid until `drop_instance`.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiInstance {
    ptr: *mut c_void,
}

/// One waybill of a query, borrowed from the host.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiWaybill<'a> {
    company: RStr<'a>,
    number: RStr<'a>,
    phone: ROption<RStr<'a>>,
}

/// A query, borrowed from the host.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiQuery<'a> {
    waybills: RSlice<'a, FfiWaybill<'a>>,
}

/// What SDK 1.1 added to a query: the host's clock and a nonce.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiQueryContext {
    now_ms: ROption<i64>,
    nonce: ROption<u64>,
}

/// A response, borrowed from the host.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiHttpResponse<'a> {
    status: u16,
    headers: RSlice<'a, Tuple2<RStr<'a>, RStr<'a>>>,
    body: RSlice<'a, u8>,
}

/// A request, owned by whoever holds it.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiHttpRequest {
    method: RString,
    url: RString,
    headers: RVec<Tuple2<RString, RString>>,
    body: RVec<u8>,
    state: RString,
}

/// A classified error. `kind` is a stable number (see [`error_kind`]).
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiError {
    kind: u32,
    message: RString,
    retry_after_secs: ROption<u64>,
}

/// One raw event.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiEvent {
    time: RString,
    offset_minutes: ROption<i32>,
    text: RString,
    location: ROption<RString>,
    raw_code: ROption<RString>,
    /// `State::name()`; an unknown name reads as `None` (the normalizer decides).
    state: ROption<RString>,
}

/// The outcome for one waybill.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiOutcome {
    number: RString,
    events: RVec<FfiEvent>,
    error: ROption<FfiError>,
}

/// A step.
#[repr(u8)]
#[derive(StableAbi)]
pub enum FfiStep {
    /// Send a request.
    Send(FfiHttpRequest),
    /// Outcomes per waybill.
    Done(RVec<FfiOutcome>),
    /// The query failed.
    Failed(FfiError),
}

/// Stable numbers for [`PluginError`] kinds on the wire. Unknown numbers read as
/// [`PluginError::Internal`].
pub mod error_kind {
    /// [`PluginError::NotFound`](crate::PluginError::NotFound).
    pub const NOT_FOUND: u32 = 1;
    /// [`PluginError::Unauthorized`](crate::PluginError::Unauthorized).
    pub const UNAUTHORIZED: u32 = 2;
    /// [`PluginError::RateLimited`](crate::PluginError::RateLimited).
    pub const RATE_LIMITED: u32 = 3;
    /// [`PluginError::Transient`](crate::PluginError::Transient).
    pub const TRANSIENT: u32 = 4;
    /// [`PluginError::BadResponse`](crate::PluginError::BadResponse).
    pub const BAD_RESPONSE: u32 = 5;
    /// [`PluginError::Unsupported`](crate::PluginError::Unsupported).
    pub const UNSUPPORTED: u32 = 6;
    /// [`PluginError::InvalidInput`](crate::PluginError::InvalidInput).
    pub const INVALID_INPUT: u32 = 7;
    /// [`PluginError::Config`](crate::PluginError::Config).
    pub const CONFIG: u32 = 8;
    /// [`PluginError::Internal`](crate::PluginError::Internal).
    pub const INTERNAL: u32 = 9;
}

// ---- plain → FFI (owned) ------------------------------------------------------------

impl From<PluginError> for FfiError {
    fn from(e: PluginError) -> Self {
        use error_kind::*;
        let (kind, message, retry_after_secs) = match e {
            PluginError::NotFound { message } => (NOT_FOUND, message, None),
            PluginError::Unauthorized { message } => (UNAUTHORIZED, message, None),
            PluginError::RateLimited { retry_after_secs } => {
                (RATE_LIMITED, String::new(), retry_after_secs)
            }
            PluginError::Transient { message } => (TRANSIENT, message, None),
            PluginError::BadResponse { message } => (BAD_RESPONSE, message, None),
            PluginError::Unsupported { message } => (UNSUPPORTED, message, None),
            PluginError::InvalidInput { message } => (INVALID_INPUT, message, None),
            PluginError::Config { message } => (CONFIG, message, None),
            PluginError::Internal { message } => (INTERNAL, message, None),
        };
        FfiError {
            kind,
            message: message.into(),
            retry_after_secs: retry_after_secs.into(),
        }
    }
}

impl From<FfiError> for PluginError {
    fn from(e: FfiError) -> Self {
        use error_kind::*;
        let message = e.message.into_string();
        match e.kind {
            NOT_FOUND => PluginError::NotFound { message },
            UNAUTHORIZED => PluginError::Unauthorized { message },
            RATE_LIMITED => PluginError::RateLimited {
                retry_after_secs: e.retry_after_secs.into_option(),
            },
            TRANSIENT => PluginError::Transient { message },
            BAD_RESPONSE => PluginError::BadResponse { message },
            UNSUPPORTED => PluginError::Unsupported { message },
            INVALID_INPUT => PluginError::InvalidInput { message },
            CONFIG => PluginError::Config { message },
            INTERNAL => PluginError::Internal { message },
            other => PluginError::Internal {
                message: format!("unknown error kind {other}: {message}"),
            },
        }
    }
}

fn ropt_string(o: Option<String>) -> ROption<RString> {
    match o {
        Some(s) => ROption::RSome(s.into()),
        None => ROption::RNone,
    }
}

fn opt_string(o: ROption<RString>) -> Option<String> {
    o.into_option().map(RString::into_string)
}

impl From<RawEvent> for FfiEvent {
    fn from(e: RawEvent) -> Self {
        FfiEvent {
            time: e.time.into(),
            offset_minutes: e.offset_minutes.into(),
            text: e.text.into(),
            location: ropt_string(e.location),
            raw_code: ropt_string(e.raw_code),
            state: match e.state {
                Some(s) => ROption::RSome(RString::from(s.name())),
                None => ROption::RNone,
            },
        }
    }
}

/// Reads a state name as `State::name()` writes it.
pub fn state_from_name(name: &str) -> Option<State> {
    State::ALL.iter().copied().find(|s| s.name() == name)
}

impl From<FfiEvent> for RawEvent {
    fn from(e: FfiEvent) -> Self {
        RawEvent {
            state: e
                .state
                .as_ref()
                .into_option()
                .and_then(|s| state_from_name(s)),
            time: e.time.into_string(),
            offset_minutes: e.offset_minutes.into_option(),
            text: e.text.into_string(),
            location: opt_string(e.location),
            raw_code: opt_string(e.raw_code),
        }
    }
}

impl From<Step> for FfiStep {
    fn from(step: Step) -> Self {
        match step {
            Step::Send(r) => FfiStep::Send(FfiHttpRequest {
                method: r.method.into(),
                url: r.url.into(),
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| Tuple2(k.into(), v.into()))
                    .collect(),
                body: r.body.into(),
                state: r.state.into(),
            }),
            Step::Done(outcomes) => FfiStep::Done(
                outcomes
                    .into_iter()
                    .map(|o| {
                        let (events, error) = match o.result {
                            Ok(events) => (events.into_iter().map(FfiEvent::from).collect(), None),
                            Err(e) => (RVec::new(), Some(FfiError::from(e))),
                        };
                        FfiOutcome {
                            number: o.number.into(),
                            events,
                            error: error.into(),
                        }
                    })
                    .collect(),
            ),
            Step::Failed(e) => FfiStep::Failed(e.into()),
        }
    }
}

impl From<FfiStep> for Step {
    fn from(step: FfiStep) -> Self {
        match step {
            FfiStep::Send(r) => Step::Send(HttpRequest {
                method: r.method.into_string(),
                url: r.url.into_string(),
                headers: r
                    .headers
                    .into_iter()
                    .map(|Tuple2(k, v)| (k.into_string(), v.into_string()))
                    .collect(),
                body: r.body.into_vec(),
                state: r.state.into_string(),
            }),
            FfiStep::Done(outcomes) => Step::Done(
                outcomes
                    .into_iter()
                    .map(|o| WaybillOutcome {
                        number: o.number.into_string(),
                        result: match o.error.into_option() {
                            Some(e) => Err(e.into()),
                            None => Ok(o.events.into_iter().map(RawEvent::from).collect()),
                        },
                    })
                    .collect(),
            ),
            FfiStep::Failed(e) => Step::Failed(e.into()),
        }
    }
}

// ---- borrowed views built by the host -------------------------------------------------

/// Calls `f` with an FFI view of `query` (borrowed, no string copies).
pub(crate) fn with_ffi_query<T>(query: &Query, f: impl FnOnce(&FfiQuery<'_>) -> T) -> T {
    let waybills: Vec<FfiWaybill<'_>> = query
        .waybills
        .iter()
        .map(|w| FfiWaybill {
            company: w.company.as_str().into(),
            number: w.number.as_str().into(),
            phone: match &w.phone {
                Some(p) => ROption::RSome(p.as_str().into()),
                None => ROption::RNone,
            },
        })
        .collect();
    f(&FfiQuery {
        waybills: waybills.as_slice().into(),
    })
}

/// The SDK 1.1 part of a query.
pub(crate) fn ffi_query_context(query: &Query) -> FfiQueryContext {
    FfiQueryContext {
        now_ms: query.now_ms.into(),
        nonce: query.nonce.into(),
    }
}

/// Calls `f` with an FFI view of `response` (borrowed, the body is not copied).
pub(crate) fn with_ffi_response<T>(
    response: &HttpResponse,
    f: impl FnOnce(&FfiHttpResponse<'_>) -> T,
) -> T {
    let headers: Vec<Tuple2<RStr<'_>, RStr<'_>>> = response
        .headers
        .iter()
        .map(|(k, v)| Tuple2(k.as_str().into(), v.as_str().into()))
        .collect();
    f(&FfiHttpResponse {
        status: response.status,
        headers: headers.as_slice().into(),
        body: response.body.as_slice().into(),
    })
}

/// Calls `f` with an FFI view of a configuration.
pub(crate) fn with_ffi_config<T>(
    config: &Config,
    f: impl FnOnce(RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>>) -> T,
) -> T {
    let pairs: Vec<Tuple2<RStr<'_>, RStr<'_>>> = config
        .iter()
        .map(|(k, v)| Tuple2(k.into(), v.into()))
        .collect();
    f(pairs.as_slice().into())
}

impl FfiInstance {
    pub(crate) fn null() -> Self {
        FfiInstance {
            ptr: std::ptr::null_mut(),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        self.ptr.is_null()
    }
}

// ---- the plugin side: generic entry points behind export_carrier! ---------------------

extern "C" fn manifest_json<P: CarrierPlugin>() -> RResult<RString, FfiError> {
    let result = guard(|| serde_json::to_string(&P::manifest()))
        .and_then(|r| r.map_err(|e| PluginError::internal(format!("manifest: {e}"))));
    match result {
        Ok(json) => RResult::ROk(json.into()),
        Err(e) => RResult::RErr(e.into()),
    }
}

extern "C" fn instantiate<P: CarrierPlugin>(
    pairs: RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>>,
) -> RResult<FfiInstance, FfiError> {
    let config = Config::from_pairs(pairs.iter().map(|Tuple2(k, v)| (k.as_str(), v.as_str())));
    match guard(|| P::new(&config)).and_then(|r| r) {
        Ok(plugin) => RResult::ROk(FfiInstance {
            ptr: Box::into_raw(Box::new(plugin)).cast::<c_void>(),
        }),
        Err(e) => RResult::RErr(e.into()),
    }
}

extern "C" fn drop_instance<P: CarrierPlugin>(instance: FfiInstance) {
    if instance.ptr.is_null() {
        return;
    }
    // SAFETY: a non-null `ptr` was made by `instantiate::<P>` from `Box<P>` in this same
    // library, and the host drops each instance exactly once.
    let plugin = unsafe { Box::from_raw(instance.ptr.cast::<P>()) };
    // A panicking Drop must not unwind into the host; the leak is the lesser harm.
    let _ = guard(move || drop(plugin));
}

/// # Safety
/// `instance` must come from `instantiate::<P>` and not be dropped yet.
unsafe fn plugin_ref<P: CarrierPlugin>(instance: &FfiInstance) -> &P {
    unsafe { &*instance.ptr.cast::<P>() }
}

fn plain_query(q: &FfiQuery<'_>) -> Query {
    Query::new(
        q.waybills
            .iter()
            .map(|w| QueryWaybill {
                company: w.company.as_str().to_owned(),
                number: w.number.as_str().to_owned(),
                phone: w
                    .phone
                    .as_ref()
                    .into_option()
                    .map(|p| p.as_str().to_owned()),
            })
            .collect(),
    )
}

fn plain_response(r: &FfiHttpResponse<'_>) -> HttpResponse {
    HttpResponse {
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|Tuple2(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
            .collect(),
        body: r.body.as_slice().to_vec(),
    }
}

extern "C" fn start<P: CarrierPlugin>(instance: &FfiInstance, query: &FfiQuery<'_>) -> FfiStep {
    if instance.is_null() {
        return Step::Failed(PluginError::internal("null instance")).into();
    }
    guard(|| {
        // SAFETY: the loader only passes instances made by `instantiate::<P>`.
        let plugin = unsafe { plugin_ref::<P>(instance) };
        plugin.start(&plain_query(query))
    })
    .unwrap_or_else(Step::Failed)
    .into()
}

extern "C" fn start_with_context<P: CarrierPlugin>(
    instance: &FfiInstance,
    query: &FfiQuery<'_>,
    context: &FfiQueryContext,
) -> FfiStep {
    if instance.is_null() {
        return Step::Failed(PluginError::internal("null instance")).into();
    }
    guard(|| {
        // SAFETY: as in `start`.
        let plugin = unsafe { plugin_ref::<P>(instance) };
        let mut plain = plain_query(query);
        plain.now_ms = context.now_ms.as_ref().into_option().copied();
        plain.nonce = context.nonce.as_ref().into_option().copied();
        plugin.start(&plain)
    })
    .unwrap_or_else(Step::Failed)
    .into()
}

extern "C" fn resume<P: CarrierPlugin>(
    instance: &FfiInstance,
    state: RStr<'_>,
    response: &FfiHttpResponse<'_>,
) -> FfiStep {
    if instance.is_null() {
        return Step::Failed(PluginError::internal("null instance")).into();
    }
    guard(|| {
        // SAFETY: as in `start`.
        let plugin = unsafe { plugin_ref::<P>(instance) };
        plugin.resume(state.as_str(), &plain_response(response))
    })
    .unwrap_or_else(Step::Failed)
    .into()
}

/// Builds the root module for plugin type `P`. Called once per library by the code
/// [`export_carrier!`](crate::export_carrier) generates.
#[doc(hidden)]
pub fn module_for<P: CarrierPlugin>() -> CarrierModuleRef {
    let module = CarrierModule {
        sdk_version: RStr::from_str(SDK_VERSION),
        manifest_json: manifest_json::<P>,
        instantiate: instantiate::<P>,
        drop_instance: drop_instance::<P>,
        start: start::<P>,
        resume: resume::<P>,
        start_with_context: start_with_context::<P>,
    };
    // Leaked on purpose: the module lives as long as the library, which is never unloaded.
    module.leak_into_prefix()
}

/// Hidden re-exports the macro needs, so plugin crates do not depend on `abi_stable`.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, IntoRootModuleResult, LibHeader,
        RootModuleResult,
    };
}

/// Turns a type implementing [`CarrierPlugin`](crate::CarrierPlugin) into a plugin: exports
/// the root module the host's loader looks for. Use it once, in a `cdylib` crate whose
/// library is named `waybill_carrier_<name>`.
///
/// ```ignore
/// waybill_sdk::export_carrier!(MyCarrier);
/// ```
#[macro_export]
macro_rules! export_carrier {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub fn __waybill_carrier_root_module() -> $crate::ffi::CarrierModuleRef {
            $crate::ffi::module_for::<$plugin>()
        }

        // The symbol abi_stable's loader looks up (`abi_stable::library::ROOT_MODULE_LOADER_NAME`),
        // written out so plugin crates need no direct `abi_stable` dependency.
        #[doc(hidden)]
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::ffi::__private::LibHeader = {
            extern "C" fn erased_module() -> $crate::ffi::__private::RootModuleResult {
                $crate::ffi::__private::__call_root_module_loader(__waybill_carrier_root_module)
            }
            unsafe {
                $crate::ffi::__private::LibHeader::from_constructor::<$crate::ffi::CarrierModuleRef>(
                    erased_module,
                    $crate::ffi::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn steps_round_trip_through_the_ffi_types() {
        let steps = vec![
            Step::Send(
                HttpRequest::post("https://x.invalid/t")
                    .header("A", "b")
                    .body("text/plain", "hi")
                    .state("s1"),
            ),
            Step::Done(vec![
                WaybillOutcome::events(
                    "N1",
                    vec![RawEvent::new("2024-05-01 10:00", "签收")
                        .with_state(State::Delivered)
                        .with_code("3")
                        .with_location("杭州")
                        .with_offset_minutes(60)],
                ),
                WaybillOutcome::error(
                    "N2",
                    PluginError::RateLimited {
                        retry_after_secs: Some(5),
                    },
                ),
            ]),
            Step::Failed(PluginError::Config {
                message: "missing key".into(),
            }),
        ];
        for step in steps {
            let back: Step = FfiStep::from(step.clone()).into();
            assert_eq!(back, step);
        }
    }

    /// Answers with a request whose URL shows the query's clock and nonce.
    struct ShowClock;
    impl CarrierPlugin for ShowClock {
        fn manifest() -> crate::Manifest {
            crate::Manifest {
                codes: vec!["clock".into()],
                ..Default::default()
            }
        }
        fn new(_: &Config) -> Result<Self, PluginError> {
            Ok(ShowClock)
        }
        fn start(&self, q: &Query) -> Step {
            Step::Send(HttpRequest::get(format!(
                "https://clock.invalid/{:?}/{:?}",
                q.now_ms, q.nonce
            )))
        }
        fn resume(&self, _: &str, _: &HttpResponse) -> Step {
            Step::Done(vec![])
        }
    }

    fn url_of(step: Step) -> String {
        match step {
            Step::Send(r) => r.url,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn the_hosts_clock_and_nonce_cross_the_boundary_only_through_the_1_1_entry_point() {
        let module = module_for::<ShowClock>();
        let instance = (module.instantiate())(RSlice::from_slice(&[]))
            .into_result()
            .unwrap_or_else(|_| panic!("instantiate"));
        let q = Query::single("clock", "1")
            .at(1_714_528_800_000)
            .with_nonce(7);

        let start = module.start_with_context().expect("SDK 1.1 module");
        let context = ffi_query_context(&q);
        let step: Step = with_ffi_query(&q, |fq| start(&instance, fq, &context)).into();
        assert_eq!(
            url_of(step),
            "https://clock.invalid/Some(1714528800000)/Some(7)"
        );

        // The SDK 1.0 entry point has no room for them.
        let start_v1 = module.start();
        let step: Step = with_ffi_query(&q, |fq| start_v1(&instance, fq)).into();
        assert_eq!(url_of(step), "https://clock.invalid/None/None");
        (module.drop_instance())(instance);
    }

    #[test]
    fn every_state_name_reads_back() {
        for s in State::ALL {
            assert_eq!(state_from_name(s.name()), Some(s));
        }
        assert_eq!(state_from_name("teleported"), None);
    }

    #[test]
    fn unknown_error_kind_reads_as_internal() {
        let e: PluginError = FfiError {
            kind: 999,
            message: "x".into(),
            retry_after_secs: ROption::RNone,
        }
        .into();
        assert!(matches!(e, PluginError::Internal { .. }));
    }
}
