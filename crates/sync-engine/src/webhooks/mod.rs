//! Outbound webhooks to the frontend, signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com/>, `spec/standard-webhooks.md`): headers
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, space-separated when more than
//! one secret is current, as during a rotation); secrets are `whsec_` + base64 of 24 random
//! bytes. Tested against the `standardwebhooks` package from PyPI, an implementation we do
//! not share code with.

pub mod deliver;
pub mod endpoints;
pub mod reminders;
pub mod seal;
pub mod target;

pub use deliver::{Deliverer, DeliveryConfig};
pub use endpoints::Rules;
pub use seal::SecretKey;
pub use target::TargetPolicy;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The events, as endpoints filter them and bodies' `type` names them.
pub const KINDS: [&str; 7] = [
    "lines.changed",
    "lines.flagged",
    "connection.status_changed",
    "connection.needs_reconnect",
    "consent.expiring",
    "consent.expired",
    "sync.failed",
];

/// Writes an event to the outbox, fanned out to the company's endpoints that want it, in
/// the caller's transaction (the database triggers of migration 0023 do the same for the
/// changes they watch).
pub async fn emit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    company: uuid::Uuid,
    connection: Option<uuid::Uuid>,
    kind: &str,
    data: &serde_json::Value,
) -> crate::error::Result<()> {
    sqlx::query!(
        "SELECT webhook_emit($1, $2, $3, $4)",
        company,
        connection,
        kind,
        data
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(())
}

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` + base64 of 24 random bytes (192 bits).
pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// The key bytes of a `whsec_` secret; `None` if it is not one.
fn key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// The headers of one delivery attempt of message `id` with `body`, signed at `timestamp`
/// with every secret in `secrets` (the current one, and the previous one while a rotation
/// is in its grace period). Secrets that are not `whsec_` ones are skipped.
pub fn headers(id: &str, timestamp: i64, body: &[u8], secrets: &[&str]) -> [(String, String); 3] {
    let mut content = Vec::with_capacity(id.len() + body.len() + 24);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    let signatures: Vec<String> = secrets
        .iter()
        .filter_map(|s| key(s))
        .map(|k| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&k).expect("HMAC takes any key length");
            mac.update(&content);
            format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
        })
        .collect();
    [
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signatures.join(" ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_with_24_random_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(key(&a).unwrap().len(), 24);
        assert_eq!(key("not-a-secret"), None);
    }

    /// The example of the Standard Webhooks specification (and of its reference libraries'
    /// tests): secret `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw`, id `msg_p5jXN8AQM9LWM0D4loKWxJek`,
    /// timestamp 1614265330, body `{"test": 2432232314}`.
    #[test]
    fn the_specifications_example_signs_the_same() {
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        );
        assert_eq!(h[2].1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
