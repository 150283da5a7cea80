//! `portcullis login`: the CLI's side of a pending login. It asks the
//! server for one, prints the browser URL and the code the approval page
//! will show, polls until the browser approves, and keeps the token in
//! the user's configuration directory, readable by them alone.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_core::Token;
use serde::Deserialize;

use crate::private_file::write_private;

#[derive(Debug, thiserror::Error)]
pub enum LoginClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("the login was not approved within {0} seconds")]
    TimedOut(u64),
    #[error("no configuration directory: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    #[error("cannot store the token in {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct Started {
    login_id: String,
    poll_secret: String,
    user_code: String,
    browser_url: String,
    expires_in: u64,
    interval: u64,
}

#[derive(Deserialize)]
struct Polled {
    token: Option<String>,
}

#[derive(Deserialize)]
struct Refusal {
    error_description: String,
}

/// Where the token is kept: `$XDG_CONFIG_HOME/portcullis/token`, else
/// `~/.config/portcullis/token`.
pub fn token_path() -> Result<PathBuf, LoginClientError> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or(LoginClientError::NoConfigDir)?;
    Ok(base.join("portcullis").join("token"))
}

async fn refusal(reply: reqwest::Response) -> LoginClientError {
    let status = reply.status();
    match reply.json::<Refusal>().await {
        Ok(r) => LoginClientError::Refused(r.error_description),
        Err(_) => LoginClientError::Refused(format!("HTTP {status}")),
    }
}

/// Logs in through `server` and returns where the token was stored.
pub async fn login(server: &str) -> Result<PathBuf, LoginClientError> {
    let server = server.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| LoginClientError::Unreachable {
            url: server.to_owned(),
            source,
        })?;
    let unreachable = |url: &str| {
        let url = url.to_owned();
        move |source| LoginClientError::Unreachable { url, source }
    };
    let start_url = format!("{server}/auth/cli/login");
    let reply = http
        .post(&start_url)
        .send()
        .await
        .map_err(unreachable(&start_url))?;
    if !reply.status().is_success() {
        return Err(refusal(reply).await);
    }
    let started: Started = reply.json().await.map_err(unreachable(&start_url))?;
    eprintln!(
        "Open this URL in a browser to log in and approve:\n\n    {}\n",
        started.browser_url
    );
    eprintln!("The page should show the code {}.", started.user_code);

    let poll_url = format!("{server}/auth/cli/login/{}/poll", started.login_id);
    let deadline = Instant::now() + Duration::from_secs(started.expires_in);
    let interval = Duration::from_secs(started.interval.max(1));
    let token = loop {
        if Instant::now() >= deadline {
            return Err(LoginClientError::TimedOut(started.expires_in));
        }
        tokio::time::sleep(interval).await;
        let reply = http
            .post(&poll_url)
            .json(&serde_json::json!({ "poll_secret": started.poll_secret }))
            .send()
            .await
            .map_err(unreachable(&poll_url))?;
        match reply.status().as_u16() {
            202 => continue,
            200 => {
                let polled: Polled = reply.json().await.map_err(unreachable(&poll_url))?;
                match polled.token.and_then(|t| t.parse::<Token>().ok()) {
                    Some(token) => break token,
                    None => return Err(LoginClientError::Refused("no token in the reply".into())),
                }
            }
            _ => return Err(refusal(reply).await),
        }
    };
    let path = token_path()?;
    store(&path, &token)?;
    Ok(path)
}

/// Writes the token with mode 0600, in a folder only its owner can enter.
fn store(path: &Path, token: &Token) -> Result<(), LoginClientError> {
    let fail = |source| LoginClientError::Store {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    write_private(path, format!("{}\n", token.expose()).as_bytes()).map_err(fail)
}
