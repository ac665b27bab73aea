//! SHA-256 in hex, the one way the engine names content (fingerprints, content hashes,
//! callback identities, token hashes).

use sha2::{Digest, Sha256};

/// Hex of the first `bytes` bytes (at most 32) of SHA-256 of `input`.
pub fn sha256_hex(input: impl AsRef<[u8]>, bytes: usize) -> String {
    use std::fmt::Write;
    let d = Sha256::digest(input.as_ref());
    let mut s = String::with_capacity(bytes * 2);
    for b in &d[..bytes.min(32)] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The first 16 bytes of SHA-256 of `input`: what a line keeps of the JSON text it was
/// stored from (`statement_lines.raw_digest`).
/// Whether two secrets are equal, in time that depends on their length only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn raw16(input: impl AsRef<[u8]>) -> Vec<u8> {
    Sha256::digest(input.as_ref())[..16].to_vec()
}
