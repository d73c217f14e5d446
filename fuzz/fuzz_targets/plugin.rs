//! Shared by the per-plugin targets (one binary per plugin: each plugin crate exports the
//! same root-module symbol, so two cannot link into one binary).
//!
//! The input answers the plugin's requests: its first byte picks the HTTP status, the rest
//! is the body, given to every request of the query (a token step, then the track step).
//! `resume` is called directly, without the SDK's panic guard, so a panic is a finding.

use waybill_sdk::{CarrierPlugin, Config, HttpResponse, Query, QueryWaybill, Step};

const STATUSES: [u16; 8] = [200, 200, 200, 200, 401, 404, 429, 500];

pub fn answer_every_request<P: CarrierPlugin>(plugin: &P, query: &Query, data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let response = HttpResponse::new(STATUSES[usize::from(pick) % STATUSES.len()], body.to_vec());
    let mut step = plugin.start(query);
    for _ in 0..4 {
        match step {
            Step::Send(request) => step = plugin.resume(&request.state, &response),
            Step::Done(outcomes) => {
                assert_eq!(
                    outcomes.len(),
                    query.waybills.len(),
                    "one outcome per waybill"
                );
                return;
            }
            Step::Failed(_) => return,
        }
    }
}

pub fn instance<P: CarrierPlugin>(pairs: &[(&str, &str)]) -> P {
    let config = Config::from_pairs(pairs.iter().copied());
    P::new(&config).unwrap_or_else(|e| panic!("the fuzz configuration is refused: {e}"))
}

pub fn query(waybills: &[(&str, &str, Option<&str>)]) -> Query {
    Query::new(
        waybills
            .iter()
            .map(|&(company, number, phone)| {
                let w = QueryWaybill::new(company, number);
                match phone {
                    Some(p) => w.with_phone(p),
                    None => w,
                }
            })
            .collect(),
    )
    .at(1_717_200_000_000)
}
