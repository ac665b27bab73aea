//! Salt Edge's two signatures, both RSA PKCS#1 v1.5 over SHA-256, base64 without newlines:
//!
//! * requests we send: `Expires-at|METHOD|full URL|body` — four fields, no trailing bar;
//!   only a file upload adds the file's SHA-256 as a fifth field and a final bar
//!   (`…|body|sha256|`) — signed with *our* private key. Evidence: the guide's examples
//!   (`1413802718|GET|<url>|`, `1413802718|POST|<url>|{"data":…}`) and Salt Edge's sample
//!   apps (`saltedge/saltedge-examples`, Ruby: `"#{expires_at}|#{method}|#{url}|#{params}"`);
//!   checked against `conformance/saltedge-request-signing.json` in
//!   `tests/conformance.rs`;
//! * callbacks we receive: `callback_url|raw body`, signed with *Salt Edge's* private key
//!   and verified with its public key.
//!
//! Keys are read with `rsa`. Signing (every request) and verification (every callback) run
//! on hot paths, so both use `ring` (already in the build through rustls): `rsa`'s generic
//! modular exponentiation made one 2048-bit verification cost ~190 µs, a third of the
//! machine under callback load. Signature checks compare public values, so there is no
//! secret for timing to leak.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("not a usable RSA private key in PEM form (PKCS#8 or PKCS#1 expected)")]
    BadPrivateKey,
    #[error("not a usable RSA public key in PEM form (SPKI or PKCS#1 expected)")]
    BadPublicKey,
    #[error("RSA keys under 2048 bits are refused")]
    WeakKey,
    #[error("signature missing")]
    Missing,
    #[error("signature is not valid base64")]
    NotBase64,
    #[error("signature does not match")]
    Mismatch,
}

/// Signs with an RSA private key. Its `Debug` never shows the key. Signing runs on every
/// request, so 2048–4096-bit keys sign with ring (several times faster than `rsa`'s
/// generic exponentiation); other sizes fall back to `rsa`.
#[derive(Clone)]
pub struct Signer {
    key: SignerKey,
}

#[derive(Clone)]
enum SignerKey {
    Ring(std::sync::Arc<ring::signature::RsaKeyPair>),
    Rsa(Box<SigningKey<Sha256>>),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([private key redacted])")
    }
}

impl Signer {
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        use rsa::pkcs8::EncodePrivateKey;
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| SignatureError::BadPrivateKey)?;
        // Under 2048 bits is not a key anyone should sign with.
        if rsa::traits::PublicKeyParts::size(&key) < 256 {
            return Err(SignatureError::WeakKey);
        }
        let ring_key = key
            .to_pkcs8_der()
            .ok()
            .and_then(|der| ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).ok());
        Ok(Signer {
            key: match ring_key {
                Some(k) => SignerKey::Ring(std::sync::Arc::new(k)),
                None => SignerKey::Rsa(Box::new(SigningKey::new(key))),
            },
        })
    }

    /// Base64 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        match &self.key {
            SignerKey::Ring(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .expect("RSA signing with a valid key");
                B64.encode(sig)
            }
            SignerKey::Rsa(k) => {
                let sig: Signature = k.sign(message);
                B64.encode(sig.to_bytes())
            }
        }
    }

    /// The signature headers' value for one request.
    pub fn sign_request(&self, expires_at: i64, method: &str, url: &str, body: &str) -> String {
        self.sign(request_signing_string(expires_at, method, url, body, None).as_bytes())
    }

    /// The callback `Signature` header for `url` and `body` (what Salt Edge does).
    pub fn sign_callback(&self, callback_url: &str, body: &[u8]) -> String {
        self.sign(&callback_signing_bytes(callback_url, body))
    }
}

/// Verifies with an RSA public key (2048 to 8192 bits). Cheap to clone (shared bytes).
#[derive(Clone, Debug)]
pub struct Verifier {
    n: std::sync::Arc<[u8]>,
    e: std::sync::Arc<[u8]>,
}

impl Verifier {
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        use rsa::traits::PublicKeyParts;
        let key = RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
            .map_err(|_| SignatureError::BadPublicKey)?;
        if key.size() < 256 {
            return Err(SignatureError::WeakKey);
        }
        Ok(Verifier {
            n: key.n().to_bytes_be().into(),
            e: key.e().to_bytes_be().into(),
        })
    }

    pub fn verify(&self, message: &[u8], signature_b64: &str) -> Result<(), SignatureError> {
        let sig = signature_b64.trim();
        if sig.is_empty() {
            return Err(SignatureError::Missing);
        }
        let raw = B64.decode(sig).map_err(|_| SignatureError::NotBase64)?;
        let key = ring::signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        };
        key.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, message, &raw)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// Checks a callback's `Signature` header against the URL it was posted to and its raw body.
    pub fn verify_callback(
        &self,
        callback_url: &str,
        body: &[u8],
        signature_b64: &str,
    ) -> Result<(), SignatureError> {
        self.verify(&callback_signing_bytes(callback_url, body), signature_b64)
    }
}

/// `Expires-at|METHOD|original_url|post_body` or, with a file, `…|post_body|sha256|`.
pub fn request_signing_string(
    expires_at: i64,
    method: &str,
    url: &str,
    body: &str,
    file_sha256: Option<&str>,
) -> String {
    let method = method.to_ascii_uppercase();
    match file_sha256 {
        Some(digest) => format!("{expires_at}|{method}|{url}|{body}|{digest}|"),
        None => format!("{expires_at}|{method}|{url}|{body}"),
    }
}

/// `callback_url|raw body`, byte for byte.
pub fn callback_signing_bytes(callback_url: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(callback_url.len() + 1 + body.len());
    v.extend_from_slice(callback_url.as_bytes());
    v.push(b'|');
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_strings_match_the_guide() {
        assert_eq!(
            request_signing_string(1413802718, "get", "u", "", None),
            "1413802718|GET|u|"
        );
        assert_eq!(
            request_signing_string(1413802718, "POST", "u", "{}", None),
            "1413802718|POST|u|{}"
        );
        assert_eq!(
            request_signing_string(
                1413802718,
                "POST",
                "",
                r#"{"data":{"identifier":"my_unique_identifier"}}"#,
                Some("6979a174280bdf7319940c59fabbd2b8")
            ),
            r#"1413802718|POST||{"data":{"identifier":"my_unique_identifier"}}|6979a174280bdf7319940c59fabbd2b8|"#
        );
    }
}
