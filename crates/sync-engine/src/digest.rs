//! SHA-256 in hex, the one way the engine names content (fingerprints, content hashes,
//! callback identities, token hashes).

use sha2::{Digest, Sha256};

/// Hex of the first `bytes` bytes (at most 32) of SHA-256 of `input`.
pub fn sha256_hex(input: impl AsRef<[u8]>, bytes: usize) -> String {
    let d = Sha256::digest(input.as_ref());
    let mut s = String::with_capacity(bytes * 2);
    push_hex(&mut s, &d[..bytes.min(32)]);
    s
}

/// Appends `bytes` in lower-case hex (by table: formatting each byte took a tenth of an
/// import's CPU).
pub fn push_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xF) as usize] as char);
    }
}

/// Whether two secrets are equal, in time that depends on their length only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The first 16 bytes of SHA-256 of `input`: what a line keeps of the JSON text it was
/// stored from (`statement_lines.raw_digest`).
pub fn raw16(input: impl AsRef<[u8]>) -> Vec<u8> {
    Sha256::digest(input.as_ref())[..16].to_vec()
}

/// Text hashed as it is written, for the names built from a line's fields (fingerprint,
/// content hash): no intermediate string, and dates written by hand rather than through
/// `fmt` (the `format!` of them took ~8 % of an import's CPU). The bytes are exactly what
/// `format!` gave, as the hashes already stored were made from them (tested below).
pub struct HashText(Sha256);

impl HashText {
    pub fn new() -> Self {
        HashText(Sha256::new())
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.update(s.as_bytes());
        self
    }

    /// `{date}` (also `{date:?}`: chrono writes a date the same way both).
    pub fn date(&mut self, d: chrono::NaiveDate) -> &mut Self {
        use chrono::Datelike;
        match u32::try_from(d.year()) {
            Ok(y) if y <= 9999 => {
                let mut b = *b"0000-00-00";
                put_digits(&mut b[0..4], y);
                put_digits(&mut b[5..7], d.month());
                put_digits(&mut b[8..10], d.day());
                self.0.update(b);
            }
            _ => {
                self.fmt(format_args!("{d}"));
            }
        }
        self
    }

    /// `{:?}` of an `Option<NaiveDate>`.
    pub fn date_debug(&mut self, d: Option<chrono::NaiveDate>) -> &mut Self {
        match d {
            None => self.str("None"),
            Some(d) => self.str("Some(").date(d).str(")"),
        }
    }

    /// `{:?}` of an `Option<DateTime<Utc>>`.
    pub fn time_debug(&mut self, t: Option<chrono::DateTime<chrono::Utc>>) -> &mut Self {
        use chrono::Timelike;
        let Some(t) = t else { return self.str("None") };
        // Whole seconds only; anything else (fractions, a leap second) as chrono writes it.
        if t.nanosecond() != 0 {
            return self.fmt(format_args!("{:?}", Some(t)));
        }
        let mut b = *b"T00:00:00Z)";
        put_digits(&mut b[1..3], t.hour());
        put_digits(&mut b[4..6], t.minute());
        put_digits(&mut b[7..9], t.second());
        self.str("Some(").date(t.date_naive());
        self.0.update(b);
        self
    }

    pub fn fmt(&mut self, args: std::fmt::Arguments<'_>) -> &mut Self {
        let _ = std::fmt::Write::write_fmt(self, args);
        self
    }

    /// Hex of the first `bytes` bytes (at most 32), as [`sha256_hex`].
    pub fn hex(self, bytes: usize) -> String {
        let d = self.0.finalize();
        let mut s = String::with_capacity(bytes * 2);
        push_hex(&mut s, &d[..bytes.min(32)]);
        s
    }
}

impl Default for HashText {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Write for HashText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// `n` in decimal, zero-padded to fill `out` (which it fits).
fn put_digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `HashText` hashes is what `format!` wrote, dates of every shape included.
    #[test]
    fn hash_text_writes_what_format_wrote() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let dates = [
            NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            NaiveDate::from_ymd_opt(1, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(0, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(10000, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(-1, 6, 15).unwrap(),
            NaiveDate::MIN,
            NaiveDate::MAX,
        ];
        let times = [
            None,
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 9, 5, 7).unwrap()),
            Some(Utc.with_ymd_and_hms(1999, 1, 1, 23, 59, 59).unwrap()),
            Some(Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap()),
            Some(Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap()),
            Some(Utc.timestamp_opt(1_700_000_000, 1).unwrap()),
            Some(Utc.timestamp_opt(1_700_000_039, 1_500_000_000).unwrap()),
            Some(Utc.with_ymd_and_hms(12345, 3, 4, 5, 6, 7).unwrap()),
        ];
        for d in dates {
            for t in times {
                for p in [None, Some(d)] {
                    let expected = sha256_hex(format!("{d}|{t:?}|x|{p:?}"), 16);
                    let mut h = HashText::new();
                    h.date(d).str("|").time_debug(t).str("|x|").date_debug(p);
                    assert_eq!(h.hex(16), expected, "{d} {t:?} {p:?}");
                }
            }
        }
    }

    #[test]
    fn hex_is_lower_case_and_matches_formatting() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff, 0x10];
        let mut s = String::new();
        push_hex(&mut s, &bytes);
        let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s, formatted);
        assert_eq!(sha256_hex("abc", 4), "ba7816bf");
    }
}
