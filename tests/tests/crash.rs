//! Crashes under load, through the real Envoy with the filter's cache: the
//! companion killed with SIGKILL amid a stream of creations and revocations
//! (on both backends), then started again; and Envoy killed and started
//! again while requests keep coming. Every acknowledged write must survive,
//! no unacknowledged one may be half there, the stores must agree
//! (`portcullis audit`), and the edge must answer by the store's state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_e2e::stack::with_filter_config;
use portcullis_e2e::{Artifacts, Companion, ScratchEngines, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The cache at a five-minute TTL: only the change feed keeps it honest.
const FILTER: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]},
  "cache": {"ttl_seconds": 300, "negative_ttl_seconds": 60, "poll_interval_ms": 200}}"#;

/// Writers in parallel, so that several writes are in flight at the kill.
const WRITERS: usize = 4;

/// How long the edge may take, once the companion answers again, to apply
/// what the feed says (a few polls; the README promises 2 s).
const SETTLE: Duration = Duration::from_secs(2);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// What the writers were told, and what they asked without an answer.
#[derive(Default)]
struct Ledger {
    /// Created (201): name → token.
    live: BTreeMap<String, String>,
    /// Revoked (204) after being created: name → token.
    revoked: BTreeMap<String, String>,
    /// Creations sent without an answer: names.
    creating: BTreeSet<String>,
    /// Revocations sent without an answer: name → token.
    revoking: BTreeMap<String, String>,
}

fn key(token: &str) -> &str {
    &token[3..25]
}

/// The companion's API as the writers reach it.
#[derive(Clone)]
struct Api {
    url: String,
    bootstrap: String,
}

impl Api {
    fn of(companion: &Companion) -> Self {
        Self {
            url: companion.url(""),
            bootstrap: companion.bootstrap_token(),
        }
    }
}

/// The token, or `None` when no answer came.
async fn create(client: &reqwest::Client, api: &Api, name: &str) -> Option<String> {
    let reply = client
        .post(format!("{}/auth/api/v1/tokens", api.url))
        .bearer_auth(&api.bootstrap)
        .json(
            &json!({"username": "alice", "token_type": "user", "token_name": name,
                      "scopes": ["read:all"]}),
        )
        .send()
        .await
        .ok()?;
    assert_eq!(reply.status(), StatusCode::CREATED, "creating {name}");
    let body: Value = reply.json().await.ok()?;
    Some(body["token"].as_str().unwrap().to_owned())
}

/// `Some(())` when revoked (204), `None` when no answer came.
async fn revoke(client: &reqwest::Client, api: &Api, token: &str) -> Option<()> {
    let url = format!("{}/auth/api/v1/users/alice/tokens/{}", api.url, key(token));
    let reply = client
        .delete(url)
        .bearer_auth(&api.bootstrap)
        .send()
        .await
        .ok()?;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    Some(())
}

/// One writer: create, and revoke every third token made, until the
/// companion stops answering; what it sent unanswered goes in the ledger.
async fn writer(id: usize, api: Api, ledger: Arc<Mutex<Ledger>>) {
    let client = client();
    for i in 0.. {
        let name = format!("w{id}-{i}");
        let Some(token) = create(&client, &api, &name).await else {
            ledger.lock().unwrap().creating.insert(name);
            return;
        };
        ledger
            .lock()
            .unwrap()
            .live
            .insert(name.clone(), token.clone());
        if i % 3 == 2 {
            let victim = {
                let ledger = ledger.lock().unwrap();
                let mine = format!("w{id}-");
                ledger
                    .live
                    .iter()
                    .find(|(n, _)| n.starts_with(&mine))
                    .map(|(n, t)| (n.clone(), t.clone()))
            };
            let Some((victim, token)) = victim else {
                continue;
            };
            let done = revoke(&client, &api, &token).await;
            let mut ledger = ledger.lock().unwrap();
            let token = ledger.live.remove(&victim).unwrap();
            match done {
                Some(_) => ledger.revoked.insert(victim, token),
                None => {
                    ledger.revoking.insert(victim, token);
                    return;
                }
            };
        }
    }
}

/// Requests through Envoy with the tokens made so far, so that both
/// workers cache answers (live and revoked) before the crash.
async fn reader(stack_url: String, ledger: Arc<Mutex<Ledger>>, stop: Arc<Mutex<bool>>) {
    let client = client();
    while !*stop.lock().unwrap() {
        let tokens: Vec<String> = {
            let ledger = ledger.lock().unwrap();
            ledger
                .live
                .values()
                .chain(ledger.revoked.values())
                .cloned()
                .collect()
        };
        for token in tokens.iter().rev().take(20) {
            let _ = client.get(&stack_url).bearer_auth(token).send().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A user's tokens by name, from the API.
async fn token_names(client: &reqwest::Client, companion: &Companion) -> BTreeSet<String> {
    let list: Value = client
        .get(companion.url("/auth/api/v1/users/alice/tokens"))
        .bearer_auth(companion.bootstrap_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["token_name"].as_str().map(str::to_owned))
        .collect()
}

/// Every history entry of alice's: (token name, action), counted.
async fn history(
    client: &reqwest::Client,
    companion: &Companion,
) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    let mut url = companion.url("/auth/api/v1/users/alice/token-change-history?limit=1000");
    loop {
        let reply = client
            .get(&url)
            .bearer_auth(companion.bootstrap_token())
            .send()
            .await
            .unwrap();
        let next = reply
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split(", ").find(|p| p.ends_with("rel=\"next\"")))
            .map(|p| p[1..p.find('>').unwrap()].to_owned());
        let page: Value = reply.json().await.unwrap();
        for entry in page.as_array().unwrap() {
            let name = entry["token_name"].as_str().unwrap_or_default().to_owned();
            let action = entry["action"].as_str().unwrap().to_owned();
            *seen.entry((name, action)).or_insert(0) += 1;
        }
        match next {
            Some(path) => url = companion.url(&path),
            None => return seen,
        }
    }
}

async fn edge(stack: &Stack, token: &str) -> StatusCode {
    client()
        .get(stack.url("/"))
        .bearer_auth(token)
        .send()
        .await
        .map_or(StatusCode::BAD_GATEWAY, |r| r.status())
}

/// Waits up to [`SETTLE`] until every token gets `want` at the edge;
/// panics naming the ones that still do not.
async fn edge_agrees(stack: &Stack, want: &[(&str, StatusCode)]) {
    let start = Instant::now();
    loop {
        let mut wrong = Vec::new();
        for (token, status) in want {
            let got = edge(stack, token).await;
            if got != *status {
                wrong.push(format!("{}: {got} (want {status})", key(token)));
            }
        }
        if wrong.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < SETTLE,
            "{} of {} answers still wrong {SETTLE:?} after the restart: {wrong:?}",
            wrong.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The crash, the restart, and every check of what survived.
async fn companion_killed_under_writes(mut stack: Stack) {
    // Nothing is cached before each worker's first poll of the feed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(Mutex::new(false));
    let reading = tokio::spawn(reader(stack.url("/"), ledger.clone(), stop.clone()));
    let writing: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(id, Api::of(&stack.companion), ledger.clone())))
        .collect();
    // Long enough for every kind of write, and for caches to fill.
    let start = Instant::now();
    while ledger.lock().unwrap().revoked.len() < 15 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.companion.stop(); // SIGKILL, mid-stream.
    for w in writing {
        w.await.unwrap();
    }
    *stop.lock().unwrap() = true;
    reading.await.unwrap();
    stack.companion.resume().await;

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.revoked.len() >= 15, "too few writes before the kill");
    assert!(
        !ledger.creating.is_empty() || !ledger.revoking.is_empty(),
        "the kill caught no write in flight"
    );

    let audit = stack.companion.run(&["audit"]);
    assert!(
        audit.status.success(),
        "audit after the crash: {}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );

    let client = client();
    let names = token_names(&client, &stack.companion).await;
    let history = history(&client, &stack.companion).await;
    let entries = |name: &str, action: &str| {
        history
            .get(&(name.to_owned(), action.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let mut want = Vec::new();
    for (name, token) in &ledger.live {
        assert!(names.contains(name), "acknowledged creation {name} lost");
        assert_eq!(entries(name, "create"), 1, "{name}'s creation in history");
        assert_eq!(entries(name, "revoke"), 0, "{name} was not revoked");
        want.push((token.as_str(), StatusCode::OK));
    }
    for (name, token) in &ledger.revoked {
        assert!(
            !names.contains(name),
            "acknowledged revocation of {name} lost"
        );
        assert_eq!(entries(name, "revoke"), 1, "{name}'s revocation in history");
        want.push((token.as_str(), StatusCode::UNAUTHORIZED));
    }
    // Unanswered: all there or not at all, in the tokens and the history.
    for name in &ledger.creating {
        let there = names.contains(name);
        assert_eq!(
            entries(name, "create"),
            usize::from(there),
            "{name}, created without an answer, is half there"
        );
    }
    for (name, token) in &ledger.revoking {
        let revoked = !names.contains(name);
        assert_eq!(
            entries(name, "revoke"),
            usize::from(revoked),
            "{name}, revoked without an answer, is half revoked"
        );
        let status = if revoked {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        want.push((token.as_str(), status));
    }
    edge_agrees(&stack, &want).await;
}

#[tokio::test]
async fn a_companion_killed_amid_writes_on_the_embedded_store_loses_nothing_acknowledged() {
    let stack = Stack::start_with(|_, config| with_filter_config(&config, FILTER)).await;
    companion_killed_under_writes(stack).await;
}

#[tokio::test]
async fn a_companion_killed_amid_writes_on_the_distributed_store_loses_nothing_acknowledged() {
    let Some(engines) = ScratchEngines::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let companion = Companion::start_distributed(&Artifacts::get(), dir.path(), &engines).await;
    let stack = Stack::start_on(dir, companion, |_, config| {
        with_filter_config(&config, FILTER)
    })
    .await;
    companion_killed_under_writes(stack).await;
}

#[tokio::test]
async fn envoy_killed_under_load_comes_back_with_no_answer_older_than_the_feed() {
    let mut stack = Stack::start_with(|_, config| with_filter_config(&config, FILTER)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let live = stack.companion.create_token("alice", &["read:all"]);
    let revoked_before = stack.companion.create_token("alice", &["read:all"]);
    let revoked_while_down = stack.companion.create_token("alice", &["read:all"]);
    // All three cached as allowed, on both workers.
    for _ in 0..10 {
        for token in [&live, &revoked_before, &revoked_while_down] {
            assert_eq!(edge(&stack, token).await, StatusCode::OK);
        }
    }
    stack.revoke("alice", &revoked_before).await;
    edge_agrees(
        &stack,
        &[
            (&live, StatusCode::OK),
            (&revoked_before, StatusCode::UNAUTHORIZED),
        ],
    )
    .await;

    // Load through the crash: every answer it gets is recorded.
    let stop = Arc::new(Mutex::new(false));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (url, stop, answers) = (stack.url("/"), stop.clone(), answers.clone());
        let tokens = [
            live.clone(),
            revoked_before.clone(),
            revoked_while_down.clone(),
        ];
        tokio::spawn(async move {
            let client = client();
            while !*stop.lock().unwrap() {
                for (i, token) in tokens.iter().enumerate() {
                    if let Ok(reply) = client.get(&url).bearer_auth(token).send().await {
                        answers
                            .lock()
                            .unwrap()
                            .push((i, Instant::now(), reply.status()));
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.envoy.kill();
    stack.revoke("alice", &revoked_while_down).await;
    let revoked_at = Instant::now();
    stack.crash_envoy_and_restart().await;
    let back_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    *stop.lock().unwrap() = true;
    load.await.unwrap();

    // The new Envoy has no cache: from its first answer on, each is the
    // store's state, never one from before the revocation.
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let after: Vec<_> = answers.iter().filter(|(_, at, _)| *at >= back_at).collect();
    assert!(
        after.len() >= 6,
        "too little load after the restart: {}",
        after.len()
    );
    for (i, at, status) in answers.iter() {
        let want = match i {
            0 => StatusCode::OK,
            1 => StatusCode::UNAUTHORIZED,
            _ if *at >= revoked_at => StatusCode::UNAUTHORIZED,
            _ => continue,
        };
        assert_eq!(
            *status,
            want,
            "token {i} at {:?} after the revocation",
            at.duration_since(revoked_at)
        );
    }
    assert_eq!(edge(&stack, &live).await, StatusCode::OK);
    assert_eq!(
        edge(&stack, &revoked_while_down).await,
        StatusCode::UNAUTHORIZED
    );
}
