//! [`HttpNotifier`]: delivers a push over HTTP and reads the receiver's kuaidi100-style
//! acknowledgement.
//!
//! A push counts as delivered only when the receiver answers, within the timeout (20 s as
//! kuaidi100), with a 2xx status and a JSON body whose `result` is `true` and whose
//! `returnCode` is `"200"` (the number `200` is accepted too, since receivers written
//! against loosely typed frameworks send it). Anything else is retried.

use std::time::Duration;

use async_trait::async_trait;
use waybill_core::carrier::{Notifier, Push, Verdict};

/// Header carrying the stable push id, so a receiver can drop duplicates.
pub const PUSH_ID_HEADER: &str = "X-Waybill-Push-Id";

/// kuaidi100's push timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The most of a reply body read; an acknowledgement is a few dozen bytes.
const MAX_REPLY: usize = 64 * 1024;

/// Delivers pushes with one shared HTTP client (connection pooling across pushes).
#[derive(Clone)]
pub struct HttpNotifier {
    client: reqwest::Client,
}

impl HttpNotifier {
    /// A notifier whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect could lead to an address the subscribe-time check refused.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("waybill/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

/// Whether a reply body is a kuaidi100 acknowledgement; the reason when it is not.
pub fn kuaidi100_ack(body: &[u8]) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "reply is not JSON: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
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

#[async_trait]
impl Notifier for HttpNotifier {
    async fn deliver(&self, push: &Push) -> Verdict {
        let mut req = self
            .client
            .post(&push.url)
            .header(reqwest::header::CONTENT_TYPE, &push.content_type)
            .header(PUSH_ID_HEADER, &push.id)
            .body(push.body.clone());
        for (name, value) in &push.headers {
            req = req.header(name, value);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Verdict::Reject {
                    reason: format!("cannot build request to {}: {e}", push.url),
                }
            }
            Err(e) if e.is_timeout() => {
                return Verdict::Retry {
                    reason: "timed out".into(),
                }
            }
            Err(e) => {
                return Verdict::Retry {
                    reason: format!("request failed: {e}"),
                }
            }
        };
        let status = resp.status();
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => {
                return Verdict::Retry {
                    reason: "timed out reading the reply".into(),
                }
            }
            Err(e) => {
                return Verdict::Retry {
                    reason: format!("reading the reply failed: {e}"),
                }
            }
        };
        if !status.is_success() {
            return Verdict::Retry {
                reason: format!("HTTP {}", status.as_u16()),
            };
        }
        match kuaidi100_ack(&body) {
            Ok(()) => Verdict::Accepted,
            Err(reason) => Verdict::Retry { reason },
        }
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_REPLY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_REPLY {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::extract::State as AxState;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use axum::Router;

    use super::*;

    /// What a test receiver saw: (push id header, form body).
    pub(crate) type Seen = Arc<Mutex<Vec<(String, String)>>>;

    /// Starts a receiver on 127.0.0.1:0 that answers `reply` after `delay`.
    pub(crate) async fn receiver(
        reply: &'static str,
        status: u16,
        delay: Duration,
    ) -> (SocketAddr, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/cb",
                post(
                    move |AxState(seen): AxState<Seen>, headers: HeaderMap, body: String| async move {
                        let id = headers
                            .get(PUSH_ID_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        seen.lock().expect("lock").push((id, body));
                        tokio::time::sleep(delay).await;
                        (
                            axum::http::StatusCode::from_u16(status).expect("status"),
                            reply,
                        )
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, seen)
    }

    pub(crate) const ACK: &str = r#"{"result":true,"returnCode":"200","message":"成功"}"#;

    fn push(addr: SocketAddr) -> Push {
        Push {
            id: "7-1".into(),
            url: format!("http://{addr}/cb"),
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"param=%7B%7D".to_vec(),
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn a_healthy_receiver_acknowledges_and_sees_the_push_id() {
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let n = HttpNotifier::new(DEFAULT_TIMEOUT).expect("client");
        assert_eq!(n.deliver(&push(addr)).await, Verdict::Accepted);
        let seen = seen.lock().expect("lock");
        assert_eq!(seen[0], ("7-1".to_string(), "param=%7B%7D".to_string()));
    }

    #[tokio::test]
    async fn a_failing_receiver_is_retried() {
        let (addr, _) = receiver(
            r#"{"result":false,"returnCode":"500"}"#,
            200,
            Duration::ZERO,
        )
        .await;
        let n = HttpNotifier::new(DEFAULT_TIMEOUT).expect("client");
        assert!(matches!(
            n.deliver(&push(addr)).await,
            Verdict::Retry { .. }
        ));

        let (addr, _) = receiver(ACK, 503, Duration::ZERO).await;
        assert_eq!(
            n.deliver(&push(addr)).await,
            Verdict::Retry {
                reason: "HTTP 503".into()
            }
        );
    }

    #[tokio::test]
    async fn a_slow_receiver_times_out_and_is_retried() {
        let (addr, _) = receiver(ACK, 200, Duration::from_secs(5)).await;
        let n = HttpNotifier::new(Duration::from_millis(200)).expect("client");
        match n.deliver(&push(addr)).await {
            Verdict::Retry { reason } => assert!(reason.contains("timed out"), "{reason}"),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_retried() {
        // Bind then drop, so the port is (almost certainly) closed.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let n = HttpNotifier::new(DEFAULT_TIMEOUT).expect("client");
        assert!(matches!(
            n.deliver(&push(addr)).await,
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn only_result_true_with_return_code_200_acknowledges() {
        assert!(kuaidi100_ack(ACK.as_bytes()).is_ok());
        assert!(kuaidi100_ack(br#"{"result":true,"returnCode":200}"#).is_ok());
        assert!(kuaidi100_ack(br#"{"result":true,"returnCode":"500"}"#).is_err());
        assert!(kuaidi100_ack(br#"{"result":"true","returnCode":"200"}"#).is_err());
        assert!(kuaidi100_ack(br#"{"result":true}"#).is_err());
        assert!(kuaidi100_ack(b"OK").is_err());
    }
}
