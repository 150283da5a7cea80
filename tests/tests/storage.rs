//! What the embedded store keeps on disk: only public token keys in the
//! clear; secrets and token data sealed.

use portcullis_e2e::{Artifacts, Companion};

/// Every byte SQLite wrote for this store: the database, its WAL and index.
fn store_bytes(companion: &Companion) -> Vec<u8> {
    let db = companion.database_path();
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(content) = std::fs::read(&path) {
            bytes.extend(content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn sqlite_file_holds_no_secret_and_no_sealed_token_data_in_the_clear() {
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let companion = Companion::start(&artifacts, dir.path()).await;
    let token = companion
        .cli(&[
            "token",
            "create",
            "--user",
            "zelda-probe",
            "--scope",
            "exec:notebook",
            "--token-name",
            "probe-token-name",
            "--email",
            "probe@plaintext.example",
            "--name",
            "Probe Fullname",
            "--uid",
            "4243",
            "--group",
            "probe-group:4242",
        ])
        .trim()
        .to_owned();
    let (key, secret) = token
        .strip_prefix("gt-")
        .and_then(|t| t.split_once('.'))
        .expect("token format");

    // The secret and the sealed identity are nowhere in any file SQLite wrote.
    let bytes = store_bytes(&companion);
    assert!(
        contains(&bytes, key),
        "the public key names the rows and must be there"
    );
    for sealed in [
        secret,
        token.as_str(),
        "probe@plaintext.example",
        "Probe Fullname",
        "probe-group",
    ] {
        assert!(
            !contains(&bytes, sealed),
            "{sealed:?} is stored in the clear"
        );
    }

    let url = format!("sqlite://{}?mode=ro", companion.database_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open store");
    // token_data is key, key id, nonce and ciphertext, and nothing readable.
    let row: (String, String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT token_key, key_id, nonce, ciphertext FROM token_data")
            .fetch_one(&pool)
            .await
            .expect("one token row");
    assert_eq!(row.0, key);
    assert_eq!(row.1, "k1");
    assert_eq!(row.2.len(), 12);
    for clear in ["zelda-probe", "exec:notebook", "probe-token-name", "4243"] {
        assert!(
            !contains(&row.3, clear),
            "{clear:?} readable in the ciphertext"
        );
    }
    // The username is Gafaelfawr's metadata (listing, names, history): it
    // is in those two tables and in no other.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    let mut holding_username = Vec::new();
    for table in &tables {
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(&pool)
                .await
                .expect("columns");
        for column in columns {
            let hits: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM {table} WHERE CAST({column} AS TEXT) = 'zelda-probe'"
            ))
            .fetch_one(&pool)
            .await
            .expect("scan");
            if hits > 0 {
                holding_username.push(format!("{table}.{column}"));
            }
        }
    }
    assert_eq!(
        holding_username,
        ["token_history.username", "tokens.username"]
    );
    pool.close().await;

    // The token still works, so the ciphertext is the real data.
    let check = reqwest::Client::new()
        .get(companion.ingress_url("/ingress/auth?scope=exec:notebook"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("check");
    assert_eq!(check.status(), reqwest::StatusCode::OK);
}
