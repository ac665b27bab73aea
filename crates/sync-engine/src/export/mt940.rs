//! SWIFT MT940 customer statements, one message per statement:
//!
//! ```text
//! :20:BS<statement id>          transaction reference
//! :25:<IBAN or account number>  account
//! :28C:<sequence>/1             statement number (00000 while open)
//! :60F:C260301EUR1234,56        opening balance (C/D, YYMMDD, currency, amount)
//! :61:2603010301D42,50NMSC<line id>//<bank reference, 16>
//! :86:/EREF/<reference>/NAME/<payee>/IBAN/<counterparty IBAN>/REMI/<description>
//! :62F:C260301EUR1192,06        closing balance
//! ```
//!
//! Text is in the SWIFT `x` character set, by [`transliterate`]; `:86:` holds at most 6
//! lines of 65 characters (the description is shortened to fit), and no line of a field
//! starts with `-` or `:` (the message's delimiters). Text from a bank or a payer inside a
//! field is [`free_text`]: no `/` (it cannot fake a sub-field) and no run of `-`. Amounts: up to 15 characters with a
//! decimal comma; currencies: ISO 4217.

use std::fmt::Write;

use rust_decimal::Decimal;

use super::{chars, iban, ExportHeader, StatementExport, Writer};

pub struct Mt940;

/// The SWIFT `x` character set: `a-z A-Z 0-9 / - ? : ( ) . , ' +` and space.
fn swift_x(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/-?:().,'+ ".contains(c)
}

/// Text in the SWIFT `x` character set, by one rule: letters with accents lose them and
/// other scripts are spelled in Latin letters (`deunicode`: "Zürich" → "Zurich",
/// "Straße" → "Strasse", "Москва" → "Moskva"); `&` becomes `+`, `_` `-`, `"` `'`,
/// `;` `,`, `:` `.` (a colon could start a tag); every other character outside the set,
/// and any run of whitespace, becomes one space.
pub fn transliterate(s: &str) -> String {
    let ascii = deunicode::deunicode(s);
    let mut out = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        let c = match c {
            '&' => '+',
            '_' => '-',
            '"' => '\'',
            ';' => ',',
            ':' => '.',
            c if swift_x(c) => c,
            _ => ' ',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// Free text from a bank or a payer inside a structured field: transliterated, with `/`
/// turned into `-` (a remittance text of `x/IBAN/…/NAME/…` must not fake the `:86:`
/// sub-fields) and every run of `-` shortened to one (a run of 65 would wrap into a line
/// that is a lone `-`, the message terminator).
pub fn free_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in transliterate(s).chars() {
        let c = if c == '/' { '-' } else { c };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The `:86:` field's lines: the sub-fields are ours, the text inside each is
/// [`free_text`], so no line is a delimiter and no text adds a sub-field.
fn field_86(
    reference: &str,
    payee: Option<&str>,
    counterparty_iban: Option<&str>,
    description: &str,
) -> Vec<String> {
    let mut info = format!("/EREF/{}", free_text(reference));
    if let Some(p) = payee.map(free_text).filter(|p| !p.is_empty()) {
        let _ = write!(info, "/NAME/{p}");
    }
    if let Some(i) = counterparty_iban.and_then(iban) {
        let _ = write!(info, "/IBAN/{i}");
    }
    let _ = write!(info, "/REMI/{}", free_text(description));
    wrap(&info, 65, 6)
}

/// `text` in lines of at most `width` characters, at most `max_lines`, none starting with
/// `-` or `:` (a line that would starts one character earlier).
fn wrap(text: &str, width: usize, max_lines: usize) -> Vec<String> {
    let cs: Vec<char> = text.chars().collect();
    let mut lines = vec![];
    let mut i = 0;
    while i < cs.len() && lines.len() < max_lines {
        let mut end = (i + width).min(cs.len());
        while end < cs.len() && end > i + 1 && matches!(cs[end], '-' | ':') {
            end -= 1;
        }
        lines.push(cs[i..end].iter().collect());
        i = end;
    }
    lines
}

/// `C`/`D` and the amount with a decimal comma.
fn amount(v: Decimal) -> (&'static str, String) {
    let mark = if v.is_sign_negative() && !v.is_zero() {
        "D"
    } else {
        "C"
    };
    let mut a = v.abs().normalize().to_string();
    if !a.contains('.') {
        a.push('.');
    }
    (mark, a.replace('.', ","))
}

fn date(d: chrono::NaiveDate) -> String {
    d.format("%y%m%d").to_string()
}

impl Writer for Mt940 {
    fn start(&mut self, _h: &ExportHeader) -> String {
        String::new()
    }

    fn statement(&mut self, s: &StatementExport) -> String {
        let st = &s.statement;
        let a = &s.account;
        let ccy = &a.currency;
        let account = a
            .iban
            .as_deref()
            .and_then(iban)
            .or_else(|| a.account_number.as_deref().map(transliterate))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| transliterate(&a.saltedge_id));
        let mut out = String::with_capacity(256 + 300 * s.entries.len());
        let _ = write!(out, ":20:BS{}\r\n", st.id);
        let _ = write!(out, ":25:{}\r\n", chars(&account, 35));
        let _ = write!(out, ":28C:{:05}/1\r\n", st.sequence.unwrap_or(0));
        let (m, v) = amount(st.opening_balance);
        let _ = write!(out, ":60F:{m}{}{ccy}{v}\r\n", date(st.period_start));
        for e in &s.entries {
            let (m, v) = amount(e.amount);
            let value = e.value_date.unwrap_or(e.booking_date);
            let ours = e
                .line_id
                .map_or_else(|| "CORRECTION".to_string(), |id| id.to_string());
            let bank = chars(&free_text(&e.reference).replace(' ', ""), 16);
            let _ = write!(
                out,
                ":61:{}{}{m}{v}NMSC{ours}//{bank}\r\n",
                date(value),
                e.booking_date.format("%m%d")
            );
            let info = field_86(
                &e.reference,
                e.payee.as_deref(),
                e.counterparty_iban.as_deref(),
                &e.description,
            );
            for (n, line) in info.into_iter().enumerate() {
                let tag = if n == 0 { ":86:" } else { "" };
                let _ = write!(out, "{tag}{line}\r\n");
            }
        }
        let (m, v) = amount(st.closing_balance);
        let _ = write!(out, ":62F:{m}{}{ccy}{v}\r\n", date(st.period_end));
        out
    }

    fn finish(&mut self) -> String {
        String::new()
    }

    fn name(&self) -> &'static str {
        "MT940"
    }

    fn refuses_amounts(&self, largest: Decimal, scale: u32) -> Option<String> {
        // 15 characters, the decimal comma included.
        let digits = super::int_digits(largest);
        (digits + scale + 1 > 15).then(|| {
            format!("MT940 carries amounts of at most 15 characters; this account's amounts need {digits} digits and {scale} decimals")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_transliterated_into_the_swift_set() {
        assert_eq!(transliterate("Zürich Straße"), "Zurich Strasse");
        assert_eq!(
            transliterate("Café & Bar: \"Łódź\"_1;2"),
            "Cafe + Bar. 'Lodz'-1,2"
        );
        assert_eq!(transliterate("Москва"), "Moskva");
        assert_eq!(transliterate("a\t\n b  c €"), "a b c EUR");
        assert_eq!(transliterate("x*#%=@!y"), "x y");
        for s in ["☃ snow", "日本語", "emoji 🎉 end", "<>{}[]|\\~^$"] {
            assert!(transliterate(s).chars().all(swift_x), "{s}");
        }
    }

    #[test]
    fn wrapped_lines_never_start_a_tag_or_end_the_message() {
        let text = format!("{}-{}:{}", "a".repeat(64), "b".repeat(64), "c".repeat(10));
        let lines = wrap(&text, 65, 6);
        assert!(lines.iter().all(|l| l.chars().count() <= 65));
        assert!(lines
            .iter()
            .all(|l| !l.starts_with('-') && !l.starts_with(':')));
        assert_eq!(lines.concat(), text, "nothing lost");
        assert_eq!(wrap(&"x".repeat(1000), 65, 6).len(), 6);
    }

    #[test]
    fn bank_text_cannot_end_the_message_or_add_sub_fields() {
        let dashes = "-".repeat(200);
        let underscores = "_".repeat(140);
        for description in [
            dashes.as_str(),
            underscores.as_str(),
            "refund/IBAN/DE89370400440532013000/NAME/Evil Corp",
            "a -- -- :-:-: b //",
        ] {
            let lines = field_86(
                "ref/NAME/x",
                Some("Payee/IBAN/GB29NWBK60161331926819"),
                None,
                description,
            );
            for l in &lines {
                assert!(
                    l != "-" && !l.starts_with('-') && !l.starts_with(':'),
                    "{l:?}"
                );
                assert!(l.chars().count() <= 65, "{l:?}");
            }
            let all = lines.concat();
            assert_eq!(all.matches("/NAME/").count(), 1, "{all}");
            assert_eq!(all.matches("/IBAN/").count(), 0, "{all}");
            assert_eq!(all.matches("/REMI/").count(), 1, "{all}");
            assert_eq!(all.matches("/EREF/").count(), 1, "{all}");
        }
        assert_eq!(free_text("a//b---c"), "a-b-c");
    }

    #[test]
    fn amounts_have_a_decimal_comma_and_a_mark() {
        assert_eq!(amount(Decimal::new(-4250, 2)), ("D", "42,5".to_string()));
        assert_eq!(amount(Decimal::new(100, 0)), ("C", "100,".to_string()));
        assert_eq!(amount(Decimal::ZERO), ("C", "0,".to_string()));
    }
}
