//! Scratch engines for one test: a PostgreSQL database and a Redis key
//! prefix of its own, both removed when dropped, failed test or not.
//!
//! The machine's PostgreSQL and Redis are expected at 127.0.0.1 (override
//! with PORTCULLIS_TEST_POSTGRES and PORTCULLIS_TEST_REDIS). Locally a test
//! without them is skipped with a loud message; under CI (`CI=true`) their
//! absence fails the test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis::AsyncCommands as _;
use sqlx::{Connection as _, PgConnection};

use crate::tools::required;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct ScratchEngines {
    /// `postgres://…/<scratch database>`.
    pub database_url: String,
    pub redis_url: String,
    /// Every Redis key of this test starts with it.
    pub prefix: String,
    server_url: String,
    database: String,
}

fn server_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn redis_url() -> String {
    std::env::var("PORTCULLIS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

impl ScratchEngines {
    /// A fresh database and prefix, or `None` (after a loud message) when
    /// the engines are not running on this machine.
    pub async fn create() -> Option<Self> {
        match Self::try_create().await {
            Ok(engines) => Some(engines),
            Err(e) if required() => panic!("CI=true and PostgreSQL or Redis is unreachable: {e}"),
            Err(e) => {
                eprintln!(
                    "\n!!!!!!!!!!\n!!! SKIPPED: this test needs PostgreSQL and Redis ({e});\n\
                     !!! start them, or run under CI=true to make this a failure\n!!!!!!!!!!\n"
                );
                None
            }
        }
    }

    async fn try_create() -> Result<Self, String> {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|e| e.to_string())?;
        let name = format!(
            "portcullis_t_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            u32::from_le_bytes(random)
        );
        let server = server_url();
        let mut admin = tokio::time::timeout(
            Duration::from_secs(5),
            PgConnection::connect(&format!("{server}/postgres")),
        )
        .await
        .map_err(|_| "PostgreSQL did not answer".to_owned())?
        .map_err(|e| format!("PostgreSQL: {e}"))?;
        let redis = redis_url();
        let client = redis::Client::open(redis.as_str()).map_err(|e| e.to_string())?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| "Redis did not answer".to_owned())?
        .map_err(|e| format!("Redis: {e}"))?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        Ok(Self {
            database_url: format!("{server}/{name}"),
            redis_url: redis,
            prefix: format!("{name}:"),
            server_url: server,
            database: name,
        })
    }

    async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Every Redis key of this test.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis().await;
        let mut keys = Vec::new();
        let mut iter = conn
            .scan_match::<_, String>(format!("{}*", self.prefix))
            .await
            .unwrap();
        while let Some(key) = iter.next_item().await {
            keys.push(key.unwrap());
        }
        keys
    }

    /// What losing Redis does to this deployment: every key gone.
    pub async fn wipe_redis(&self) {
        let keys = self.redis_keys().await;
        if !keys.is_empty() {
            self.redis().await.del::<_, ()>(keys).await.unwrap();
        }
    }

    /// A Redis key's value as bytes: a string's bytes, a hash's fields and
    /// values, a sorted set's members, one after another.
    pub async fn redis_value(&self, key: &str) -> Vec<u8> {
        let mut conn = self.redis().await;
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![conn.get(key).await.unwrap()],
            "hash" => conn.hgetall(key).await.unwrap(),
            "zset" => conn.zrange(key, 0, -1).await.unwrap(),
            "none" => vec![],
            other => panic!("unexpected Redis type {other} at {key}"),
        };
        parts.concat()
    }

    /// Seconds until a Redis key expires: -1 for never, -2 for no key.
    pub async fn redis_ttl(&self, key: &str) -> i64 {
        self.redis().await.ttl(key).await.unwrap()
    }

    pub async fn redis_set(&self, key: &str, value: &[u8]) {
        self.redis()
            .await
            .set::<_, _, ()>(key, value)
            .await
            .unwrap();
    }

    /// A connection to the scratch database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.database_url).await.unwrap()
    }

    async fn remove(server: String, database: String, prefix: String, redis_url: String) {
        if let Ok(mut admin) = PgConnection::connect(&format!("{server}/postgres")).await {
            let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
            if let Err(e) = sqlx::query(&drop).execute(&mut admin).await {
                eprintln!("could not drop scratch database {database}: {e}");
            }
        }
        if let Ok(client) = redis::Client::open(redis_url.as_str()) {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let mut keys: Vec<String> = Vec::new();
                if let Ok(mut iter) = conn.scan_match::<_, String>(format!("{prefix}*")).await {
                    while let Some(Ok(key)) = iter.next_item().await {
                        keys.push(key);
                    }
                }
                if !keys.is_empty() {
                    let _: Result<(), _> = conn.del(keys).await;
                }
            }
        }
    }
}

impl Drop for ScratchEngines {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: clean up on a
        // thread of its own with a runtime of its own.
        let args = (
            self.server_url.clone(),
            self.database.clone(),
            self.prefix.clone(),
            self.redis_url.clone(),
        );
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(Self::remove(args.0, args.1, args.2, args.3));
        });
        let _ = cleanup.join();
    }
}
