//! Webhook signing secrets at rest: sealed with AES-256-GCM under a key from the
//! configuration (`webhooks.secret_key`), the company's id as associated data (a sealed
//! secret copied to another company's row does not open). A database dump or a read-only
//! SQL injection yields no secret that signs.
//!
//! Stored form: `sealed:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`, the key id being
//! the first 8 hex digits of the key's SHA-256 (which key sealed a row, without revealing
//! it). A row still in clear (`whsec_…`, from before sealing) is opened as it is and sealed
//! by [`seal_clear_rows`], which `banksync serve` runs at start.
//!
//! AES-GCM from RustCrypto's `aes-gcm` (audited, constant-time with AES-NI): a
//! hand-written cipher has no place here.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

const PREFIX: &str = "sealed:v1:";

/// The key webhook secrets are sealed with.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

/// The development key: public, for tests, the demo and the simulator stack only
/// (`banksync serve` refuses it unless `saltedge.simulator` is set).
const DEVELOPMENT: [u8; 32] = *b"banksync-development-webhook-key";

impl SecretKey {
    /// A key from 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        let id = hex8(&Sha256::digest(bytes));
        SecretKey {
            cipher: Aes256Gcm::new(&bytes.into()),
            id,
        }
    }

    /// A key from base64 of 32 bytes (`openssl rand -base64 32`); the error says what is
    /// wrong without repeating the input.
    pub fn from_base64(text: &str) -> std::result::Result<SecretKey, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| "webhooks.secret_key is not base64".to_string())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "webhooks.secret_key must be 32 bytes (base64 of them), not {}",
                b.len()
            )
        })?;
        Ok(SecretKey::from_bytes(bytes))
    }

    pub fn development() -> SecretKey {
        SecretKey::from_bytes(DEVELOPMENT)
    }

    pub fn is_development(&self) -> bool {
        self.id == SecretKey::development().id
    }

    /// The key's id (first 8 hex digits of its SHA-256).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `secret` sealed for `company`.
    pub fn seal(&self, company: Uuid, secret: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: company.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message under 64 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.id, B64.encode(out))
    }

    /// The secret in `stored` (sealed for `company`, or a row still in clear).
    pub fn open(&self, company: Uuid, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return if stored.starts_with(super::SECRET_PREFIX) {
                Ok(stored.to_string())
            } else {
                Err(SyncError::Corrupt(
                    "a webhook secret in an unknown form".into(),
                ))
            };
        };
        let (id, data) = rest.split_once(':').ok_or_else(|| {
            SyncError::Corrupt("a sealed webhook secret without its key id".into())
        })?;
        if id != self.id {
            return Err(SyncError::Corrupt(format!(
                "a webhook secret sealed with key {id}, but webhooks.secret_key is key {}",
                self.id
            )));
        }
        let data = B64
            .decode(data)
            .ok()
            .filter(|d| d.len() > 12)
            .ok_or_else(|| SyncError::Corrupt("a sealed webhook secret is damaged".into()))?;
        let (nonce, sealed) = data.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: company.as_bytes(),
                },
            )
            .map_err(|_| {
                SyncError::Corrupt("a sealed webhook secret does not open for its company".into())
            })?;
        String::from_utf8(plain)
            .map_err(|_| SyncError::Corrupt("a sealed webhook secret is damaged".into()))
    }
}

fn hex8(digest: &[u8]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Seals every secret still stored in clear (current and previous); how many rows changed.
/// Each row is its own short statement, so a running deliverer is never blocked for long.
pub async fn seal_clear_rows(pool: &PgPool, key: &SecretKey) -> Result<u64> {
    let rows = sqlx::query!(
        r#"SELECT id, company_id, secret, previous_secret FROM webhook_endpoints
           WHERE secret LIKE 'whsec\_%' OR previous_secret LIKE 'whsec\_%'"#
    )
    .fetch_all(pool)
    .await?;
    let mut changed = 0;
    for r in rows {
        let seal = |s: &str| {
            if s.starts_with(PREFIX) {
                s.to_string()
            } else {
                key.seal(r.company_id, s)
            }
        };
        let secret = seal(&r.secret);
        let previous = r.previous_secret.as_deref().map(seal);
        // Only if the row still holds what was read (a rotation in between wins).
        changed += sqlx::query!(
            r#"UPDATE webhook_endpoints SET secret = $3, previous_secret = $4
               WHERE id = $1 AND company_id = $2 AND secret = $5
                 AND previous_secret IS NOT DISTINCT FROM $6"#,
            r.id,
            r.company_id,
            secret,
            previous,
            r.secret,
            r.previous_secret
        )
        .execute(pool)
        .await?
        .rows_affected();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_for_its_company_only() {
        let key = SecretKey::from_bytes([7; 32]);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = key.seal(a, "whsec_abc");
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", key.id())));
        assert!(!sealed.contains("abc"));
        assert_ne!(sealed, key.seal(a, "whsec_abc"), "a fresh nonce each time");
        assert_eq!(key.open(a, &sealed).unwrap(), "whsec_abc");
        assert!(key.open(b, &sealed).is_err(), "another company's row");
        let other = SecretKey::from_bytes([8; 32]);
        let e = other.open(a, &sealed).unwrap_err().to_string();
        assert!(e.contains(key.id()) && e.contains(other.id()), "{e}");
        assert_eq!(key.open(a, "whsec_clear").unwrap(), "whsec_clear");
        assert!(key.open(a, "garbage").is_err());
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push('A');
        assert!(key.open(a, &damaged).is_err());
    }

    #[test]
    fn keys_are_read_from_base64_of_32_bytes() {
        let text = B64.encode([1u8; 32]);
        assert!(SecretKey::from_base64(&text).is_ok());
        assert!(SecretKey::from_base64(&B64.encode([1u8; 16]))
            .unwrap_err()
            .contains("32 bytes"));
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(SecretKey::development().is_development());
        assert!(!SecretKey::from_bytes([1; 32]).is_development());
        assert!(!format!("{:?}", SecretKey::from_bytes([1; 32])).contains("1, 1"));
    }
}
