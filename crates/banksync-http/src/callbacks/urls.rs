//! The callback URLs as registered at Salt Edge: one full URL per kind, kept as the exact
//! string configured (Salt Edge signs `callback_url|body` over that string, trailing slash
//! and all — the conformance callback was posted to `…/callbacks/success/`). The receiver
//! answers at each URL's path.

use std::collections::BTreeMap;

use url::Url;

pub const KINDS: &[&str] = &[
    "success",
    "fail",
    "notify",
    "interactive",
    "destroy",
    "service",
    // v6 (third-party sources only, v6 notes §5.3): a provider changed; a consent changed.
    "provider_changes",
    "consent_changes",
];

#[derive(Debug, Clone)]
pub struct CallbackUrl {
    pub kind: &'static str,
    /// Exactly as registered at Salt Edge: what the signature covers.
    pub registered: String,
    /// Where the receiver listens.
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct CallbackUrls(Vec<CallbackUrl>);

impl CallbackUrls {
    /// `{base}{kind}` for every kind (`base` ends in `/`): the default layout,
    /// `https://host/callbacks/saltedge/success` and so on.
    pub fn under(base: &Url) -> Self {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let urls = KINDS
            .iter()
            .map(|k| base.join(k).map(|u| u.to_string()).unwrap_or_default());
        Self::checked(KINDS.iter().copied().zip(urls)).expect("default callback URLs are valid")
    }

    /// The default layout under `base`, with the kinds in `registered` replaced by the URL
    /// given for them (as registered at Salt Edge).
    pub fn with_overrides(
        base: &Url,
        registered: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        for k in registered.keys() {
            if !KINDS.contains(&k.as_str()) {
                return Err(format!(
                    "unknown callback kind {k:?}; kinds are {}",
                    KINDS.join(", ")
                ));
            }
        }
        let defaults = Self::under(base);
        let pairs = defaults.0.into_iter().map(|d| {
            (
                d.kind,
                registered.get(d.kind).cloned().unwrap_or(d.registered),
            )
        });
        Self::checked(pairs)
    }

    fn checked(pairs: impl Iterator<Item = (&'static str, String)>) -> Result<Self, String> {
        let mut out: Vec<CallbackUrl> = vec![];
        for (kind, registered) in pairs {
            let url = Url::parse(&registered)
                .map_err(|e| format!("callback URL for {kind} ({registered}): {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "callback URL for {kind} must be http(s): {registered}"
                ));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "callback URL for {kind} must not carry a query or fragment: {registered}"
                ));
            }
            let path = url.path().to_string();
            if let Some(other) = out.iter().find(|o| o.path == path) {
                return Err(format!("callback URLs for {} and {kind} share the path {path}; register one URL per kind", other.kind));
            }
            out.push(CallbackUrl {
                kind,
                registered,
                path,
            });
        }
        Ok(CallbackUrls(out))
    }

    pub fn all(&self) -> &[CallbackUrl] {
        &self.0
    }

    /// The registered URL for `kind`.
    pub fn url(&self, kind: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.registered.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_mistakes() {
        let base = Url::parse("https://books.example/").unwrap();
        let d = CallbackUrls::under(&base.join("callbacks/saltedge/").unwrap());
        assert_eq!(
            d.url("fail"),
            Some("https://books.example/callbacks/saltedge/fail")
        );
        let mut reg = BTreeMap::new();
        reg.insert(
            "success".to_string(),
            "https://Books.example/callbacks/success/".to_string(),
        );
        let o = CallbackUrls::with_overrides(&base, &reg).unwrap();
        assert_eq!(
            o.url("success"),
            Some("https://Books.example/callbacks/success/"),
            "kept exactly as registered"
        );
        assert_eq!(
            o.all().iter().find(|c| c.kind == "success").unwrap().path,
            "/callbacks/success/"
        );
        reg.insert(
            "fail".to_string(),
            "https://books.example/callbacks/success/".to_string(),
        );
        assert!(CallbackUrls::with_overrides(&base, &reg)
            .unwrap_err()
            .contains("share the path"));
        reg.clear();
        reg.insert("sucess".to_string(), "https://x.example/a".to_string());
        assert!(CallbackUrls::with_overrides(&base, &reg).is_err());
        reg.clear();
        reg.insert("success".to_string(), "ftp://x.example/a".to_string());
        assert!(CallbackUrls::with_overrides(&base, &reg).is_err());
    }
}
