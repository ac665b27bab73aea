//! Where webhooks may go. A URL is checked when an endpoint is registered (https unless
//! `allow_http`; no credentials in it; an IP literal must be a public address unless
//! `allow_private_targets`), and the address a name resolves to is checked again when
//! connecting (the HTTP client's resolver refuses loopback, private, link-local, shared,
//! multicast and unspecified addresses), so DNS that changes after registration cannot
//! point a delivery inside the network. Redirects are never followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::error::{Result, SyncError};

/// What targets are allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetPolicy {
    /// Plain `http://` URLs (development only).
    pub allow_http: bool,
    /// Loopback, private and link-local addresses (development and tests only).
    pub allow_private_targets: bool,
}

/// An address a webhook may not reach unless private targets are allowed.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                // 192.0.0.0/24, IETF protocol assignments
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                // 198.18.0.0/15, benchmarking
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // fec0::/10 site-local (deprecated, still routed inside some networks)
                || (s[0] & 0xffc0) == 0xfec0
                // ::/96 IPv4-compatible and ::ffff:0:0:0/96 IPv4-translated addresses carry
                // an IPv4 address a stack may reach
                || (s[..6] == [0, 0, 0, 0, 0, 0])
                || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
                // 64:ff9b::/96 and 64:ff9b:1::/48 NAT64 could reach IPv4 private space
                || (s[0] == 0x64 && s[1] == 0xff9b)
                // 2001:db8::/32 documentation
                || (s[0] == 0x2001 && s[1] == 0xdb8)
        }
    }
}

/// Checks an endpoint URL against the policy; returns it parsed.
pub fn check_url(raw: &str, policy: TargetPolicy) -> Result<url::Url> {
    let bad = |why: &str| SyncError::invalid("invalid_webhook_url", why.to_string());
    if raw.len() > 2000 {
        return Err(bad("the URL is longer than 2000 characters"));
    }
    let u = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL: {e}")))?;
    match u.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(bad("webhook URLs must use https")),
        _ => return Err(bad("webhook URLs must use https")),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted; the signature authenticates us",
        ));
    }
    match u.host() {
        None => return Err(bad("the URL has no host")),
        Some(url::Host::Ipv4(ip)) if !policy.allow_private_targets && is_private(ip.into()) => {
            return Err(bad(
                "the URL points at a private, loopback or link-local address",
            ))
        }
        Some(url::Host::Ipv6(ip)) if !policy.allow_private_targets && is_private(ip.into()) => {
            return Err(bad(
                "the URL points at a private, loopback or link-local address",
            ))
        }
        Some(url::Host::Domain(d))
            if !policy.allow_private_targets
                && (d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")) =>
        {
            return Err(bad("the URL points at this machine"))
        }
        _ => {}
    }
    Ok(u)
}

/// The HTTP client's resolver: the system's, minus the addresses the policy refuses.
struct Resolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            // One answer for a name that does not resolve and one that resolves only to
            // refused addresses, without the name or the resolver's words: a delivery's
            // error must not tell a tenant which internal names exist.
            let refused = || -> Box<dyn std::error::Error + Send + Sync> {
                "the host does not resolve to a public address".into()
            };
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|_| refused())?
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(refused());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client deliveries go through: the checking resolver, no redirects, timeouts, and
/// no proxy (`HTTP(S)_PROXY` / `ALL_PROXY` are ignored): through a proxy, the proxy would
/// resolve the name and the resolver's address check would never run.
pub fn client(
    policy: TargetPolicy,
    connect_timeout: std::time::Duration,
    timeout: std::time::Duration,
) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Resolver {
            allow_private: policy.allow_private_targets,
        }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .user_agent(concat!("banksync-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with these options builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "::a00:1",
            "::127.0.0.1",
            "fec0::1",
            "64:ff9b::a00:1",
            "64:ff9b:1::a00:1",
            "::ffff:0:a00:1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_against_the_policy() {
        let strict = TargetPolicy::default();
        assert!(check_url("https://hooks.example.com/banksync", strict).is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://x.example/",
            "https://user:pw@x.example/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest",
            "https://localhost:8443/",
            "not a url",
            "https://10.0.0.5/",
        ] {
            let e = check_url(bad, strict).unwrap_err();
            assert!(
                matches!(
                    e,
                    SyncError::Invalid {
                        code: "invalid_webhook_url",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        let dev = TargetPolicy {
            allow_http: true,
            allow_private_targets: true,
        };
        assert!(check_url("http://127.0.0.1:9000/hook", dev).is_ok());
    }

    /// A proxy in the environment is not used: the proxy would resolve the name, and the
    /// address check would never run.
    #[tokio::test]
    async fn deliveries_ignore_proxies_from_the_environment() {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = reached.clone();
        tokio::spawn(async move {
            while let Ok((_s, _)) = proxy.accept().await {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Each test runs in its own process (nextest): the variables touch this test only.
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            std::env::set_var(var, format!("http://{addr}"));
        }
        let c = client(
            TargetPolicy {
                allow_http: true,
                allow_private_targets: false,
            },
            std::time::Duration::from_secs(2),
            std::time::Duration::from_secs(2),
        );
        let e = c
            .post("http://metadata.internal.invalid/latest")
            .send()
            .await
            .unwrap_err();
        assert!(
            !reached.load(std::sync::atomic::Ordering::SeqCst),
            "went through the proxy"
        );
        // What a delivery records (`deliver::describe`): the causes, not the URL.
        let mut why = String::new();
        let mut src = std::error::Error::source(&e);
        while let Some(x) = src {
            why.push_str(&format!("{x}; "));
            src = x.source();
        }
        assert!(
            why.contains("does not resolve to a public address"),
            "{why}"
        );
        assert!(
            !why.contains("metadata.internal"),
            "the error names the host: {why}"
        );
    }
}
