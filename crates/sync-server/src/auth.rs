//! Secrets: device tokens and enrolment codes. Both are random, shown once, and stored only
//! as SHA-256 hashes.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The alphabet of enrolment codes: no 0/O, 1/I/L, so a worker can read one aloud.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in an enrolment code (31^10 ≈ 2^49.5 possibilities).
const CODE_LEN: usize = 10;

/// SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A new device token: 256 random bits, URL-safe text with a `dst_` prefix.
pub fn new_token() -> Result<String, getrandom::Error> {
    Ok(format!("dst_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)))
}

/// A new enrolment code a worker can type, shown as `XXXXX-XXXXX`.
pub fn new_enrolment_code() -> Result<String, getrandom::Error> {
    let mut code = String::with_capacity(CODE_LEN + 1);
    let mut i = 0;
    while i < CODE_LEN {
        for byte in random_bytes::<16>()? {
            // Rejection sampling keeps every character equally likely.
            if usize::from(byte) >= CODE_ALPHABET.len() * (256 / CODE_ALPHABET.len()) || i >= CODE_LEN {
                continue;
            }
            if i == CODE_LEN / 2 {
                code.push('-');
            }
            code.push(char::from(CODE_ALPHABET[usize::from(byte) % CODE_ALPHABET.len()]));
            i += 1;
        }
    }
    Ok(code)
}

/// The form of a typed code that is hashed: upper case, no spaces or dashes.
pub fn normalize_code(typed: &str) -> String {
    typed.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_normalize() {
        let code = new_enrolment_code().expect("random");
        assert_eq!(code.len(), CODE_LEN + 1);
        assert_eq!(code.as_bytes()[5], b'-');
        assert!(normalize_code(&code).bytes().all(|b| CODE_ALPHABET.contains(&b)));
        assert_eq!(normalize_code(" abcde-fghjk "), "ABCDEFGHJK");
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_token().expect("random"), new_token().expect("random"));
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 43, "256 bits in base64 is 43 characters");
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }
}
