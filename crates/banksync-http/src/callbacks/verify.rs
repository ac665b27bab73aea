//! Where callbacks are verified: the `Signature` header must be Salt Edge's RSA-SHA256 over
//! `callback_url|raw body`, where `callback_url` is exactly the URL registered at Salt Edge
//! for that kind ([`super::urls`]), not whatever Host header arrived.
//!
//! v6 callbacks are signed with a key of their own (`saltedge.callback_public_key_v6_file`;
//! v6 notes §5.2). A `Signature-key-version` header names the key in third-party v6 code
//! (`6.0`), never in Salt Edge's own pages: so it is accepted when missing (either key may
//! verify), selects the v6 key when it names a v6 version, and is refused with any other
//! value — an unknown key version fails closed.

use crate::error::ApiError;
use axum::http::HeaderMap;
use saltedge_client::{SignatureError, Verifier};

/// `Signature-key-version` values that name the v6 key.
const V6_KEY_VERSIONS: [&str; 2] = ["6.0", "6"];

/// Checks `body` against the `Signature` header and the URL registered for this kind, with
/// Salt Edge's v5 key or (when configured) its v6 key.
pub fn verify(
    v5: &Verifier,
    v6: Option<&Verifier>,
    registered_url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let sig = headers
        .get("signature")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty())
        .ok_or(ApiError::BadSignature("missing_signature"))?;
    let keys: Vec<&Verifier> = match headers.get("signature-key-version") {
        None => std::iter::once(v5).chain(v6).collect(),
        Some(v) => match v.to_str().map(str::trim) {
            Ok(k) if V6_KEY_VERSIONS.contains(&k) => v6.into_iter().collect(),
            _ => return Err(ApiError::BadSignature("unknown_key_version")),
        },
    };
    let mut missing = false;
    for key in keys {
        match key.verify_callback(registered_url, body, sig) {
            Ok(()) => return Ok(()),
            Err(SignatureError::Missing) => missing = true,
            Err(_) => {}
        }
    }
    Err(ApiError::BadSignature(if missing {
        "missing_signature"
    } else {
        "invalid_signature"
    }))
}
