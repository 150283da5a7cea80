//! The `portcullis` command line against a running companion: token
//! management, audit, maintenance, key rotation, and the metrics endpoint.

use portcullis_e2e::{Artifacts, Companion};
use reqwest::StatusCode;

async fn started() -> (Companion, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let companion = Companion::start(&Artifacts::get(), dir.path()).await;
    (companion, dir)
}

async fn check(companion: &Companion, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(companion.ingress_url("/ingress/auth"))
        .bearer_auth(token)
        .send()
        .await
        .expect("check")
        .status()
}

fn key(token: &str) -> &str {
    &token[3..25]
}

#[tokio::test]
async fn token_list_show_and_revoke() {
    let (companion, _dir) = started().await;
    let alice = companion.create_token("alice", &["read:all"]);
    let bob = companion.create_token("bob", &["write:all"]);

    let listed = companion.cli(&["token", "list"]);
    assert!(listed.starts_with("key\tuser\ttype\tname\tscopes\texpires\n"));
    assert!(
        listed.contains(&format!("{}\talice\tuser\t", key(&alice))),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("{}\tbob\tuser\t", key(&bob))),
        "{listed}"
    );
    let only_bob = companion.cli(&["token", "list", "--user", "bob"]);
    assert!(!only_bob.contains("alice"), "{only_bob}");

    let shown: serde_json::Value =
        serde_json::from_str(&companion.cli(&["token", "show", key(&alice)])).expect("JSON");
    assert_eq!(shown["username"], "alice");
    assert_eq!(shown["scopes"], serde_json::json!(["read:all"]));
    assert!(
        !shown.to_string().contains(&alice[26..]),
        "show never prints the secret"
    );

    assert_eq!(check(&companion, &alice).await, StatusCode::OK);
    companion.cli(&["token", "revoke", key(&alice)]);
    assert_eq!(check(&companion, &alice).await, StatusCode::UNAUTHORIZED);
    assert_eq!(check(&companion, &bob).await, StatusCode::OK);

    let missing = companion.run(&["token", "show", key(&alice)]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no token"));
    let malformed = companion.run(&["token", "show", "not-a-key"]);
    assert!(!malformed.status.success());
}

#[tokio::test]
async fn audit_exits_non_zero_while_problems_remain() {
    let (companion, _dir) = started().await;
    let token = companion.create_token("alice", &["read:all"]);
    assert!(companion.run(&["audit"]).status.success());

    // Plant metadata without data, as a crash between the two writes would.
    let url = format!("sqlite://{}", companion.database_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open store");
    sqlx::query("DELETE FROM token_data WHERE token_key = ?")
        .bind(key(&token))
        .execute(&pool)
        .await
        .expect("plant");
    pool.close().await;

    let found = companion.run(&["audit"]);
    assert_eq!(found.status.code(), Some(1));
    let report = String::from_utf8_lossy(&found.stdout);
    assert!(
        report.contains(&format!(
            "problem: token {}: metadata without data",
            key(&token)
        )),
        "{report}"
    );

    let fixed = companion.run(&["audit", "--fix"]);
    assert!(
        fixed.status.success(),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert!(String::from_utf8_lossy(&fixed.stdout).contains("fixed: token"));
    assert!(companion.run(&["audit"]).status.success());
}

#[tokio::test]
async fn maintenance_runs_and_reports() {
    let (companion, _dir) = started().await;
    companion.create_token("alice", &["read:all"]);
    let out = companion.run(&["maintenance"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("expired 0 tokens; dropped 0 history entries"));
}

#[tokio::test]
async fn the_server_runs_maintenance_every_interval() {
    let (mut companion, _dir) = started().await;
    companion.stop();
    // Top-level keys must come before the first table.
    companion.edit_config(|text| format!("maintenance_interval_seconds = 1\n{text}"));
    companion.resume().await;
    let start = std::time::Instant::now();
    while companion.log().matches("maintenance done").count() < 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "{}",
            companion.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(companion.log().contains("expired=0"));
}

#[tokio::test]
async fn keys_rotate_reseals_everything_without_restarting_the_server() {
    let (companion, _dir) = started().await;
    let before = companion.create_token("alice", &["read:all"]);
    assert_eq!(check(&companion, &before).await, StatusCode::OK);

    let rotated = companion.run(&["keys", "rotate"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stderr)
        .contains("key k2 is now active; re-encrypted 1 tokens"));

    // The running server meets k2 for the first time and loads it.
    assert_eq!(check(&companion, &before).await, StatusCode::OK);
    let after = companion.create_token("bob", &["read:all"]);
    assert_eq!(check(&companion, &after).await, StatusCode::OK);

    let url = format!("sqlite://{}?mode=ro", companion.database_path().display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open store");
    let ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT key_id FROM token_data")
        .fetch_all(&pool)
        .await
        .expect("key ids");
    assert_eq!(ids, ["k2"]);
}

#[tokio::test]
async fn metrics_count_checks_by_outcome_and_tokens_by_kind() {
    let (companion, _dir) = started().await;
    let token = companion.create_token("alice", &["read:all"]);
    assert_eq!(check(&companion, &token).await, StatusCode::OK);
    assert_eq!(check(&companion, &token).await, StatusCode::OK);
    assert_eq!(check(&companion, "gt-bad").await, StatusCode::UNAUTHORIZED);
    let reply = reqwest::get(companion.ingress_url("/metrics"))
        .await
        .expect("metrics");
    assert_eq!(reply.status(), StatusCode::OK);
    let text = reply.text().await.expect("text");
    for line in [
        r#"portcullis_checks_total{outcome="allowed"} 2"#,
        r#"portcullis_checks_total{outcome="invalid_token"} 1"#,
        "portcullis_check_duration_seconds_count 3",
        "portcullis_user_tokens 1",
        "portcullis_active_sessions 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
