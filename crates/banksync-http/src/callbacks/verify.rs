//! Where callbacks are verified: the `Signature` header must be Salt Edge's RSA-SHA256 over
//! `callback_url|raw body`, where `callback_url` is exactly the URL registered at Salt Edge
//! for that kind ([`super::urls`]), not whatever Host header arrived.

use crate::error::ApiError;
use axum::http::HeaderMap;
use saltedge_client::{SignatureError, Verifier};

/// Checks `body` against the `Signature` header and the URL registered for this kind.
pub fn verify(
    verifier: &Verifier,
    registered_url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let sig = headers
        .get("signature")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty())
        .ok_or(ApiError::BadSignature("missing_signature"))?;
    match verifier.verify_callback(registered_url, body, sig) {
        Ok(()) => Ok(()),
        Err(SignatureError::Missing) => Err(ApiError::BadSignature("missing_signature")),
        Err(_) => Err(ApiError::BadSignature("invalid_signature")),
    }
}
