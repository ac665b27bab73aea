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

#[cfg(test)]
mod tests {
    use super::*;

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
