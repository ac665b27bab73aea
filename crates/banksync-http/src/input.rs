//! Request fields checked exactly as the OpenAPI schema states them, so that a client
//! generated from the document and the server agree on every value. The patterns are
//! repeated in the `#[schema(pattern = …)]` attributes of [`crate::dto`] (attributes take
//! literals); `tests/api.rs` checks that the served document carries these patterns and
//! that each function accepts exactly what its pattern matches.

pub const EMAIL_PATTERN: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$";
pub const PHONE_PATTERN: &str = r"^[ ().-]*\+?(?:[ ().-]*[0-9]){7,15}[ ().-]*$";
pub const RETURN_TO_PATTERN: &str = r"^https?://\S+$";
pub const TEXT_PATTERN: &str = r"^[^\x00]*$";

/// Exactly the schema's pattern for `email` ([`EMAIL_PATTERN`]): a local part of 1 to
/// 64 characters without `@`, white space or control characters, and a domain of at least
/// two labels of ASCII letters, digits and `-`; at most 254 characters. Nothing is
/// trimmed: the caller sends the address as it is meant.
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    e.chars().count() <= 254
        && (1..=64).contains(&local.chars().count())
        && !local.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Exactly the schema's pattern for `phone` ([`PHONE_PATTERN`]): an optional `+`, then 7
/// to 15 digits; spaces, dots, dashes and brackets anywhere. Returns the number without
/// the separators.
pub fn normalise_phone(p: &str) -> Option<String> {
    let kept: String = p.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    (digits.len() >= 7 && digits.len() <= 15 && digits.chars().all(|c| c.is_ascii_digit())).then_some(kept)
}

/// [`RETURN_TO_PATTERN`] and at most 2048 characters: `http://` or `https://`, then
/// something without white space.
pub fn return_to_shaped(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && u.chars().count() <= 2048
        && !u.chars().any(char::is_whitespace)
        && u.split_once("://").is_some_and(|(_, rest)| !rest.is_empty())
}
