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
async fn sqlite_file_holds_no_secret_and_no_plaintext_token_data() {
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
            "probe:plaintext",
            "--email",
            "probe@plaintext.example",
            "--name",
            "probe-token-name",
            "--group",
            "probe-group:4242",
        ])
        .trim()
        .to_owned();
    let (key, secret) = token
        .strip_prefix("gt-")
        .and_then(|t| t.split_once('.'))
        .expect("token format");

    let bytes = store_bytes(&companion);
    assert!(
        contains(&bytes, key),
        "the public key is the row's name and must be there"
    );
    for plaintext in [
        secret,
        token.as_str(),
        "zelda-probe",
        "probe:plaintext",
        "probe@plaintext.example",
        "probe-token-name",
        "probe-group",
    ] {
        assert!(
            !contains(&bytes, plaintext),
            "{plaintext:?} is stored in the clear"
        );
    }

    // And the row is what the design says: key, key id, nonce, ciphertext.
    let url = format!("sqlite://{}?mode=ro", companion.database_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open store");
    let row: (String, String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT token_key, key_id, nonce, ciphertext FROM token_data")
            .fetch_one(&pool)
            .await
            .expect("one token row");
    assert_eq!(row.0, key);
    assert_eq!(row.1, "k1");
    assert_eq!(row.2.len(), 12);
    assert!(row.3.len() > 64);
    pool.close().await;

    // The token still works, so the ciphertext is the real data.
    let check = reqwest::Client::new()
        .get(companion.url("/ingress/auth?scope=probe:plaintext"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("check");
    assert_eq!(check.status(), reqwest::StatusCode::OK);
}
