//! Text: descriptions normalised and compared, fingerprints, the bank's own id, repaired characters.

use std::collections::HashSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use saltedge_client::models::TransactionExtra;

/// Lower-case words without digits: drops references, card numbers and dates that differ
/// between a pending and a posted version of one payment.
pub fn normalise_description(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_numeric()))
    {
        if !out.is_empty() {
            out.push(' ');
        }
        // `str::to_lowercase` for any other text: it knows the final sigma (Σ → ς).
        if w.is_ascii() {
            out.extend(w.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            out.push_str(&w.to_lowercase());
        }
    }
    out
}

/// Jaccard similarity of the normalised descriptions' words, 0.0 to 1.0.
pub fn similarity(a: &str, b: &str) -> f64 {
    let na = normalise_description(a);
    let nb = normalise_description(b);
    let wa: HashSet<&str> = na.split(' ').filter(|w| !w.is_empty()).collect();
    let wb: HashSet<&str> = nb.split(' ').filter(|w| !w.is_empty()).collect();
    if wa.is_empty() && wb.is_empty() {
        return 1.0;
    }
    let inter = wa.intersection(&wb).count() as f64;
    let union = wa.union(&wb).count() as f64;
    inter / union
}

pub fn fingerprint(
    date: NaiveDate,
    amount: Decimal,
    currency: &str,
    description: &str,
    counterparty: Option<&str>,
) -> String {
    // `format!("{date}|{}|{currency}|{}|{}", amount.normalize(), normalise_description(…),
    // counterparty.trim().to_lowercase())`, hashed as written.
    let mut h = crate::digest::HashText::new();
    h.date(date)
        .str("|")
        .fmt(format_args!("{}", amount.normalize()))
        .str("|")
        .str(currency)
        .str("|")
        .str(&normalise_description(description))
        .str("|")
        .str(&counterparty.unwrap_or("").trim().to_lowercase());
    h.hex(16)
}

/// Two capital letters, two digits, then letters and digits: 15–34 characters. Works on
/// characters, never byte offsets, so any bank text ("Müller Consulting GmbH") is safe.
pub(super) fn looks_like_iban(s: &str) -> bool {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    (15..=34).contains(&chars.len())
        && chars.iter().all(char::is_ascii_alphanumeric)
        && chars[..2].iter().all(char::is_ascii_uppercase)
        && chars[2..4].iter().all(char::is_ascii_digit)
}

/// The bank's own id of a transaction, `extra.id`, as text (a string or a number). Salt
/// Edge's transaction `extra` lists `id` among its fields; none of the conformance
/// payloads carries it, so both shapes are accepted and anything else is ignored.
pub(super) fn bank_transaction_id(id: Option<&serde_json::Value>) -> Option<String> {
    match id? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What a line reads of a transaction's `extra`, from its text. Usually one pass into
/// [`TransactionExtra`]; when that fails (a documented field of an unexpected type) the
/// tree is read as before: nothing typed, the bank's id and the posting date where they
/// are well-formed.
pub(super) struct ExtraRead {
    pub(super) typed: TransactionExtra,
    /// `extra.posting_date`, when it is a date.
    pub(super) posting: Option<NaiveDate>,
    pub(super) bank_id: Option<String>,
    /// Some text in it holds U+FFFD (see `saltedge_client::text`).
    pub(super) repaired: bool,
}

impl ExtraRead {
    pub(super) fn of(extra: &saltedge_client::models::RawJson) -> ExtraRead {
        if extra.is_null() {
            return ExtraRead {
                typed: TransactionExtra::default(),
                posting: None,
                bank_id: None,
                repaired: false,
            };
        }
        let text = extra.get();
        // U+FFFD as a character or as an escape (any case); only then is the tree read to
        // tell a repaired text from, say, an escaped backslash before "ufffd".
        let repaired = (text.contains('\u{FFFD}') || may_escape_replacement(text))
            && holds_replacement(&extra.value());
        match extra.parse::<TransactionExtra>() {
            Ok(typed) => ExtraRead {
                posting: typed.posting_date,
                bank_id: bank_transaction_id(typed.id.as_ref()),
                typed,
                repaired,
            },
            Err(_) => {
                let v = extra.value();
                ExtraRead {
                    typed: TransactionExtra::default(),
                    posting: v
                        .get("posting_date")
                        .and_then(|v| v.as_str())
                        .and_then(|s| s.parse::<NaiveDate>().ok()),
                    bank_id: bank_transaction_id(v.get("id")),
                    repaired,
                }
            }
        }
    }
}

/// Whether `text` holds `\ufffd` in any case (a JSON escape of U+FFFD, or text that looks
/// like one).
pub(super) fn may_escape_replacement(text: &str) -> bool {
    text.as_bytes()
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].eq_ignore_ascii_case(b"fffd"))
}

pub(super) fn holds_replacement(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\u{FFFD}'),
        serde_json::Value::Array(a) => a.iter().any(holds_replacement),
        serde_json::Value::Object(o) => o
            .iter()
            .any(|(k, v)| k.contains('\u{FFFD}') || holds_replacement(v)),
        _ => false,
    }
}
