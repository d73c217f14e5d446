//! API dialects: the wire languages subscribers speak (kuaidi100, Kdniao, and our own
//! native JSON API).
//!
//! A dialect is its routes (requests parsed into the API's dialect-free use cases,
//! [`crate::api::usecase`], answers and errors rendered), its push rendering and its
//! acknowledgement rule. The check step queues dialect-free
//! [`Change`]s; the delivery worker asks the subscription's dialect to render and sign
//! each attempt at send time ([`Dialect::render`]) and to judge what the receiver
//! answered ([`Dialect::judge`]). The HTTP notifier knows no dialect. Adding one is a
//! module here plus a line in [`Dialects::standard`].

pub mod kdniao;
pub mod kuaidi100;
pub mod native;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use jiff::Timestamp;
use waybill_core::carrier::{Push, Reply, Verdict};

use crate::api::Api;
use crate::store::{Change, Subscription};

/// A push rendered for one attempt: what the notifier sends, besides the URL and push id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `Content-Type` of the body.
    pub content_type: String,
    /// The body, signed as the dialect signs.
    pub body: Vec<u8>,
    /// Extra headers (signatures, timestamps).
    pub headers: Vec<(String, String)>,
}

impl Rendered {
    /// The push a [`waybill_core::carrier::Notifier`] sends.
    pub fn into_push(self, id: &str, url: &str) -> Push {
        Push {
            id: id.to_owned(),
            url: url.to_owned(),
            content_type: self.content_type,
            body: self.body,
            headers: self.headers,
        }
    }
}

/// One API dialect's push side.
pub trait Dialect: Send + Sync {
    /// The name subscriptions record (`kuaidi100`).
    fn name(&self) -> &'static str;

    /// Renders and signs `change` for one delivery attempt at `now`, with the
    /// subscription's current parameters (options, salt). `push_id` is the same on every
    /// attempt of one push.
    fn render(
        &self,
        sub: &Subscription,
        change: &Change,
        push_id: &str,
        now: Timestamp,
    ) -> Rendered;

    /// Whether `reply` acknowledges a push in this dialect.
    fn judge(&self, reply: &Reply) -> Verdict;

    /// The dialect's HTTP routes, over the API's use cases.
    fn routes(&self) -> Router<Api>;
}

/// The judgement of both Chinese dialects: a 2xx answer whose body `ack` accepts; anything
/// else is retried.
pub fn judge_reply(reply: &Reply, ack: fn(&[u8]) -> Result<(), String>) -> Verdict {
    if !(200..300).contains(&reply.status) {
        return Verdict::retry(format!("HTTP {}", reply.status));
    }
    match ack(&reply.body) {
        Ok(()) => Verdict::Accepted,
        Err(reason) => Verdict::retry(reason),
    }
}

/// A reply body as JSON, or why it is not (with its start, for the dead letter's error).
pub fn reply_json(body: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(body).map_err(|_| {
        format!(
            "reply is not JSON: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })
}

/// The dialects the daemon speaks, by name.
#[derive(Clone)]
pub struct Dialects {
    by_name: BTreeMap<&'static str, Arc<dyn Dialect>>,
}

impl Dialects {
    /// Every dialect this build speaks.
    pub fn standard() -> Self {
        Self {
            by_name: BTreeMap::new(),
        }
        .with(Arc::new(kuaidi100::Kuaidi100))
        .with(Arc::new(kdniao::Kdniao))
        .with(Arc::new(native::Native))
    }

    /// The same set speaking `dialect` too (in place of one of the same name).
    pub fn with(mut self, dialect: Arc<dyn Dialect>) -> Self {
        self.by_name.insert(dialect.name(), dialect);
        self
    }

    /// The dialect called `name`, if this build speaks it.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Dialect>> {
        self.by_name.get(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

impl Default for Dialects {
    fn default() -> Self {
        Self::standard()
    }
}

impl std::fmt::Debug for Dialects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_set_speaks_kuaidi100_and_kdniao() {
        let d = Dialects::standard();
        assert_eq!(
            d.names().collect::<Vec<_>>(),
            ["kdniao", "kuaidi100", "native"]
        );
        assert!(d.get("kuaidi100").is_some());
        assert!(d.get("nobody").is_none());
    }
}
