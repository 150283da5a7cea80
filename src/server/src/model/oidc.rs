//! OpenID Connect: client names and addresses, registered clients, the
//! codes and grants behind issued tokens.

use std::fmt;
use std::str::FromStr;

use portcullis_core::TokenKey;
use serde::{Deserialize, Serialize};
use url::Url;

const MAX_CLIENT_ID_LEN: usize = 64;

/// A client id: 1 to 64 of A-Z a-z 0-9 `.` `_` `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl FromStr for ClientId {
    type Err = &'static str;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let valid = (1..=MAX_CLIENT_ID_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        match valid {
            true => Ok(Self(id.to_owned())),
            false => Err("client id must be 1 to 64 of A-Z a-z 0-9 . _ -"),
        }
    }
}

/// A redirect URI: absolute http(s), no fragment (RFC 6749 §3.1.2), and
/// plain http only to this machine (RFC 8252 §7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl FromStr for RedirectUri {
    type Err = &'static str;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(uri).map_err(|_| "not an absolute URL")?;
        if url.fragment().is_some() {
            return Err("a redirect URI has no fragment");
        }
        match url.scheme() {
            "https" => Ok(Self(uri.to_owned())),
            "http" if matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) => {
                Ok(Self(uri.to_owned()))
            }
            "http" => Err("plain http is allowed only to localhost"),
            _ => Err("must be an https URL"),
        }
    }
}

macro_rules! text {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

text!(ClientId, RedirectUri);

/// A registered client as stored (only its secret's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClientRecord {
    pub client_id: String,
    /// `None` for a public client.
    pub secret_sha256: Option<[u8; 32]>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub name: Option<String>,
    pub created: u64,
}

/// An authorization code, stored by the SHA-256 of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_sha256: [u8; 32],
    pub client_id: String,
    pub redirect_uri: String,
    pub session: TokenKey,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: u64,
    pub expires: u64,
}

/// The client and OpenID scopes behind an issued access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcGrant {
    pub token: TokenKey,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub auth_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_absolute_https_or_local_http_without_fragment() {
        for good in [
            "https://app.example.org/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb?x=1",
        ] {
            assert_eq!(
                good.parse::<RedirectUri>().map(RedirectUri::into_string),
                Ok(good.to_owned())
            );
        }
        for bad in [
            "/cb",
            "app.example.org/cb",
            "https://app.example.org/cb#frag",
            "http://app.example.org/cb",
            "javascript:alert(1)",
            "ftp://example.org/",
        ] {
            assert!(bad.parse::<RedirectUri>().is_err(), "{bad}");
        }
    }

    #[test]
    fn client_ids_are_plain() {
        assert_eq!(
            "app-1.example_x".parse::<ClientId>().unwrap().as_str(),
            "app-1.example_x"
        );
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad:?}");
        }
    }
}
