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

/// Whether an address is publicly routable: in none of the blocks of [`NOT_PUBLIC_V4`]
/// and [`NOT_PUBLIC_V6`]. An IPv4-mapped IPv6 address is judged by its IPv4 address.
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// IPv4 blocks a callback may not reach, as (network, prefix length): the blocks the IANA
/// IPv4 Special-Purpose Address Registry does not mark globally reachable, plus
/// multicast and the reserved 240/4. No maintained crate on stable Rust carries this
/// list (std's `is_global` is unstable; the `ip_rfc` backport stopped in 2020, before
/// the registry's later entries), so it is kept here, one line per registry entry, and
/// each block is tested.
pub const NOT_PUBLIC_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private use
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private use
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private use
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and the broadcast address
];

/// IPv6 blocks a callback may not reach: those of the IANA IPv6 Special-Purpose Address
/// Registry not marked globally reachable, multicast, the deprecated site-local block,
/// and every block that carries an IPv4 address inside (IPv4-compatible, -translated,
/// NAT64, 6to4, Teredo): through a translator those reach IPv4 addresses such as the
/// metadata service, and no real receiver needs them.
pub const NOT_PUBLIC_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96), // IPv4-mapped (judged as IPv4 first)
    (Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0), 96), // IPv4-translated
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96), // NAT64 well-known prefix
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // NAT64 local use
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32), // Teredo
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48), // benchmarking
    (Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0), 28), // ORCHID (deprecated)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

fn is_public_v4(a: Ipv4Addr) -> bool {
    let a = u32::from(a);
    !NOT_PUBLIC_V4.iter().any(|(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        a & mask == u32::from(*net) & mask
    })
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    let a = u128::from(a);
    !NOT_PUBLIC_V6.iter().any(|(net, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
        a & mask == u128::from(*net) & mask
    })
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

    #[test]
    fn every_non_public_block_is_refused_at_its_edges_and_its_neighbours_pass() {
        for (net, len) in NOT_PUBLIC_V4 {
            let first = u32::from(*net);
            let last = first | (u32::MAX >> len);
            for a in [first, last, first + (last - first) / 2] {
                assert!(
                    !is_public(Ipv4Addr::from(a).into()),
                    "{}",
                    Ipv4Addr::from(a)
                );
            }
        }
        for (net, len) in NOT_PUBLIC_V6 {
            let first = u128::from(*net);
            let last = first | (u128::MAX >> len);
            for a in [first, last, first + (last - first) / 2] {
                assert!(
                    !is_public(Ipv6Addr::from(a).into()),
                    "{}",
                    Ipv6Addr::from(a)
                );
            }
        }
        // Just outside a block (where that is no other block) is public.
        for a in [
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "93.184.216.34",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2003::1",
            "2001:1::1",
            "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:2::1",
            "101::1",
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = a.parse().expect(a);
            assert!(is_public(ip), "{a}");
        }
    }

    #[tokio::test]
    async fn ipv4_inside_ipv6_and_special_ipv4_ranges_are_refused() {
        for url in [
            "http://[::127.0.0.1]/cb",
            "http://[::ffff:0:7f00:1]/cb",
            "http://[::ffff:0:a9fe:a9fe]/cb",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
            "http://[64:ff9b::5db8:d822]/cb",
            "http://[64:ff9b:1::1]/cb",
            "http://[2002:7f00:1::]/cb",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/cb",
            "http://[fec0::1]/cb",
            "http://[100::1]/cb",
            "http://[2001:db8::1]/cb",
            "http://[ff02::1]/cb",
            "http://192.0.0.8/cb",
            "http://192.0.2.1/cb",
            "http://198.18.0.1/cb",
            "http://198.19.255.255/cb",
            "http://240.0.0.1/cb",
            "http://255.255.255.255/cb",
            "http://224.0.0.1/cb",
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
