//! `portcullis login`: a pending login that a browser approves, after
//! Boundary's pending tokens, ending with the stored token used at the edge.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use portcullis_e2e::stack::upstream_headers;
use portcullis_e2e::{Artifacts, Stack};
use serde_json::json;

#[tokio::test]
async fn cli_login_goes_from_pending_to_issued_and_the_token_works_at_the_edge() {
    let stack = Stack::start().await;
    let companion = &stack.companion;
    let home = tempfile::tempdir().unwrap();
    let mut cli = Command::new(Artifacts::get().companion)
        .args(["login", "--server", &companion.url("")])
        .env("XDG_CONFIG_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = cli.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let (mut url, mut code) = (None, None);
    while url.is_none() || code.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the CLI prints its URL and code");
        if let Some(u) = line.trim().strip_prefix(&companion.url("/login/cli/")) {
            url = Some(companion.url(&format!("/login/cli/{u}")));
        }
        if let Some(c) = line.strip_prefix("The page should show the code ") {
            code = Some(c.trim_end_matches('.').to_owned());
        }
        printed.push(line);
    }
    let (url, code) = (url.unwrap(), code.unwrap());

    let cookie = companion.session_cookie("dave", &["read:all"]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Without a session the page cannot approve anything.
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let page = client
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(&code),
        "the page shows the CLI's code {code}: {page}"
    );
    assert!(page.contains("dave"), "{page}");

    // A post from another site is refused, and approves nothing.
    let forged = client
        .post(&url)
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let approved = client
        .post(&url)
        .header("cookie", &cookie)
        .header("origin", companion.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);

    let status = tokio::task::spawn_blocking(move || cli.wait().unwrap())
        .await
        .unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
        printed.push(line);
    }
    assert!(status.success(), "portcullis login failed: {printed:#?}");
    let path = home.path().join("portcullis/token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(token.starts_with("gt-"));

    let response = stack.get_with_token("/hello", &token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        upstream_headers(response).await["x-auth-request-user"],
        json!(["dave"])
    );

    // The login is spent: approving it again finds nothing.
    let again = client
        .post(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}
