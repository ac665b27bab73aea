//! Tolerant decoding for what real Salt Edge payloads do (see
//! `conformance/saltedge-v5-payloads/`): `null` where a list or text is expected
//! (`"interactive_fields_names": null`, `"from_date": null`), and amounts spelled as JSON
//! numbers in any form (`10000`, `-200.0`, `-3974.60`, `1.5e3`) or, defensively, as strings.
//! Amounts are read from the number's own text (serde_json's `arbitrary_precision`), never
//! through `f64`.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// `null` (or a missing field, with `#[serde(default)]`) becomes `T::default()`.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Exact decimal from a JSON number's text (`-3974.60` keeps its scale) or a numeric string.
pub fn parse_amount(v: &Value) -> Result<Decimal, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return Err(format!("amount must be a number, got {}", kind(other))),
    };
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("amount {text:?} is not a decimal that fits 28 digits"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub mod amount {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let v = Value::deserialize(d)?;
        parse_amount(&v).map_err(serde::de::Error::custom)
    }

    /// Written as a JSON number with the decimal's own digits.
    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision::serialize(v, s)
    }
}

pub mod amount_opt {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(v) => parse_amount(&v).map(Some).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision_option::serialize(v, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_every_spelling() {
        for (json, want) in [
            ("10000", "10000"),
            ("-200.0", "-200.0"),
            ("-3974.60", "-3974.60"),
            ("0", "0"),
            ("\"12.30\"", "12.30"),
            ("1.5e3", "1500"),
        ] {
            let v: Value = serde_json::from_str(json).unwrap();
            assert_eq!(parse_amount(&v).unwrap().to_string(), want, "{json}");
        }
        for bad in ["null", "true", "\"abc\"", "1e400", "[1]"] {
            let v: Value = serde_json::from_str(bad).unwrap();
            assert!(parse_amount(&v).is_err(), "{bad}");
        }
    }
}
