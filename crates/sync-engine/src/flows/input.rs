//! The flows' inputs as domain types: parsed once, valid from then on. Each is checked
//! exactly as the REST API's OpenAPI schema states it, so that a client generated from the
//! document and the server agree on every value. The patterns are repeated in the
//! `#[schema(pattern = …)]` attributes of banksync-http's `dto` (attributes take literals);
//! its tests check that the served document carries these patterns and that each check
//! accepts exactly what its pattern matches.

use crate::error::{Result, SyncError};

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

/// An email address, as the schema's pattern says; it identifies the company's Salt Edge
/// customer (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self> {
        if !valid_email(s) {
            return Err(SyncError::invalid(
                "invalid_email",
                "the email address is not valid; it creates your Salt Edge account",
            ));
        }
        Ok(Email(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number without its separators (`+4930123456`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(s: &str) -> Result<Self> {
        normalise_phone(s).map(Phone).ok_or_else(|| {
            SyncError::invalid(
                "invalid_phone",
                "the phone number is not valid (7 to 15 digits, optional +)",
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where Salt Edge Connect sends the user back: an http(s) URL of the schema's shape. Whether
/// its origin is allowed for a company is the flows' check ([`super::allowed_return_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrl(String);

impl ReturnUrl {
    pub fn parse(s: &str) -> Result<Self> {
        if !return_to_shaped(s) {
            return Err(SyncError::invalid(
                "invalid_return_to",
                "return_to must be an http(s) URL",
            ));
        }
        Ok(ReturnUrl(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An institution (Salt Edge provider) code: 1 to 200 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCode(String);

impl ProviderCode {
    pub fn parse(s: &str) -> Result<Self> {
        if !(1..=200).contains(&s.chars().count()) {
            return Err(SyncError::invalid(
                "invalid_body",
                "`provider_code` must be 1 to 200 characters",
            ));
        }
        if s.contains('\0') {
            return Err(SyncError::invalid(
                "invalid_text",
                "text must not contain the NUL character (U+0000)",
            ));
        }
        Ok(ProviderCode(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
