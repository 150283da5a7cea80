//! What a bad configuration is: the field it is about and why, and JSON
//! parsing that names that field. A leaf, so that every part of the
//! configuration (the filter's, a policy, a rule) can use it without the
//! parts importing each other.

use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin configuration: field `{field}`: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses JSON into `T`, with an error that names the field it is about.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // A missing field is reported at its enclosing object, named only
        // in the message; an unknown one already has its own path.
        let missing = message
            .starts_with("missing field")
            .then(|| field_named_in(&message))
            .flatten();
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name,
            (".", None) => "(root)".to_owned(),
            (path, Some(name)) => format!("{path}.{name}"),
            (path, None) => path.to_owned(),
        };
        ConfigError::new(&field, strip_position(&message))
    })
}

/// The field in serde_json's "missing field `x`".
fn field_named_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Drops serde_json's " at line L column C": the configuration is one
/// string in Envoy's YAML, so the position would mislead more than help.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
