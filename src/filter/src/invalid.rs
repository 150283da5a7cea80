//! What a bad configuration is: the field it is about and why, and JSON
//! parsing that names that field. A leaf, so that every part of the
//! configuration (the filter's, a policy, a rule) can use it without the
//! parts importing each other.

use portcullis_core::redact::is_plain_name;
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
        let path = plain_path(&e.path().to_string());
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
        ConfigError::new(&field, without_values(&strip_position(&message)))
    })
}

/// The field path with every segment that is no plain name shown as `?`.
fn plain_path(path: &str) -> String {
    path.split('.')
        .map(|segment| {
            let name = segment.split('[').next().unwrap_or_default();
            match name.is_empty() || is_plain_name(name) {
                true => segment.to_owned(),
                false => format!("?{}", &segment[name.len()..]),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// serde's message without the value it quotes, nor a field name that is
/// no plain name (a secret pasted where a name goes): the error goes to
/// Envoy's log.
fn without_values(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        if !is_plain_name(name) {
            return match message.find(", expected") {
                Some(at) => format!("unknown field{}", &message[at..]),
                None => "unknown field".to_owned(),
            };
        }
    }
    portcullis_core::redact::without_quoted_value(message)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Raw {
        timeout_ms: Option<u64>,
        satisfy: Option<portcullis_core::Satisfy>,
        nested: Option<Nested>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        key: String,
    }

    #[test]
    fn errors_name_fields_but_never_quote_values() {
        let secret = "cG9ydGN1bGxpcy1mdXp6LXNlc3Npb24ta2V5LTAwMDE=";
        for json in [
            format!(r#"{{"timeout_ms":"{secret}"}}"#),
            format!(r#"{{"satisfy":"{secret}"}}"#),
            format!(r#"{{"nested":"{secret}"}}"#),
        ] {
            let e = parse_json::<Raw>(json.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains(secret), "{e}");
            assert!(e.contains("expected"), "{e}");
        }
        let e = parse_json::<Raw>(br#"{"timeout":1}"#).unwrap_err();
        assert!(e.reason.contains("unknown field `timeout`"), "{e}");
        // Nor a secret pasted where a field's name goes.
        let e = parse_json::<Raw>(format!(r#"{{"{secret}":1}}"#).as_bytes()).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(e.reason.starts_with("unknown field, expected"), "{e}");
    }
}
