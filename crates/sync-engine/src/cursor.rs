//! Cursors the service hands out (list pages, the change feed, webhooks' `lines.changed`):
//! a position plus an HMAC-SHA256 over the scope (company, list, filters) and the
//! position, keyed by the `cursor` service secret every replica shares (migration 0015).
//! Made and checked here only, so that the API and the webhooks agree.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(secret: &[u8], scope: &str, position: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(scope.as_bytes());
    m.update(b"\n");
    m.update(position.as_bytes());
    m
}

/// `position`, signed for `scope`.
pub fn sign(secret: &[u8], scope: &str, position: &str) -> String {
    let tag = mac(secret, scope, position).finalize().into_bytes();
    format!("{}.{}", B64.encode(position), B64.encode(tag))
}

/// The position of a cursor signed for `scope` with `secret`; `None` for anything else.
/// The tags are compared in constant time.
pub fn verify(secret: &[u8], scope: &str, cursor: &str) -> Option<String> {
    let (pos, tag) = cursor.split_once('.')?;
    let pos = String::from_utf8(B64.decode(pos).ok()?).ok()?;
    let tag = B64.decode(tag).ok()?;
    mac(secret, scope, &pos).verify_slice(&tag).ok()?;
    Some(pos)
}

/// The change feed's scope for a company (no journal filter), as `GET /api/v1/changes`
/// signs it.
pub fn changes_scope(company: uuid::Uuid, journal: Option<uuid::Uuid>) -> String {
    format!("changes|{company}|{journal:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_verifies_only_for_its_scope_and_secret() {
        let c = sign(b"k", "a", "1.2.3");
        assert_eq!(verify(b"k", "a", &c).as_deref(), Some("1.2.3"));
        assert_eq!(verify(b"k", "b", &c), None);
        assert_eq!(verify(b"other", "a", &c), None);
        assert_eq!(verify(b"k", "a", "bogus"), None);
        let tampered = format!("{}.{}", B64.encode("1.2.4"), c.split_once('.').unwrap().1);
        assert_eq!(verify(b"k", "a", &tampered), None);
    }
}
