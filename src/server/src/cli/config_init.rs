//! `portcullis config init`: a new configuration file with fresh secrets.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use portcullis_core::Token;

use crate::config::{self};
use crate::random;

use super::CliResult;

#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Write a new configuration file with a fresh key and bootstrap token.
    Init {
        /// Address the companion will listen on.
        #[arg(long, default_value = "127.0.0.1:8300")]
        listen: SocketAddr,
        /// Address of the ingress listener, for the proxy's network only.
        #[arg(long, default_value = "127.0.0.1:8303")]
        ingress_listen: SocketAddr,
        /// A proxy (CIDR block) whose X-Forwarded-For is believed; repeat
        /// for more. Default: none.
        #[arg(long = "trusted-proxy")]
        trusted_proxies: Vec<ipnet::IpNet>,
        /// SQLite file, relative to the configuration file's folder.
        #[arg(long, default_value = "portcullis.sqlite")]
        database: PathBuf,
        /// Use the distributed store in this PostgreSQL database instead
        /// (needs --redis-url too).
        #[arg(long, env = "PORTCULLIS_DATABASE_URL", requires = "redis_url")]
        database_url: Option<String>,
        /// The Redis of the distributed store.
        #[arg(long, env = "PORTCULLIS_REDIS_URL", requires = "database_url")]
        redis_url: Option<String>,
        /// Prefix of the distributed store's Redis keys.
        #[arg(
            long,
            env = "PORTCULLIS_REDIS_KEY_PREFIX",
            default_value = "portcullis:"
        )]
        key_prefix: String,
        /// Carry the encryption keys, the session key, the OpenID Connect
        /// signing keys and the bootstrap token over from this
        /// configuration, so that a store exported under it imports under
        /// the new one.
        #[arg(long)]
        from: Option<PathBuf>,
    },
}

pub(super) fn init_config(
    path: &Path,
    listen: SocketAddr,
    ingress_listen: SocketAddr,
    trusted_proxies: &[ipnet::IpNet],
    storage: &config::InitialStorage,
    from: Option<&Path>,
) -> CliResult {
    let (data_key, session_key) = (random::bytes()?, random::bytes()?);
    let (token_key, token_secret) = (random::bytes()?, random::bytes()?);
    let secrets = config::InitialSecrets {
        data_key,
        session_key,
        bootstrap: Token::from_random(token_key, token_secret),
        signing_key: config::generate_signing_key()?,
    };
    let mut text = config::initial_toml(listen, ingress_listen, trusted_proxies, storage, &secrets);
    if let Some(old) = from {
        let old_text = std::fs::read_to_string(old)
            .map_err(|e| format!("cannot read {}: {e}", old.display()))?;
        text = config::carry_secrets(&old_text, old.parent().unwrap_or(Path::new(".")), &text)
            .map_err(|e| format!("{}: {e}", old.display()))?;
    }
    // create_new: never overwrite a key someone depends on. 0600: the file
    // holds the key and the bootstrap token.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
