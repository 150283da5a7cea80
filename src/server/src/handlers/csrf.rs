//! The CSRF token of a browser session: what a page must send back in
//! `X-CSRF-Token` (or a form's `csrf` field) before a write authenticated
//! by the session cookie is done. The cookie is sent by the browser on its
//! own, even for a request another site starts; this token is not, since
//! no other site can read it.
//!
//! It is stateless: an HMAC of the session token's key under a key derived
//! from the session key (OWASP's "signed double-submit" bound to the
//! session), so any replica can check it and it ends with the session.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::TokenKey;

/// The header an API client sends the token in, as Gafaelfawr names it.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the HMAC binds besides the key, so no other use of the session key
/// can produce a CSRF token.
const CONTEXT: &[u8] = b"portcullis csrf v1\0";

pub struct CsrfKey(hmac::Key);

impl CsrfKey {
    /// A key of its own, derived from the session key so that nothing sealed
    /// or signed with that key for another purpose can pass as a CSRF token.
    pub fn new(session_key: &[u8; 32]) -> Self {
        let parent = hmac::Key::new(hmac::HMAC_SHA256, session_key);
        let derived = hmac::sign(&parent, b"portcullis csrf key");
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// The token for the session whose token has `key`.
    pub fn token_for(&self, key: &TokenKey) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, &message(key)).as_ref())
    }

    /// Whether `presented` is the session's token, compared in constant time.
    pub fn verify(&self, key: &TokenKey, presented: &[u8]) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        hmac::verify(&self.0, &message(key), &tag).is_ok()
    }
}

fn message(key: &TokenKey) -> Vec<u8> {
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(key.as_str().as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> TokenKey {
        text.parse().unwrap()
    }

    #[test]
    fn a_token_passes_for_its_own_session_only() {
        let csrf = CsrfKey::new(&[7; 32]);
        let (mine, other) = (key("DGO1OnPohl0r3C7wqhzRgQ"), key("lCEZ0XWzWo9ZGNa6qLD9Kg"));
        let token = csrf.token_for(&mine);
        assert!(csrf.verify(&mine, token.as_bytes()));
        assert!(!csrf.verify(&other, token.as_bytes()));
        assert!(!CsrfKey::new(&[8; 32]).verify(&mine, token.as_bytes()));
        for bad in ["", "x", "%%%", &token[1..], &format!("{token}A")] {
            assert!(!csrf.verify(&mine, bad.as_bytes()), "{bad}");
        }
    }
}
