//! `./build.sh bench`: Portcullis against what an Envoy operator would pick
//! instead, side by side in one run. Envoy (one worker) and the companion
//! share core 0; the load generator has core 1. Every row is checked to
//! answer as it should (the credential gets 200, none gets 401) before it
//! is measured. Prints a table and writes `target/bench/report.json`.
//!
//! Settings, from the environment: `PORTCULLIS_BENCH_SECONDS` (measured
//! seconds a row, default 8), `PORTCULLIS_BENCH_WARMUP` (2),
//! `PORTCULLIS_BENCH_CONNECTIONS` (32), `PORTCULLIS_BENCH_LARGE_STORE`
//! (tokens in the large store, 1000000), `PORTCULLIS_BENCH_DISTINCT`
//! (distinct tokens through Envoy for the memory rows, 100000).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_e2e::artifacts::MAX_WASM_BYTES;
use portcullis_e2e::bench::cpu;
use portcullis_e2e::bench::envoy_config::{
    envoy_config, ext_authz_filters, jwt_authn_filter, wasm_filter, Answer,
};
use portcullis_e2e::bench::load::{self, Amount, Sample, Target};
use portcullis_e2e::bench::report::{round, table, targets_table, Bound, Row, Target as Goal};
use portcullis_e2e::envoy;
use portcullis_e2e::process::free_ports;
use portcullis_e2e::{Artifacts, Companion, Envoy, ScratchEngines};
use serde_json::{json, Value};

/// Envoy and the companion run here; so does this program, except for
/// the load generator's thread.
const SUT_CPU: usize = 0;
const LOAD_CPU: usize = 1;
/// Tokens in the everyday store, and requested from the large one.
const SMALL_STORE: usize = 1000;

struct Settings {
    warmup: Duration,
    measure: Duration,
    connections: usize,
    large_store: usize,
    distinct: usize,
}

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(text) => text.parse().unwrap_or_else(|_| {
            eprintln!("bench: {name} must be a whole number, not {text:?}");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let settings = Settings {
        warmup: Duration::from_secs(setting("PORTCULLIS_BENCH_WARMUP", 2)),
        measure: Duration::from_secs(setting("PORTCULLIS_BENCH_SECONDS", 8).max(1)),
        connections: setting("PORTCULLIS_BENCH_CONNECTIONS", 32).max(1) as usize,
        large_store: setting("PORTCULLIS_BENCH_LARGE_STORE", 1_000_000).max(SMALL_STORE as u64)
            as usize,
        distinct: setting("PORTCULLIS_BENCH_DISTINCT", 100_000).max(4) as usize,
    };
    // Everything started from here inherits this core; the load
    // generator's thread moves itself to the other.
    if let Err(e) = cpu::pin_current_thread(SUT_CPU) {
        eprintln!("bench: cannot pin to cpu {SUT_CPU} ({e}); figures will be noisier");
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(bench(settings));
}

/// What every row needs.
struct Bench {
    artifacts: Artifacts,
    settings: Settings,
    work: tempfile::TempDir,
    noop_wasm: PathBuf,
}

/// A companion serving a store seeded with tokens.
struct Seeded {
    companion: Companion,
    tokens: Vec<String>,
}

async fn bench(settings: Settings) {
    let artifacts = Artifacts::get();
    let out = artifacts.root.join("target/bench");
    std::fs::create_dir_all(&out).expect("create target/bench");
    let noop_wasm = built(
        &artifacts.root,
        "PORTCULLIS_NOOP_WASM",
        "target/wasm32-wasip1/wasm/portcullis_bench_noop.wasm",
    );
    let bench = Bench {
        work: tempfile::tempdir_in(&out).expect("a work folder"),
        artifacts,
        settings,
        noop_wasm,
    };
    let wasm_bytes = file_size(&bench.artifacts.wasm);
    let noop_bytes = file_size(&bench.noop_wasm);
    let mut rows = Vec::new();

    say("seeding the embedded store with 1000 tokens");
    let small = bench.seeded_embedded("small", SMALL_STORE).await;
    let token = small.tokens[0].clone();
    let companion = Some(small.companion.ingress_port);
    let portcullis = |cache: bool| {
        let mut configuration =
            json!({"cluster": "portcullis", "policy": {"scopes": ["read:all"]}});
        if cache {
            configuration["cache"] = json!({});
        }
        vec![wasm_filter(
            "portcullis",
            &bench.artifacts.wasm.display().to_string(),
            &configuration,
        )]
    };
    let noop = || {
        vec![wasm_filter(
            "noop",
            &bench.noop_wasm.display().to_string(),
            &json!({}),
        )]
    };

    rows.push(
        bench
            .envoy_row("envoy-plain", vec![], None, None, None)
            .await,
    );
    let row = bench
        .envoy_row("envoy-wasm-noop", noop(), None, None, None)
        .await;
    rows.push(row.with("wasm_bytes", noop_bytes));
    // Its cache misses show that the row measured answers from cache.
    let row = bench
        .envoy_row(
            "portcullis-hit",
            portcullis(true),
            companion,
            Some(&token),
            Some("portcullis.cache_misses"),
        )
        .await;
    rows.push(row.with("wasm_bytes", wasm_bytes));
    let row = bench
        .envoy_row(
            "portcullis-miss",
            portcullis(false),
            companion,
            Some(&token),
            Some("portcullis.allowed"),
        )
        .await;
    rows.push(row);
    let row = bench
        .envoy_row(
            "ext-authz-http",
            ext_authz_filters("scope=read:all"),
            companion,
            Some(&token),
            Some("ext_authz.ok"),
        )
        .await;
    rows.push(row);
    let (jwks, jwt) = bench_jwt(&small.companion).await;
    let row = bench
        .envoy_row(
            "jwt-authn",
            vec![jwt_authn_filter(JWT_ISSUER, &jwks)],
            None,
            Some(&jwt),
            Some("jwt_authn.allowed"),
        )
        .await;
    rows.push(row);

    rows.push(
        bench
            .companion_row("companion-direct", &small, &small.tokens)
            .await
            .with("stored_tokens", SMALL_STORE),
    );
    drop(small);

    match ScratchEngines::create().await {
        Some(engines) => {
            say("seeding the distributed store with 1000 tokens");
            let distributed = bench.seeded_distributed(&engines, SMALL_STORE).await;
            rows.push(
                bench
                    .companion_row(
                        "companion-direct-distributed",
                        &distributed,
                        &distributed.tokens,
                    )
                    .await
                    .with("stored_tokens", SMALL_STORE),
            );
        }
        None => say("no PostgreSQL and Redis: the distributed row is left out"),
    }

    let large_count = bench.settings.large_store;
    say(&format!(
        "seeding the embedded store with {large_count} tokens"
    ));
    let large = bench.seeded_embedded("large", large_count).await;
    // As many tokens as the small store's, spread over the whole store.
    let spread: Vec<String> = large
        .tokens
        .iter()
        .step_by(large_count / SMALL_STORE)
        .take(SMALL_STORE)
        .cloned()
        .collect();
    let large_name = format!("companion-direct-{}", count_name(large_count));
    rows.push(
        bench
            .companion_row(&large_name, &large, &spread)
            .await
            .with("stored_tokens", large_count),
    );

    let distinct = &large.tokens[..bench.settings.distinct.min(large_count)];
    let memory = bench
        .memory_row(
            "portcullis-distinct-tokens",
            portcullis(true),
            Some(large.companion.ingress_port),
            distinct,
        )
        .await;
    rows.push(memory);
    rows.push(
        bench
            .memory_row("envoy-wasm-noop-distinct-tokens", noop(), None, distinct)
            .await,
    );

    let goals = goals(&rows, &large_name, wasm_bytes);
    println!("\n{}", table(&rows));
    println!("{}", targets_table(&goals));
    let mut report: Vec<Value> = rows.iter().map(Row::to_json).collect();
    report.extend(goals.iter().map(Goal::to_json));
    let path = out.join("report.json");
    let text = serde_json::to_string_pretty(&report).expect("JSON");
    std::fs::write(&path, text + "\n").expect("write the report");
    println!("written to {}", path.display());
}

/// Each target of the issue, from this run's rows.
fn goals(rows: &[Row], large_store_row: &str, wasm_bytes: u64) -> Vec<Goal> {
    let find = |name: &str| rows.iter().find(|r| r.name == name);
    let rps = |name: &str| find(name).map_or(f64::NAN, |r| r.sample.rps());
    let p50 = |name: &str| find(name).map_or(f64::NAN, |r| r.sample.latency_ms(0.5));
    let mut goals = vec![
        Goal::new(
            "portcullis-hit / envoy-wasm-noop (rps)",
            rps("portcullis-hit") / rps("envoy-wasm-noop"),
            Bound::AtLeast(0.95),
        ),
        Goal::new(
            "portcullis-hit / jwt-authn (rps)",
            rps("portcullis-hit") / rps("jwt-authn"),
            Bound::AtLeast(1.2),
        ),
        Goal::new(
            "portcullis-hit / ext-authz-http (rps)",
            rps("portcullis-hit") / rps("ext-authz-http"),
            Bound::AtLeast(3.0),
        ),
        Goal::new(
            "portcullis-miss / ext-authz-http (rps)",
            rps("portcullis-miss") / rps("ext-authz-http"),
            Bound::AtLeast(1.0),
        ),
        Goal::new(
            "large store / 1000-token store (companion p50)",
            p50(large_store_row) / p50("companion-direct"),
            Bound::AtMost(1.25),
        ),
        Goal::new(
            "portcullis_filter.wasm (KB)",
            wasm_bytes as f64 / 1000.0,
            Bound::AtMost(MAX_WASM_BYTES as f64 / 1000.0),
        ),
    ];
    if let Some(growth) = find("portcullis-distinct-tokens")
        .and_then(|r| r.extra.get("rss_growth_second_half_mib"))
        .and_then(Value::as_f64)
    {
        goals.push(Goal::new(
            "Envoy RSS growth, second half of the tokens (MiB)",
            growth,
            Bound::AtMost(MAX_GROWTH_ONCE_FULL_MIB),
        ));
    }
    goals
}

/// What Envoy may still grow by in the second half of the distinct tokens,
/// when the filter's cache has long held its configured most: a page or
/// two of allocator slack, not entries.
const MAX_GROWTH_ONCE_FULL_MIB: f64 = 1.0;

impl Bench {
    /// Load at `target` for the warm-up time, not counted.
    fn warm_up(&self, target: Target) {
        let amount = Amount::For(self.settings.warmup);
        load::run(target, self.settings.connections, amount, LOAD_CPU);
    }

    /// Load at `target` for the measured time.
    fn measure(&self, target: Target) -> Sample {
        let amount = Amount::For(self.settings.measure);
        load::run(target, self.settings.connections, amount, LOAD_CPU)
    }

    /// Envoy (one worker) with `filters` before a `direct_response` route,
    /// checked and then measured with `credential` as the bearer token (a
    /// row with one must refuse a request without it); with Envoy's
    /// `counter` afterwards, if named.
    async fn envoy_row(
        &self,
        name: &str,
        filters: Vec<Value>,
        companion: Option<u16>,
        credential: Option<&str>,
        counter: Option<&str>,
    ) -> Row {
        let envoy = self.start_envoy(name, filters, companion).await;
        let url = format!("http://127.0.0.1:{}/", envoy.proxy);
        expect_status(&url, credential, 200, name).await;
        if credential.is_some() {
            expect_status(&url, None, 401, name).await;
        }
        say(&format!("measuring {name}"));
        let target = || Target::bearer(envoy.proxy, "/", credential);
        self.warm_up(target());
        // The counter over the measured run alone.
        let before = match counter {
            Some(counter) => envoy::counter(envoy.admin, counter).await,
            None => 0,
        };
        let row = Row::new(name, self.measure(target()));
        match counter {
            Some(counter) => {
                let count = envoy::counter(envoy.admin, counter).await - before;
                row.with(counter, count)
            }
            None => row,
        }
    }

    /// Load straight at the companion's check, cycling over `tokens`.
    async fn companion_row(&self, name: &str, seeded: &Seeded, tokens: &[String]) -> Row {
        let path = "/ingress/auth?scope=read:all";
        let url = seeded.companion.ingress_url(path);
        expect_status(&url, Some(&tokens[0]), 200, name).await;
        say(&format!("measuring {name}"));
        let target = || {
            Target::bearer(
                seeded.companion.ingress_port,
                path,
                tokens.iter().map(String::as_str),
            )
        };
        self.warm_up(target());
        Row::new(name, self.measure(target()))
    }

    /// Envoy's resident memory as `tokens`, each once, pass through
    /// `filters`: after each quarter, and its growth over the second half,
    /// long after the filter's cache (10000 answers) is full.
    async fn memory_row(
        &self,
        name: &str,
        filters: Vec<Value>,
        companion: Option<u16>,
        tokens: &[String],
    ) -> Row {
        let envoy = self.start_envoy(name, filters, companion).await;
        let url = format!("http://127.0.0.1:{}/", envoy.proxy);
        expect_status(&url, Some(&tokens[0]), 200, name).await;
        say(&format!(
            "measuring {name}: {} distinct tokens",
            tokens.len()
        ));
        let start_mib = envoy.rss_mib();
        let mut sample: Option<Sample> = None;
        let mut after = Vec::new();
        let quarter = tokens.len() / 4;
        for part in tokens.chunks(quarter).take(4) {
            let part_sample = load::run(
                Target::bearer(envoy.proxy, "/", part.iter().map(String::as_str)),
                self.settings.connections,
                Amount::EachCredentialOnce,
                LOAD_CPU,
            );
            sample = Some(match sample {
                None => part_sample,
                Some(sample) => sample.then(part_sample),
            });
            after.push(envoy.rss_mib());
        }
        let sample = sample.expect("four parts");
        let growth = after[3] - after[1];
        Row::new(name, sample)
            .with("rss_mib_at_start", start_mib)
            .with("rss_mib_after_each_quarter", after.clone())
            .with("rss_growth_second_half_mib", round(growth, 2))
    }

    async fn start_envoy(
        &self,
        name: &str,
        filters: Vec<Value>,
        companion: Option<u16>,
    ) -> RunningEnvoy {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir).expect("a folder for Envoy");
        let [admin, proxy] = free_ports();
        let config = envoy_config(admin, proxy, Answer::Direct, filters, companion);
        let envoy = Envoy::start_with_workers(&self.artifacts.envoy, &config, admin, &dir, 1)
            .await
            .unwrap_or_else(|log| panic!("Envoy refused the {name} configuration:\n{log}"));
        RunningEnvoy {
            envoy,
            admin,
            proxy,
        }
    }

    async fn seeded_embedded(&self, name: &str, count: usize) -> Seeded {
        let companion = Companion::embedded(&self.artifacts, &self.work.path().join(name));
        self.seed(companion, count).await
    }

    async fn seeded_distributed(&self, engines: &ScratchEngines, count: usize) -> Seeded {
        let dir = self.work.path().join("distributed");
        let companion = Companion::distributed(&self.artifacts, &dir, engines);
        self.seed(companion, count).await
    }

    /// Fills `companion`'s fresh store with `count` tokens and starts it.
    /// Its `last_used` is written at most hourly, so that the warm-up's
    /// first check of each token is the only write: a row then measures
    /// checks, not a token's once-a-minute bookkeeping.
    async fn seed(&self, mut companion: Companion, count: usize) -> Seeded {
        companion.edit_config(|text| {
            let anchor = "\ncheck_cache_ttl_seconds";
            assert!(
                text.contains(anchor),
                "config init no longer writes {anchor:?}"
            );
            text.replacen(
                anchor,
                "\nlast_used_interval_seconds = 3600\ncheck_cache_ttl_seconds",
                1,
            )
        });
        let seeder = std::env::var_os("PORTCULLIS_SEEDER").map_or_else(
            || {
                portcullis_e2e::artifacts::native_release_dir(&self.artifacts.root)
                    .join("examples/seed_tokens")
            },
            PathBuf::from,
        );
        assert!(
            seeder.is_file(),
            "{} is missing (PORTCULLIS_SEEDER): run ./build.sh bench, which builds it",
            seeder.display()
        );
        let tokens_file = companion.dir.join("tokens.txt");
        let status = std::process::Command::new(seeder)
            .arg(companion.config_path())
            .arg(count.to_string())
            .arg(&tokens_file)
            .status()
            .expect("run seed_tokens");
        assert!(status.success(), "seed_tokens failed");
        let tokens: Vec<String> = std::fs::read_to_string(&tokens_file)
            .expect("the seeded tokens")
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(tokens.len(), count, "seeded tokens");
        companion.resume().await;
        Seeded { companion, tokens }
    }
}

struct RunningEnvoy {
    envoy: Envoy,
    admin: u16,
    proxy: u16,
}

impl RunningEnvoy {
    /// Resident memory, in MiB.
    fn rss_mib(&self) -> f64 {
        let pid = self.envoy.pid().expect("Envoy runs");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("Envoy's status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        round(kib / 1024.0, 2)
    }
}

const JWT_ISSUER: &str = "https://bench.example.org";

/// The companion's JWKS and an RS256 JWT for audience `bench`, signed with
/// the companion's own signing key (`s1`), valid for an hour.
async fn bench_jwt(companion: &Companion) -> (String, String) {
    let jwks = reqwest::get(companion.url("/.well-known/jwks.json"))
        .await
        .expect("the companion's JWKS")
        .text()
        .await
        .expect("a JWKS");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(companion.signing_key_pem().as_bytes())
        .expect("the companion's signing key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    let claims = json!({
        "iss": JWT_ISSUER, "aud": "bench", "sub": "bench0", "iat": now, "exp": now + 3600
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("s1".to_owned());
    let jwt = jsonwebtoken::encode(&header, &claims, &key).expect("sign the JWT");
    (jwks, jwt)
}

/// Asserts that GET `url` with `bearer` (or none) answers `status`.
async fn expect_status(url: &str, bearer: Option<&str>, status: u16, row: &str) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let answer = request.send().await.expect("a request before measuring");
    assert_eq!(
        answer.status().as_u16(),
        status,
        "{row}: {url} with{} a token answers {}, not {status}: the row would measure the wrong thing",
        if bearer.is_some() { "" } else { "out" },
        answer.status()
    );
}

/// A built artifact: `var` if set, else `default` under the workspace.
fn built(root: &Path, var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| root.join(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing ({var}): run ./build.sh bench, which builds it",
        path.display()
    );
    path
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("a built file").len()
}

fn count_name(count: usize) -> String {
    match count {
        n if n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn say(message: &str) {
    eprintln!("bench: {message}");
}
