//! Secrets: device tokens, enrolment codes and dashboard session cookies are random, shown
//! once, and stored only as SHA-256 hashes; staff passwords are stored as argon2id hashes.

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

/// A random secret for a cookie or form token: 256 bits as URL-safe text.
pub fn new_secret() -> Result<String, getrandom::Error> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// No randomness for the salt.
    #[error("no randomness for the salt: {0}")]
    Random(#[from] getrandom::Error),
    /// The hasher refused the input.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes a staff password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Does `password` match the stored argon2 hash? A damaged hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored)
        .map(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_token().expect("random"), new_token().expect("random"));
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 43, "256 bits in base64 is 43 characters");
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }
}
