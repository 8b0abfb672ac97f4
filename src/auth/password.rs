//! Passwords: argon2id hashing (OWASP parameters) and the password rules.
//!
//! Hashing and verifying cost ~20-100 ms of CPU each, so callers run them through
//! `blocking::run`. A sign-in for an unknown email verifies against [`dummy_hash`] so that
//! it costs the same time as a wrong password and does not reveal which accounts exist.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub(crate) const MIN_LENGTH: usize = 10;
const MAX_LENGTH: usize = 1024;

static COMMON: &str = include_str!("common-passwords.txt");

/// Argon2id with its defaults: 19 MiB, 2 iterations, 1 lane (OWASP's recommendation).
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of `password` with a random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash a password: {e}"))
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password matches in practice, verified against for unknown emails.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash(&crate::auth::tokens::random_base62(32)).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
        })
    })
}

/// Argon2 runs at most this many at once: each takes ~20 MiB and a core for tens of
/// milliseconds, so a burst of sign-ins (or an attack) queues here instead of taking every
/// core and starving the other routes. One core is always left for everything else.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// [`verify`] on the blocking pool, within the hashing slots.
pub(crate) async fn verify_async(password: String, phc: String) -> bool {
    let _slot = hashing_slots().acquire().await;
    crate::blocking::run(move || verify(&password, &phc)).await
}

/// [`hash`] on the blocking pool, within the hashing slots.
pub(crate) async fn hash_async(password: String) -> anyhow::Result<String> {
    let _slot = hashing_slots().acquire().await;
    crate::blocking::run(move || hash(&password)).await
}

/// Checks the password rules; the error is the message shown to the user.
pub(crate) fn check_policy(password: &str, email: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(format!(
            "the password must be at least {MIN_LENGTH} characters long"
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!(
            "the password must be at most {MAX_LENGTH} bytes long"
        ));
    }
    let lower = password.to_lowercase();
    let email = email.to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (!local.is_empty() && lower == local) {
        return Err("the password must not be your email address".into());
    }
    if is_common(&lower) {
        return Err(
            "this password is on the list of commonly used passwords; choose another".into(),
        );
    }
    Ok(())
}

fn is_common(lower: &str) -> bool {
    COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == lower)
}

/// A random password for a new admin or a reset: 20 base62 characters (~119 bits).
pub(crate) fn generate() -> String {
    crate::auth::tokens::random_base62(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", dummy_hash()));
    }

    #[test]
    fn the_rules_name_what_is_wrong() {
        assert!(
            check_policy("short", "a@b.c")
                .unwrap_err()
                .contains("at least 10")
        );
        assert!(
            check_policy("Ada@Example.com", "ada@example.com")
                .unwrap_err()
                .contains("email")
        );
        assert!(
            check_policy("Password123", "a@b.c")
                .unwrap_err()
                .contains("commonly")
        );
        assert!(check_policy("tide-lantern-quiet", "a@b.c").is_ok());
        assert!(check_policy(&generate(), "a@b.c").is_ok());
    }
}
