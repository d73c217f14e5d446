//! Which callback URLs the daemon agrees to push to.
//!
//! A subscriber chooses the URL, and the daemon POSTs to it from inside the operator's
//! network, so by default a URL whose host resolves to a loopback, private, link-local or
//! otherwise non-public address is refused at subscribe time (SSRF), and every delivery
//! connects only to addresses that pass the same [`is_public`] check
//! ([`PublicResolver`](super::deliver::PublicResolver)), so a name that later resolves
//! elsewhere (DNS rebinding) gains nothing. Operators running the receiver on the same
//! machine or LAN turn both off with `--allow-private-callbacks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a callback URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not a URL.
    #[error("callback URL {url:?} is not a valid URL: {reason}")]
    Invalid {
        /// What was given.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Not http or https.
    #[error("callback URL scheme {scheme:?} is not supported; use http or https")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// The host name does not resolve.
    #[error("callback host {host:?} does not resolve: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's complaint.
        reason: String,
    },
    /// The host resolves to an address that is not public.
    #[error(
        "callback host {host:?} resolves to non-public address {addr}; \
         start the daemon with --allow-private-callbacks to allow it"
    )]
    Private {
        /// The host.
        host: String,
        /// The offending address.
        addr: IpAddr,
    },
}

/// Checks that `url` is an http(s) URL whose host resolves only to public addresses
/// (any address when `allow_private`).
pub async fn callback_allowed(url: &str, allow_private: bool) -> Result<(), CallbackError> {
    let parsed = url::Url::parse(url).map_err(|e| CallbackError::Invalid {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CallbackError::Scheme {
            scheme: parsed.scheme().to_owned(),
        });
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(CallbackError::Invalid {
                url: url.to_owned(),
                reason: "no host".into(),
            })
        }
    };
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| CallbackError::Unresolvable {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() {
        return Err(CallbackError::Unresolvable {
            host,
            reason: "no addresses".into(),
        });
    }
    // Every address must be public: a name with one private answer can be steered to it.
    match addrs.into_iter().find(|a| !is_public(*a)) {
        Some(addr) => Err(CallbackError::Private { host, addr }),
        None => Ok(()),
    }
}

/// Whether an address is publicly routable (not loopback, private, link-local,
/// unspecified, multicast, broadcast, shared CGNAT space or unique-local IPv6).
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [o0, o1, ..] = a.octets();
    let shared_cgnat = o0 == 100 && (64..128).contains(&o1);
    !(a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_multicast()
        || a.is_broadcast()
        || shared_cgnat
        || o0 == 0)
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    !(a.is_loopback() || a.is_unspecified() || a.is_multicast() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_private_and_link_local_callbacks_are_refused_by_default() {
        for url in [
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://10.1.2.3/cb",
            "http://192.168.0.10/cb",
            "http://172.16.5.5/cb",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/cb",
            "http://[fe80::1]/cb",
            "http://[fd00::1]/cb",
            "http://[::ffff:127.0.0.1]/cb",
            "http://0.0.0.0/cb",
            "http://100.64.0.1/cb",
        ] {
            let err = callback_allowed(url, false).await.expect_err(url);
            assert!(matches!(err, CallbackError::Private { .. }), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn public_addresses_pass_and_private_ones_pass_when_allowed() {
        callback_allowed("http://93.184.216.34/cb?orderId=1", false)
            .await
            .expect("public v4");
        callback_allowed("https://[2606:4700::1111]/cb", false)
            .await
            .expect("public v6");
        callback_allowed("http://127.0.0.1:9/cb", true)
            .await
            .expect("allowed private");
    }

    #[tokio::test]
    async fn non_http_schemes_and_garbage_are_refused() {
        assert!(matches!(
            callback_allowed("ftp://93.184.216.34/x", false).await,
            Err(CallbackError::Scheme { .. })
        ));
        assert!(matches!(
            callback_allowed("not a url", true).await,
            Err(CallbackError::Invalid { .. })
        ));
    }
}
