//! The kuaidi100 dialect: its routes ([`routes`]), push rendering ([`render`]) and its
//! acknowledgement rule.
//!
//! A push counts as delivered only when the receiver answers with a 2xx status and a
//! JSON body whose `result` is `true` and whose `returnCode` is `"200"` (the number `200`
//! is accepted too, since receivers written against loosely typed frameworks send it).
//! Anything else is retried.

pub mod render;
pub mod routes;

use axum::routing::{get, post};
use axum::Router;
use jiff::Timestamp;
use waybill_core::carrier::{Reply, Verdict};

use super::{Dialect, Rendered};
use crate::api::Api;
use crate::store::{Change, Subscription};

/// The name subscriptions made through the kuaidi100 API record.
pub const NAME: &str = "kuaidi100";

/// The kuaidi100 dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kuaidi100;

impl Dialect for Kuaidi100 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn render(
        &self,
        sub: &Subscription,
        change: &Change,
        _push_id: &str,
        now: Timestamp,
    ) -> Rendered {
        let eta = change
            .eta
            .as_deref()
            .map(|estimate| render::EtaAt { estimate, now });
        render::kuaidi100_push(sub, &change.trace, &change.header, eta)
    }

    fn routes(&self) -> Router<Api> {
        Router::new()
            .route("/poll", post(routes::subscribe))
            .route("/poll/query.do", post(routes::query))
            .route(
                "/autonumber/auto",
                get(routes::autonumber).post(routes::autonumber),
            )
    }

    fn judge(&self, reply: &Reply) -> Verdict {
        super::judge_reply(reply, ack)
    }
}

/// Whether a reply body is a kuaidi100 acknowledgement; the reason when it is not.
pub fn ack(body: &[u8]) -> Result<(), String> {
    let v = super::reply_json(body)?;
    let result_ok = v.get("result").and_then(|r| r.as_bool()) == Some(true);
    let code_ok = match v.get("returnCode") {
        Some(serde_json::Value::String(s)) => s == "200",
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(200),
        _ => false,
    };
    if result_ok && code_ok {
        Ok(())
    } else {
        Err(format!(
            "reply is not an acknowledgement (result={}, returnCode={})",
            v.get("result").unwrap_or(&serde_json::Value::Null),
            v.get("returnCode").unwrap_or(&serde_json::Value::Null)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

    #[test]
    fn only_result_true_with_return_code_200_acknowledges() {
        assert!(ack(ACK.as_bytes()).is_ok());
        assert!(ack(br#"{"result":true,"returnCode":200}"#).is_ok());
        assert!(ack(br#"{"result":true,"returnCode":"500"}"#).is_err());
        assert!(ack(br#"{"result":"true","returnCode":"200"}"#).is_err());
        assert!(ack(br#"{"result":true}"#).is_err());
        assert!(ack(b"OK").is_err());
    }

    #[test]
    fn an_acknowledgement_under_a_failing_status_is_retried() {
        let mut reply = Reply::ok(ACK);
        assert_eq!(Kuaidi100.judge(&reply), Verdict::Accepted);
        reply.status = 503;
        assert_eq!(Kuaidi100.judge(&reply), Verdict::retry("HTTP 503"));
        assert!(matches!(
            Kuaidi100.judge(&Reply::ok(r#"{"result":false,"returnCode":"500"}"#)),
            Verdict::Retry { .. }
        ));
    }
}
