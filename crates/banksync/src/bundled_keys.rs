//! The simulator's test keys are public (they are in git): a configuration that names one
//! of them for the real Salt Edge is unsafe. A key is recognised by its material (the RSA
//! modulus), not its file text, so a bundled key re-encoded (PKCS#1 or PKCS#8, public half
//! of a bundled private key, CRLF line ends, other wrapping) is still recognised, in any slot.

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use saltedge_sim::keys;

/// Every bundled key pair, by a name an operator recognises.
const BUNDLED: [(&str, &str); 6] = [
    ("the simulator's callback key", keys::SIMULATOR_PRIVATE_PEM),
    ("the simulator's callback key", keys::SIMULATOR_PUBLIC_PEM),
    (
        "the simulator's v6 callback key",
        keys::SIMULATOR_V6_PRIVATE_PEM,
    ),
    (
        "the simulator's v6 callback key",
        keys::SIMULATOR_V6_PUBLIC_PEM,
    ),
    ("the bundled client test key", keys::CLIENT_PRIVATE_PEM),
    ("the bundled client test key", keys::CLIENT_PUBLIC_PEM),
];

/// The modulus of an RSA key in PEM (private or public; PKCS#1 or PKCS#8; LF or CRLF).
pub fn modulus(pem: &str) -> Option<BigUint> {
    let pem = pem.replace("\r\n", "\n").replace('\r', "\n");
    let pem = pem.trim();
    if let Ok(k) = RsaPrivateKey::from_pkcs8_pem(pem) {
        return Some(k.n().clone());
    }
    if let Ok(k) = RsaPrivateKey::from_pkcs1_pem(pem) {
        return Some(k.n().clone());
    }
    if let Ok(k) = RsaPublicKey::from_public_key_pem(pem) {
        return Some(k.n().clone());
    }
    RsaPublicKey::from_pkcs1_pem(pem)
        .ok()
        .map(|k| k.n().clone())
}

/// Which bundled key `pem` is, if any.
pub fn which(pem: &str) -> Option<&'static str> {
    let n = modulus(pem)?;
    BUNDLED
        .iter()
        .find(|(_, b)| modulus(b).as_ref() == Some(&n))
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    #[test]
    fn every_bundled_key_is_recognised_in_every_encoding() {
        for (name, pem) in BUNDLED {
            assert_eq!(which(pem), Some(name));
            let crlf = pem.replace('\n', "\r\n");
            assert_eq!(which(&crlf), Some(name), "CRLF");
            if let Ok(k) =
                RsaPrivateKey::from_pkcs8_pem(pem).or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            {
                let pkcs1 = k.to_pkcs1_pem(LineEnding::CRLF).unwrap();
                assert_eq!(which(&pkcs1), Some(name), "PKCS#1 private");
                let pkcs8 = k.to_pkcs8_pem(LineEnding::LF).unwrap();
                assert_eq!(which(&pkcs8), Some(name), "PKCS#8 private");
                let public = k.to_public_key();
                let spki = public.to_public_key_pem(LineEnding::LF).unwrap();
                assert_eq!(which(&spki), Some(name), "its public half");
            }
            if let Ok(k) = RsaPublicKey::from_public_key_pem(pem) {
                let pkcs1 = k.to_pkcs1_pem(LineEnding::CRLF).unwrap();
                assert_eq!(which(&pkcs1), Some(name), "PKCS#1 public");
            }
        }
    }

    #[test]
    fn another_key_is_not_bundled() {
        let k = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = k.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(which(&pem), None);
        assert_eq!(which("not a key"), None);
    }
}
