//! `portcullis token`: create, list, show and revoke tokens from the
//! command line, as the CLI actor.

use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use portcullis_core::session::SessionSeal;
use portcullis_core::{Group, Scope, TokenKey, TokenType};

use crate::app::App;
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::random;
use crate::services::{Actor, AdminTokenRequest, UserInfo};

use super::CliResult;

#[derive(Subcommand)]
pub(super) enum TokenCommand {
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

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum CliTokenType {
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
pub(super) struct CreateArgs {
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

pub(super) fn parse_group(s: &str) -> Result<Group, String> {
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

pub(super) async fn token_command(config_path: &Path, command: TokenCommand) -> CliResult {
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

pub(super) async fn create_token(app: &App, config: &Config, args: CreateArgs) -> CliResult {
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
            // The service's clock, and its rules: an expiry too soon or too
            // late is refused there, naming why.
            let expires = args
                .lifetime
                .map(|l| {
                    SystemClock
                        .now()
                        .checked_add(l.as_secs())
                        .ok_or("--lifetime is too long")
                })
                .transpose()?;
            let request = AdminTokenRequest {
                user,
                token_type: args.token_type.into(),
                token_name: args.token_name,
                scopes: args.scopes,
                expires,
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
