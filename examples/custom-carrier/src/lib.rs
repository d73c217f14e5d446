//! A complete carrier plugin for Hexi Express (河西快运), an imaginary regional carrier.
//! Copy this crate to start your own: see "Write your own carrier plugin" in the README.
//!
//! Hexi's (invented) API takes two steps:
//! 1. `POST {base}/oauth/token` with `client_id` and `client_secret` as a form
//!    → `{"access_token": "...", "expires_in": 7200}`;
//! 2. `GET {base}/v2/track?numbers=HX1,HX2` with `Authorization: Bearer <token>`
//!    → `{"code": 0, "data": [{"no": "HX1", "code": 0, "traces": [{"time", "op", "desc", "city"}]}]}`.
//!    A number Hexi does not know has `"code": 1001`; a refused token gives HTTP 401.

use serde::Deserialize;
use waybill_sdk::{
    percent_encode, Capabilities, CarrierPlugin, Config, ConfigKey, HttpRequest, HttpResponse,
    Manifest, NumberRule, PluginError, Query, RawEvent, State, Step, WaybillOutcome,
};

const DEFAULT_BASE_URL: &str = "https://open.hexi-express.invalid";

/// The plugin: configuration only. Each query carries its own state in the steps.
pub struct Hexi {
    base_url: String,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
struct TrackReply {
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    data: Vec<Parcel>,
}

#[derive(Deserialize)]
struct Parcel {
    no: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    traces: Vec<Trace>,
}

#[derive(Deserialize)]
struct Trace {
    time: String,
    op: String,
    desc: String,
    #[serde(default)]
    city: Option<String>,
}

/// Hexi's operation codes, mapped to the standard states. Unknown codes return `None`
/// and core's text normalizer reads the description instead.
fn state_of(op: &str) -> Option<State> {
    Some(match op {
        "CREATED" => State::OrderReceived,
        "PICKUP" => State::Collected,
        "DEPART" => State::DepartedOrigin,
        "HUB" => State::AtTransferCentre,
        "ARRIVE" => State::ArrivedDestinationCity,
        "DELIVERING" => State::OutForDelivery,
        "LOCKER" => State::InLocker,
        "SIGNED" => State::Delivered,
        "FAILED" => State::AttemptFailed,
        "RETURN" => State::Returning,
        _ => return None,
    })
}

impl CarrierPlugin for Hexi {
    fn manifest() -> Manifest {
        Manifest {
            codes: vec!["hexi".into(), "hexiexpress".into()],
            name_zh: "河西快运".into(),
            name_en: "Hexi Express".into(),
            number_rules: vec![NumberRule::new("hexi_hx12", r"^HX\d{12}$")],
            capabilities: Capabilities {
                max_batch: 20,
                needs_phone: false,
                rate_limit_per_sec: Some(5.0),
            },
            config_keys: vec![
                ConfigKey {
                    required: true,
                    ..ConfigKey::optional("client_id", "Client id from the Hexi open platform")
                },
                ConfigKey::secret("client_secret", "Client secret from the Hexi open platform"),
                ConfigKey::optional("base_url", "API base URL (default: the production API)"),
            ],
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }
    }

    fn new(config: &Config) -> Result<Self, PluginError> {
        Ok(Hexi {
            base_url: config.base_url("base_url", DEFAULT_BASE_URL)?,
            client_id: config.require("client_id")?.to_owned(),
            client_secret: config.require("client_secret")?.to_owned(),
        })
    }

    fn start(&self, query: &Query) -> Step {
        let numbers: Vec<&str> = query.waybills.iter().map(|w| w.number.as_str()).collect();
        if numbers.is_empty() {
            return Step::Done(vec![]);
        }
        // The state names the step and carries the numbers; never the secret or the token.
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ];
        Step::Send(
            HttpRequest::post(format!("{}/oauth/token", self.base_url))
                .form(form)
                .state(format!("token:{}", numbers.join(","))),
        )
    }

    fn resume(&self, state: &str, response: &HttpResponse) -> Step {
        match state.split_once(':') {
            Some(("token", numbers)) => self.after_token(numbers, response),
            Some(("track", numbers)) => after_track(numbers, response),
            _ => Step::Failed(PluginError::internal(format!("unknown step {state:?}"))),
        }
    }
}

impl Hexi {
    fn after_token(&self, numbers: &str, response: &HttpResponse) -> Step {
        if let Some(e) = response.status_error() {
            return Step::Failed(e);
        }
        let token: Token = match response.json() {
            Ok(t) => t,
            Err(e) => return Step::Failed(e),
        };
        Step::Send(
            HttpRequest::get(format!(
                "{}/v2/track?numbers={}",
                self.base_url,
                percent_encode(numbers)
            ))
            .header("Authorization", format!("Bearer {}", token.access_token))
            .header("Accept", "application/json")
            .state(format!("track:{numbers}")),
        )
    }
}

fn after_track(numbers: &str, response: &HttpResponse) -> Step {
    if let Some(e) = response.status_error() {
        return Step::Failed(e);
    }
    let reply: TrackReply = match response.json() {
        Ok(r) => r,
        Err(e) => return Step::Failed(e),
    };
    if reply.code != 0 {
        return Step::Failed(PluginError::bad_response(format!(
            "Hexi code {}: {}",
            reply.code, reply.msg
        )));
    }
    // One outcome per queried number, in query order, even if Hexi skips or reorders.
    let outcomes = numbers
        .split(',')
        .map(|no| match reply.data.iter().find(|p| p.no == no) {
            Some(p) if p.code == 0 => {
                WaybillOutcome::events(no, p.traces.iter().map(event).collect())
            }
            Some(p) if p.code == 1001 => WaybillOutcome::error(
                no,
                PluginError::NotFound {
                    message: "Hexi does not know this number yet".into(),
                },
            ),
            Some(p) => WaybillOutcome::error(
                no,
                PluginError::bad_response(format!("Hexi code {}", p.code)),
            ),
            None => WaybillOutcome::error(
                no,
                PluginError::NotFound {
                    message: "missing from Hexi's reply".into(),
                },
            ),
        })
        .collect();
    Step::Done(outcomes)
}

fn event(t: &Trace) -> RawEvent {
    RawEvent {
        time: t.time.clone(),
        offset_minutes: None, // Hexi prints Beijing time.
        text: t.desc.clone(),
        location: t.city.clone(),
        raw_code: Some(t.op.clone()),
        state: state_of(&t.op),
    }
}

waybill_sdk::export_carrier!(Hexi);
