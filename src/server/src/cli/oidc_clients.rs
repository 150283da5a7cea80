//! `portcullis oidc-client`: register, list and remove OpenID Connect
//! clients.

use std::path::Path;

use clap::Subcommand;

use crate::app::App;
use crate::config::Config;
use crate::services::Actor;

use super::CliResult;

#[derive(Subcommand)]
pub(super) enum OidcClientCommand {
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

pub(super) async fn oidc_client(config_path: &Path, command: OidcClientCommand) -> CliResult {
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
