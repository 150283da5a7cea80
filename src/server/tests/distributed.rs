//! What only the distributed store has: two engines to keep in step, a
//! schema to migrate, and replicas that must not run maintenance together.
//! (Everything both stores share runs on both in the other test files.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;
use std::time::Duration;

use portcullis::app::{App, Stores};
use portcullis::services::{AdminTokenRequest, ManualClock, UserInfo};
use portcullis::storage::DataCipher;
use portcullis_core::{Token, TokenType};

mod common;

use common::{Backend, TestStore};

const START: u64 = 1_900_000_000;
const HOUR: u64 = 3600;

fn request(name: &str, expires: Option<u64>) -> AdminTokenRequest {
    AdminTokenRequest {
        user: UserInfo {
            username: "alice".into(),
            ..UserInfo::default()
        },
        token_type: TokenType::User,
        token_name: Some(name.into()),
        scopes: vec!["read:all".parse().unwrap()],
        expires,
    }
}

async fn create(app: &App, name: &str, expires: Option<u64>) -> Token {
    app.tokens
        .create_token_from_admin_request(
            request(name, expires),
            &portcullis::services::Actor::Cli,
            None,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_missing_from_redis_is_restored_for_its_remaining_life_unless_dead() {
    let clock = Arc::new(ManualClock::at(START));
    let Some((app, _, store)) = common::app(Backend::Distributed, clock.clone()).await else {
        return;
    };
    let engines = store.engines.as_ref().unwrap();
    let lasting = create(&app, "lasting", Some(START + 10 * HOUR)).await;
    let forever = create(&app, "forever", None).await;
    let brief = create(&app, "brief", Some(START + HOUR)).await;
    let revoked = create(&app, "revoked", None).await;
    app.tokens
        .delete_token(
            revoked.key(),
            &portcullis::services::Actor::Cli,
            "alice",
            None,
        )
        .await
        .unwrap();
    let redis_key = |t: &Token| format!("{}token:{}", engines.prefix, t.key());
    // Redis expires token data with the token, by the service's clock.
    let ttl = engines.redis_ttl(&redis_key(&lasting)).await;
    assert!(
        (10 * HOUR as i64 - 5..=10 * HOUR as i64).contains(&ttl),
        "{ttl}"
    );
    assert_eq!(engines.redis_ttl(&redis_key(&forever)).await, -1);

    engines.wipe_redis().await;
    clock.advance(Duration::from_secs(2 * HOUR));
    for live in [&lasting, &forever] {
        assert!(app.tokens.get_data(live).await.unwrap().is_some());
    }
    let ttl = engines.redis_ttl(&redis_key(&lasting)).await;
    assert!(
        (8 * HOUR as i64 - 5..=8 * HOUR as i64).contains(&ttl),
        "{ttl}"
    );
    assert_eq!(engines.redis_ttl(&redis_key(&forever)).await, -1);
    // Expired (not yet swept) and revoked tokens stay out.
    for dead in [&brief, &revoked] {
        assert!(app.tokens.get_data(dead).await.unwrap().is_none());
        assert_eq!(engines.redis_ttl(&redis_key(dead)).await, -2, "{dead}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_restore_racing_a_revocation_brings_the_token_back() {
    let clock = Arc::new(ManualClock::at(START));
    let Some((app, _, store)) = common::app(Backend::Distributed, clock).await else {
        return;
    };
    let engines = store.engines.as_ref().unwrap();
    let app = Arc::new(app);
    let rounds = 100;
    let mut revived = 0;
    for round in 0..rounds {
        let token = create(&app, &format!("r{round}"), None).await;
        // Redis lost: the next read restores the token from PostgreSQL,
        // while a revocation runs.
        engines.wipe_redis().await;
        let (a, b, t) = (app.clone(), app.clone(), token.clone());
        let restore = tokio::spawn(async move { a.tokens.get_data(&t).await.unwrap() });
        let key = token.key().clone();
        let revoke = tokio::spawn(async move {
            b.tokens
                .delete_token(&key, &portcullis::services::Actor::Cli, "alice", None)
                .await
                .unwrap()
        });
        restore.await.unwrap();
        assert!(revoke.await.unwrap(), "round {round}: revoked");
        let redis_key = format!("{}token:{}", engines.prefix, token.key());
        if engines.redis_ttl(&redis_key).await != -2 {
            revived += 1;
        }
    }
    assert_eq!(
        revived, 0,
        "{revived} of {rounds} revoked tokens are back in Redis"
    );
}

#[tokio::test]
async fn maintenance_runs_on_one_companion_at_a_time() {
    let clock = Arc::new(ManualClock::at(START));
    let Some((first, _, store)) = common::app(Backend::Distributed, clock.clone()).await else {
        return;
    };
    let second = App::with_clock(&store.config(""), clock.clone())
        .await
        .unwrap();
    create(&first, "brief", Some(START + HOUR)).await;
    clock.advance(Duration::from_secs(2 * HOUR));

    // A third companion is running maintenance: both others skip theirs.
    let config = store.config("");
    let cipher = Arc::new(DataCipher::new(&config.encryption));
    let third = Stores::open(&config.storage, cipher, clock.clone())
        .await
        .unwrap();
    let held = third
        .maintenance_lock
        .try_acquire()
        .await
        .unwrap()
        .expect("free");
    assert!(third
        .maintenance_lock
        .try_acquire()
        .await
        .unwrap()
        .is_none());
    assert_eq!(first.run_maintenance().await.unwrap(), None);
    assert_eq!(second.run_maintenance().await.unwrap(), None);

    // Released, one run does the work and the next finds none left.
    held.release().await;
    let done = second
        .run_maintenance()
        .await
        .unwrap()
        .expect("lock free again");
    assert_eq!(done.expired, 1);
    let again = first
        .run_maintenance()
        .await
        .unwrap()
        .expect("lock free again");
    assert_eq!(again.expired, 0);
}

#[tokio::test]
async fn a_companion_refuses_a_schema_that_is_not_migrated() {
    let Some(store) = TestStore::unmigrated(Backend::Distributed).await else {
        return;
    };
    let config = store.config("");
    let refused = App::from_config(&config).await.err().expect("refused");
    assert!(
        refused.to_string().contains("portcullis migrate"),
        "{refused}"
    );
    assert_eq!(portcullis::app::migrate(&config).await.unwrap(), 1);
    assert_eq!(
        portcullis::app::migrate(&config).await.unwrap(),
        0,
        "idempotent"
    );
    App::from_config(&config).await.unwrap();
}

#[tokio::test]
async fn migrate_on_start_migrates_a_fresh_database() {
    let Some(store) = TestStore::unmigrated(Backend::Distributed).await else {
        return;
    };
    let text = store
        .config_toml("")
        .replace("migrate_on_start = false", "migrate_on_start = true");
    let config = portcullis::config::Config::from_toml(&text, store.dir.path()).unwrap();
    App::from_config(&config).await.unwrap();
    assert_eq!(portcullis::app::migrate(&config).await.unwrap(), 0);
}
