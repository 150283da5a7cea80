//! The session cookie's seal: the session token, AES-256-GCM-encrypted
//! under a key the companion (which sets the cookie) and the filter (which
//! opens it locally) share. One implementation for both sides.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::token::Token;

/// Format version, so that a later seal can be told apart.
const VERSION: &str = "v1.";
/// Bound into every seal: a ciphertext made for anything else with the same
/// key does not open as a session.
const CONTEXT: &[u8] = b"portcullis-session-v1";
pub const NONCE_LEN: usize = 12;

/// A cookie value never needs more: 3 + base64 of 12 + 48 + 16 bytes.
const MAX_COOKIE_LEN: usize = 128;

pub struct SessionSeal {
    cipher: Aes256Gcm,
}

impl SessionSeal {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    /// The cookie value for `token`. `nonce` must be fresh random bytes:
    /// reusing one under the same key breaks AES-GCM.
    pub fn seal(&self, token: &Token, nonce: [u8; NONCE_LEN]) -> String {
        let plaintext = token.expose();
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: CONTEXT,
        };
        // Encryption only fails for inputs far larger than a token.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The token in a cookie value, or `None` for anything that is not a
    /// seal made with this key: tampered, foreign, truncated or garbage.
    pub fn open(&self, value: &str) -> Option<Token> {
        if value.len() > MAX_COOKIE_LEN {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(value.strip_prefix(VERSION)?).ok()?;
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: CONTEXT,
        };
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .ok()?;
        std::str::from_utf8(&plaintext).ok()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::from_random([1; 16], [2; 16])
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_key() {
        let seal = SessionSeal::new(&[7; 32]);
        let value = seal.seal(&token(), [3; 12]);
        assert!(value.starts_with("v1."));
        assert!(
            !value.contains(&token().secret().expose()),
            "the secret is not visible"
        );
        let opened = seal.open(&value).unwrap();
        assert_eq!(opened.expose(), token().expose());
    }

    #[test]
    fn tampered_foreign_and_garbage_cookies_open_to_nothing() {
        let seal = SessionSeal::new(&[7; 32]);
        let value = seal.seal(&token(), [3; 12]);
        let mut bytes = value.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        let foreign = SessionSeal::new(&[8; 32]).seal(&token(), [3; 12]);
        for bad in [
            tampered.as_str(),
            foreign.as_str(),
            "",
            "v1.",
            "v1.AAAA",
            "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "not a cookie",
            &"v1.".repeat(100),
            &value[3..],
        ] {
            assert!(seal.open(bad).is_none(), "{bad:?} opened");
        }
    }
}
