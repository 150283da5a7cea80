//! A string that is a credential: a code, a verifier, a poll secret, an
//! access or ID token. `Debug` and `Display` never print it, so no log line
//! or panic message can; serde still reads and writes it as the plain
//! string the protocol needs.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The one way to the value: for the wire, a digest, or a comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_prints_a_redaction_but_serialises_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret:?} {secret}"),
            "Secret(<redacted>) <redacted>"
        );
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"hunter2\"");
        let read: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(read.expose(), "hunter2");
    }
}
