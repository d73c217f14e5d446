//! `Idempotency-Key` on the native API's POSTs: the first answer to a key is stored and
//! replayed to every retry with the same key (marked `Idempotent-Replayed: true`), for
//! [`KEEP`]. A retry that arrives while the first request is still running waits for its
//! answer rather than running twice. The same key on a different request (another path
//! or body) is refused with 422, as is a malformed key. Answers that invite a retry (5xx,
//! 429) are not stored, so the retry does the work.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use sha2::{Digest, Sha256};

use super::problem::{self, Problem};
use crate::api::Api;
use crate::store::IdempotentAnswer;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The header marking a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// How long an answer is kept for replay.
pub const KEEP: SignedDuration = SignedDuration::from_hours(24);

/// Longest key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// An operation's answer: status and JSON body (a problem when the status is 4xx or 5xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON.
    pub body: String,
}

impl Answer {
    /// `value` as JSON with `status`.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_string(value).unwrap_or_else(|_| "null".into()),
        }
    }

    fn response(self, replayed: bool) -> Response {
        let problem = self.status.is_client_error() || self.status.is_server_error();
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if problem {
                problem::CONTENT_TYPE
            } else {
                "application/json"
            }),
        );
        if replayed {
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<Problem> for Answer {
    fn from(p: Problem) -> Self {
        Self::json(p.status_code(), &p)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.response(false)
    }
}

/// Held by the request running for a key; a duplicate waits on it.
type Slot = Arc<tokio::sync::Mutex<()>>;

/// The keys whose first request is running, per tenant.
#[derive(Default)]
pub struct Keys {
    running: Mutex<HashMap<(i64, String), Slot>>,
}

impl Keys {
    /// Runs `op` for `tenant` once per `Idempotency-Key` in `headers` (every time when
    /// there is none). `method`, `path` and `body` identify the request the key was used
    /// for.
    pub async fn run<F, Fut>(
        &self,
        api: &Api,
        tenant: i64,
        headers: &HeaderMap,
        request: (&str, &str, &[u8]),
        op: F,
    ) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        let key = match key(headers) {
            Ok(Some(key)) => key,
            Ok(None) => return op().await.into_response(),
            Err(p) => return p.into_response(),
        };
        let print = fingerprint(request);
        let slot = self.slot(tenant, &key);
        let answer = {
            let _first = slot.lock().await;
            self.answer(api, tenant, &key, print, op).await
        };
        self.release(tenant, &key, &slot);
        match answer {
            Ok((answer, replayed)) => answer.response(replayed),
            Err(p) => p.into_response(),
        }
    }

    async fn answer<F, Fut>(
        &self,
        api: &Api,
        tenant: i64,
        key: &str,
        print: String,
        op: F,
    ) -> Result<(Answer, bool), Problem>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        if let Some(stored) = api.store().idempotent_answer(tenant, key).await? {
            if stored.fingerprint != print {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "The Idempotency-Key was used for another request",
                    "this Idempotency-Key was first sent with another method, path or body; \
                     use a new key for a new request",
                ));
            }
            let status =
                StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok((
                Answer {
                    status,
                    body: stored.body,
                },
                true,
            ));
        }
        let answer = op().await;
        let retry_invited =
            answer.status.is_server_error() || answer.status == StatusCode::TOO_MANY_REQUESTS;
        if !retry_invited {
            let now = api.now();
            let forget_before = now.saturating_sub(KEEP).unwrap_or(now);
            let stored = IdempotentAnswer {
                fingerprint: print,
                status: answer.status.as_u16(),
                body: answer.body.clone(),
            };
            // The work is done; a store failure here only costs the replay.
            if let Err(e) = api
                .store()
                .save_idempotent_answer(tenant, key, &stored, now, forget_before)
                .await
            {
                tracing::warn!(error = %e, "cannot store the answer to an Idempotency-Key");
            }
        }
        Ok((answer, false))
    }

    fn slot(&self, tenant: i64, key: &str) -> Slot {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.entry((tenant, key.to_owned())).or_default().clone()
    }

    /// Forgets the slot when no other request holds it.
    fn release(&self, tenant: i64, key: &str, slot: &Slot) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let id = (tenant, key.to_owned());
        if running
            .get(&id)
            .is_some_and(|s| Arc::ptr_eq(s, slot) && Arc::strong_count(s) <= 2)
        {
            running.remove(&id);
        }
    }

    /// Keys whose first request is running (for tests and metrics).
    pub fn running(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// The request's key: visible ASCII, 1 to 255 characters.
fn key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = |why: &str| {
        Problem::malformed(format!(
            "the Idempotency-Key header {why}; send 1 to {MAX_KEY_CHARS} visible ASCII \
             characters, such as a UUID"
        ))
    };
    let text = value.to_str().map_err(|_| bad("is not ASCII"))?.trim();
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    if text.len() > MAX_KEY_CHARS {
        return Err(bad(&format!("is {} characters long", text.len())));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(bad("holds a control character"));
    }
    Ok(Some(text.to_owned()))
}

/// What identifies a request: SHA-256 over method, path and body.
fn fingerprint((method, path, body): (&str, &str, &[u8])) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    format!("{:x}", h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_refused_with_the_reason() {
        let mut h = HeaderMap::new();
        assert_eq!(key(&h).unwrap(), None);
        h.insert(HEADER, HeaderValue::from_static(" abc-1 "));
        assert_eq!(key(&h).unwrap().as_deref(), Some("abc-1"));
        h.insert(HEADER, HeaderValue::from_str(&"k".repeat(256)).unwrap());
        assert!(key(&h).unwrap_err().detail.contains("256 characters"));
        h.insert(HEADER, HeaderValue::from_static(""));
        assert!(key(&h).unwrap_err().detail.contains("empty"));
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let a = fingerprint(("POST", "/v1/trackings", b"{}"));
        assert_eq!(a.len(), 64);
        assert_eq!(a, fingerprint(("POST", "/v1/trackings", b"{}")));
        assert_ne!(a, fingerprint(("POST", "/v1/trackings", b"{ }")));
        assert_ne!(a, fingerprint(("POST", "/v1/detect", b"{}")));
    }
}
