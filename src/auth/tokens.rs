//! Random tokens and their digests: API keys, invitation and CSRF tokens, recovery codes.
//!
//! Only digests of credentials are stored (SHA-256: the tokens carry 190+ bits of
//! randomness, so a fast hash is enough; passwords, which do not, get argon2id).

use rand::RngCore;
use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub(crate) const API_KEY_PREFIX: &str = "kura_ak_";
/// Characters of a key shown in listings (the fixed prefix plus a few of the body).
const SHOWN: usize = API_KEY_PREFIX.len() + 6;

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// `len` characters drawn uniformly from [0-9A-Za-z] (rejection sampling, no modulo bias).
pub(crate) fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let b = (rng.next_u32() & 0xff) as u8;
        // 248 = 4 * 62: bytes at or above it would favour the first characters.
        if b < 248 {
            out.push(BASE62[usize::from(b % 62)] as char);
        }
    }
    out
}

/// `bytes` as a base62 number (big-endian), so a key carries exactly those random bytes.
pub(crate) fn base62(bytes: &[u8]) -> String {
    let mut digits = Vec::new();
    let mut number = bytes.to_vec();
    while number.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in &mut number {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        digits.push(BASE62[rem as usize]);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// A new API key: `kura_ak_` + 32 random bytes in base62.
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", base62(&random_bytes::<32>()))
}

/// The part of a key shown in listings, enough to recognise it and useless to an attacker.
pub fn shown_prefix(key: &str) -> String {
    key.chars().take(SHOWN).collect()
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Recovery codes are shown as `xxxxx-xxxxx` (lowercase letters and digits, ~51 bits).
pub(crate) fn new_recovery_code() -> String {
    let raw = random_base62(10).to_lowercase();
    format!("{}-{}", &raw[..5], &raw[5..])
}

/// What a typed recovery code is compared as: lowercase, dashes and spaces dropped.
pub(crate) fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_the_documented_shape() {
        let key = new_api_key();
        assert!(key.starts_with("kura_ak_"));
        let body = &key[8..];
        // 32 bytes need 43 base62 digits (fewer when the leading digits are zero).
        assert!((40..=43).contains(&body.len()), "{key}");
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(key, new_api_key());
        assert_eq!(shown_prefix(&key).len(), 14);
    }

    #[test]
    fn base62_is_a_number_conversion() {
        assert_eq!(base62(&[0]), "0");
        assert_eq!(base62(&[61]), "z");
        assert_eq!(base62(&[62]), "10");
        assert_eq!(base62(&[1, 0]), "48");
    }

    #[test]
    fn recovery_codes_compare_loosely() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(
            normalize_recovery_code(&code.to_uppercase()),
            normalize_recovery_code(&code)
        );
    }
}
