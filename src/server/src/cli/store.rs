//! The store's upkeep from the command line: migrate, export and import,
//! maintenance, audit, and key rotation.

use std::io::Write as _;
use std::path::Path;

use clap::Subcommand;

use crate::app::App;
use crate::config::{self, Config};
use crate::random;

use super::CliResult;

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Add a new key to the configuration, make it the active one and
    /// re-encrypt every token with it. Old keys stay listed (and old
    /// ciphertext readable) until you remove them.
    Rotate,
}

pub(super) async fn migrate(config_path: &Path) -> CliResult {
    let applied = crate::app::migrate(&Config::load(config_path)?).await?;
    eprintln!("applied {applied} migrations; the schema is up to date");
    Ok(())
}

pub(super) async fn export(config_path: &Path, output: Option<&Path>) -> CliResult {
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

pub(super) async fn import(config_path: &Path, input: &Path) -> CliResult {
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

pub(super) async fn maintenance(config_path: &Path) -> CliResult {
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

pub(super) async fn audit(config_path: &Path, fix: bool) -> CliResult {
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

pub(super) async fn rotate_keys(config_path: &Path) -> CliResult {
    let id = config::add_active_key(config_path, random::bytes()?)?;
    let app = App::from_config(&Config::load(config_path)?).await?;
    let resealed = app.tokens.reseal_all().await?;
    eprintln!(
        "key {id} is now active; re-encrypted {resealed} tokens. Running companions load it \
         when they meet it. Remove old keys from [encryption.keys] once every companion has it."
    );
    Ok(())
}
