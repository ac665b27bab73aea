//! The simulator's side of Salt Edge's two signatures, written from the guide and
//! independent of saltedge-client (tests check both sides against
//! `conformance/saltedge-request-signing.json` and `saltedge-callback-v5.json`):
//!
//! * a request's `Signature` header is base64 RSA PKCS#1 v1.5 / SHA-256 of
//!   `Expires-at|METHOD|full URL|body` — four fields, no trailing bar (a GET therefore ends
//!   in one `|`: the empty body); only a file upload appends `|sha256 of the file|`;
//! * a callback's `Signature` header is the same scheme over `callback_url|raw body`,
//!   signed with Salt Edge's private key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// The string Salt Edge verifies a request signature over.
pub fn request_string(
    expires_at: &str,
    method: &str,
    url: &str,
    body: &str,
    file_sha256: Option<&str>,
) -> String {
    let mut s = format!("{expires_at}|{}|{url}|{body}", method.to_uppercase());
    if let Some(digest) = file_sha256 {
        s.push('|');
        s.push_str(digest);
        s.push('|');
    }
    s
}

/// A client's registered public key.
#[derive(Clone)]
pub struct ClientKey(VerifyingKey<Sha256>);

impl ClientKey {
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|e| format!("client public key: {e}"))?;
        Ok(ClientKey(VerifyingKey::new(key)))
    }

    pub fn verifies(&self, message: &str, signature_b64: &str) -> bool {
        let Ok(raw) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::try_from(raw.as_slice()) else {
            return false;
        };
        self.0.verify(message.as_bytes(), &sig).is_ok()
    }
}

/// The key Salt Edge signs callbacks with (a test key in the simulator).
#[derive(Clone)]
pub struct SaltEdgeKey(SigningKey<Sha256>);

impl SaltEdgeKey {
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| format!("simulator signing key: {e}"))?;
        Ok(SaltEdgeKey(SigningKey::new(key)))
    }

    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.0.sign(message).to_bytes())
    }

    /// `Signature` header for a callback posted to `callback_url`.
    pub fn sign_callback(&self, callback_url: &str, body: &str) -> String {
        self.sign(format!("{callback_url}|{body}").as_bytes())
    }
}
