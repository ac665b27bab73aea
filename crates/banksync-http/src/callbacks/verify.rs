//! Where callbacks are verified: the `Signature` header must be Salt Edge's RSA-SHA256 over
//! `callback_url|raw body`, where `callback_url` is exactly the URL configured at Salt Edge
//! (our public base + `callbacks/saltedge/{kind}`), not whatever Host header arrived.

use axum::http::HeaderMap;
use saltedge_client::{SignatureError, Verifier};
use url::Url;

use crate::error::ApiError;

pub const KINDS: &[&str] = &["success", "fail", "notify", "interactive", "destroy", "service"];

/// The URL Salt Edge signs for `kind`.
pub fn callback_url(base: &Url, kind: &str) -> String {
    base.join(kind).map(|u| u.to_string()).unwrap_or_default()
}

pub fn verify(verifier: &Verifier, base: &Url, kind: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let sig = headers
        .get("signature")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty())
        .ok_or(ApiError::BadSignature("missing_signature"))?;
    match verifier.verify_callback(&callback_url(base, kind), body, sig) {
        Ok(()) => Ok(()),
        Err(SignatureError::Missing) => Err(ApiError::BadSignature("missing_signature")),
        Err(_) => Err(ApiError::BadSignature("invalid_signature")),
    }
}
