//! The trait a carrier implements, and the object-safe view the host drives.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::types::{Config, HttpRequest, HttpResponse, Manifest, PluginError, Query, Step};
use crate::types::{WaybillOutcome, PANIC_PREFIX};

/// A carrier, written as a sans-IO state machine.
///
/// The host calls [`start`](CarrierPlugin::start) with a query; the plugin answers with a
/// [`Step`]: send this request, done, or failed. After a `Send`, the host performs the
/// request and calls [`resume`](CarrierPlugin::resume) with the response and the request's
/// opaque `state`. A multi-step flow (OAuth token, then track) is a sequence of steps.
///
/// Rules: no sockets, no runtime, no global mutable state, no secrets in errors or in
/// `state`. Panics are caught at the boundary and become [`PluginError::Internal`], but
/// a well-behaved plugin returns errors instead.
///
/// ```
/// use waybill_sdk::{CarrierPlugin, Config, HttpRequest, HttpResponse, Manifest,
///     PluginError, Query, RawEvent, Step, WaybillOutcome};
///
/// struct Echo;
/// impl CarrierPlugin for Echo {
///     fn manifest() -> Manifest {
///         Manifest { codes: vec!["echo".into()], ..Default::default() }
///     }
///     fn new(_config: &Config) -> Result<Self, PluginError> { Ok(Echo) }
///     fn start(&self, q: &Query) -> Step {
///         let no = &q.waybills[0].number;
///         Step::Send(HttpRequest::get(format!("https://echo.invalid/{no}")).state(no.clone()))
///     }
///     fn resume(&self, state: &str, resp: &HttpResponse) -> Step {
///         Step::Done(vec![WaybillOutcome::events(state,
///             vec![RawEvent::new("2024-05-01 10:00", resp.text())])])
///     }
/// }
/// waybill_sdk::export_carrier!(Echo);
/// ```
pub trait CarrierPlugin: Send + Sync + Sized + 'static {
    /// Codes, names, number rules, capabilities, configuration keys.
    fn manifest() -> Manifest;
    /// Builds an instance from the host's configuration (credentials live here).
    fn new(config: &Config) -> Result<Self, PluginError>;
    /// Plans the first request for a query (or answers at once).
    fn start(&self, query: &Query) -> Step;
    /// Reads the response to the request that carried `state`.
    fn resume(&self, state: &str, response: &HttpResponse) -> Step;
}

/// An instantiated plugin as the host sees it: loaded from a `.so` or linked in-process.
pub trait StepMachine: Send + Sync {
    /// See [`CarrierPlugin::start`].
    fn start(&self, query: &Query) -> Step;
    /// See [`CarrierPlugin::resume`].
    fn resume(&self, state: &str, response: &HttpResponse) -> Step;
}

/// A plugin type linked into the host's process, with the same panic isolation as a
/// loaded one. Used by tests, benchmarks and embedders.
///
/// ```
/// # use waybill_sdk::*;
/// # struct Echo;
/// # impl CarrierPlugin for Echo {
/// #     fn manifest() -> Manifest { Manifest::default() }
/// #     fn new(_: &Config) -> Result<Self, PluginError> { Ok(Echo) }
/// #     fn start(&self, _: &Query) -> Step { panic!("oops") }
/// #     fn resume(&self, _: &str, _: &HttpResponse) -> Step { Step::Done(vec![]) }
/// # }
/// let m = InProcess::<Echo>::new(&Config::new()).unwrap();
/// assert!(matches!(m.start(&Query::single("echo", "1")), Step::Failed(PluginError::Internal { .. })));
/// ```
pub struct InProcess<P: CarrierPlugin>(P);

impl<P: CarrierPlugin> InProcess<P> {
    /// Instantiates the plugin, catching a panic in `new`.
    pub fn new(config: &Config) -> Result<Self, PluginError> {
        guard(|| P::new(config)).and_then(|r| r).map(InProcess)
    }

    /// The wrapped plugin.
    pub fn inner(&self) -> &P {
        &self.0
    }
}

impl<P: CarrierPlugin> StepMachine for InProcess<P> {
    fn start(&self, query: &Query) -> Step {
        guard(|| self.0.start(query)).unwrap_or_else(Step::Failed)
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        guard(|| self.0.resume(state, response)).unwrap_or_else(Step::Failed)
    }
}

/// Runs `f`, turning a panic into [`PluginError::Internal`] with the panic message.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, PluginError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_owned());
        PluginError::internal(format!("{PANIC_PREFIX}{what}"))
    })
}

/// The most steps one query may take before the host gives up on it: a plugin that keeps
/// asking for requests is broken, and a loop must not pin a worker forever.
pub const MAX_STEPS: usize = 16;

/// Drives a step machine to its end with a synchronous transport: used by tests and the
/// conformance suite (the host has its own async driver with the same rules).
///
/// Fails with [`PluginError::Internal`] after [`MAX_STEPS`] requests.
///
/// ```
/// # use waybill_sdk::*;
/// # struct Echo;
/// # impl CarrierPlugin for Echo {
/// #     fn manifest() -> Manifest { Manifest::default() }
/// #     fn new(_: &Config) -> Result<Self, PluginError> { Ok(Echo) }
/// #     fn start(&self, _: &Query) -> Step { Step::Send(HttpRequest::get("https://x.invalid/")) }
/// #     fn resume(&self, _: &str, r: &HttpResponse) -> Step {
/// #         Step::Done(vec![WaybillOutcome::events("1", vec![RawEvent::new("2024-05-01 10:00", r.text())])]) }
/// # }
/// let m = InProcess::<Echo>::new(&Config::new()).unwrap();
/// let out = drive(&m, &Query::single("echo", "1"), |_req| HttpResponse::new(200, "hi")).unwrap();
/// assert_eq!(out[0].result.as_ref().unwrap()[0].text, "hi");
/// ```
pub fn drive(
    machine: &dyn StepMachine,
    query: &Query,
    mut transport: impl FnMut(&HttpRequest) -> HttpResponse,
) -> Result<Vec<WaybillOutcome>, PluginError> {
    let mut step = machine.start(query);
    for _ in 0..MAX_STEPS {
        match step {
            Step::Done(outcomes) => return Ok(outcomes),
            Step::Failed(e) => return Err(e),
            Step::Send(req) => {
                let resp = transport(&req);
                step = machine.resume(&req.state, &resp);
            }
        }
    }
    match step {
        Step::Done(outcomes) => Ok(outcomes),
        Step::Failed(e) => Err(e),
        Step::Send(_) => Err(PluginError::internal(format!(
            "no result after {MAX_STEPS} requests"
        ))),
    }
}
