//! The `portcullis` command line.

use std::fs::OpenOptions;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_core::session::SessionSeal;
use portcullis_core::{Group, Scope, Token, TokenKey, TokenType};
use tracing_subscriber::EnvFilter;

use crate::app::App;
use crate::config::{self, Config};
use crate::random;
use crate::services::{Actor, AdminTokenRequest, UserInfo};

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

#[derive(Subcommand)]
enum OidcClientCommand {
    /// Register a client; prints it as JSON with its secret, which cannot
    /// be shown again.
    Create {
        #[arg(long)]
        id: String,
        /// A redirect URI; repeat for more.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret, PKCE required).
        #[arg(long)]
        public: bool,
        #[arg(long)]
        name: Option<String>,
    },
    /// List clients as JSON.
    List,
    /// Remove a client registered through the API or this command.
    Delete { id: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new key to the configuration, make it the active one and
    /// re-encrypt every token with it. Old keys stay listed (and old
    /// ciphertext readable) until you remove them.
    Rotate,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it on standard output.
    Create(CreateArgs),
    /// List tokens, one a line: key, user, type, name, scopes, expiry.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Show one token's metadata as JSON.
    Show {
        // A key may begin with `-` (URL-safe base64): never a flag here.
        #[arg(allow_hyphen_values = true)]
        key: TokenKey,
    },
    /// Revoke a token and, recursively, its children.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        key: TokenKey,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
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
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliTokenType {
    User,
    Service,
    Session,
}

impl From<CliTokenType> for TokenType {
    fn from(t: CliTokenType) -> Self {
        match t {
            CliTokenType::User => TokenType::User,
            CliTokenType::Service => TokenType::Service,
            CliTokenType::Session => TokenType::Session,
        }
    }
}

#[derive(Args)]
struct CreateArgs {
    /// Owner of the token.
    #[arg(long)]
    user: String,
    /// A scope for the token; repeat for more.
    #[arg(long = "scope")]
    scopes: Vec<Scope>,
    #[arg(long = "type", value_enum, default_value = "user")]
    token_type: CliTokenType,
    /// Time until the token expires, such as `30d` or `12h`; never if absent.
    #[arg(long, value_parser = humantime::parse_duration)]
    lifetime: Option<Duration>,
    /// The token's name, unique per user; required for user tokens.
    #[arg(long)]
    token_name: Option<String>,
    /// The user's full name.
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    uid: Option<u32>,
    #[arg(long)]
    gid: Option<u32>,
    /// A group as NAME or NAME:GID; repeat for more.
    #[arg(long = "group", value_parser = parse_group)]
    groups: Vec<Group>,
    /// For a session token: print it as the session cookie, `name=value`,
    /// sealed as the filter opens it.
    #[arg(long)]
    cookie: bool,
}

fn parse_group(s: &str) -> Result<Group, String> {
    match s.split_once(':') {
        None if !s.is_empty() => Ok(Group {
            name: s.to_owned(),
            id: None,
        }),
        Some((name, id)) if !name.is_empty() => id
            .parse()
            .map(|id| Group {
                name: name.to_owned(),
                id: Some(id),
            })
            .map_err(|_| format!("group id {id:?} is not a number")),
        _ => Err("group name is empty".to_owned()),
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve => serve(&cli.config).await,
        Command::Token { command } => token_command(&cli.config, command).await,
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
            init_config(
                &cli.config,
                listen,
                ingress_listen,
                &trusted_proxies,
                &storage,
            )
        }
        Command::Migrate => migrate(&cli.config).await,
        Command::Export { output } => export(&cli.config, output.as_deref()).await,
        Command::Import { input } => import(&cli.config, &input).await,
        Command::Maintenance => maintenance(&cli.config).await,
        Command::Audit { fix } => audit(&cli.config, fix).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys(&cli.config).await,
        Command::Login { server } => crate::login_client::login(&server)
            .await
            .map(|path| eprintln!("logged in; token stored in {}", path.display()))
            .map_err(Into::into),
        Command::OidcClient { command } => oidc_client(&cli.config, command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config_path: &Path) -> CliResult {
    let config = Config::load(config_path)?;
    let app = std::sync::Arc::new(App::from_config(&config).await?);
    app.spawn_maintenance(config.maintenance_interval);
    let bind = |address: SocketAddr| async move {
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))
    };
    let (public, ingress) = (
        bind(config.listen).await?,
        bind(config.ingress_listen).await?,
    );
    tracing::info!(
        listen = %config.listen,
        ingress_listen = %config.ingress_listen,
        "portcullis companion serving"
    );
    let limits = crate::serve::Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections,
    };
    // One signal stops both listeners.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let stopped = || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    };
    tokio::join!(
        crate::serve::serve(public, app.router(), limits, stopped()),
        crate::serve::serve(ingress, app.ingress_router(), limits, stopped()),
    );
    tracing::info!("portcullis companion stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}

async fn token_command(config_path: &Path, command: TokenCommand) -> CliResult {
    let config = Config::load(config_path)?;
    let app = App::from_config(&config).await?;
    match command {
        TokenCommand::Create(args) => create_token(&app, &config, args).await,
        TokenCommand::List { user } => {
            println!("key\tuser\ttype\tname\tscopes\texpires");
            for t in app.tokens.list_tokens(&Actor::Cli, user.as_deref()).await? {
                let expires = t.expires.map_or("never".to_owned(), |e| e.to_string());
                let scopes = portcullis_core::scope::join(&t.scopes);
                let name = t.token_name.as_deref().unwrap_or("-");
                println!(
                    "{}\t{}\t{}\t{name}\t{scopes}\t{expires}",
                    t.token,
                    t.username,
                    t.token_type.as_str()
                );
            }
            Ok(())
        }
        TokenCommand::Show { key } => {
            let info = app.tokens.get_token_info_unchecked(&key, None).await?;
            let info = info.ok_or_else(|| format!("no token {key}"))?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        TokenCommand::Revoke { key } => {
            let info = app.tokens.get_token_info_unchecked(&key, None).await?;
            let info = info.ok_or_else(|| format!("no token {key}"))?;
            app.tokens
                .delete_token(&key, &Actor::Cli, &info.username, None)
                .await?;
            eprintln!("revoked {key} and its children");
            Ok(())
        }
    }
}

async fn oidc_client(config_path: &Path, command: OidcClientCommand) -> CliResult {
    let app = App::from_config(&Config::load(config_path)?).await?;
    let oidc = app
        .oidc
        .as_ref()
        .ok_or("the configuration has no [oidc_server] section")?;
    match command {
        OidcClientCommand::Create {
            id,
            redirect_uris,
            public,
            name,
        } => {
            let new = crate::services::oidc::NewClient {
                client_id: id,
                redirect_uris,
                public,
                name,
            };
            let (client, secret) = oidc.clients().register(&Actor::Cli, new).await?;
            let shown = serde_json::json!({
                "client_id": client.client_id,
                "client_secret": secret,
                "redirect_uris": client.redirect_uris,
                "public": client.public,
            });
            println!("{shown}");
        }
        OidcClientCommand::List => {
            for client in oidc.clients().list(&Actor::Cli).await? {
                let shown = serde_json::json!({
                    "client_id": client.client_id,
                    "redirect_uris": client.redirect_uris,
                    "public": client.public,
                    "name": client.name,
                });
                println!("{shown}");
            }
        }
        OidcClientCommand::Delete { id } => {
            if !oidc.clients().delete(&Actor::Cli, &id).await? {
                return Err(format!("no client {id:?}").into());
            }
        }
    }
    Ok(())
}

async fn migrate(config_path: &Path) -> CliResult {
    let applied = crate::app::migrate(&Config::load(config_path)?).await?;
    eprintln!("applied {applied} migrations; the schema is up to date");
    Ok(())
}

async fn export(config_path: &Path, output: Option<&Path>) -> CliResult {
    let app = App::from_config(&Config::load(config_path)?).await?;
    let (document, moved) = app.transfer.export().await?;
    match output {
        // The file holds sealed token data and client secret hashes.
        Some(path) => crate::private_file::write_private(path, &document)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => std::io::stdout().write_all(&document)?,
    }
    eprintln!(
        "exported {} tokens, {} history entries and {} OpenID Connect clients",
        moved.tokens, moved.history, moved.oidc_clients
    );
    Ok(())
}

async fn import(config_path: &Path, input: &Path) -> CliResult {
    let document = match input.to_str() {
        Some("-") => {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
            buffer
        }
        _ => std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?,
    };
    let app = App::from_config(&Config::load(config_path)?).await?;
    let moved = app.transfer.import(&document).await?;
    eprintln!(
        "imported {} tokens, {} history entries and {} OpenID Connect clients",
        moved.tokens, moved.history, moved.oidc_clients
    );
    Ok(())
}

async fn maintenance(config_path: &Path) -> CliResult {
    let app = App::from_config(&Config::load(config_path)?).await?;
    let Some(done) = app.run_maintenance().await? else {
        return Err("another companion is running maintenance now; try again later".into());
    };
    eprintln!(
        "expired {} tokens; dropped {} history entries and {} authorization codes; closed {} CLI logins never completed",
        done.expired, done.history_dropped, done.codes_dropped, done.pending_closed
    );
    Ok(())
}

async fn audit(config_path: &Path, fix: bool) -> CliResult {
    let app = App::from_config(&Config::load(config_path)?).await?;
    let report = app.tokens.audit(fix).await?;
    for fixed in &report.fixed {
        println!("fixed: {fixed}");
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    match report.problems.len() {
        0 => Ok(()),
        n => Err(format!("{n} problems remain").into()),
    }
}

async fn rotate_keys(config_path: &Path) -> CliResult {
    let id = config::add_active_key(config_path, random::bytes()?)?;
    let app = App::from_config(&Config::load(config_path)?).await?;
    let resealed = app.tokens.reseal_all().await?;
    eprintln!(
        "key {id} is now active; re-encrypted {resealed} tokens. Running companions load it \
         when they meet it. Remove old keys from [encryption.keys] once every companion has it."
    );
    Ok(())
}

async fn create_token(app: &App, config: &Config, args: CreateArgs) -> CliResult {
    let session = match (args.cookie, args.token_type, &config.session) {
        (false, _, _) => None,
        (true, CliTokenType::Session, Some(session)) => Some(session),
        (true, CliTokenType::Session, None) => {
            return Err("--cookie needs a [session] section in the configuration".into())
        }
        (true, _, _) => return Err("--cookie is for session tokens (--type session)".into()),
    };
    let user = UserInfo {
        username: args.user,
        name: args.name,
        email: args.email,
        uid: args.uid,
        gid: args.gid,
        groups: args.groups,
    };
    let token = match args.token_type {
        CliTokenType::Session if args.lifetime.is_some() => {
            return Err(
                "--lifetime does not apply to session tokens: they last session_lifetime_seconds"
                    .into(),
            );
        }
        CliTokenType::Session => {
            app.tokens
                .create_session_token(&user, args.scopes, None)
                .await?
        }
        CliTokenType::User | CliTokenType::Service => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let request = AdminTokenRequest {
                user,
                token_type: args.token_type.into(),
                token_name: args.token_name,
                scopes: args.scopes,
                expires: args.lifetime.map(|l| now.saturating_add(l.as_secs())),
            };
            app.tokens
                .create_token_from_admin_request(request, &Actor::Cli, None)
                .await?
        }
    };
    match session {
        None => println!("{}", token.expose()),
        Some(session) => {
            let value = SessionSeal::new(&session.key.0).seal(&token, random::bytes()?);
            println!("{}={value}", session.cookie_name);
        }
    }
    Ok(())
}

fn init_config(
    path: &Path,
    listen: SocketAddr,
    ingress_listen: SocketAddr,
    trusted_proxies: &[ipnet::IpNet],
    storage: &config::InitialStorage,
) -> CliResult {
    let (data_key, session_key) = (random::bytes()?, random::bytes()?);
    let (token_key, token_secret) = (random::bytes()?, random::bytes()?);
    let secrets = config::InitialSecrets {
        data_key,
        session_key,
        bootstrap: Token::from_random(token_key, token_secret),
        signing_key: config::generate_signing_key()?,
    };
    let text = config::initial_toml(listen, ingress_listen, trusted_proxies, storage, &secrets);
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
