//! Schemathesis (PyPI, installed by `./build.sh test` into `.venv/`)
//! attacks a running companion from its own OpenAPI document, on both
//! backends: generated and mutated requests to every operation of both
//! listeners, checked for server errors, answers that break the document,
//! invalid input accepted, and authentication that can be left out.

use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_e2e::{Artifacts, Companion, ScratchEngines};

/// What every answer is held to.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,negative_data_rejection,\
    ignored_auth";

/// ext_authz forwards the client's method, whatever it is, and the check
/// must not depend on it: that route takes every method, QUERY and WebDAV's
/// included, which OpenAPI 3.1 cannot all name. Every other route answers
/// a method it does not list with 405.
const ALSO_OFF_EXT_AUTHZ: &str = "unsupported_method";
const EXT_AUTHZ: &str = "/ingress/ext-authz/{path}";

fn schemathesis(root: &Path) -> PathBuf {
    let path = std::env::var_os("PORTCULLIS_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/schemathesis"));
    assert!(
        path.is_file(),
        "{} is missing: ./build.sh test installs schemathesis into .venv/",
        path.display()
    );
    path
}

/// What a run authenticates with.
enum Credentials<'a> {
    /// A bearer token on every request.
    Bearer(&'a str),
    /// A bearer token and a session cookie, each as the document's
    /// security scheme of that name, so that schemathesis sends one or the
    /// other and, to test a refusal, spoils the one it sent. (A bearer
    /// token on every request would stand in for a spoiled cookie.)
    BySchemes { bearer: &'a str, session: &'a str },
}

/// One bounded run against `base` of the operations `filter` picks, with
/// `credentials`, held to `checks`; panics with schemathesis's report on
/// a failure.
fn attack(
    artifacts: &Artifacts,
    companion: &Companion,
    base: &str,
    filter: &[&str],
    checks: &str,
    credentials: &Credentials,
) {
    let mut command = Command::new(schemathesis(&artifacts.root));
    match credentials {
        Credentials::Bearer(_) => {}
        Credentials::BySchemes { bearer, session } => {
            let config = companion.dir.join("schemathesis-schemes.toml");
            std::fs::write(
                &config,
                format!(
                    "[auth.openapi.bearer]\nbearer = \"{bearer}\"\n\
                     [auth.openapi.session]\napi_key = \"{session}\"\n"
                ),
            )
            .expect("schemathesis configuration");
            command.arg("--config-file").arg(config);
        }
    }
    command
        .arg("run")
        .arg(companion.url("/auth/openapi.json"))
        .args(["--url", base])
        .args(filter)
        .args(["--checks", checks]);
    if let Credentials::Bearer(token) = credentials {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .args(["--max-examples", "100", "--seed", "1"])
        .args(["--max-redirects", "0", "--request-timeout", "10"])
        .args(["--workers", "2", "--no-color"])
        // Its cache (.hypothesis/) goes with the companion's folder.
        .current_dir(&companion.dir)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures ({filter:?}):\n{stdout}\n{}\ncompanion log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        tail(&companion.log()),
    );
    // A run that tested nothing proves nothing.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis tested nothing ({filter:?}):\n{stdout}"
    );
}

fn tail(log: &str) -> &str {
    &log[log.len().saturating_sub(4000)..]
}

/// Both listeners' operations, then the proof that nothing the run did
/// let a stranger in or took the caller's own credential.
async fn attack_both_listeners(companion: &Companion) {
    let artifacts = Artifacts::get();
    let admin = companion.create_token(
        "admin",
        &["admin:token", "admin:oidc", "user:token", "read:all"],
    );
    // The checks take the session cookie too; on the public listener a
    // session would end at the first `/logout`, so the API is attacked
    // by bearer token alone.
    let cookie = companion.session_cookie("admin", &["read:all"]);
    let session = cookie.split_once('=').map_or("", |(_, v)| v);
    let schemes = Credentials::BySchemes {
        bearer: &admin,
        session,
    };
    let (public, ingress) = (companion.url(""), companion.ingress_url(""));
    let all = format!("{CHECKS},{ALSO_OFF_EXT_AUTHZ}");
    for (base, filter, checks, credentials) in [
        (
            &public,
            &["--exclude-tag", "ingress"][..],
            all.as_str(),
            &Credentials::Bearer(&admin),
        ),
        (
            &ingress,
            &["--include-tag", "ingress", "--exclude-path", EXT_AUTHZ][..],
            &all,
            &schemes,
        ),
        (
            &ingress,
            &["--include-path", EXT_AUTHZ][..],
            CHECKS,
            &schemes,
        ),
    ] {
        attack(&artifacts, companion, base, filter, checks, credentials);
    }

    let client = reqwest::Client::new();
    let check = |token: Option<&str>| {
        let mut request = client.get(companion.ingress_url("/ingress/auth?scope=read:all"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(check(Some(&admin)).await.unwrap().status(), 200);
    assert_eq!(check(None).await.unwrap().status(), 401);
    let audit = companion.run(&["audit"]);
    assert!(
        audit.status.success(),
        "audit after the run: {}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let companion = Companion::start(&Artifacts::get(), dir.path()).await;
    attack_both_listeners(&companion).await;
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_the_distributed_store() {
    let Some(engines) = ScratchEngines::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let companion = Companion::start_distributed(&Artifacts::get(), dir.path(), &engines).await;
    attack_both_listeners(&companion).await;
}
