//! The filter's cache through the real Envoy: answers reused, revocations
//! applied within two seconds at a five-minute TTL, bad tokens absorbed.

use std::time::{Duration, Instant};

use portcullis_e2e::stack::with_filter_config;
use portcullis_e2e::Stack;
use reqwest::StatusCode;

const FILTER: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]},
  "cache": {"ttl_seconds": 300, "negative_ttl_seconds": 60, "poll_interval_ms": 200}}"#;

async fn cached_stack() -> Stack {
    let stack = Stack::start_with(|_, config| with_filter_config(&config, FILTER)).await;
    // Nothing is cached before each worker's first poll of the change feed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stack
}

/// A new connection for every request, so that both workers serve some.
async fn get(stack: &Stack, path: &str, token: &str) -> StatusCode {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    client
        .get(stack.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
}

/// A counter from the companion's Prometheus metrics.
async fn companion_checks(stack: &Stack, outcome: &str) -> u64 {
    let text = reqwest::get(stack.companion.ingress_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let prefix = format!("portcullis_checks_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[tokio::test]
async fn a_token_validated_by_one_worker_is_answered_by_both_without_asking_again() {
    let stack = cached_stack().await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    // Fresh connections spread over both workers.
    for _ in 0..20 {
        assert_eq!(get(&stack, "/", &token).await, StatusCode::OK);
    }
    assert_eq!(
        companion_checks(&stack, "allowed").await,
        1,
        "one callout for 20 requests on two workers"
    );
    assert_eq!(stack.envoy_counter("portcullis.cache_misses").await, 1);
    let shared = stack.envoy_counter("portcullis.cache_hits_shared").await;
    let local = stack.envoy_counter("portcullis.cache_hits_local").await;
    assert!(
        shared >= 1,
        "the other worker answered from the shared tier ({shared} shared, {local} local)"
    );
    assert_eq!(shared + local, 19);
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_the_edge_within_two_seconds_despite_a_five_minute_ttl() {
    let stack = cached_stack().await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    for _ in 0..6 {
        assert_eq!(get(&stack, "/", &token).await, StatusCode::OK);
    }
    assert!(
        companion_checks(&stack, "allowed").await <= 2,
        "answered from cache"
    );

    stack.revoke("alice", &token).await;
    let revoked_at = Instant::now();
    while get(&stack, "/", &token).await == StatusCode::OK {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "still allowed 2 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = revoked_at.elapsed();
    // And refused by both workers from then on.
    for _ in 0..10 {
        assert_eq!(get(&stack, "/", &token).await, StatusCode::UNAUTHORIZED);
    }
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(stack.envoy_counter("portcullis.revocations_applied").await >= 1);
}

#[tokio::test]
async fn a_flood_of_one_bad_token_barely_reaches_the_companion() {
    let stack = cached_stack().await;
    let bad = "gt-AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA";
    let client = reqwest::Client::new();
    for _ in 0..1000 {
        let status = client
            .get(stack.url("/"))
            .bearer_auth(bad)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let asked = companion_checks(&stack, "invalid_token").await;
    assert!(
        asked <= 4,
        "1000 bad requests asked the companion {asked} times"
    );
}

#[tokio::test]
async fn cached_answers_are_kept_per_policy() {
    let stack = cached_stack().await;
    let reader = stack.companion.create_token("alice", &["read:all"]);
    for _ in 0..4 {
        assert_eq!(get(&stack, "/", &reader).await, StatusCode::OK);
        // The demo's /admin/ route needs admin:token (its metadata policy).
        assert_eq!(
            get(&stack, "/admin/x", &reader).await,
            StatusCode::FORBIDDEN
        );
    }
    let hits = stack.envoy_counter("portcullis.cache_hits_local").await
        + stack.envoy_counter("portcullis.cache_hits_shared").await;
    assert!(hits >= 6, "{hits}");
    assert!(stack.envoy_counter("portcullis.cache_misses").await <= 4);
}

#[tokio::test]
async fn stale_if_error_serves_known_tokens_for_a_bounded_time_while_the_companion_is_down() {
    const STALE: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]},
      "cache": {"ttl_seconds": 1, "poll_interval_ms": 200, "stale_if_error_seconds": 2, "shared_slots": 0}}"#;
    let mut stack = Stack::start_with(|_, config| with_filter_config(&config, STALE)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let known = stack.companion.create_token("alice", &["read:all"]);
    let unknown = stack.companion.create_token("bob", &["read:all"]);
    // Each worker validates the token once (the shared tier is off here).
    let start = Instant::now();
    while companion_checks(&stack, "allowed").await < 2 {
        assert_eq!(get(&stack, "/", &known).await, StatusCode::OK);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "both workers never saw the token"
        );
    }
    let validated = Instant::now();
    stack.companion.stop();

    // Past freshness (1 s), within the stale window (1 s + 2 s).
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(validated.elapsed())).await;
    for _ in 0..10 {
        assert_eq!(
            get(&stack, "/", &known).await,
            StatusCode::OK,
            "stale answer served"
        );
    }
    assert_eq!(
        get(&stack, "/", &unknown).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "nothing to serve stale"
    );
    assert!(stack.envoy_counter("portcullis.stale_served").await >= 10);

    // Past the stale window: fail closed again.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(validated.elapsed())).await;
    assert_eq!(
        get(&stack, "/", &known).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_cached_delegated_token_is_never_handed_out_with_less_than_its_minimum_lifetime() {
    // 298 s of a 300 s token must remain: the answer may be reused for
    // about 2 s, then the token no longer has the lifetime the route needs.
    const DELEGATING: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"],
        "delegate_to": "svc", "minimum_lifetime": 298},
      "cache": {"ttl_seconds": 300, "poll_interval_ms": 200}}"#;
    let stack = Stack::start_with(|_, config| with_filter_config(&config, DELEGATING)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let token = stack
        .companion
        .create_token_with("alice", &["read:all"], &["--lifetime", "5m"]);
    let created = Instant::now();
    let delegated = |response: reqwest::Response| async {
        portcullis_e2e::stack::upstream_headers(response).await["x-auth-request-token"][0]
            .as_str()
            .map(str::to_owned)
    };
    let first = delegated(stack.get_with_token("/", &token).await)
        .await
        .expect("a delegated token");
    let again = delegated(stack.get_with_token("/", &token).await)
        .await
        .expect("a delegated token");
    assert_eq!(
        first, again,
        "reused from the cache while it has its minimum lifetime"
    );
    assert!(
        created.elapsed() < Duration::from_secs(2),
        "the test ran too slowly to judge"
    );

    tokio::time::sleep(Duration::from_millis(3000).saturating_sub(created.elapsed())).await;
    let late = stack.get_with_token("/", &token).await;
    assert_eq!(
        late.status(),
        StatusCode::UNAUTHORIZED,
        "not handed out with under 298 s left"
    );
}

#[tokio::test]
async fn cached_answers_stop_once_the_feed_has_been_silent_past_the_allowed_lag() {
    // A five-minute TTL, and no stale-if-error: only the feed's silence
    // can end the cached answers here.
    const LAG: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]},
      "cache": {"ttl_seconds": 300, "poll_interval_ms": 200, "max_feed_lag_ms": 1000}}"#;
    let mut stack = Stack::start_with(|_, config| with_filter_config(&config, LAG)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    for _ in 0..6 {
        assert_eq!(get(&stack, "/", &token).await, StatusCode::OK);
    }
    // The companion goes silent: its revocations could no longer be heard.
    stack.companion.stop();
    let silent = Instant::now();
    loop {
        let status = get(&stack, "/", &token).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            silent.elapsed() < Duration::from_secs(15),
            "cached answers still served {:?} after the feed fell silent",
            silent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every request asks (and fails) until the feed answers again.
    for _ in 0..6 {
        assert_eq!(
            get(&stack, "/", &token).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    stack.companion.resume().await;
    let back = Instant::now();
    while get(&stack, "/", &token).await != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(15), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
