#![allow(dead_code, unused_macros)] // each test crate uses a part of it
//! The companion as the HTTP and service tests use it: a fresh store of
//! either backend, the configuration `config init` writes, and a clock the
//! test moves. Every test that takes a [`Backend`] runs once per backend
//! (`#[apply(backends)]`).

use std::path::Path;
use std::sync::Arc;

use portcullis::app::App;
use portcullis::config::{self, Config, InitialStorage, StorageConfig};
use portcullis::services::ManualClock;
use portcullis_core::Token;
use portcullis_e2e::ScratchEngines;
use rstest_reuse::template;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Distributed,
}

#[template]
#[rstest::rstest]
#[case::embedded(Backend::Embedded)]
#[case::distributed(Backend::Distributed)]
pub fn backends(#[case] backend: Backend) {}

/// A fresh, empty store of one backend, removed when dropped.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub engines: Option<ScratchEngines>,
}

impl TestStore {
    /// `None` when the distributed backend's engines are not running
    /// locally (the test is then skipped, loudly; under CI it fails).
    pub async fn new(backend: Backend) -> Option<Self> {
        let store = Self::unmigrated(backend).await?;
        portcullis::app::migrate(&store.config("")).await.unwrap();
        Some(store)
    }

    /// The same before `portcullis migrate` has run.
    pub async fn unmigrated(backend: Backend) -> Option<Self> {
        let engines = match backend {
            Backend::Embedded => None,
            Backend::Distributed => Some(ScratchEngines::create().await?),
        };
        Some(Self {
            dir: tempfile::tempdir().unwrap(),
            engines,
        })
    }

    pub fn config(&self, extra: &str) -> Config {
        Config::from_toml(&self.config_toml(extra), self.dir.path()).unwrap()
    }

    /// The configuration with `top` (top-level settings) before every table.
    pub fn config_with_top_level(&self, top: &str) -> Config {
        let text = format!("{top}\n{}", self.config_toml(""));
        Config::from_toml(&text, self.dir.path()).unwrap()
    }

    pub fn initial_storage(&self) -> InitialStorage<'_> {
        match &self.engines {
            None => InitialStorage::Embedded(Path::new("t.sqlite")),
            Some(e) => InitialStorage::Distributed {
                database_url: &e.database_url,
                redis_url: &e.redis_url,
                key_prefix: &e.prefix,
            },
        }
    }

    /// The configuration `config init` writes for this store, with the
    /// test's key prefix and `extra` appended.
    pub fn config_toml(&self, extra: &str) -> String {
        let secrets = config::InitialSecrets {
            data_key: [5; 32],
            session_key: [6; 32],
            bootstrap: bootstrap(),
            signing_key: signing_key(),
        };
        let text = config::initial_toml(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
            &[],
            &self.initial_storage(),
            &secrets,
        );
        text + extra
    }

    pub fn storage_config(&self) -> StorageConfig {
        self.config("").storage
    }

    /// One text column of `sql`'s rows, from the store's SQL engine.
    pub async fn sql_strings(&self, sql: &str) -> Vec<String> {
        match &self.engines {
            None => {
                let pool = portcullis::storage::sqlite::open(&self.dir.path().join("t.sqlite"))
                    .await
                    .unwrap();
                sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
            }
            Some(e) => sqlx::query_scalar(sql)
                .fetch_all(&mut e.connect().await)
                .await
                .unwrap(),
        }
    }

    /// Runs `sql` on the store's SQL engine.
    pub async fn sql_execute(&self, sql: &str) {
        match &self.engines {
            None => {
                let pool = portcullis::storage::sqlite::open(&self.dir.path().join("t.sqlite"))
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            Some(e) => {
                sqlx::query(sql)
                    .execute(&mut e.connect().await)
                    .await
                    .unwrap();
            }
        }
    }

    /// Replaces every token's ciphertext with a byte that opens under no
    /// key, in every copy the store keeps.
    pub async fn corrupt_token_data(&self) {
        match &self.engines {
            None => {
                self.sql_execute("UPDATE token_data SET ciphertext = x'00'")
                    .await
            }
            Some(e) => {
                self.sql_execute("UPDATE token_data SET ciphertext = '\\x00'::bytea")
                    .await;
                let tokens = format!("{}token:", e.prefix);
                for key in e.redis_keys().await {
                    if key.starts_with(&tokens) {
                        // Key id "k1", a zero nonce, one byte of ciphertext.
                        let mut forged = vec![2, b'k', b'1'];
                        forged.extend([0; 12]);
                        forged.push(0);
                        e.redis_set(&key, &forged).await;
                    }
                }
            }
        }
    }

    /// Whether `secret` is anywhere in the store: every byte of the SQLite
    /// files (write-ahead log included), or every row of every table and
    /// every Redis value.
    pub async fn holds(&self, secret: &str) -> bool {
        let found = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
        match &self.engines {
            None => std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("t.sqlite"))
                .any(|e| found(&std::fs::read(e.path()).unwrap())),
            Some(e) => {
                let tables = self
                    .sql_strings(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                    )
                    .await;
                for table in tables {
                    let rows = self
                        .sql_strings(&format!("SELECT t::text FROM {table} t"))
                        .await;
                    if rows.iter().any(|r| found(r.as_bytes())) {
                        return true;
                    }
                }
                for key in e.redis_keys().await {
                    let value = e.redis_value(&key).await;
                    if found(key.as_bytes()) || found(&value) {
                        return true;
                    }
                }
                false
            }
        }
    }
}

pub fn bootstrap() -> Token {
    Token::from_random([7; 16], [8; 16])
}

/// The app on a fresh store of `backend`, its bootstrap token, and the
/// store (which must outlive the app); `None` when skipped.
pub async fn app(backend: Backend, clock: Arc<ManualClock>) -> Option<(App, Token, TestStore)> {
    app_with(backend, clock, "").await
}

/// The same with `extra` appended to the configuration.
pub async fn app_with(
    backend: Backend,
    clock: Arc<ManualClock>,
    extra: &str,
) -> Option<(App, Token, TestStore)> {
    let store = TestStore::new(backend).await?;
    let app = App::with_clock(&store.config(extra), clock).await.unwrap();
    Some((app, bootstrap(), store))
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
