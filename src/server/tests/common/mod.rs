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

/// Sends `request` through the app's router as if from 192.0.2.7; the
/// status, headers and body of the reply.
pub async fn send(
    app: &App,
    mut request: axum::http::Request<axum::body::Body>,
) -> (
    axum::http::StatusCode,
    axum::http::HeaderMap,
    axum::body::Bytes,
) {
    use tower::ServiceExt as _;
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [192, 0, 2, 7],
            5555,
        ))));
    let response = app.router().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, bytes)
}

/// `token` as the session cookie, sealed with the key `app` configures.
pub fn session_cookie(token: &Token) -> String {
    let seal = portcullis_core::session::SessionSeal::new(&[6; 32]);
    format!("portcullis_session={}", seal.seal(token, [3; 12]))
}
