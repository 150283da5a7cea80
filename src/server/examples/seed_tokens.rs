//! Fills a fresh store with many user tokens for `./build.sh bench`, and
//! writes their bearer strings, one a line, for the load generator.
//!
//! One at a time through the token service each creation is its own
//! committed transaction; a million of them would take longer than the
//! whole benchmark may. So the tokens are made here as the companion makes
//! them (random key and secret, data sealed under the configured key,
//! metadata and a creation record) and stored in one transaction by the
//! store's own import, which checks every record opens before writing.
//!
//! `seed_tokens CONFIG COUNT TOKENS_OUT`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a seeding tool: it fails loudly

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis::app::Stores;
use portcullis::clock::SystemClock;
use portcullis::config::{Config, StorageConfig};
use portcullis::model::{HistoryEntry, TokenChange, TokenData, TokenInfo};
use portcullis::storage::{token_data, DataCipher, Dump, SealedRecord};
use portcullis_core::token::PART_BYTES;
use portcullis_core::{Group, Scope, Token, TokenType};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection as _;

fn usage() -> ! {
    eprintln!("usage: seed_tokens CONFIG COUNT TOKENS_OUT");
    std::process::exit(2);
}

fn random_part() -> [u8; PART_BYTES] {
    let mut bytes = [0u8; PART_BYTES];
    getrandom::fill(&mut bytes).expect("the system's randomness");
    bytes
}

/// The `i`th bench user's token, as `token create --user` would make it.
fn bench_token(i: usize, scopes: &[Scope], now: u64) -> TokenData {
    TokenData {
        token: Token::from_random(random_part(), random_part()),
        username: format!("bench{i}"),
        token_type: TokenType::User,
        scopes: scopes.to_vec(),
        created: now,
        expires: None,
        name: Some(format!("Bench User {i}")),
        email: Some(format!("bench{i}@example.org")),
        uid: Some(100_000 + i as u32),
        gid: Some(100_000 + i as u32),
        groups: vec![Group {
            name: "bench".to_owned(),
            id: Some(5000),
        }],
        service: None,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, count, out] = args.as_slice() else {
        usage()
    };
    let Ok(count) = count.parse::<usize>() else {
        usage()
    };
    let config = Config::load(&PathBuf::from(config)).unwrap_or_else(|e| {
        eprintln!("seed_tokens: {e}");
        std::process::exit(1);
    });
    let cipher = Arc::new(DataCipher::new(&config.encryption));
    let stores = Stores::open(&config.storage, cipher.clone(), Arc::new(SystemClock))
        .await
        .expect("open the store");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    let scopes: Vec<Scope> = vec!["read:all".parse().expect("a scope")];

    let mut dump = Dump::default();
    let mut bearers = Vec::with_capacity(count * 48);
    for i in 0..count {
        let data = bench_token(i, &scopes, now);
        let sealed = token_data::seal(&cipher, &data).expect("seal token data");
        dump.data
            .push(SealedRecord::new(data.token.key().clone(), sealed));
        let info = TokenInfo::of_new(&data, Some(format!("bench-{i}")), None);
        let actor = Some(data.username.as_str());
        let created = HistoryEntry::new(&info, TokenChange::Create, actor, None, now);
        dump.tokens.push(info);
        dump.history.push(created);
        writeln!(bearers, "{}", data.token.expose()).expect("write to memory");
    }
    stores
        .transfer
        .import(&dump)
        .await
        .unwrap_or_else(|e| panic!("import {count} tokens: {e}"));
    drop(stores);
    if let StorageConfig::Embedded { path } = &config.storage {
        checkpoint(path).await;
    }
    std::fs::write(out, bearers).expect("write the tokens file");
}

/// Moves the import out of SQLite's write-ahead log into the database file,
/// as a long-running companion's checkpoints would have: a store measured
/// straight after a large import would otherwise read every page through
/// a log as large as itself.
async fn checkpoint(path: &std::path::Path) {
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("open the SQLite store");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .expect("checkpoint the SQLite store");
    conn.close().await.expect("close the SQLite store");
}
