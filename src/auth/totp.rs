//! TOTP two-factor: codes (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step), secrets encrypted
//! at rest, the otpauth URI and its QR code rendered server-side as SVG.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use totp_rs::{Algorithm, Builder, Totp};

const ISSUER: &str = "Kura";
const SECRET_BYTES: usize = 20;

/// Encrypts TOTP secrets with a key kept in `.kura/secret.key` (mode 0600), so a copy of
/// the metadata database alone does not give away anyone's second factor.
pub(crate) struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    /// Loads the project's key, creating it on first use.
    pub(crate) fn open(state_dir: &Path) -> anyhow::Result<Self> {
        let path = state_dir.join("secret.key");
        let key: [u8; 32] = match std::fs::read(&path) {
            Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!("{} is not a 32-byte key; restore it or remove it (two-factor enrolments are then lost)", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = super::tokens::random_bytes::<32>();
                crate::project::write_private(&path, &key)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                key
            }
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
        })
    }

    /// `nonce || ciphertext`.
    pub(crate) fn seal(&self, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce_bytes = super::tokens::random_bytes::<12>();
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| anyhow::anyhow!("cannot encrypt a TOTP secret"))?;
        let mut out = nonce_bytes.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    pub(crate) fn open_sealed(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < 12 {
            anyhow::bail!("a stored TOTP secret is truncated");
        }
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into()?;
        self.cipher.decrypt(&Nonce::from(nonce), body).map_err(|_| {
            anyhow::anyhow!("a stored TOTP secret does not decrypt with .kura/secret.key")
        })
    }
}

pub(crate) fn new_secret() -> Vec<u8> {
    super::tokens::random_bytes::<SECRET_BYTES>().to_vec()
}

fn totp(secret: &[u8]) -> anyhow::Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .build()
        .map_err(|e| anyhow::anyhow!("TOTP parameters: {e}"))
}

/// The time step `code` belongs to (within ±1 step of `now`), or `None`. The caller
/// accepts it only if the step is newer than the last one accepted: no replays.
pub(crate) fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret).ok()?.check(code, now)
}

/// The code for `time` (tests and the CLI use it; the server only checks).
pub fn code_at(secret: &[u8], time: u64) -> anyhow::Result<String> {
    Ok(totp(secret)?.generate(time).to_string())
}

pub(crate) fn base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let secret = totp_rs::Secret::try_from_base32(text.trim()).ok()?;
    Some(secret.as_ref().to_vec())
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub(crate) fn otpauth_uri(secret: &[u8], email: &str) -> String {
    format!(
        "otpauth://totp/{ISSUER}:{}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits=6&period=30",
        percent_encode(email),
        base32(secret)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The QR code of `text` as an SVG data URI: drawn here, no external service or CDN.
pub(crate) fn qr_svg_data_uri(text: &str) -> anyhow::Result<String> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|e| anyhow::anyhow!("cannot draw the QR code: {e:?}"))?;
    let border = 4;
    let size = qr.size() + border * 2;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    );
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64_encode(svg.as_bytes())
    ))
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_neighbours_only() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now).unwrap();
        assert_eq!(matching_step(&secret, &code, now), Some(now / 30));
        assert_eq!(matching_step(&secret, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&secret, &code, now + 90), None);
        assert_eq!(matching_step(&secret, "12345", now), None);
    }

    #[test]
    fn sealed_secrets_round_trip_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let sb = SecretBox::open(dir.path()).unwrap();
        let sealed = sb.seal(b"secret").unwrap();
        assert_eq!(sb.open_sealed(&sealed).unwrap(), b"secret");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(sb.open_sealed(&bad).is_err());
        // The key persists: a second open decrypts what the first sealed.
        assert_eq!(
            SecretBox::open(dir.path())
                .unwrap()
                .open_sealed(&sealed)
                .unwrap(),
            b"secret"
        );
    }

    #[test]
    fn uri_and_qr_are_self_contained() {
        let secret = new_secret();
        let uri = otpauth_uri(&secret, "ada+x@example.com");
        assert!(uri.starts_with("otpauth://totp/Kura:ada%2Bx@example.com?secret="));
        assert_eq!(decode_base32(&base32(&secret)).unwrap(), secret);
        assert!(
            qr_svg_data_uri(&uri)
                .unwrap()
                .starts_with("data:image/svg+xml;base64,")
        );
        assert_eq!(
            base64_encode(b"any carnal pleas"),
            "YW55IGNhcm5hbCBwbGVhcw=="
        );
    }
}
