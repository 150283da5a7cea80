//! The system's random source, the one way the companion draws secrets:
//! bytes, and the URL-safe strings codes, states, nonces and client secrets
//! are made of. A failure is one error wherever it happens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| RandomError)?;
    Ok(out)
}

/// 32 random bytes as unpadded URL-safe base64 (43 characters).
pub fn url_safe_string() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_43_url_safe_characters_and_differ() {
        let (a, b) = (url_safe_string().unwrap(), url_safe_string().unwrap());
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
        assert_ne!(bytes::<16>().unwrap(), bytes::<16>().unwrap());
    }
}
