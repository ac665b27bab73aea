//! Request fields checked exactly as the OpenAPI schema states them, so that a client
//! generated from the document and the server agree on every value. The patterns are
//! repeated in the `#[schema(pattern = …)]` attributes of [`crate::dto`] (attributes take
//! literals); `tests/api.rs` checks that the served document carries these patterns and
//! that each function accepts exactly what its pattern matches.

// Character classes are spelled out in ASCII ranges, never `\s` or `\S`: regex dialects
// disagree on white space (JSON Schema's ECMA-262 leaves out U+0085, Rust and Python take
// it in), and a client generated from the document must agree with the server.
pub const EMAIL_PATTERN: &str = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$";
pub const PHONE_PATTERN: &str = r"^[ ().-]*\+?(?:[ ().-]*[0-9]){7,15}[ ().-]*$";
pub const RETURN_TO_PATTERN: &str = r"^https?://[!-~]+$";
pub const TEXT_PATTERN: &str = r"^[^\x00]*$";

/// Exactly the schema's pattern for `email` ([`EMAIL_PATTERN`]): a local part of 1 to
/// 64 visible ASCII characters other than `@`, and a domain of at least two labels of ASCII
/// letters, digits and `-`; at most 254 characters. Nothing is trimmed: the caller sends
/// the address as it is meant.
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.chars().count() <= 254
        && (1..=64).contains(&local.chars().count())
        && local.chars().all(|c| c.is_ascii_graphic())
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Exactly the schema's pattern for `phone` ([`PHONE_PATTERN`]): an optional `+`, then 7
/// to 15 digits; spaces, dots, dashes and brackets anywhere. Returns the number without
/// the separators.
pub fn normalise_phone(p: &str) -> Option<String> {
    let kept: String = p
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    (digits.len() >= 7 && digits.len() <= 15 && digits.chars().all(|c| c.is_ascii_digit()))
        .then_some(kept)
}

/// [`RETURN_TO_PATTERN`] and at most 2048 characters: `http://` or `https://`, then one or
/// more visible ASCII characters (a URL as sent on the wire: anything else percent-encoded).
pub fn return_to_shaped(u: &str) -> bool {
    u.len() <= 2048
        && ["http://", "https://"].iter().any(|scheme| {
            u.strip_prefix(scheme)
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_graphic()))
        })
}
