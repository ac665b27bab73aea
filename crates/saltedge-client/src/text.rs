//! One rule for text that JSON can carry but Postgres (and UTF-8) cannot store: U+0000 and
//! unpaired UTF-16 surrogates (`"\ud800"`), which a bank's free text can contain. Before a
//! response is decoded, each such escape is rewritten to U+FFFD (the replacement
//! character), so every string this client hands out can be stored as is. Downstream,
//! banksync marks a statement line `text_repaired` when its text holds U+FFFD.

use std::borrow::Cow;

const REPLACEMENT: &[u8] = b"\\ufffd";

/// `bytes` with `\u0000` and lone-surrogate escapes inside JSON strings replaced by
/// `\ufffd`; borrowed when there is nothing to replace (the usual case).
pub fn storable_json(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !might_need_repair(bytes) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                out.push(b);
                i += 1;
            }
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let Some(cu) = hex4(bytes, i + 2) else {
                    // Malformed escape: leave it to the JSON parser to report.
                    out.push(b);
                    i += 1;
                    continue;
                };
                let paired_low = (0xD800..0xDC00).contains(&cu)
                    && bytes.get(i + 6) == Some(&b'\\')
                    && bytes.get(i + 7) == Some(&b'u')
                    && hex4(bytes, i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                if paired_low {
                    out.extend_from_slice(&bytes[i..i + 12]);
                    i += 12;
                } else if cu == 0 || (0xD800..0xE000).contains(&cu) {
                    out.extend_from_slice(REPLACEMENT);
                    i += 6;
                } else {
                    out.extend_from_slice(&bytes[i..i + 6]);
                    i += 6;
                }
            }
            b'\\' => {
                out.extend_from_slice(&bytes[i..(i + 2).min(bytes.len())]);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let h = bytes.get(at..at + 4)?;
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Cheap pre-check: any `\u0000` or `\uD…` escape at all.
fn might_need_repair(bytes: &[u8]) -> bool {
    bytes
        .windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && matches!(w[2], b'0' | b'd' | b'D'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> String {
        let v: serde_json::Value = serde_json::from_slice(&storable_json(s.as_bytes())).unwrap();
        v["t"].as_str().unwrap().to_string()
    }

    #[test]
    fn nul_and_lone_surrogates_become_the_replacement_character() {
        assert_eq!(fix(r#"{"t":"a\u0000b"}"#), "a\u{FFFD}b");
        assert_eq!(fix(r#"{"t":"x\ud800y"}"#), "x\u{FFFD}y");
        assert_eq!(fix(r#"{"t":"x\udc00"}"#), "x\u{FFFD}");
        assert_eq!(fix(r#"{"t":"\ud800\ud800\udc00"}"#), "\u{FFFD}\u{10000}");
        assert_eq!(
            fix(r#"{"t":"ok \ud83d\ude00 \u00e9 \\u0000"}"#),
            "ok 😀 é \\u0000"
        );
        assert!(matches!(
            storable_json(br#"{"t":"plain"}"#),
            Cow::Borrowed(_)
        ));
        // Truncated escapes are left for the parser to refuse; nothing panics.
        for s in [
            r#"{"t":"\u00"#,
            r#"{"t":"\ud800\u"#,
            "\"\\",
            "\\u",
            "\"\\ud8",
        ] {
            let _ = storable_json(s.as_bytes());
        }
    }
}
