//! The conformance suite every plugin runs (feature `conformance`).
//!
//! Run it from an integration test (`tests/conformance.rs`), so Cargo builds the plugin's
//! `cdylib` and the suite checks the real `.so` through the real loader:
//!
//! ```ignore
//! use waybill_sdk::conformance::{self, Expect, Suite};
//! use waybill_sdk::{Config, Query};
//!
//! #[test]
//! fn hexi_passes_the_conformance_suite() {
//!     let plugin = conformance::load_built("waybill_carrier_hexi");
//!     let files = waybill_sdk::fixture_dir!(); // this crate's fixtures/
//!     let config = Config::from_pairs([("client_id", "id"), ("client_secret", "s")]);
//!     Suite::new(config, Query::single("hexi", "HX000000000001"))
//!         .fixture("track ok", "track:HX000000000001", files.ok("track_ok.json"), Expect::Done)
//!         .fixture("quota", "track:HX000000000001",
//!             files.response(429, "quota.json").with_header("Retry-After", "3"),
//!             Expect::Failed("rate_limited"))
//!         .run_loaded(&plugin);
//! }
//! ```
//!
//! What it checks (each failure panics with a message naming the check):
//! 1. the manifest is sane ([`Manifest::validate`]: lower-case codes, rules compile);
//! 2. instantiation with the sample config works, and with an empty config it either
//!    works or fails with a classified error, never a panic;
//! 3. `start` on the sample query does not panic;
//! 4. every fixture gives the expected step, and every event time in a `Done` parses;
//! 5. failures are classified (never a caught panic);
//! 6. garbage: random bytes, truncated fixtures and random statuses never panic, for
//!    every state the fixtures use (proptest);
//! 7. step sequences terminate within [`MAX_STEPS`] whatever the transport answers;
//! 8. every code of the manifest's [`code_tables`](Manifest::code_tables) appears in an
//!    event of a `Done` fixture (as a `field=code` token of its `raw_code`), and an event
//!    carrying a code the table gives a state for has a state of its own: the carrier's
//!    code decides, not the text normalizer.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use waybill_core::model::EventTime;

use crate::loader::{self, LoadedPlugin};
use crate::plugin::{drive, StepMachine, MAX_STEPS};
use crate::types::{Config, HttpResponse, Manifest, PluginError, Query, RawEvent, Step};

/// The step a fixture must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Another request.
    Send,
    /// Outcomes (any per-waybill results).
    Done,
    /// A failure of this kind ([`PluginError::kind`], e.g. `"unauthorized"`).
    Failed(&'static str),
}

/// A canned response for one step of the plugin, with the step it must lead to.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Name shown in failures.
    pub name: String,
    /// The `state` the plugin gave with the request this answers.
    pub state: String,
    /// The response.
    pub response: HttpResponse,
    /// What must come out.
    pub expect: Expect,
}

impl Fixture {
    /// A fixture.
    pub fn new(
        name: impl Into<String>,
        state: impl Into<String>,
        response: HttpResponse,
        expect: Expect,
    ) -> Self {
        Self {
            name: name.into(),
            state: state.into(),
            response,
            expect,
        }
    }
}

/// A plugin crate's directory of canned response bodies, usually `fixtures/` next to its
/// `Cargo.toml` ([`fixture_dir!`](crate::fixture_dir)).
///
/// ```
/// use waybill_sdk::conformance::FixtureDir;
/// let files = FixtureDir::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
/// let r = files.response(429, "lib.rs").with_header("Retry-After", "5");
/// assert_eq!((r.status, r.retry_after_secs()), (429, Some(5)));
/// assert!(files.ok("lib.rs").text().contains("waybill-sdk"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureDir {
    dir: PathBuf,
}

impl FixtureDir {
    /// The directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// A response with this status whose body is the file `name` of the directory.
    /// Panics naming the path when the file cannot be read (a broken test setup).
    pub fn response(&self, status: u16, name: &str) -> HttpResponse {
        let path = self.dir.join(name);
        let body = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "conformance: fixture {} cannot be read: {e}",
                path.display()
            )
        });
        HttpResponse::new(status, body)
    }

    /// A `200 OK` response whose body is the file `name`.
    pub fn ok(&self, name: &str) -> HttpResponse {
        self.response(200, name)
    }

    /// The fixtures listed in the directory's [`FIXTURE_TABLE`], in order. Panics naming
    /// the table and the row when it cannot be read or a row is wrong (a broken test
    /// setup).
    pub fn fixtures(&self) -> Vec<Fixture> {
        let path = self.dir.join(FIXTURE_TABLE);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("conformance: {} cannot be read: {e}", path.display()));
        let table: FixtureTable = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("conformance: {}: {e}", path.display()));
        table
            .fixtures
            .into_iter()
            .map(|row| {
                let what = format!("{} row {:?}", path.display(), row.name);
                let state = row.state.or_else(|| table.state.clone()).unwrap_or_else(|| {
                    panic!("conformance: {what}: no `state`, and the table gives none")
                });
                let mut response = match (row.file, row.body) {
                    (Some(file), None) => self.response(row.status, &file),
                    (None, Some(body)) => HttpResponse::new(row.status, body),
                    _ => panic!("conformance: {what}: give exactly one of `file` and `body`"),
                };
                for (name, value) in row.headers {
                    response = response.with_header(name, value);
                }
                let expect = Expect::parse(&row.expect).unwrap_or_else(|| {
                    panic!(
                        "conformance: {what}: `expect` {:?} is not send, done or a PluginError kind",
                        row.expect
                    )
                });
                Fixture::new(row.name, state, response, expect)
            })
            .collect()
    }
}

/// The file of a [`FixtureDir`] that lists its fixtures, each with the step it answers
/// and what the plugin must make of it:
///
/// ```json
/// { "state": "track:HX000000000001",
///   "fixtures": [
///     {"name": "delivered", "file": "delivered.json", "expect": "done"},
///     {"name": "quota", "status": 429, "file": "quota.json",
///      "headers": [["Retry-After", "3"]], "expect": "rate_limited"},
///     {"name": "token refused", "state": "token:HX000000000001", "status": 401,
///      "body": "{}", "expect": "unauthorized"} ] }
/// ```
///
/// `state` of a row defaults to the table's; `status` to 200; the body is a `file` of
/// the directory or an inline `body`; `expect` is `send`, `done` or a
/// [`PluginError::kind`] (the step must fail with that kind).
pub const FIXTURE_TABLE: &str = "conformance.json";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureTable {
    #[serde(default)]
    state: Option<String>,
    fixtures: Vec<FixtureRow>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureRow {
    name: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    expect: String,
}

fn ok_status() -> u16 {
    200
}

/// Every [`PluginError::kind`], for reading an `expect` of a fixture table.
const ERROR_KINDS: [&str; 9] = [
    "not_found",
    "unauthorized",
    "rate_limited",
    "transient",
    "bad_response",
    "unsupported",
    "invalid_input",
    "config",
    "internal",
];

impl Expect {
    /// Reads `send`, `done` or a [`PluginError::kind`] (a failure of that kind).
    ///
    /// ```
    /// use waybill_sdk::conformance::Expect;
    /// assert_eq!(Expect::parse("done"), Some(Expect::Done));
    /// assert_eq!(Expect::parse("rate_limited"), Some(Expect::Failed("rate_limited")));
    /// assert_eq!(Expect::parse("ratelimited"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "send" => Some(Expect::Send),
            "done" => Some(Expect::Done),
            kind => ERROR_KINDS
                .iter()
                .find(|k| **k == kind)
                .map(|k| Expect::Failed(k)),
        }
    }
}

/// The calling crate's `fixtures/` directory as a
/// [`FixtureDir`](crate::conformance::FixtureDir) (feature `conformance`).
///
/// ```ignore
/// let files = waybill_sdk::fixture_dir!();
/// let delivered = files.ok("delivered.json");
/// ```
#[macro_export]
macro_rules! fixture_dir {
    () => {
        $crate::conformance::FixtureDir::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
    };
}

/// The inputs of the suite for one plugin.
///
/// Build it with [`Suite::new`] and one [`Suite::fixture`] call per canned response:
///
/// ```
/// use waybill_sdk::conformance::{Expect, Suite};
/// use waybill_sdk::{Config, HttpResponse, Query};
/// let suite = Suite::new(Config::new(), Query::single("hexi", "HX000000000001"))
///     .fixture("busy", "track:HX000000000001", HttpResponse::new(503, ""), Expect::Failed("transient"));
/// assert_eq!(suite.fixtures.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Suite {
    /// A configuration that instantiates the plugin (fake credentials).
    pub config: Config,
    /// A query with sample numbers of the carrier.
    pub sample: Query,
    /// Canned responses.
    pub fixtures: Vec<Fixture>,
}

/// Finds and loads a plugin library built in this workspace's target directory, as seen
/// from a test binary in `target/<profile>/deps/`: `cargo build` leaves the library in
/// `target/<profile>/`, while `cargo test` alone leaves it only in
/// `target/<profile>/deps/`; both are searched ([`built_library_candidates`]). Panics
/// naming the paths when it is missing, or with the loader's reason when it is refused.
pub fn load_built(lib_name: &str) -> LoadedPlugin {
    let candidates = built_library_candidates(lib_name);
    let Some(path) = newest(&candidates) else {
        panic!(
            "conformance: lib{lib_name} not found; looked at {}",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        );
    };
    match loader::load(&path) {
        Ok(p) => p,
        Err(e) => panic!("conformance: the plugin library was refused: {e}"),
    }
}

/// Where `lib<lib_name>.so` is for the running test binary's profile: the most recently
/// written of [`built_library_candidates`] (a `cargo test` after an old `cargo build`
/// must not load the stale copy), else the first candidate.
pub fn built_library_path(lib_name: &str) -> PathBuf {
    let candidates = built_library_candidates(lib_name);
    newest(&candidates).unwrap_or_else(|| candidates[0].clone())
}

fn newest(paths: &[PathBuf]) -> Option<PathBuf> {
    paths
        .iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(p)
                .ok()
                .filter(std::fs::Metadata::is_file)?;
            Some((meta.modified().ok(), p))
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p.clone())
}

/// `target/<profile>/lib<lib_name>.so` (what `cargo build` writes), then
/// `target/<profile>/deps/lib<lib_name>.so` (what `cargo test` writes).
pub fn built_library_candidates(lib_name: &str) -> [PathBuf; 2] {
    let exe = std::env::current_exe().expect("conformance: no current_exe");
    let dir = exe
        .parent()
        .expect("conformance: test binary has no directory");
    let (profile_dir, deps_dir) = if dir.ends_with("deps") {
        (dir.parent().unwrap_or(dir).to_path_buf(), dir.to_path_buf())
    } else {
        (dir.to_path_buf(), dir.join("deps"))
    };
    let file = format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    [profile_dir.join(&file), deps_dir.join(file)]
}

fn assert_classified(what: &str, e: &PluginError) {
    assert!(
        !e.is_panic(),
        "conformance: {what}: the plugin panicked (caught at the boundary): {e}"
    );
}

fn check_step(what: &str, step: &Step) {
    match step {
        Step::Failed(e) => assert_classified(what, e),
        Step::Done(outcomes) => {
            for o in outcomes {
                match &o.result {
                    Err(e) => assert_classified(what, e),
                    Ok(events) => {
                        for ev in events {
                            let offset = match ev.offset_minutes {
                                None => waybill_core::model::CHINA_OFFSET,
                                Some(m) => {
                                    jiff::tz::Offset::from_seconds(m * 60).unwrap_or_else(|_| {
                                        panic!(
                                            "conformance: {what}: offset {m} min is out of range"
                                        )
                                    })
                                }
                            };
                            if let Err(e) = EventTime::parse(&ev.time, offset) {
                                panic!(
                                    "conformance: {what}: event time of {} does not parse: {e}",
                                    o.number
                                );
                            }
                        }
                    }
                }
            }
        }
        Step::Send(req) => {
            assert!(
                req.url.starts_with("http://") || req.url.starts_with("https://"),
                "conformance: {what}: request URL {:?} is not absolute http(s)",
                req.url
            );
            assert!(
                !req.method.is_empty() && req.method.bytes().all(|b| b.is_ascii_uppercase()),
                "conformance: {what}: method {:?} is not an upper-case HTTP method",
                req.method
            );
        }
    }
}

fn kind_of(step: &Step) -> String {
    match step {
        Step::Send(_) => "Send".into(),
        Step::Done(_) => "Done".into(),
        Step::Failed(e) => format!("Failed({})", e.kind()),
    }
}

/// Checks that the events of the `Done` fixtures cover every documented code of the
/// manifest's code tables, and that an event carrying a code with a documented state got a
/// state from the plugin (check 8). `events` pairs each event with its fixture's name.
///
/// ```should_panic
/// use waybill_sdk::{conformance::check_code_coverage, CodeTable, Manifest, RawEvent, State};
/// let m = Manifest {
///     codes: vec!["hexi".into()],
///     code_tables: vec![CodeTable::new("status", "Hexi API 2.0")
///         .code("DL", "Delivered", Some(State::Delivered))
///         .code("IT", "In transit", Some(State::InTransit))],
///     ..Default::default()
/// };
/// let seen = RawEvent::new("2024-05-01 10:00", "Delivered")
///     .with_codes([("status", "DL")])
///     .with_state(State::Delivered);
/// check_code_coverage(&m, &[("delivered".into(), seen)]); // panics: IT is not covered
/// ```
pub fn check_code_coverage(manifest: &Manifest, events: &[(String, RawEvent)]) {
    let mut missing = Vec::new();
    for table in &manifest.code_tables {
        for c in &table.codes {
            let covered = events
                .iter()
                .any(|(_, e)| e.codes().any(|(f, v)| f == table.field && v == c.code));
            if !covered {
                missing.push(format!("{}={}", table.field, c.code));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "conformance: code tables: no `done` fixture has an event with {}",
        missing.join(", ")
    );
    for (fixture, e) in events {
        if e.state.is_some() {
            continue;
        }
        let decided = e.codes().find(|(f, v)| {
            manifest
                .code_tables
                .iter()
                .any(|t| t.field == *f && t.state_of(v).is_some())
        });
        if let Some((f, v)) = decided {
            panic!(
                "conformance: fixture {fixture:?}: event {:?} carries {f}={v}, which the code table maps to a state, but the plugin left it to the text normalizer",
                e.text
            );
        }
    }
}

/// Checks the manifest alone (check 1).
pub fn check_manifest(manifest: &Manifest) {
    if let Err(e) = manifest.validate() {
        panic!("conformance: manifest: {e}");
    }
}

impl Suite {
    /// A suite for this configuration and sample query, without fixtures yet.
    pub fn new(config: Config, sample: Query) -> Self {
        Self {
            config,
            sample,
            fixtures: Vec::new(),
        }
    }

    /// A suite whose fixtures are those of the directory's [`FIXTURE_TABLE`]
    /// ([`FixtureDir::fixtures`]).
    pub fn from_fixture_dir(config: Config, sample: Query, dir: &FixtureDir) -> Self {
        Self {
            fixtures: dir.fixtures(),
            ..Self::new(config, sample)
        }
    }

    /// The suite with one more fixture: answering the request of step `state` with
    /// `response` must give `expect`.
    pub fn fixture(
        mut self,
        name: impl Into<String>,
        state: impl Into<String>,
        response: HttpResponse,
        expect: Expect,
    ) -> Self {
        self.fixtures
            .push(Fixture::new(name, state, response, expect));
        self
    }

    /// Runs every check against a plugin loaded from its `.so`.
    pub fn run_loaded(&self, plugin: &LoadedPlugin) {
        let empty = plugin.instantiate(&Config::new());
        if let Err(e) = &empty {
            assert_classified("instantiate with empty config", e);
        }
        let machine = plugin
            .instantiate(&self.config)
            .unwrap_or_else(|e| panic!("conformance: instantiate with the sample config: {e}"));
        self.run(plugin.manifest(), &machine);
    }

    /// Runs the checks that need only a manifest and an instance (in-process or loaded).
    pub fn run(&self, manifest: &Manifest, machine: &dyn StepMachine) {
        check_manifest(manifest);

        let first = machine.start(&self.sample);
        check_step("start(sample)", &first);

        let mut states: Vec<String> = self.fixtures.iter().map(|f| f.state.clone()).collect();
        if let Step::Send(req) = &first {
            states.push(req.state.clone());
        }
        states.sort();
        states.dedup();

        let mut done_events: Vec<(String, RawEvent)> = Vec::new();
        for f in &self.fixtures {
            let what = format!("fixture {:?}", f.name);
            let step = machine.resume(&f.state, &f.response);
            check_step(&what, &step);
            if let Step::Done(outcomes) = &step {
                for o in outcomes {
                    if let Ok(events) = &o.result {
                        done_events.extend(events.iter().map(|e| (f.name.clone(), e.clone())));
                    }
                }
            }
            let ok = match (&f.expect, &step) {
                (Expect::Send, Step::Send(_)) | (Expect::Done, Step::Done(_)) => true,
                (Expect::Failed(kind), Step::Failed(e)) => e.kind() == *kind,
                _ => false,
            };
            assert!(
                ok,
                "conformance: {what}: expected {:?}, got {}",
                f.expect,
                kind_of(&step)
            );
        }

        check_code_coverage(manifest, &done_events);
        self.check_garbage(machine, &states);
        self.check_termination(machine);
    }

    fn check_garbage(&self, machine: &dyn StepMachine, states: &[String]) {
        let bodies: Vec<Vec<u8>> = self
            .fixtures
            .iter()
            .map(|f| f.response.body.clone())
            .collect();
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let state_strategy = if states.is_empty() {
            Just(String::new()).boxed()
        } else {
            prop::sample::select(states.to_vec()).boxed()
        };
        let random_state = ".{0,40}";
        let body = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            if bodies.is_empty() {
                Just(Vec::new()).boxed()
            } else {
                (prop::sample::select(bodies), any::<prop::sample::Index>())
                    .prop_map(|(b, cut)| b[..cut.index(b.len() + 1)].to_vec())
                    .boxed()
            },
            Just(b"{}".to_vec()),
            Just(b"null".to_vec()),
            Just(b"[]".to_vec()),
        ];
        let status = prop_oneof![
            Just(200u16),
            Just(401),
            Just(404),
            Just(429),
            Just(500),
            100u16..600
        ];
        let result = runner.run(
            &(
                prop_oneof![state_strategy, random_state.boxed()],
                body,
                status,
            ),
            |(state, body, status)| {
                let step = machine.resume(&state, &HttpResponse::new(status, body));
                if let Step::Failed(e) = &step {
                    prop_assert!(!e.is_panic(), "state {state:?}, status {status}: {e}");
                }
                if let Step::Done(outcomes) = &step {
                    for o in outcomes {
                        if let Err(e) = &o.result {
                            prop_assert!(!e.is_panic(), "state {state:?}: {e}");
                        }
                    }
                }
                Ok(())
            },
        );
        if let Err(e) = result {
            panic!("conformance: garbage responses: {e}");
        }
    }

    fn check_termination(&self, machine: &dyn StepMachine) {
        let mut canned: Vec<HttpResponse> =
            self.fixtures.iter().map(|f| f.response.clone()).collect();
        canned.push(HttpResponse::new(500, "oops"));
        canned.push(HttpResponse::new(429, "").with_header("Retry-After", "1"));
        canned.push(HttpResponse::new(200, "not json"));
        // Each strategy answers every request with one canned response, then round-robin.
        for (i, fixed) in canned.iter().enumerate() {
            let out = drive(machine, &self.sample, |_| fixed.clone());
            if let Err(e) = &out {
                assert!(
                    !e.message().contains(&format!("after {MAX_STEPS} requests")),
                    "conformance: answering every request with canned response #{i} loops forever"
                );
                assert_classified("termination", e);
            }
        }
        let mut n = 0;
        let out = drive(machine, &self.sample, |_| {
            n += 1;
            canned[n % canned.len()].clone()
        });
        if let Err(e) = &out {
            assert_classified("termination (round-robin)", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{CarrierPlugin, InProcess};
    use crate::types::{CodeTable, HttpRequest, WaybillOutcome};
    use waybill_core::state::State;

    #[test]
    fn every_plugin_error_kind_reads_as_an_expected_failure() {
        let message = String::new;
        let all = [
            PluginError::NotFound { message: message() },
            PluginError::Unauthorized { message: message() },
            PluginError::RateLimited {
                retry_after_secs: None,
            },
            PluginError::Transient { message: message() },
            PluginError::BadResponse { message: message() },
            PluginError::Unsupported { message: message() },
            PluginError::InvalidInput { message: message() },
            PluginError::Config { message: message() },
            PluginError::Internal { message: message() },
        ];
        for e in all {
            assert_eq!(Expect::parse(e.kind()), Some(Expect::Failed(e.kind())));
        }
    }

    #[test]
    fn a_fixture_table_fills_in_state_status_headers_and_expectations() {
        let dir = std::env::temp_dir().join(format!("waybill-sdk-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ok.json"), "{}").unwrap();
        std::fs::write(
            dir.join(FIXTURE_TABLE),
            r#"{"state": "track:A", "fixtures": [
                {"name": "ok", "file": "ok.json", "expect": "done"},
                {"name": "slow", "state": "token:A", "status": 429, "body": "",
                 "headers": [["Retry-After", "4"]], "expect": "rate_limited"}]}"#,
        )
        .unwrap();
        let fixtures = FixtureDir::new(&dir).fixtures();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(fixtures.len(), 2);
        assert_eq!(
            (fixtures[0].state.as_str(), fixtures[0].response.status),
            ("track:A", 200)
        );
        assert_eq!(fixtures[0].response.body, b"{}");
        assert_eq!(fixtures[0].expect, Expect::Done);
        assert_eq!(fixtures[1].state, "token:A");
        assert_eq!(fixtures[1].response.retry_after_secs(), Some(4));
        assert_eq!(fixtures[1].expect, Expect::Failed("rate_limited"));
    }

    /// Parses the body as a number of events; `FRAGILE` makes it index without checking.
    struct Counter<const FRAGILE: bool>;
    impl<const FRAGILE: bool> CarrierPlugin for Counter<FRAGILE> {
        fn manifest() -> Manifest {
            Manifest {
                codes: vec!["counter".into()],
                ..Default::default()
            }
        }
        fn new(_: &Config) -> Result<Self, PluginError> {
            Ok(Counter)
        }
        fn start(&self, _: &Query) -> Step {
            Step::Send(HttpRequest::get("https://counter.invalid/").state("n"))
        }
        fn resume(&self, _: &str, r: &HttpResponse) -> Step {
            if FRAGILE {
                let _first = r.body[0];
            }
            match r.text().trim().parse::<usize>() {
                Ok(n) if n < 10 => Step::Done(vec![WaybillOutcome::events(
                    "1",
                    vec![RawEvent::new("2024-05-01 10:00", "x"); n],
                )]),
                _ => Step::Failed(PluginError::bad_response("not a small number")),
            }
        }
    }

    fn suite() -> Suite {
        Suite {
            config: Config::new(),
            sample: Query::single("counter", "1"),
            fixtures: vec![Fixture::new(
                "two",
                "n",
                HttpResponse::new(200, "2"),
                Expect::Done,
            )],
        }
    }

    #[test]
    fn a_robust_plugin_passes() {
        let m = InProcess::<Counter<false>>::new(&Config::new()).unwrap();
        suite().run(&Counter::<false>::manifest(), &m);
    }

    #[test]
    #[should_panic(expected = "panicked")]
    fn a_plugin_that_panics_on_an_empty_body_fails() {
        let m = InProcess::<Counter<true>>::new(&Config::new()).unwrap();
        suite().run(&Counter::<true>::manifest(), &m);
    }

    #[test]
    #[should_panic(expected = "left it to the text normalizer")]
    fn a_documented_code_left_to_the_text_normalizer_fails() {
        let m = Manifest {
            codes: vec!["x".into()],
            code_tables: vec![CodeTable::new("op", "doc").code(
                "80",
                "signed",
                Some(State::Delivered),
            )],
            ..Default::default()
        };
        let e = RawEvent::new("2024-05-01 10:00", "已签收").with_codes([("op", "80")]);
        check_code_coverage(&m, &[("f".into(), e)]);
    }

    #[test]
    fn codes_without_a_state_may_be_left_to_the_text() {
        let m = Manifest {
            codes: vec!["x".into()],
            code_tables: vec![CodeTable::new("op", "doc").code("607", "see remark", None)],
            ..Default::default()
        };
        let e = RawEvent::new("2024-05-01 10:00", "运送中").with_codes([("op", "607")]);
        check_code_coverage(&m, &[("f".into(), e)]);
    }

    #[test]
    #[should_panic(expected = "expected Failed(\"not_found\")")]
    fn a_fixture_with_the_wrong_outcome_fails() {
        let m = InProcess::<Counter<false>>::new(&Config::new()).unwrap();
        let mut s = suite();
        s.fixtures[0].expect = Expect::Failed("not_found");
        s.run(&Counter::<false>::manifest(), &m);
    }
}
