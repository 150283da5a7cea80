//! `envoy/production.yaml`, with only its documented values replaced, end
//! to end through the real Envoy: the companion behind mutual TLS on its
//! ingress listener (a CA and certificates made here with openssl), the
//! filter with its cache, JSON access logs, stats on their own port; and
//! every shipped Envoy configuration passes `envoy --mode validate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_e2e::pki::Ca;
use portcullis_e2e::process::{free_ports, Process};
use portcullis_e2e::stack::{render_shipped_demo_config, Ports, ANY_SESSION_KEY};
use portcullis_e2e::{Artifacts, Companion, Envoy};
use reqwest::StatusCode;

/// The companion's name as the Envoy configuration knows it (SNI and SAN).
const COMPANION_NAME: &str = "portcullis.portcullis.svc.cluster.local";

/// Makes the certificates: the companion's (server), Envoy's (client) and
/// a stranger's (a client certificate from another CA).
fn make_certificates(dir: &Path) {
    let ca = Ca::new(dir, "ca");
    ca.issue_server("companion", COMPANION_NAME);
    ca.issue_client("envoy");
    Ca::new(dir, "other-ca").issue_client("stranger");
}

struct Rendered {
    config: String,
    proxy: u16,
    admin: u16,
    stats: u16,
}

/// `envoy/production.yaml` with the values its header names replaced.
fn render_production(
    artifacts: &Artifacts,
    pki: &Path,
    session_key: &str,
    ingress: u16,
    upstream: u16,
) -> Rendered {
    let template = std::fs::read_to_string(artifacts.root.join("envoy/production.yaml"))
        .expect("envoy/production.yaml");
    let [proxy, admin, stats] = free_ports();
    let file = |name: &str| pki.join(name).display().to_string();
    let replacements = [
        ("{{SESSION_KEY}}", session_key.to_owned()),
        (
            "/etc/envoy/portcullis/portcullis_filter.wasm",
            artifacts.wasm.display().to_string(),
        ),
        ("/etc/envoy/portcullis/ca.crt", file("ca.crt")),
        ("/etc/envoy/portcullis/envoy.crt", file("envoy.crt")),
        ("/etc/envoy/portcullis/envoy.key", file("envoy.key")),
        (
            "{ address: portcullis.portcullis.svc.cluster.local, port_value: 8303 }",
            format!("{{ address: 127.0.0.1, port_value: {ingress} }}"),
        ),
        (
            "{ address: app.default.svc.cluster.local, port_value: 8080 }",
            format!("{{ address: 127.0.0.1, port_value: {upstream} }}"),
        ),
        (
            "{ address: 0.0.0.0, port_value: 8080 }",
            format!("{{ address: 127.0.0.1, port_value: {proxy} }}"),
        ),
        (
            "{ address: 0.0.0.0, port_value: 9902 }",
            format!("{{ address: 127.0.0.1, port_value: {stats} }}"),
        ),
        (
            "{ address: 127.0.0.1, port_value: 9901 }",
            format!("{{ address: 127.0.0.1, port_value: {admin} }}"),
        ),
    ];
    let mut config = template;
    for (from, to) in replacements {
        assert!(config.contains(from), "production.yaml has no {from}");
        config = config.replace(from, &to);
    }
    Rendered {
        config,
        proxy,
        admin,
        stats,
    }
}

/// curl to the companion's ingress listener over TLS, with `client` as the
/// client certificate (or none); Ok(status) or Err(curl's complaint).
fn curl_ingress(pki: &Path, port: u16, client: Option<&str>) -> Result<u16, String> {
    let mut command = Command::new("curl");
    command
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .args(["--resolve", &format!("{COMPANION_NAME}:{port}:127.0.0.1")]);
    if let Some(name) = client {
        command
            .arg("--cert")
            .arg(pki.join(format!("{name}.crt")))
            .arg("--key")
            .arg(pki.join(format!("{name}.key")));
    }
    let out = command
        .arg(format!("https://{COMPANION_NAME}:{port}/health"))
        .output()
        .expect("curl");
    let code: u16 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if out.status.success() && code != 0 {
        Ok(code)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn with_ingress_tls(pki: &Path) -> impl FnOnce(String) -> String {
    let file = |name: &str| pki.join(name).display().to_string();
    let section = format!(
        "\n[ingress_tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nclient_ca = \"{}\"\n",
        file("companion.crt"),
        file("companion.key"),
        file("ca.crt")
    );
    // A short handshake limit, for the slow-client check below.
    move |text| text.replacen("realm = ", "header_read_timeout_seconds = 2\nrealm = ", 1) + &section
}

/// A client that opens a TLS connection and then stalls (silent, or half
/// a ClientHello) is cut off at the header time limit, not held forever.
async fn slow_handshakes_are_cut_off(port: u16) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for opening in [&b""[..], &b"\x16\x03\x01\x02\x00\x01"[..]] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the ingress listener");
        stream.write_all(opening).await.unwrap();
        let mut buffer = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(6), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a stalled handshake ({opening:?}) was not cut off"
        );
    }
}

#[tokio::test]
async fn the_production_configuration_runs_end_to_end_over_mutual_tls() {
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_certificates(&pki);

    let mut companion = Companion::embedded(&artifacts, &dir.path().join("companion"));
    companion.edit_config(with_ingress_tls(&pki));
    companion.spawn();
    let start = Instant::now();
    while curl_ingress(&pki, companion.ingress_port, Some("envoy")) != Ok(200) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the companion's TLS ingress did not come up:\n{}",
            companion.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only a client with a certificate from the configured CA gets in.
    assert!(curl_ingress(&pki, companion.ingress_port, None).is_err());
    assert!(curl_ingress(&pki, companion.ingress_port, Some("stranger")).is_err());
    slow_handshakes_are_cut_off(companion.ingress_port).await;
    // Plain HTTP on the TLS port gets no answer.
    assert!(reqwest::get(companion.ingress_url("/health"))
        .await
        .is_err());
    // The public listener is unchanged.
    assert_eq!(
        reqwest::get(companion.url("/health"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let [upstream] = free_ports();
    let mut echo = Command::new(&artifacts.echo);
    echo.arg(upstream.to_string());
    let _upstream = Process::spawn("echo-upstream", echo, &dir.path().join("upstream.log"));
    let rendered = render_production(
        &artifacts,
        &pki,
        &companion.session_key(),
        companion.ingress_port,
        upstream,
    );
    let envoy_dir = dir.path().join("envoy");
    std::fs::create_dir_all(&envoy_dir).unwrap();
    let _envoy = Envoy::start(
        &artifacts.envoy,
        &rendered.config,
        rendered.admin,
        &envoy_dir,
    )
    .await
    .unwrap_or_else(|log| panic!("Envoy did not start on production.yaml:\n{log}"));
    let proxy = format!("http://127.0.0.1:{}", rendered.proxy);
    let client = reqwest::Client::new();
    let get = |token: Option<String>| {
        let mut request = client.get(format!("{proxy}/hello"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let token = companion.create_token("alice", &["read:all"]);
    let start = Instant::now();
    loop {
        let response = get(Some(token.clone())).await.expect("through Envoy");
        if response.status() == StatusCode::OK {
            let echoed: serde_json::Value = response.json().await.unwrap();
            assert_eq!(echoed["headers"]["x-auth-request-user"][0], "alice");
            assert!(echoed["headers"].get("authorization").is_none());
            break;
        }
        // The health check may not have passed yet.
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} through production.yaml",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let other = companion.create_token("bob", &["write:all"]);
    assert_eq!(
        get(Some(other)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // The checks went over TLS.
    assert!(
        portcullis_e2e::envoy::counter(rendered.admin, "cluster.portcullis.ssl.handshake").await
            >= 1
    );

    // The cache holds the answer; a revocation still lands within 2 s.
    let cached = |name: &'static str| portcullis_e2e::envoy::counter(rendered.admin, name);
    let start = Instant::now();
    while cached("portcullis.cache_hits_local").await + cached("portcullis.cache_hits_shared").await
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(10), "nothing cached");
        assert_eq!(
            get(Some(token.clone())).await.unwrap().status(),
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let key = &token[3..25];
    let revoked = client
        .delete(companion.url(&format!("/auth/api/v1/users/alice/tokens/{key}")))
        .bearer_auth(companion.bootstrap_token())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let revoked_at = Instant::now();
    while get(Some(token.clone())).await.unwrap().status() != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "revocation not seen in 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Stats on their own port, and nothing else of the admin interface.
    let stats = format!("http://127.0.0.1:{}", rendered.stats);
    let prometheus = reqwest::get(format!("{stats}/stats/prometheus"))
        .await
        .unwrap();
    assert_eq!(prometheus.status(), StatusCode::OK);
    assert!(prometheus
        .text()
        .await
        .unwrap()
        .contains("envoy_cluster_upstream_cx_total"));
    for path in ["/config_dump", "/quitquitquit", "/stats"] {
        let status = reqwest::get(format!("{stats}{path}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} on the stats port");
    }

    // One JSON access-log line per request, with the user the filter
    // found, and never the token.
    // (The harness has Envoy flush its log files every 250 ms.)
    let read_log = || {
        let log = std::fs::read_to_string(envoy_dir.join("envoy.log")).unwrap();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (log, lines)
    };
    let start = Instant::now();
    let (log, lines) = loop {
        let (log, lines) = read_log();
        if lines.iter().filter(|l| l["status"] == 401).count() >= 2
            || start.elapsed() > Duration::from_secs(15)
        {
            break (log, lines);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "alice" && l["status"] == 200 && l["path"] == "/hello"),
        "no access-log line for alice's request:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["status"] == 401 && l["user"].is_null() && l["path"] == "/hello"),
        "no access-log line for the refusals:\n{log}"
    );
    assert!(!log.contains(&token[3..]), "a token in Envoy's log");
}

/// Every `.yaml` under `envoy/` starts in `--mode validate` with its
/// placeholders filled as a user would fill them.
#[tokio::test]
async fn every_shipped_envoy_configuration_passes_validate_mode() {
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    make_certificates(dir.path());
    let mut shipped: Vec<PathBuf> = std::fs::read_dir(artifacts.root.join("envoy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    shipped.sort();
    let names: Vec<String> = shipped
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["demo.yaml", "production.yaml"],
        "a new file needs its renderer here"
    );
    let [a, b, c, d] = free_ports();
    for (name, config) in [
        (
            "demo.yaml",
            render_shipped_demo_config(
                &artifacts,
                &Ports {
                    proxy: a,
                    admin: b,
                    upstream: c,
                    ingress: d,
                },
                ANY_SESSION_KEY,
            ),
        ),
        (
            "production.yaml",
            render_production(&artifacts, dir.path(), ANY_SESSION_KEY, a, b).config,
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &config).unwrap();
        let out = Command::new(&artifacts.envoy)
            .args(["--mode", "validate", "--config-path"])
            .arg(&path)
            .output()
            .expect("envoy --mode validate");
        assert!(
            out.status.success(),
            "{name} does not validate:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
