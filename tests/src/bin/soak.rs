//! `./build.sh soak [MINUTES]`: the whole product for a long time under a
//! mixed load, with faults. Envoy with the filter and its cache in front of
//! the companion on the distributed store, whose PostgreSQL and Redis are
//! reached through relays this program can cut. Meanwhile: valid, expired,
//! revoked and garbage tokens, browser cookies and notebook delegations
//! through Envoy; creations and revocations through the API; and in turn a
//! companion killed and restarted, PostgreSQL cut and restored, Redis cut
//! and restored, Redis flushed. Every answer is checked against what is
//! known of its token. Prints a summary and writes `target/soak/report.json`;
//! exits 1 on any wrong answer or any 5xx outside a fault window.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_e2e::stack::with_filter_config;
use portcullis_e2e::{Artifacts, Companion, ScratchEngines, Severable, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long a revocation or an expiry may take to reach every worker: a few
/// polls of the feed (the README promises 2 s).
const BOUND: Duration = Duration::from_secs(2);
/// A fault's window runs from its start until this long after recovery.
const SETTLE: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(10);
const READERS: usize = 8;

const FILTER: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]},
  "rules": [{"match": {"prefix": "/notebook/"}, "policy": {"scopes": ["read:all"], "notebook": true}}],
  "cache": {"ttl_seconds": 300, "negative_ttl_seconds": 30, "poll_interval_ms": 500},
  "session_cookie": {"name": "portcullis_session", "key": "KEY"}}"#;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// xorshift64*, seeded from the OS: the load's choices.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("random seed");
        Self(u64::from_le_bytes(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Clone)]
enum Credential {
    Bearer(String),
    Cookie(String),
}

#[derive(Clone)]
struct Known {
    credential: Credential,
    /// Unix seconds.
    expires: Option<u64>,
    /// When the API acknowledged its revocation.
    revoked: Option<Instant>,
    /// A revocation sent without an answer: its state is not known.
    uncertain: bool,
}

#[derive(Default)]
struct World {
    tokens: Vec<Known>,
    /// (start, end): end `None` while the fault lasts.
    windows: Vec<(Instant, Option<Instant>)>,
}

impl World {
    fn in_fault(&self, from: Instant, to: Instant) -> bool {
        self.windows
            .iter()
            .any(|(start, end)| *start <= to && end.is_none_or(|e| e + SETTLE >= from))
    }
}

#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    wrong: Vec<String>,
    wrong_count: u64,
    server_errors_outside: u64,
    unauthorized_valid_in_fault: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// 200 (outside faults).
    Allowed,
    /// Never 200.
    Refused,
    /// Anything: the state is changing or unknown.
    Any,
}

fn expectation(known: &Known, sent: Instant, now_unix: u64) -> (&'static str, Expect) {
    if known.uncertain {
        return ("uncertain", Expect::Any);
    }
    if let Some(at) = known.revoked {
        return if sent > at + BOUND {
            ("revoked", Expect::Refused)
        } else {
            ("revoked", Expect::Any)
        };
    }
    if let Some(expires) = known.expires {
        if now_unix > expires + BOUND.as_secs() {
            return ("expired", Expect::Refused);
        }
        if now_unix + 1 >= expires {
            return ("expiring", Expect::Any);
        }
    }
    match known.credential {
        Credential::Bearer(_) => ("valid", Expect::Allowed),
        Credential::Cookie(_) => ("cookie", Expect::Allowed),
    }
}

fn garbage(rng: &mut Rng) -> String {
    let mut bytes = [0u8; 32];
    for b in &mut bytes {
        *b = rng.next() as u8;
    }
    match rng.below(3) {
        // Well formed, unknown: the companion must say no.
        0 => format!(
            "gt-{}.{}",
            URL_SAFE_NO_PAD.encode(&bytes[..16]),
            URL_SAFE_NO_PAD.encode(&bytes[16..])
        ),
        // A known shape with a bad secret is in the same class; junk too.
        1 => format!("gt-{}", URL_SAFE_NO_PAD.encode(bytes)),
        _ => URL_SAFE_NO_PAD.encode(&bytes[..20]),
    }
}

struct Api {
    client: reqwest::Client,
    url: String,
    bootstrap: String,
}

impl Api {
    /// A user token, or `None` when the companion did not make one.
    async fn create(&self, name: &str, expires: Option<u64>) -> Option<String> {
        let mut body = json!({"username": "soak", "token_type": "user", "token_name": name,
                              "scopes": ["read:all"]});
        if let Some(e) = expires {
            body["expires"] = json!(e);
        }
        let reply = self
            .client
            .post(format!("{}/auth/api/v1/tokens", self.url))
            .bearer_auth(&self.bootstrap)
            .json(&body)
            .send()
            .await
            .ok()?;
        if reply.status() != StatusCode::CREATED {
            return None;
        }
        let body: Value = reply.json().await.ok()?;
        body["token"].as_str().map(str::to_owned)
    }

    /// True when revoked (204). Anything else leaves the outcome unknown: a
    /// 503 may come after the revocation took effect (the metadata goes
    /// first), with the rest of it cut short.
    async fn revoke(&self, token: &str) -> bool {
        let url = format!(
            "{}/auth/api/v1/users/soak/tokens/{}",
            self.url,
            &token[3..25]
        );
        let reply = self
            .client
            .delete(url)
            .bearer_auth(&self.bootstrap)
            .send()
            .await;
        reply.is_ok_and(|r| r.status() == StatusCode::NO_CONTENT)
    }
}

async fn reader(
    url: String,
    world: Arc<Mutex<World>>,
    tally: Arc<Mutex<Tally>>,
    running: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut rng = Rng::new();
    while running.load(Ordering::Relaxed) {
        let pick = {
            let world = world.lock().unwrap();
            let n = world.tokens.len();
            (rng.below(10) > 0 && n > 0).then(|| world.tokens[rng.below(n)].clone())
        };
        let (path, request) = match &pick {
            Some(known) => match &known.credential {
                Credential::Bearer(token) => {
                    ("/", client.get(format!("{url}/")).bearer_auth(token))
                }
                Credential::Cookie(cookie) => {
                    let path = if rng.below(2) == 0 {
                        "/notebook/x"
                    } else {
                        "/"
                    };
                    (
                        path,
                        client.get(format!("{url}{path}")).header("cookie", cookie),
                    )
                }
            },
            None => (
                "/",
                client.get(format!("{url}/")).bearer_auth(garbage(&mut rng)),
            ),
        };
        let sent = Instant::now();
        let status = match request.send().await {
            Ok(reply) => reply.status(),
            Err(_) => StatusCode::BAD_GATEWAY, // Envoy always answers; record as 502.
        };
        let answered = Instant::now();
        let (kind, expect) = match &pick {
            Some(known) => expectation(known, sent, unix_now()),
            None => ("garbage", Expect::Refused),
        };
        let in_fault = world.lock().unwrap().in_fault(sent, answered);
        let mut tally = tally.lock().unwrap();
        *tally
            .by_kind
            .entry(kind)
            .or_default()
            .entry(status.as_u16())
            .or_default() += 1;
        let wrong = match expect {
            Expect::Refused => status.is_success(),
            Expect::Allowed
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                if in_fault {
                    tally.unauthorized_valid_in_fault += 1;
                }
                !in_fault
            }
            _ => false,
        };
        if wrong {
            tally.wrong_count += 1;
            if tally.wrong.len() < 20 {
                tally
                    .wrong
                    .push(format!("{kind} token on {path}: {status}"));
            }
        }
        if status.is_server_error() && !in_fault && expect != Expect::Any {
            tally.server_errors_outside += 1;
            if tally.wrong.len() < 20 {
                tally.wrong.push(format!(
                    "{kind} token on {path}: {status} outside any fault"
                ));
            }
        }
    }
}

/// Creations and revocations through the API, as long as the run lasts.
async fn writer(api: Arc<Api>, world: Arc<Mutex<World>>, running: Arc<AtomicBool>) {
    let mut rng = Rng::new();
    for i in 0u64.. {
        if !running.load(Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A third expire within the run: between five and seven minutes.
        let expires = (rng.below(3) == 0).then(|| unix_now() + 300 + rng.below(120) as u64);
        if let Some(token) = api.create(&format!("soak-{i}"), expires).await {
            world.lock().unwrap().tokens.push(Known {
                credential: Credential::Bearer(token),
                expires,
                revoked: None,
                uncertain: false,
            });
        }
        if i % 3 != 0 {
            continue;
        }
        let victim = {
            let world = world.lock().unwrap();
            let live: Vec<usize> = (0..world.tokens.len())
                .filter(|&t| {
                    let k = &world.tokens[t];
                    k.revoked.is_none()
                        && !k.uncertain
                        && k.expires.is_none()
                        && matches!(k.credential, Credential::Bearer(_))
                })
                .collect();
            (!live.is_empty()).then(|| live[rng.below(live.len())])
        };
        let Some(victim) = victim else { continue };
        let Credential::Bearer(token) = world.lock().unwrap().tokens[victim].credential.clone()
        else {
            continue;
        };
        // Uncertain from the moment it is sent until the answer says.
        world.lock().unwrap().tokens[victim].uncertain = true;
        if api.revoke(&token).await {
            let mut world = world.lock().unwrap();
            let known = &mut world.tokens[victim];
            known.revoked = Some(Instant::now());
            known.uncertain = false;
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    RestartCompanion,
    CutPostgres,
    CutRedis,
    FlushRedis,
}

struct Sample {
    at: f64,
    pid: u32,
    rss_kb: u64,
    fds: u64,
}

fn sample(pid: u32, at: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at,
        pid,
        rss_kb,
        fds,
    })
}

/// Until a token made now is accepted through Envoy: the time the whole
/// path took to come back.
async fn recover(api: &Api, stack_url: &str, name: &str) -> Duration {
    let start = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    loop {
        if let Some(token) = api.create(name, None).await {
            loop {
                let ok = client
                    .get(format!("{stack_url}/"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
                if ok {
                    return start.elapsed();
                }
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "no recovery in 2 minutes"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no recovery in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes: u64 = std::env::args()
        .nth(1)
        .map(|m| m.parse().expect("soak: MINUTES must be a whole number"))
        .unwrap_or(10)
        .max(1);
    let Some(engines) = ScratchEngines::create().await else {
        eprintln!("soak: needs PostgreSQL and Redis (the distributed store)");
        std::process::exit(2);
    };
    let postgres = Severable::start("127.0.0.1:5432".parse().unwrap()).await;
    let redis = Severable::start("127.0.0.1:6379".parse().unwrap()).await;
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut companion = Companion::start_distributed(&artifacts, dir.path(), &engines).await;
    companion
        .reconfigure(|text| {
            text.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", postgres.port))
                .replace("127.0.0.1:6379", &format!("127.0.0.1:{}", redis.port))
        })
        .await;
    let filter = FILTER.replace("KEY", &companion.session_key());
    let mut stack = Stack::start_on(dir, companion, |_, config| {
        with_filter_config(&config, &filter)
    })
    .await;
    let api = Arc::new(Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
        url: stack.companion.url(""),
        bootstrap: stack.companion.bootstrap_token(),
    });
    let world = Arc::new(Mutex::new(World::default()));
    for i in 0..20 {
        let cookie = stack
            .companion
            .session_cookie(&format!("browser{i}"), &["read:all"]);
        world.lock().unwrap().tokens.push(Known {
            credential: Credential::Cookie(cookie),
            expires: None,
            revoked: None,
            uncertain: false,
        });
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for _ in 0..READERS {
        tasks.push(tokio::spawn(reader(
            stack.url(""),
            world.clone(),
            tally.clone(),
            running.clone(),
        )));
    }
    tasks.push(tokio::spawn(writer(
        api.clone(),
        world.clone(),
        running.clone(),
    )));

    let begin = Instant::now();
    let end = begin + Duration::from_secs(minutes * 60);
    let faults = [
        Fault::RestartCompanion,
        Fault::CutPostgres,
        Fault::CutRedis,
        Fault::FlushRedis,
    ];
    let mut next_fault = begin + Duration::from_secs(30);
    let (mut envoy_samples, mut companion_samples) = (Vec::new(), Vec::new());
    let mut next_sample = begin;
    let mut done = Vec::new();
    let mut round = 0usize;
    println!("soak: {minutes} min; faults every 60 s from 30 s in");
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            let at = now.duration_since(begin).as_secs_f64();
            envoy_samples.extend(stack.envoy.pid().and_then(|p| sample(p, at)));
            companion_samples.extend(stack.companion.pid().and_then(|p| sample(p, at)));
            next_sample = now + Duration::from_secs(10);
        }
        if now >= next_fault && now + Duration::from_secs(40) < end {
            let fault = faults[round % faults.len()];
            round += 1;
            let at = now.duration_since(begin).as_secs_f64();
            world.lock().unwrap().windows.push((now, None));
            let restored = match fault {
                Fault::RestartCompanion => {
                    stack.companion.stop();
                    stack.companion.resume().await;
                    Instant::now()
                }
                Fault::CutPostgres | Fault::CutRedis => {
                    let relay = if matches!(fault, Fault::CutPostgres) {
                        &postgres
                    } else {
                        &redis
                    };
                    relay.sever();
                    tokio::time::sleep(OUTAGE).await;
                    relay.restore().await;
                    Instant::now()
                }
                Fault::FlushRedis => {
                    engines.wipe_redis().await;
                    Instant::now()
                }
            };
            let recovery = recover(&api, &stack.url(""), &format!("probe-{round}")).await;
            let recovered = Instant::now();
            if let Some(w) = world.lock().unwrap().windows.last_mut() {
                w.1 = Some(recovered);
            }
            println!(
                "  {at:6.0} s  {fault:?}: the path answered again {:.0} ms after the {}",
                recovery.as_secs_f64() * 1000.0,
                if matches!(fault, Fault::FlushRedis) {
                    "flush"
                } else {
                    "restore"
                }
            );
            done.push(json!({"fault": format!("{fault:?}"), "at_seconds": at,
                "outage_seconds": restored.duration_since(now).as_secs_f64(),
                "recovery_ms": (recovery.as_secs_f64() * 1000.0).round()}));
            next_fault = recovered + Duration::from_secs(50);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    report(
        minutes,
        &tally.lock().unwrap(),
        &done,
        &envoy_samples,
        &companion_samples,
        &world.lock().unwrap(),
    );
}

/// Growth of a process's samples from the first after the warm-up minute
/// to the last, as (rss kB, fds); only samples of the last pid (a restarted
/// companion starts again).
fn growth(samples: &[Sample]) -> Option<(i64, i64, u64)> {
    let last = samples.last()?;
    let same: Vec<&Sample> = samples.iter().filter(|s| s.pid == last.pid).collect();
    let first = same.iter().find(|s| s.at >= 60.0).or(same.first())?;
    let max = same.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    Some((
        last.rss_kb as i64 - first.rss_kb as i64,
        last.fds as i64 - first.fds as i64,
        max,
    ))
}

fn series(samples: &[Sample]) -> Vec<Value> {
    samples
        .iter()
        .map(
            |s| json!({"at_seconds": s.at.round(), "pid": s.pid, "rss_kb": s.rss_kb, "fds": s.fds}),
        )
        .collect()
}

fn report(
    minutes: u64,
    tally: &Tally,
    faults: &[Value],
    envoy: &[Sample],
    companion: &[Sample],
    world: &World,
) {
    let total: u64 = tally.by_kind.values().flat_map(|m| m.values()).sum();
    println!("\n{:<10} {:>10}  answers", "token", "requests");
    for (kind, statuses) in &tally.by_kind {
        let n: u64 = statuses.values().sum();
        let spread: Vec<String> = statuses.iter().map(|(s, c)| format!("{s}: {c}")).collect();
        println!("{kind:<10} {n:>10}  {}", spread.join(", "));
    }
    println!("{:<10} {total:>10}", "all");
    println!("\nwrong answers: {}", tally.wrong_count);
    println!("5xx outside fault windows: {}", tally.server_errors_outside);
    println!(
        "401/403 for a valid token inside fault windows: {}",
        tally.unauthorized_valid_in_fault
    );
    for line in &tally.wrong {
        println!("  {line}");
    }
    let mut growths = json!({});
    for (name, samples) in [("envoy", envoy), ("companion", companion)] {
        if let Some((rss, fds, max)) = growth(samples) {
            println!(
                "{name}: resident {} kB at the end ({rss:+} kB since the first minute, at most {max} kB), open files {fds:+}",
                samples.last().map_or(0, |s| s.rss_kb)
            );
            growths[name] = json!({"rss_kb_growth": rss, "fds_growth": fds, "rss_kb_max": max});
        }
    }
    let report = json!({
        "minutes": minutes,
        "requests": total,
        "answers": tally.by_kind.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "wrong_answers": tally.wrong_count,
        "server_errors_outside_faults": tally.server_errors_outside,
        "unauthorized_valid_in_faults": tally.unauthorized_valid_in_fault,
        "wrong_examples": tally.wrong,
        "faults": faults,
        "tokens_known": world.tokens.len(),
        "growth": growths,
        "envoy": series(envoy),
        "companion": series(companion),
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace");
    let out = root.join("target/soak");
    std::fs::create_dir_all(&out).expect("target/soak");
    let path = out.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write report");
    println!("\nwritten to {}", path.display());
    if tally.wrong_count > 0 || tally.server_errors_outside > 0 {
        std::process::exit(1);
    }
}
