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

/// `portcullis token list | head -1`: the reader gone, the CLI ends at its
/// next write as other tools do: by SIGPIPE, without a panic, and without
/// hanging, debug logging on or off.
#[tokio::test]
async fn the_cli_ends_quietly_when_its_reader_goes_away() {
    use std::os::unix::process::ExitStatusExt as _;

    let (companion, _dir) = started().await;
    for _ in 0..3 {
        companion.create_token("alice", &["read:all"]);
    }
    for log in ["info", "debug"] {
        // The read end closed before the first line is written.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut child = std::process::Command::new(companion_binary())
            .arg("--config")
            .arg(companion.config_path())
            .args(["token", "list", "--user", "alice"])
            .env("PORTCULLIS_LOG", log)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("token list");
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "token list hung on a closed pipe (PORTCULLIS_LOG={log})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {stderr}");
    }
}

fn companion_binary() -> std::path::PathBuf {
    portcullis_e2e::Artifacts::get().companion
}

/// A configuration file any user of the host can read holds the keys: the
/// companion says so (and `config init` writes 0600, so it never does).
#[tokio::test]
async fn a_world_readable_configuration_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;

    let (companion, _dir) = started().await;
    let quiet = companion.run(&["token", "list"]);
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("can read it"));
    std::fs::set_permissions(
        companion.config_path(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let warned = companion.run(&["token", "list"]);
    assert!(warned.status.success());
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(
        stderr.contains("every user of this host can read it"),
        "{stderr}"
    );
}

/// `PORTCULLIS_LOG_FORMAT=json`: every line a JSON object, and one per check
/// decision with the user, the token's public key, the requirement, the
/// outcome and the time taken, never the secret.
#[tokio::test]
async fn json_logs_have_one_line_per_check_decision_and_no_secret() {
    let artifacts = portcullis_e2e::Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let mut companion = Companion::embedded(&artifacts, dir.path());
    companion.spawn_with_env(&[("PORTCULLIS_LOG_FORMAT", "json")]);
    let health = companion.ingress_url("/health");
    portcullis_e2e::process::wait_for("the companion", std::time::Duration::from_secs(20), || {
        portcullis_e2e::process::answers_ok(&health)
    })
    .await;
    let token = companion.create_token("alice", &["read:all"]);
    let check = |scope: &'static str, token: Option<String>| {
        let url = companion.ingress_url(&format!("/ingress/auth?scope={scope}"));
        async move {
            let mut request = reqwest::Client::new().get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap().status()
        }
    };
    assert_eq!(check("read:all", Some(token.clone())).await, StatusCode::OK);
    assert_eq!(
        check("write:all", Some(token.clone())).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(check("read:all", None).await, StatusCode::UNAUTHORIZED);
    let log = companion.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let checks: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "portcullis::check")
        .collect();
    assert_eq!(checks.len(), 3, "{log}");
    let key = &token[3..25];
    assert_eq!(checks[0]["outcome"], "allowed");
    assert_eq!(checks[0]["user"], "alice");
    assert_eq!(checks[0]["token"], key);
    assert_eq!(checks[0]["required"], "read:all");
    assert!(checks[0]["latency_us"].is_u64());
    assert_eq!(checks[1]["outcome"], "insufficient_scope");
    assert_eq!(checks[1]["required"], "write:all");
    assert!(checks[1]["reason"].is_string());
    assert_eq!(checks[2]["outcome"], "no_token");
    assert!(!log.contains(&token[26..]), "the secret in the log");
}
