//! [`HttpNotifier`]: delivers a push over HTTP and reads the receiver's kuaidi100-style
//! acknowledgement.
//!
//! A push counts as delivered only when the receiver answers, within the timeout (20 s as
//! kuaidi100), with a 2xx status and a JSON body whose `result` is `true` and whose
//! `returnCode` is `"200"` (the number `200` is accepted too, since receivers written
//! against loosely typed frameworks send it). Anything else is retried.
//!
//! Unless private callbacks are allowed, the notifier connects only to public addresses,
//! checked the same way as at subscribe time ([`callback`](super::callback)): a host name
//! is resolved by [`PublicResolver`], which drops loopback, private and link-local answers,
//! so the connection goes to an address that was checked, with no second lookup an
//! attacker's DNS could answer differently (DNS rebinding). An IP-literal host, which
//! never reaches a resolver, is checked before the request. A push refused this way is
//! rejected for good (dead-lettered, with the address in its error). The client then
//! ignores `HTTP(S)_PROXY`, since through a proxy the daemon could not see where a push
//! goes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use waybill_core::carrier::{Notifier, Push, Verdict};

use super::callback::{is_public, CallbackError};

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
    allow_private: bool,
}

impl HttpNotifier {
    /// A notifier whose requests give up after `timeout`. Unless `allow_private`, it
    /// connects only to public addresses (see the module docs).
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect could lead to an address the subscribe-time check refused.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("waybill/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder
                .dns_resolver(std::sync::Arc::new(PublicResolver))
                .no_proxy();
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
        })
    }
}

/// A DNS resolver (tokio's, i.e. the system's) that keeps only public addresses and fails
/// the lookup with [`CallbackError::Private`] when none is left.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) =
                all.into_iter().partition(|a| is_public(a.ip()));
            match (public.is_empty(), private.first()) {
                (true, Some(refused)) => Err(Box::new(CallbackError::Private {
                    host,
                    addr: refused.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(public.into_iter()) as Addrs),
            }
        })
    }
}

/// The refusal [`PublicResolver`] put in a failed request's error chain, if any.
fn resolver_refusal(err: &reqwest::Error) -> Option<CallbackError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<CallbackError>() {
            return Some(refused.clone());
        }
        source = e.source();
    }
    None
}

/// The refusal of a URL whose host is a non-public IP literal (which no resolver sees).
fn literal_refusal(url: &str) -> Option<CallbackError> {
    let url = url::Url::parse(url).ok()?;
    let addr: IpAddr = match url.host()? {
        url::Host::Ipv4(ip) => ip.into(),
        url::Host::Ipv6(ip) => ip.into(),
        url::Host::Domain(_) => return None,
    };
    (!is_public(addr)).then(|| CallbackError::Private {
        host: addr.to_string(),
        addr,
    })
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
        if !self.allow_private {
            if let Some(refused) = literal_refusal(&push.url) {
                return Verdict::Reject {
                    reason: format!("push refused: {refused}"),
                };
            }
        }
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
                if let Some(refused) = resolver_refusal(&e) {
                    return Verdict::Reject {
                        reason: format!("push refused: {refused}"),
                    };
                }
                return Verdict::Retry {
                    reason: format!("request failed: {e}"),
                };
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
        let n = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
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
        let n = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
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
        let n = HttpNotifier::new(Duration::from_millis(200), true).expect("client");
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
        let n = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert!(matches!(
            n.deliver(&push(addr)).await,
            Verdict::Retry { .. }
        ));
    }

    #[tokio::test]
    async fn a_loopback_receiver_is_refused_by_default_and_reached_when_allowed() {
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let strict = HttpNotifier::new(DEFAULT_TIMEOUT, false).expect("client");
        match strict.deliver(&push(addr)).await {
            Verdict::Reject { reason } => {
                assert!(reason.contains("127.0.0.1"), "{reason}");
                assert!(reason.contains("allow-private-callbacks"), "{reason}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
        let allowed = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert_eq!(allowed.deliver(&push(addr)).await, Verdict::Accepted);
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_refused_at_connect_time() {
        let (addr, seen) = receiver(ACK, 200, Duration::ZERO).await;
        let mut p = push(addr);
        p.url = format!("http://localhost:{}/cb", addr.port());
        let strict = HttpNotifier::new(DEFAULT_TIMEOUT, false).expect("client");
        match strict.deliver(&p).await {
            Verdict::Reject { reason } => {
                assert!(reason.contains("\"localhost\""), "{reason}");
                assert!(
                    reason.contains("127.0.0.1") || reason.contains("::1"),
                    "{reason}"
                );
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(seen.lock().expect("lock").is_empty(), "nothing was sent");
        let allowed = HttpNotifier::new(DEFAULT_TIMEOUT, true).expect("client");
        assert_eq!(allowed.deliver(&p).await, Verdict::Accepted);
    }

    #[tokio::test]
    async fn the_resolver_keeps_public_answers_and_names_a_refused_one() {
        let r = PublicResolver;
        let err = match r.resolve("localhost".parse().expect("name")).await {
            Ok(addrs) => panic!("expected a refusal, got {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refused = err.downcast_ref::<CallbackError>().expect("CallbackError");
        assert!(matches!(refused, CallbackError::Private { host, addr }
            if host == "localhost" && addr.is_loopback()));
        // An IP-literal name goes through getaddrinfo unchanged: a public one is kept.
        let kept: Vec<SocketAddr> = r
            .resolve("93.184.216.34".parse().expect("name"))
            .await
            .expect("public")
            .collect();
        assert_eq!(kept, vec!["93.184.216.34:0".parse().expect("addr")]);
    }

    #[test]
    fn ip_literal_hosts_are_checked_before_any_request() {
        for url in [
            "http://10.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://169.254.169.254/latest",
            "http://2130706433/cb",
        ] {
            assert!(literal_refusal(url).is_some(), "{url}");
        }
        for url in ["http://93.184.216.34/cb", "http://example.com/cb", "::"] {
            assert!(literal_refusal(url).is_none(), "{url}");
        }
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
