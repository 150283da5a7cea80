//! The `portcullis` command line, one file per group of commands.

mod config_init;
mod login;
mod oidc_clients;
mod serve;
mod store;
mod tokens;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config;
use config_init::ConfigCommand;
use oidc_clients::OidcClientCommand;
use store::KeysCommand;
use tokens::TokenCommand;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Portcullis companion: token storage and checks for the Envoy filter"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "portcullis.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the check endpoint and the API.
    Serve,
    /// Work with tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Write every token, link, history entry and OpenID Connect client
    /// as one JSON document (token data stays sealed), to move a
    /// deployment to another store.
    Export {
        /// File to write (mode 0600); standard output if absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Add an export to this configuration's store, which must be empty
    /// and have the same [encryption] keys; all of it or nothing.
    Import {
        /// The export file; `-` for standard input.
        #[arg(long, short)]
        input: PathBuf,
    },
    /// Bring the store's schema up to date (the distributed store's
    /// companions refuse to start until it is, unless
    /// storage.migrate_on_start is set).
    Migrate,
    /// Expire tokens past their expiry and drop history older than the
    /// retention (the server also does this every maintenance interval).
    Maintenance,
    /// Check the stores against each other; exits 1 if problems remain.
    Audit {
        /// Repair what can be repaired.
        #[arg(long)]
        fix: bool,
    },
    /// Work with the encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Log in through a running companion with a browser, and keep the
    /// token under your configuration directory (mode 0600).
    Login {
        /// The companion's public URL.
        #[arg(long, env = "PORTCULLIS_SERVER_URL")]
        server: String,
    },
    /// Register and remove OpenID Connect clients.
    OidcClient {
        #[command(subcommand)]
        command: OidcClientCommand,
    },
}

pub(super) type CliResult = Result<(), Box<dyn std::error::Error>>;

/// `portcullis token list | head -1`: once the reader has gone, the next
/// write ends the process, as it ends `ls` or `grep`. Rust ignores SIGPIPE,
/// so that write would fail instead and `println!` would panic. Not for
/// `serve`, whose writes to a client that hung up must fail, not kill it.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: restoring a signal's default disposition, before any thread
    // that could be writing has started, has no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve) {
        end_quietly_on_a_closed_pipe();
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    // One JSON object per line for a log pipeline; text for a person.
    match std::env::var("PORTCULLIS_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().flatten_event(true).init(),
        _ => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let result = match cli.command {
        Command::Serve => serve::serve(&cli.config).await,
        Command::Token { command } => tokens::token_command(&cli.config, command).await,
        Command::Config {
            command:
                ConfigCommand::Init {
                    listen,
                    ingress_listen,
                    trusted_proxies,
                    database,
                    database_url,
                    redis_url,
                    key_prefix,
                    from,
                },
        } => {
            let storage = match (&database_url, &redis_url) {
                (Some(database_url), Some(redis_url)) => config::InitialStorage::Distributed {
                    database_url,
                    redis_url,
                    key_prefix: &key_prefix,
                },
                _ => config::InitialStorage::Embedded(&database),
            };
            config_init::init_config(
                &cli.config,
                listen,
                ingress_listen,
                &trusted_proxies,
                &storage,
                from.as_deref(),
            )
        }
        Command::Migrate => store::migrate(&cli.config).await,
        Command::Export { output } => store::export(&cli.config, output.as_deref()).await,
        Command::Import { input } => store::import(&cli.config, &input).await,
        Command::Maintenance => store::maintenance(&cli.config).await,
        Command::Audit { fix } => store::audit(&cli.config, fix).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => store::rotate_keys(&cli.config).await,
        Command::Login { server } => login::login(&server)
            .await
            .map(|path| eprintln!("logged in; token stored in {}", path.display()))
            .map_err(Into::into),
        Command::OidcClient { command } => oidc_clients::oidc_client(&cli.config, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_begin_with_a_hyphen_are_keys_not_flags() {
        // `-h…` would otherwise print help and exit 0: a revoke that
        // silently revokes nothing.
        let keys = ["-h", "-V", "--"].map(|start| format!("{start}{}", "A".repeat(20)));
        for key in &keys {
            for verb in ["show", "revoke"] {
                let cli = Cli::try_parse_from(["portcullis", "token", verb, key.as_str()]).unwrap();
                let Command::Token { command } = cli.command else {
                    panic!("not a token command")
                };
                let parsed = match command {
                    TokenCommand::Show { key } | TokenCommand::Revoke { key } => key,
                    _ => panic!("{verb} parsed as something else"),
                };
                assert_eq!(parsed.as_str(), key.as_str());
            }
        }
    }
}
