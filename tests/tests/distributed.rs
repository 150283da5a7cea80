//! The distributed store through the real Envoy: replicas that share every
//! token, a Redis wipe that loses none, engine outages that give 503 (never
//! 401) and heal by themselves. Each test has its own scratch database and
//! Redis key prefix (skipped loudly without the engines; a failure in CI).

use std::time::Duration;

use portcullis_e2e::stack::{upstream_headers, with_more_companions};
use portcullis_e2e::{Artifacts, Companion, ScratchEngines, Severable, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A new user token made through `companion`'s API.
async fn create_via_api(client: &reqwest::Client, companion: &Companion, name: &str) -> String {
    let reply = client
        .post(companion.url("/auth/api/v1/tokens"))
        .bearer_auth(companion.bootstrap_token())
        .json(
            &json!({"username": "alice", "token_type": "user", "token_name": name,
                      "scopes": ["read:all"]}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(reply.status(), StatusCode::CREATED);
    let body: Value = reply.json().await.expect("JSON");
    body["token"].as_str().expect("a token").to_owned()
}

async fn check(
    client: &reqwest::Client,
    companion: &Companion,
    query: &str,
    token: &str,
) -> reqwest::Response {
    client
        .get(companion.ingress_url(&format!("/ingress/auth{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("check")
}

#[tokio::test]
async fn two_replicas_behind_one_envoy_share_tokens_revocations_and_child_tokens() {
    let Some(engines) = ScratchEngines::create().await else {
        return;
    };
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let a = Companion::start_distributed(&artifacts, &dir.path().join("a"), &engines).await;
    let b = a.replica(&dir.path().join("b")).await;
    let b_port = b.ingress_port;
    let stack = Stack::start_on(dir, a, |_, config| with_more_companions(&config, &[b_port])).await;
    let (a, client) = (&stack.companion, &stack.client);

    // Made on A, seen by B and by Envoy (which spreads over both).
    let token = create_via_api(client, a, "replicated").await;
    let on_b = check(client, &b, "", &token).await;
    assert_eq!(on_b.status(), StatusCode::OK);
    assert_eq!(on_b.headers()["x-auth-request-user"], "alice");
    for _ in 0..6 {
        let reply = stack.get_with_token("/", &token).await;
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(
            upstream_headers(reply).await["x-auth-request-user"],
            json!(["alice"])
        );
    }

    // 50 concurrent get-or-creates of a delegated token, split across both
    // replicas: one child, handed to all.
    let query = "?delegate_to=svc&delegate_scope=read:all";
    let calls = (0..50).map(|i| {
        let replica = if i % 2 == 0 { a } else { &b };
        let token = token.clone();
        async move {
            let reply = check(client, replica, query, &token).await;
            assert_eq!(reply.status(), StatusCode::OK);
            reply.headers()["x-auth-request-token"]
                .to_str()
                .expect("a token")
                .to_owned()
        }
    });
    let delegated: std::collections::BTreeSet<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect();
    assert_eq!(delegated.len(), 1, "one child for 50 racing requests");
    let listed: Vec<Value> = client
        .get(b.url("/auth/api/v1/users/alice/tokens"))
        .bearer_auth(b.bootstrap_token())
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let internal = listed
        .iter()
        .filter(|t| t["token_type"] == "internal")
        .count();
    assert_eq!(internal, 1, "{listed:?}");

    // Both replicas serve one revocation feed.
    let cursor = |reply: Value| reply["cursor"].as_i64().expect("a cursor");
    let feed = |c: &Companion, since: Option<i64>| {
        let url = match since {
            Some(s) => c.ingress_url(&format!("/ingress/changes?since={s}")),
            None => c.ingress_url("/ingress/changes"),
        };
        async move {
            client
                .get(url)
                .send()
                .await
                .expect("feed")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let start = cursor(feed(a, None).await);
    assert_eq!(start, cursor(feed(&b, None).await));

    // Revoked through B: refused by A, by Envoy, and in both feeds.
    stack.revoke_via(&b, "alice", &token).await;
    assert_eq!(
        check(client, a, "", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for _ in 0..4 {
        let reply = stack.get_with_token("/", &token).await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    }
    let (from_a, from_b) = (feed(a, Some(start)).await, feed(&b, Some(start)).await);
    assert_eq!(from_a, from_b);
    let key = &token[3..25];
    assert!(
        from_a["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k == key),
        "{from_a}"
    );
}

#[tokio::test]
async fn a_wiped_redis_loses_no_token_and_revives_no_revoked_one() {
    let Some(engines) = ScratchEngines::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let companion = Companion::start_distributed(&Artifacts::get(), dir.path(), &engines).await;
    let stack = Stack::start_on(dir, companion, |_, config| config).await;
    let c = &stack.companion;
    let user = c.create_token("alice", &["read:all"]);
    let service = c
        .cli(&[
            "token", "create", "--type", "service", "--user", "bot-ci", "--scope", "read:all",
        ])
        .trim()
        .to_owned();
    let cookie = c.session_cookie("carol", &["read:all"]);
    let revoked = c.create_token("alice", &["read:all"]);
    stack.revoke("alice", &revoked).await;

    for round in ["before", "after"] {
        for token in [&user, &service] {
            let reply = stack.get_with_token("/", token).await;
            assert_eq!(reply.status(), StatusCode::OK, "{round} the wipe");
        }
        let reply = stack.get("/", &[("cookie", &cookie)]).await;
        assert_eq!(
            reply.status(),
            StatusCode::OK,
            "session cookie {round} the wipe"
        );
        let reply = stack.get_with_token("/", &revoked).await;
        assert_eq!(
            reply.status(),
            StatusCode::UNAUTHORIZED,
            "revoked {round} the wipe"
        );
        if round == "before" {
            engines.wipe_redis().await;
        }
    }
    // What was used is back in Redis; the revoked token is not.
    let cached = engines.redis_keys().await;
    for token in [&user, &service] {
        assert!(
            cached.iter().any(|k| k.ends_with(&token[3..25])),
            "{cached:?}"
        );
    }
    assert!(
        !cached.iter().any(|k| k.ends_with(&revoked[3..25])),
        "{cached:?}"
    );

    // The audit finds what is missing from Redis and puts it back.
    engines.wipe_redis().await;
    let audit = c.run(&["audit"]);
    assert!(!audit.status.success());
    let report = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(
        report.matches("data missing from Redis").count(),
        3,
        "{report}"
    );
    assert!(
        engines.redis_keys().await.is_empty(),
        "the audit only reads"
    );
    let fixed = c.cli(&["audit", "--fix"]);
    assert_eq!(fixed.matches("fixed:").count(), 3, "{fixed}");
    assert_eq!(
        engines.redis_keys().await.len(),
        3,
        "the audit without --fix changed nothing; with it, restored all"
    );
    c.cli(&["audit"]);
}

/// Requests through Envoy with tokens never used before (so that nothing
/// is answered from a cache) until one succeeds; every failure must be a
/// 503, never a 401.
async fn until_healed(stack: &Stack, fresh: &mut impl Iterator<Item = String>) {
    let started = std::time::Instant::now();
    loop {
        let token = fresh.next().expect("enough tokens");
        match stack.get_with_token("/", &token).await.status() {
            StatusCode::OK => return,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("a valid token got {other} while the engine came back"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recovery in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn an_engine_outage_gives_503_not_401_and_the_companion_recovers_alone() {
    let Some(engines) = ScratchEngines::create().await else {
        return;
    };
    let postgres = Severable::start("127.0.0.1:5432".parse().unwrap()).await;
    let redis = Severable::start("127.0.0.1:6379".parse().unwrap()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut companion = Companion::start_distributed(&Artifacts::get(), dir.path(), &engines).await;
    companion
        .reconfigure(|text| {
            text.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", postgres.port))
                .replace("127.0.0.1:6379", &format!("127.0.0.1:{}", redis.port))
        })
        .await;
    let stack = Stack::start_on(dir, companion, |_, config| config).await;
    let mut tokens = Vec::new();
    for i in 0..80 {
        tokens.push(create_via_api(&stack.client, &stack.companion, &format!("t{i}")).await);
    }
    let mut fresh = tokens.into_iter();
    let token = fresh.next().unwrap();
    assert_eq!(
        stack.get_with_token("/", &token).await.status(),
        StatusCode::OK
    );

    for (engine, relay) in [("redis", &redis), ("postgres", &postgres)] {
        relay.sever();
        for _ in 0..3 {
            let token = fresh.next().unwrap();
            let status = stack.get_with_token("/", &token).await.status();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{engine} down");
        }
        relay.restore().await;
        until_healed(&stack, &mut fresh).await;
    }
    let log = stack.companion.log();
    assert!(log.contains("storage unavailable"), "{log}");
}

#[tokio::test]
async fn tokens_exported_from_the_embedded_store_work_at_the_edge_after_import() {
    let Some(engines) = ScratchEngines::create().await else {
        return;
    };
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut embedded = Companion::start(&artifacts, &dir.path().join("embedded")).await;
    let user = embedded.create_token("alice", &["read:all"]);
    let cookie = embedded.session_cookie("carol", &["read:all"]);
    let revoked = embedded.create_token("alice", &["read:all"]);
    embedded.stop();
    embedded.cli(&["token", "revoke", &revoked[3..25]]);
    let export = dir.path().join("export.json");
    embedded.cli(&["export", "--output", export.to_str().unwrap()]);

    // A new configuration for the distributed store that carries the old
    // one's keys (`config init --from`), with no hand edits.
    let moved = dir.path().join("distributed");
    std::fs::create_dir_all(&moved).unwrap();
    let init = std::process::Command::new(&artifacts.companion)
        .arg("--config")
        .arg(moved.join("portcullis.toml"))
        .args([
            "config",
            "init",
            "--from",
            embedded.config_path().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", embedded.port),
            "--ingress-listen",
            &format!("127.0.0.1:{}", embedded.ingress_port),
            "--database-url",
            &engines.database_url,
            "--redis-url",
            &engines.redis_url,
            "--key-prefix",
            &engines.prefix,
        ])
        .output()
        .expect("config init --from");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let companion = embedded.moved_to(&moved);
    companion.cli(&["migrate"]);
    companion.cli(&["import", "--input", export.to_str().unwrap()]);
    let refused = companion.run(&["import", "--input", export.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "a second import would duplicate everything"
    );

    let mut companion = companion;
    companion.resume().await;
    let stack = Stack::start_on(dir, companion, |_, config| config).await;
    let reply = stack.get_with_token("/", &user).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        upstream_headers(reply).await["x-auth-request-user"],
        json!(["alice"])
    );
    let reply = stack.get("/", &[("cookie", &cookie)]).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let reply = stack.get_with_token("/", &revoked).await;
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    // History came too: the revocation is in it.
    let history: Value = stack
        .client
        .get(stack.companion.url("/auth/api/v1/history/token-changes"))
        .bearer_auth(stack.companion.bootstrap_token())
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("JSON");
    let actions: Vec<&str> = history
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"revoke") && actions.contains(&"create"),
        "{history}"
    );
}
