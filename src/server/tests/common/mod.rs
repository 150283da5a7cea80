#![allow(dead_code)] // each test crate uses a part of it
//! The companion as the HTTP tests use it: a fresh embedded store, the
//! configuration `config init` writes, and a clock the test moves.

use std::path::Path;
use std::sync::Arc;

use portcullis::app::App;
use portcullis::config::{self, Config};
use portcullis::services::ManualClock;
use portcullis_core::Token;

/// The app, its bootstrap token, and the folder that holds its store.
pub async fn app(clock: Arc<ManualClock>) -> (App, Token, tempfile::TempDir) {
    app_with(clock, "").await
}

/// The same with `extra` appended to the configuration.
pub async fn app_with(clock: Arc<ManualClock>, extra: &str) -> (App, Token, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Token::from_random([7; 16], [8; 16]);
    let listen = "127.0.0.1:0".parse().unwrap();
    let secrets = config::InitialSecrets {
        data_key: [5; 32],
        session_key: [6; 32],
        bootstrap: bootstrap.clone(),
        signing_key: signing_key(),
    };
    let text = config::initial_toml(listen, Path::new("t.sqlite"), &secrets) + extra;
    let config = Config::from_toml(&text, dir.path()).unwrap();
    let app = App::with_clock(&config, clock).await.unwrap();
    (app, bootstrap, dir)
}

/// One RSA key for every test of a run: generating one takes a while.
pub fn signing_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| config::generate_signing_key().unwrap())
        .clone()
}
