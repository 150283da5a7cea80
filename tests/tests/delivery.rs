//! The filter delivered the ways a mesh delivers it, through the real
//! Envoy: by extension config discovery (ECDS) from a file, as Istio's
//! agent hands Envoy a `WasmPlugin`, reconfigured while traffic flows; and
//! as remote code fetched over HTTP and checked against its SHA-256.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_e2e::stack::{
    filter_discovery_resource, render_demo_config, replace_file, with_filter_from_discovery, Ports,
    ANY_SESSION_KEY,
};
use portcullis_e2e::{Artifacts, Envoy, Stack};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

fn filter_requiring(scope: &str) -> String {
    format!(
        r#"{{"cluster": "portcullis", "policy": {{"scopes": ["{scope}"]}},
  "cache": {{"ttl_seconds": 300, "poll_interval_ms": 500}}}}"#
    )
}

/// What one client saw: (token, status) in order.
type Seen = Vec<(&'static str, StatusCode)>;

#[tokio::test]
async fn an_ecds_reconfiguration_under_load_drops_nothing_takes_effect_within_seconds_and_a_bad_one_is_refused(
) {
    let artifacts = Artifacts::get();
    let discovery = tempfile::tempdir().expect("temp dir");
    let resource = discovery.path().join("portcullis.json");
    replace_file(
        &resource,
        &filter_discovery_resource(&artifacts, &filter_requiring("read:all")),
    );
    let stack = Stack::start_with(|_, config| with_filter_from_discovery(&config, &resource)).await;
    let reader = stack.companion.create_token("alice", &["read:all"]);
    let writer = stack
        .companion
        .create_token("bob", &["read:all", "write:all"]);
    let reader: &'static str = Box::leak(reader.into_boxed_str());
    let writer: &'static str = Box::leak(writer.into_boxed_str());
    assert_eq!(
        stack.get_with_token("/", reader).await.status(),
        StatusCode::OK
    );
    assert_eq!(stack.get("/", &[]).await.status(), StatusCode::UNAUTHORIZED);

    // Four clients, fresh connections over both workers, until told to stop.
    let running = Arc::new(AtomicBool::new(true));
    let url = stack.url("/");
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (running, url) = (running.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                let mut seen: Seen = Vec::new();
                let mut errors = Vec::new();
                while running.load(Ordering::SeqCst) {
                    let token = [reader, writer, ""][i % 3];
                    let mut request = client.get(&url);
                    if !token.is_empty() {
                        request = request.bearer_auth(token);
                    }
                    match request.send().await {
                        Ok(response) => seen.push((token, response.status())),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (seen, errors)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    // The switch: the default policy now wants write:all.
    let switched = Instant::now();
    replace_file(
        &resource,
        &filter_discovery_resource(&artifacts, &filter_requiring("write:all")),
    );
    let in_force = loop {
        if stack.get_with_token("/", reader).await.status() == StatusCode::FORBIDDEN
            && stack.get_with_token("/", reader).await.status() == StatusCode::FORBIDDEN
        {
            break switched.elapsed();
        }
        assert!(
            switched.elapsed() < Duration::from_secs(10),
            "the new policy not in force after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("new policy in force after {in_force:?}");
    assert!(in_force < Duration::from_secs(5), "{in_force:?}");
    // Settled: both workers answer by the new policy, every time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let status = fresh
            .get(&url)
            .bearer_auth(reader)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        stack
            .envoy_counter("extension_config_discovery.http_filter.portcullis.config_reload")
            .await,
        2,
        "the first configuration and the switch"
    );

    // A bad configuration (an unknown field): refused, the old one kept.
    replace_file(
        &resource,
        &filter_discovery_resource(
            &artifacts,
            r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]}, "polcy": {}}"#,
        ),
    );
    let start = Instant::now();
    while stack
        .envoy_counter("extension_config_discovery.http_filter.portcullis.config_fail")
        .await
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Envoy did not refuse the bad configuration"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::SeqCst);

    // During all of it: no request failed, and every answer was the old
    // policy's or the new one's, never anything else.
    let mut answers = 0;
    for client in clients {
        let (seen, errors) = client.await.expect("client");
        assert!(errors.is_empty(), "requests failed: {errors:?}");
        for (token, status) in seen {
            answers += 1;
            let allowed: &[StatusCode] = match token {
                t if t == reader => &[StatusCode::OK, StatusCode::FORBIDDEN],
                t if t == writer => &[StatusCode::OK],
                _ => &[StatusCode::UNAUTHORIZED],
            };
            assert!(allowed.contains(&status), "{status} for {token:.8}…");
        }
    }
    assert!(answers > 50, "only {answers} answers under load");
    // The bad configuration changed nothing.
    assert_eq!(
        stack.get_with_token("/", reader).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        stack.get_with_token("/", writer).await.status(),
        StatusCode::OK
    );
    assert_eq!(stack.get("/", &[]).await.status(), StatusCode::UNAUTHORIZED);
}

/// A tiny file server for the `.wasm`, on a loopback port.
async fn serve_wasm(bytes: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/portcullis_filter.wasm",
        axum::routing::get(move || {
            let bytes = bytes.clone();
            async move { bytes }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The demo's configuration with the filter's code fetched from
/// `http://127.0.0.1:{port}/portcullis_filter.wasm`, checked against `sha256`.
fn with_remote_code(config: &str, port: u16, sha256: &str) -> String {
    let artifacts = Artifacts::get();
    let local = format!(
        "                    local: {{ filename: \"{}\" }}",
        artifacts.wasm.display()
    );
    assert!(config.contains(&local), "the demo's local code source");
    let remote = format!(
        "                    remote:\n                      http_uri:\n                        uri: \
         http://127.0.0.1:{port}/portcullis_filter.wasm\n                        cluster: \
         wasm_source\n                        timeout: 5s\n                      sha256: {sha256}\n                      \
         retry_policy: {{ num_retries: 2 }}"
    );
    let cluster = format!(
        "  clusters:\n  - name: wasm_source\n    type: STATIC\n    connect_timeout: 1s\n    \
         load_assignment:\n      cluster_name: wasm_source\n      endpoints:\n      - lb_endpoints:\n        \
         - endpoint:\n            address:\n              socket_address: {{ address: 127.0.0.1, \
         port_value: {port} }}\n"
    );
    config
        .replace(&local, &remote)
        .replacen("  clusters:\n", &cluster, 1)
}

#[tokio::test]
async fn remote_code_with_its_sha256_is_loaded_and_serves_the_filter() {
    let artifacts = Artifacts::get();
    let wasm = std::fs::read(&artifacts.wasm).expect("the .wasm");
    let digest = hex::encode(Sha256::digest(&wasm));
    let port = serve_wasm(wasm).await;
    let stack = Stack::start_with(|_, config| with_remote_code(&config, port, &digest)).await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    assert_eq!(
        stack.get_with_token("/", &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(stack.get("/", &[]).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn remote_code_with_a_wrong_sha256_is_refused_and_nothing_is_served_unauthenticated() {
    let artifacts = Artifacts::get();
    let wasm = std::fs::read(&artifacts.wasm).expect("the .wasm");
    let wrong = hex::encode(Sha256::digest(b"not the filter"));
    let port = serve_wasm(wasm).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let Ports {
        proxy,
        admin,
        upstream,
        ..
    } = ports;
    // An upstream that answers anything: if a request reached it, the
    // filter was not there.
    let echo = portcullis_e2e::process::Process::spawn(
        "echo-upstream",
        {
            let mut command = std::process::Command::new(&artifacts.echo);
            command.arg(upstream.to_string());
            command
        },
        &dir.path().join("upstream.log"),
    );
    let config = with_remote_code(
        &render_demo_config(&artifacts, &ports, ANY_SESSION_KEY),
        port,
        &wrong,
    );
    match Envoy::start(&artifacts.envoy, &config, admin, dir.path()).await {
        Err(log) => {
            eprintln!("Envoy refused to start");
            assert!(
                log.contains("sha256") || log.contains("Wasm"),
                "Envoy exited, but not over the code:\n{log}"
            )
        }
        Ok(envoy) => {
            eprintln!("Envoy runs without the filter's code");
            // Envoy runs: every request must be refused, none forwarded.
            let client = reqwest::Client::new();
            for path in ["/", "/public/x", "/admin"] {
                let status = client
                    .get(format!("http://127.0.0.1:{proxy}{path}"))
                    .send()
                    .await
                    .map(|r| r.status());
                if let Ok(status) = status {
                    assert!(
                        !status.is_success(),
                        "{path} answered {status} with code that failed its digest"
                    );
                }
            }
            let log = std::fs::read_to_string(dir.path().join("envoy.log")).unwrap_or_default();
            assert!(log.contains("sha256") || log.contains("hash"), "{log}");
            drop(envoy);
        }
    }
    drop(echo);
}
