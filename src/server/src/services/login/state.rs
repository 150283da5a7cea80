//! The login-state cookie: what `/login` must find again at the callback
//! (state, nonce, PKCE verifier, where to return), sealed with AES-256-GCM
//! under the session key and bound to its purpose, so that no server-side
//! state is needed between the two requests (any replica may answer).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::secret::Secret;
use serde::{Deserialize, Serialize};

/// Bound into every seal: a session cookie does not open as a login state,
/// nor the reverse, although they share the key.
const CONTEXT: &[u8] = b"portcullis-login-state-v1";
const NONCE_LEN: usize = 12;
/// Cookies longer than this are not ours.
const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub state: String,
    pub nonce: String,
    pub verifier: Secret,
    pub return_to: String,
    pub expires: u64,
}

pub struct StateSeal {
    cipher: Aes256Gcm,
}

impl StateSeal {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    /// `nonce` must be fresh random bytes.
    pub fn seal(&self, state: &LoginState, nonce: [u8; NONCE_LEN]) -> String {
        let plaintext = serde_json::to_vec(state).unwrap_or_default();
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: CONTEXT,
                },
            )
            .unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    pub fn open(&self, value: &str) -> Option<LoginState> {
        if value.len() > MAX_LEN {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: CONTEXT,
                },
            )
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::session::SessionSeal;
    use portcullis_core::Token;

    fn state() -> LoginState {
        LoginState {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/app".into(),
            expires: 10,
        }
    }

    #[test]
    fn seals_round_trip_and_refuse_tampering_and_other_purposes() {
        let seal = StateSeal::new(&[7; 32]);
        let sealed = seal.seal(&state(), [1; 12]);
        assert_eq!(seal.open(&sealed), Some(state()));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(seal.open(std::str::from_utf8(&tampered).unwrap()), None);
        assert_eq!(StateSeal::new(&[8; 32]).open(&sealed), None);
        // A session cookie made with the same key is not a login state.
        let session =
            SessionSeal::new(&[7; 32]).seal(&Token::from_random([1; 16], [2; 16]), [3; 12]);
        assert_eq!(seal.open(session.trim_start_matches("v1.")), None);
    }
}
