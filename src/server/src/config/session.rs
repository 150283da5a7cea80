//! `[session]`: the session cookie, which the filter opens itself.

use serde::Deserialize;

use super::encryption::{decode_key, KeyMaterial};
use super::{invalid, ConfigError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    /// Name of the cookie. Default: portcullis_session.
    #[serde(default = "default_cookie_name")]
    cookie_name: String,
    /// 32 bytes in standard base64, shared with the filter, which opens
    /// the cookie itself.
    key: String,
    /// The cookie's Domain attribute. Default: none (this host only).
    domain: Option<String>,
    /// Mark the cookie Secure (HTTPS only). Default: true; false only for
    /// plain-http development.
    #[serde(default = "default_secure")]
    secure: bool,
    /// Where `/logout` sends the browser afterwards. Default: /signed-out,
    /// the companion's own page saying so.
    #[serde(default = "default_logout_url")]
    logout_url: String,
}

fn default_secure() -> bool {
    true
}

fn default_logout_url() -> String {
    "/signed-out".to_owned()
}

fn default_cookie_name() -> String {
    "portcullis_session".to_owned()
}

/// The session cookie: its name and the key that seals it.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub key: KeyMaterial,
    pub domain: Option<String>,
    pub secure: bool,
    pub logout_url: String,
}

impl RawSession {
    pub(super) fn validate(self) -> Result<SessionConfig, ConfigError> {
        // RFC 6265 cookie-name: a token (no separators, no controls).
        let valid_name = !self.cookie_name.is_empty()
            && self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(invalid(
                "session.cookie_name",
                "must be an RFC 6265 cookie name",
            ));
        }
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        };
        if self.domain.as_deref().is_some_and(|d| !plain(d)) {
            return Err(invalid("session.domain", "must be a host name"));
        }
        let local = self.logout_url.starts_with('/') && !self.logout_url.starts_with("//");
        let absolute =
            self.logout_url.starts_with("https://") || self.logout_url.starts_with("http://");
        if !(local || absolute) || !plain(&self.logout_url) {
            return Err(invalid(
                "session.logout_url",
                "must be an http(s) URL or a path starting with one /",
            ));
        }
        Ok(SessionConfig {
            domain: self.domain,
            secure: self.secure,
            logout_url: self.logout_url,
            cookie_name: self.cookie_name,
            key: decode_key(&self.key)
                .ok_or_else(|| invalid("session.key", "must be 32 bytes in standard base64"))?,
        })
    }
}
