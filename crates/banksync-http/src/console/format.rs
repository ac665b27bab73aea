//! Dates and amounts as the company's locale writes them (`companies.locale`). A short
//! table of conventions, not CLDR: the day-month order and separators of the locales a
//! bookkeeper is likely to use; anything else gets ISO 8601 dates and `1,234.56`.

use chrono::{DateTime, NaiveDate, Utc};

/// How a locale writes dates and numbers.
struct Convention {
    date: &'static str,
    group: &'static str,
    decimal: char,
}

fn convention(locale: &str) -> Convention {
    let lang = locale.split('-').next().unwrap_or("");
    let c = |date, group, decimal| Convention {
        date,
        group,
        decimal,
    };
    match (lang, locale) {
        (_, "en-US") => c("%m/%d/%Y", ",", '.'),
        ("en", _) => c("%d/%m/%Y", ",", '.'),
        ("de", _) => c("%d.%m.%Y", ".", ','),
        ("fr", _) => c("%d/%m/%Y", "\u{202f}", ','),
        ("es" | "it" | "pt", _) => c("%d/%m/%Y", ".", ','),
        ("nl", _) => c("%d-%m-%Y", ".", ','),
        ("ro" | "pl" | "cs" | "ru" | "uk", _) => c("%d.%m.%Y", "\u{a0}", ','),
        _ => c("%Y-%m-%d", ",", '.'),
    }
}

pub fn date(d: NaiveDate, locale: &str) -> String {
    d.format(convention(locale).date).to_string()
}

/// A moment as the locale's date and the UTC time (`27.11.2026 14:05 UTC`).
pub fn moment(t: DateTime<Utc>, locale: &str) -> String {
    format!("{} {} UTC", date(t.date_naive(), locale), t.format("%H:%M"))
}

/// An amount given as a plain decimal string (`-1234.5`, as the API writes money) in the
/// locale's grouping and decimal mark (`-1.234,5` in German). Anything that is not such a
/// string is returned unchanged.
pub fn amount(plain: &str, locale: &str) -> String {
    let conv = convention(locale);
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return plain.to_string();
    }
    let count = int.chars().count();
    let mut out = String::from(sign);
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (count - i) % 3 == 0 {
            out.push_str(conv.group);
        }
        out.push(ch);
    }
    if let Some(f) = frac {
        out.push(conv.decimal);
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_locale() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(date(d, "de-DE"), "27.11.2026");
        assert_eq!(date(d, "en-US"), "11/27/2026");
        assert_eq!(date(d, "en-GB"), "27/11/2026");
        assert_eq!(date(d, "nl-NL"), "27-11-2026");
        assert_eq!(date(d, "sv-SE"), "2026-11-27");
    }

    #[test]
    fn amounts_are_grouped_with_the_locales_marks() {
        assert_eq!(amount("-1234567.50", "de-DE"), "-1.234.567,50");
        assert_eq!(amount("1234.5", "en-GB"), "1,234.5");
        assert_eq!(amount("999", "en-US"), "999");
        assert_eq!(amount("0.00", "fr-FR"), "0,00");
        assert_eq!(amount("12345.00", "fr-FR"), "12\u{202f}345,00");
        // Not a plain decimal: shown as given, never cut.
        assert_eq!(amount("1e5", "de-DE"), "1e5");
        assert_eq!(amount("١٢٣", "de-DE"), "١٢٣");
        assert_eq!(amount("", "de-DE"), "");
        assert_eq!(amount("-", "de-DE"), "-");
    }
}
