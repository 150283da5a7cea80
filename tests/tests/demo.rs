//! The README's promise: its first commands are `./build.sh run` and
//! `./build.sh test`, and the demo works as printed. (`./build.sh test`
//! itself is proven by being the command that runs this.)

use std::collections::HashMap;
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_e2e::process::free_ports;
use portcullis_e2e::Artifacts;
use reqwest::StatusCode;

trait SpawnWithDefaultSigint {
    fn spawn_with_default_sigint(&mut self) -> std::io::Result<std::process::Child>;
}

impl SpawnWithDefaultSigint for Command {
    /// A shell cannot trap a signal that was ignored when it started, and a
    /// test runner may have been started with SIGINT ignored: restore the
    /// default, as a terminal's shell does for its foreground job.
    fn spawn_with_default_sigint(&mut self) -> std::io::Result<std::process::Child> {
        // SAFETY: signal() is async-signal-safe, as pre_exec requires.
        unsafe {
            self.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        self.spawn()
    }
}

#[test]
fn readme_first_commands_are_run_and_test() {
    let readme =
        std::fs::read_to_string(Artifacts::get().root.join("README.md")).expect("README.md");
    let commands: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.starts_with("./") || line.starts_with("cargo ") || line.starts_with("curl ")
        })
        .take(2)
        .collect();
    assert_eq!(commands, ["./build.sh run", "./build.sh test"]);
    // And they come before any other section of the README.
    let first_heading_after_title = readme.lines().skip(1).position(|l| l.starts_with("## "));
    let run_line = readme.lines().position(|l| l.trim() == "./build.sh run");
    assert!(
        run_line < first_heading_after_title.map(|h| h + 1),
        "commands must open the README"
    );
}

fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn fetch(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request to the demo")
}

fn port_open(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_millis(200)).is_ok()
}

#[rstest::rstest]
#[case::embedded(false)]
#[case::distributed(true)]
#[tokio::test]
async fn build_sh_run_serves_the_demo_and_stops_everything_on_ctrl_c(#[case] distributed: bool) {
    let engines = match distributed {
        false => None,
        true => match portcullis_e2e::ScratchEngines::create().await {
            Some(engines) => Some(engines),
            None => return,
        },
    };
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("demo.env");
    let out_file = dir.path().join("stdout");
    // Its own process group, as a terminal's foreground job: Ctrl-C is a
    // SIGINT to the whole group.
    let ports: [u16; 5] = free_ports();
    let mut command = Command::new(artifacts.root.join("build.sh"));
    for var in [
        "PORTCULLIS_DATABASE_URL",
        "PORTCULLIS_REDIS_URL",
        "PORTCULLIS_REDIS_KEY_PREFIX",
    ] {
        command.env_remove(var);
    }
    if let Some(e) = &engines {
        command
            .env("PORTCULLIS_DATABASE_URL", &e.database_url)
            .env("PORTCULLIS_REDIS_URL", &e.redis_url)
            .env("PORTCULLIS_REDIS_KEY_PREFIX", &e.prefix);
    }
    let mut demo = command
        .arg("run")
        .env("PORTCULLIS_NO_BUILD", "1") // built by ./build.sh test already
        .env("PORTCULLIS_PROXY_PORT", ports[0].to_string())
        .env("PORTCULLIS_ADMIN_PORT", ports[1].to_string())
        .env("PORTCULLIS_COMPANION_PORT", ports[2].to_string())
        .env("PORTCULLIS_UPSTREAM_PORT", ports[3].to_string())
        .env("PORTCULLIS_INGRESS_PORT", ports[4].to_string())
        .env("PORTCULLIS_DEMO_DIR", dir.path().join("demo"))
        .env("PORTCULLIS_DEMO_ENV_FILE", &env_file)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).expect("stdout file"))
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn_with_default_sigint()
        .expect("start ./build.sh run");
    let group = demo.id();
    let interrupt = || {
        Command::new("kill")
            .args(["-INT", "--", &format!("-{group}")])
            .status()
            .expect("kill");
    };

    let start = Instant::now();
    while !std::fs::read_to_string(&out_file).is_ok_and(|o| o.contains("press Ctrl-C")) {
        if start.elapsed() > Duration::from_secs(90) || demo.try_wait().expect("wait").is_some() {
            interrupt();
            panic!("the demo did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let printed = std::fs::read_to_string(&out_file).expect("stdout");
    let config = std::fs::read_to_string(dir.path().join("demo/portcullis.toml")).expect("config");
    let backend = if distributed {
        "distributed"
    } else {
        "embedded"
    };
    assert!(
        config.contains(&format!("backend = \"{backend}\"")),
        "{config}"
    );
    let env = parse_env_file(&std::fs::read_to_string(&env_file).expect("env file"));
    for var in [
        "PORTCULLIS_PROXY_URL",
        "PORTCULLIS_SERVER_URL",
        "PORTCULLIS_INGRESS_URL",
        "PORTCULLIS_ENVOY_ADMIN_URL",
        "PORTCULLIS_DEMO_TOKEN",
        "PORTCULLIS_BOOTSTRAP_TOKEN",
        "PORTCULLIS_DEMO_COOKIE",
        "PORTCULLIS_OIDC_ISSUER",
        "PORTCULLIS_OIDC_CLIENT_ID",
        "PORTCULLIS_OIDC_CLIENT_SECRET",
        "PORTCULLIS_OIDC_REDIRECT_URI",
    ] {
        assert!(env.contains_key(var), "{var} missing from the env file");
        assert!(
            printed.contains(&format!("{var}={}", env[var])),
            "{var} not printed"
        );
    }

    let proxy = &env["PORTCULLIS_PROXY_URL"];
    let allowed = fetch(
        &format!("{proxy}/hello"),
        Some(&env["PORTCULLIS_DEMO_TOKEN"]),
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let echoed: serde_json::Value = allowed.json().await.expect("echo JSON");
    assert_eq!(echoed["headers"]["x-auth-request-user"][0], "demo");
    assert_eq!(
        echoed["headers"]["x-auth-request-email"][0],
        "demo@example.org"
    );
    let anonymous = fetch(&format!("{proxy}/hello"), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // The bootstrap token is an admin credential for the API, never an
    // identity at the edge.
    let bootstrap = fetch(
        &format!("{proxy}/hello"),
        Some(&env["PORTCULLIS_BOOTSTRAP_TOKEN"]),
    )
    .await;
    assert_eq!(bootstrap.status(), StatusCode::UNAUTHORIZED);
    let cookie = env["PORTCULLIS_DEMO_COOKIE"].clone();
    let by_cookie = reqwest::Client::new()
        .get(format!("{proxy}/hello"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("cookie request");
    assert_eq!(by_cookie.status(), StatusCode::OK);
    // The printed OpenID Connect variables are enough for a certified client.
    let report = portcullis_e2e::node::relying_party(
        &artifacts,
        &env["PORTCULLIS_OIDC_ISSUER"],
        &env["PORTCULLIS_OIDC_CLIENT_ID"],
        &env["PORTCULLIS_OIDC_CLIENT_SECRET"],
        &env["PORTCULLIS_OIDC_REDIRECT_URI"],
        &cookie,
    );
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            interrupt();
            panic!("openid-client against the demo failed: {e}");
        }
    };
    assert_eq!(report["claims"]["sub"], "demo");
    assert_eq!(report["userinfo"]["email"], "demo@example.org");
    let admin_ready = fetch(
        &format!("{}/ready", env["PORTCULLIS_ENVOY_ADMIN_URL"]),
        None,
    )
    .await;
    assert_eq!(admin_ready.status(), StatusCode::OK);
    // The checks are on the ingress listener only.
    let token = Some(env["PORTCULLIS_DEMO_TOKEN"].as_str());
    let check = "/ingress/auth?scope=read:all";
    let public = fetch(&format!("{}{check}", env["PORTCULLIS_SERVER_URL"]), token).await;
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let ingress = fetch(&format!("{}{check}", env["PORTCULLIS_INGRESS_URL"]), token).await;
    assert_eq!(ingress.status(), StatusCode::OK);

    // The printed curl line for the demo token works when pasted.
    let line = printed
        .lines()
        .find(|l| l.starts_with("curl -s -H \"Authorization: Bearer"))
        .expect("a curl line with the demo token");
    let pasted = Command::new("bash")
        .arg("-c")
        .arg(line)
        .output()
        .expect("run curl line");
    assert!(String::from_utf8_lossy(&pasted.stdout).contains(r#""x-auth-request-user":["demo"]"#));

    // The demo runs with the cache: the demo token is answered from it,
    // and a revocation through the API is refused at the edge within 2 s.
    let admin_port: u16 = env["PORTCULLIS_ENVOY_ADMIN_URL"]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the admin port");
    let demo_token = env["PORTCULLIS_DEMO_TOKEN"].clone();
    let hello = format!("{proxy}/hello");
    let cached = |name: &'static str| portcullis_e2e::envoy::counter(admin_port, name);
    let start = Instant::now();
    while cached("portcullis.cache_hits_local").await + cached("portcullis.cache_hits_shared").await
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the demo's filter answers nothing from its cache"
        );
        assert_eq!(
            fetch(&hello, Some(&demo_token)).await.status(),
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let revoked = reqwest::Client::new()
        .delete(format!(
            "{}/auth/api/v1/users/demo/tokens/{}",
            env["PORTCULLIS_SERVER_URL"],
            &demo_token[3..25]
        ))
        .bearer_auth(&env["PORTCULLIS_BOOTSTRAP_TOKEN"])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let revoked_at = Instant::now();
    while fetch(&hello, Some(&demo_token)).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "a revoked token still served after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "revocation refused at the edge after {:?}",
        revoked_at.elapsed()
    );
    // The demo's Envoy logs each request as JSON, with the user the filter
    // found and never the token (the demo has Envoy write its log every second).
    let envoy_log = dir.path().join("demo/envoy.log");
    let logged = Instant::now();
    loop {
        let log = std::fs::read_to_string(&envoy_log).unwrap_or_default();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let seen = lines
            .iter()
            .any(|l| l["user"] == "demo" && l["status"] == 200 && l["path"] == "/hello")
            && lines.iter().any(|l| l["status"] == 401);
        if seen {
            assert!(!log.contains(&demo_token[3..]), "a token in the access log");
            break;
        }
        assert!(
            logged.elapsed() < Duration::from_secs(15),
            "no JSON access-log lines for the demo's requests:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    interrupt();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = demo.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the demo ignored Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "Ctrl-C should stop the demo cleanly: {status}"
    );
    for url in [
        "PORTCULLIS_PROXY_URL",
        "PORTCULLIS_SERVER_URL",
        "PORTCULLIS_INGRESS_URL",
        "PORTCULLIS_ENVOY_ADMIN_URL",
    ] {
        assert!(!port_open(&env[url]), "{url} still answers after Ctrl-C");
    }
}

/// `./build.sh install PREFIX` puts the companion on a PATH.
#[test]
fn build_sh_install_puts_portcullis_in_prefix_bin() {
    let artifacts = Artifacts::get();
    let prefix = tempfile::tempdir().expect("temp dir");
    let out = Command::new(artifacts.root.join("build.sh"))
        .arg("install")
        .arg(prefix.path())
        .env("PORTCULLIS_NO_BUILD", "1") // built by ./build.sh test already
        .output()
        .expect("./build.sh install");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = prefix.path().join("bin/portcullis");
    let version = Command::new(&installed)
        .arg("--version")
        .output()
        .expect("the installed portcullis");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("portcullis "));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&artifacts.companion).unwrap(),
        "the binary the tests ran"
    );
}
