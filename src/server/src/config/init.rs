//! `portcullis config init`: a new configuration, commented, from the
//! template beside this file.

use std::net::SocketAddr;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ipnet::IpNet;
use portcullis_core::Token;

use super::default_scopes;

/// The template, with `{{name}}` where a value goes.
const TEMPLATE: &str = include_str!("init.toml");

/// The random material a new configuration holds.
pub struct InitialSecrets {
    pub data_key: [u8; 32],
    pub session_key: [u8; 32],
    pub bootstrap: Token,
    /// PKCS#8 PEM of the OpenID Connect provider's first signing key.
    pub signing_key: String,
}

/// Where `config init` puts the tokens.
pub enum InitialStorage<'a> {
    /// A SQLite file, relative to the configuration file's folder.
    Embedded(&'a Path),
    Distributed {
        database_url: &'a str,
        redis_url: &'a str,
        key_prefix: &'a str,
    },
}

impl InitialStorage<'_> {
    fn toml(&self) -> String {
        match self {
            InitialStorage::Embedded(path) => format!(
                "backend = \"embedded\"\n\
                 # SQLite file; relative paths are taken from this file's folder.\n\
                 path = {:?}\n",
                path.display().to_string()
            ),
            InitialStorage::Distributed {
                database_url,
                redis_url,
                key_prefix,
            } => format!(
                "backend = \"distributed\"\n\
                 database_url = {database_url:?}\n\
                 redis_url = {redis_url:?}\n\
                 # Prefix of every Redis key.\n\
                 key_prefix = {key_prefix:?}\n\
                 # Apply database migrations at start-up; otherwise run `portcullis migrate`\n\
                 # before starting a companion of a new version.\n\
                 migrate_on_start = false\n"
            ),
        }
    }
}

/// `items` as a TOML array of strings.
fn toml_list(items: &[IpNet]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|n| format!("{:?}", n.to_string()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The commented configuration `portcullis config init` writes: the
/// template (`init.toml`) with the listeners, the storage, fresh secrets and
/// the default scopes filled in.
pub fn initial_toml(
    listen: SocketAddr,
    ingress_listen: SocketAddr,
    trusted_proxies: &[IpNet],
    storage: &InitialStorage,
    secrets: &InitialSecrets,
) -> String {
    let scopes: String = default_scopes()
        .iter()
        .map(|(name, description)| format!("{name:?} = {description:?}\n"))
        .collect();
    // Filled in one pass, so that no value can be taken for a placeholder.
    let values = [
        ("listen", listen.to_string()),
        ("ingress_listen", ingress_listen.to_string()),
        ("trusted_proxies", toml_list(trusted_proxies)),
        ("bootstrap", secrets.bootstrap.expose()),
        ("storage", storage.toml()),
        ("session_key", STANDARD.encode(secrets.session_key)),
        ("signing_key", secrets.signing_key.clone()),
        ("scopes", scopes),
        ("key", STANDARD.encode(secrets.data_key)),
    ];
    let mut out = String::with_capacity(TEMPLATE.len() + 4096);
    let mut rest = TEMPLATE;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let (name, tail) = after.split_once("}}").unwrap_or((after, ""));
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => {
                out.push_str("{{");
                out.push_str(name);
                out.push_str("}}");
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}
