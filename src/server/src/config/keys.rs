//! Editing the configuration file for `portcullis keys rotate`, keeping
//! everything else in it (comments included).

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{invalid, Config, ConfigError};

/// Adds `key` to the file's `[encryption.keys]` under a new id and makes it
/// the active key, keeping the rest of the file (comments included). The
/// file is replaced atomically and stays mode 0600. Returns the new id.
pub fn add_active_key(path: &Path, key: [u8; 32]) -> Result<String, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    // Validate first: never rotate a configuration that would not load.
    Config::from_toml(&text, path.parent().unwrap_or(Path::new(".")))?;
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| ConfigError::Parse {
                path: path.to_owned(),
                message: super::parse_message(e.message(), e.span(), &text),
            })?;
    let keys = doc["encryption"]["keys"]
        .as_table_like_mut()
        .ok_or_else(|| invalid("encryption.keys", "must be a table"))?;
    let mut n = keys.len() + 1;
    while keys.contains_key(&format!("k{n}")) {
        n += 1;
    }
    let id = format!("k{n}");
    keys.insert(&id, toml_edit::value(STANDARD.encode(key)));
    doc["encryption"]["active_key"] = toml_edit::value(id.as_str());

    crate::private_file::write_private(path, doc.to_string().as_bytes()).map_err(|source| {
        ConfigError::Write {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(id)
}

/// The secrets a store's data depends on, carried from `old` (a
/// configuration file's text) into `new`: `[encryption]` (the keys that open
/// the token data), the session key (the cookies users hold), the OpenID
/// Connect signing keys (the ID tokens relying parties hold) and the
/// bootstrap token. `config init --from` uses it so that export, migrate and
/// import to another store need no hand edits. `old` must load.
pub fn carry_secrets(old: &str, old_base: &Path, new: &str) -> Result<String, ConfigError> {
    let old_config = Config::from_toml(old, old_base)?;
    let parse = |text: &str| {
        text.parse::<toml_edit::DocumentMut>()
            .map_err(|e| ConfigError::Parse {
                path: std::path::PathBuf::new(),
                message: super::parse_message(e.message(), e.span(), text),
            })
    };
    let (from, mut into) = (parse(old)?, parse(new)?);
    into["encryption"] = from["encryption"].clone();
    if let Some(session) = from.get("session") {
        into["session"] = session.clone();
    }
    if let Some(provider) = from.get("oidc_server") {
        into["oidc_server"] = provider.clone();
    }
    if old_config.bootstrap_token.is_some() {
        into["bootstrap_token"] = from["bootstrap_token"].clone();
    }
    Ok(into.to_string())
}
