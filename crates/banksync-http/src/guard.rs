//! How often a caller may come: requests per token, and failed authentications per client
//! address, each counted by this process in fixed one-minute windows (every replica counts
//! its own). The client address is the peer's, or with `server.trust_forwarded_for` the
//! last `X-Forwarded-For` entry (the one the proxy in front of us appended).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use axum::http::request::Parts;
use uuid::Uuid;

/// Counts per key in one-minute windows; 0 = no limit. At most ~100,000 keys are held
/// (older windows are dropped first).
#[derive(Debug)]
pub struct Windows<K> {
    pub per_minute: u32,
    windows: std::sync::Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq> Windows<K> {
    pub fn new(per_minute: u32) -> Self {
        Windows {
            per_minute,
            windows: Default::default(),
        }
    }

    /// Counts one for `key`: Ok, or the seconds until its window ends.
    pub fn count(&self, key: K) -> Result<(), u64> {
        self.take(key, true)
    }

    /// Ok while `key` is under the limit (nothing counted), or the seconds to wait.
    pub fn peek(&self, key: K) -> Result<(), u64> {
        self.take(key, false)
    }

    fn take(&self, key: K, count: bool) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start).as_secs() < 60);
        }
        let e = w.entry(key).or_insert((now, 0));
        if now.duration_since(e.0).as_secs() >= 60 {
            *e = (now, 0);
        }
        if e.1 >= self.per_minute {
            return Err(60u64
                .saturating_sub(now.duration_since(e.0).as_secs())
                .max(1));
        }
        if count {
            e.1 += 1;
        }
        Ok(())
    }
}

/// Requests per token per minute.
pub type RateLimiter = Windows<Uuid>;

/// Failed authentications (API bearer tokens, console sign-ins and sign-in links) per
/// client: an address over the limit is refused before its token is even looked up.
pub type AuthFailures = Windows<ClientKey>;

/// Where failures are counted: an IPv4 address, or an IPv6 /64 (one host's share of the
/// address space, which it can rotate through at will); `None` when the address is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(Option<IpAddr>);

impl ClientKey {
    pub fn of(addr: Option<IpAddr>) -> Self {
        ClientKey(addr.map(|a| match a {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }))
    }
}

/// The client's address: the peer's, or the proxy's last `X-Forwarded-For` entry when the
/// proxy is trusted. `None` when neither is known (a server built without connect info).
pub fn client_addr(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .and_then(|v| v.parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// A caller about to present a credential: where from, admitted while its address is
/// under the failed-authentication limit.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub addr: Option<IpAddr>,
}

impl Caller {
    /// The caller of `parts`, or the seconds to wait when its address has failed too often.
    pub fn admit(parts: &Parts, st: &crate::AppState) -> Result<Caller, u64> {
        let addr = client_addr(&parts.headers, &parts.extensions, st.trust_forwarded_for);
        st.auth_failures.peek(ClientKey::of(addr))?;
        Ok(Caller { addr })
    }

    /// Its credential was refused (`what`: `GET /api/v1/…`, `console sign-in`): counted
    /// against its address and written to the audit log with the address (never the
    /// credential).
    pub async fn refused(&self, st: &crate::AppState, what: &str) {
        let _ = st.auth_failures.count(ClientKey::of(self.addr));
        let detail = self.describe();
        let entry = sync_engine::audit::Entry {
            token_id: None,
            company_id: None,
            actor: "anonymous",
            action: "authentication refused",
            status: Some(401),
            detail: Some(&format!("{what}; {detail}")),
        };
        if let Err(e) = sync_engine::audit::record(&st.pool, &entry).await {
            tracing::error!(error = %e, "audit log write failed");
        }
        tracing::info!(client = %detail, %what, "authentication refused");
    }

    /// `client 192.0.2.7`, or `client unknown`.
    pub fn describe(&self) -> String {
        describe(self.addr)
    }
}

/// On a response whose refusal was already recorded ([`Caller::refused`]): the audit
/// middleware writes nothing more.
#[derive(Debug, Clone, Copy)]
pub struct Recorded;

/// What the audit log says about an entry beyond who and what (the console's sign-in and
/// sign-out), put on the response by the handler.
#[derive(Debug, Clone, Copy)]
pub struct AuditNote(pub &'static str);

/// `client 192.0.2.7`, or `client unknown`.
pub fn describe(addr: Option<IpAddr>) -> String {
    {
        match addr {
            Some(a) => format!("client {a}"),
            None => "client unknown".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_and_refuses_over_the_limit() {
        let w = Windows::new(2);
        assert!(w.peek("a").is_ok());
        assert!(w.count("a").is_ok());
        assert!(w.count("a").is_ok());
        let wait = w.peek("a").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(w.count("b").is_ok(), "another key has its own window");
        assert!(Windows::new(0).count("a").is_ok(), "0 is no limit");
    }

    #[test]
    fn the_client_is_the_peer_or_the_trusted_proxys_last_entry() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.1".parse().unwrap(),
        );
        headers.append("x-forwarded-for", "192.0.2.7".parse().unwrap());
        let mut ext = axum::http::Extensions::new();
        let peer: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        ext.insert(axum::extract::ConnectInfo(peer));
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_addr(&headers, &ext, false), ip("10.0.0.2"));
        assert_eq!(client_addr(&headers, &ext, true), ip("192.0.2.7"));
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(
            client_addr(&headers, &ext, true),
            ip("10.0.0.2"),
            "an unreadable entry: the peer (the proxy) is counted"
        );
        assert_eq!(
            client_addr(&axum::http::HeaderMap::new(), &ext, true),
            ip("10.0.0.2"),
            "no header: the peer"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(Some(a)), ClientKey::of(Some(b)));
        assert_ne!(ClientKey::of(Some(a)), ClientKey::of(Some(c)));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            ClientKey::of(Some(mapped)),
            ClientKey::of(Some("192.0.2.7".parse().unwrap()))
        );
    }
}
