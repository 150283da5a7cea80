//! The independent OpenID Connect parts, in Node.js from `tests/node`
//! (installed there by `./build.sh`): the upstream identity provider
//! (`oidc-provider`) and a certified relying party (`openid-client`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{answers_ok, free_port, wait_for, Process};
use crate::Artifacts;

fn node_dir(artifacts: &Artifacts) -> PathBuf {
    let dir = artifacts.root.join("tests/node");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "tests/node/node_modules is missing: run ./build.sh, which installs it with npm ci"
    );
    dir
}

/// The login client Portcullis is registered as at the upstream provider.
pub const UPSTREAM_CLIENT_ID: &str = "portcullis";
pub const UPSTREAM_CLIENT_SECRET: &str = "upstream-secret-for-tests";

pub struct UpstreamProvider {
    pub issuer: String,
    _process: Process,
}

impl UpstreamProvider {
    /// Starts `oidc-provider` with Portcullis as its client (returning to
    /// `redirect_uri`), signing in `account` (its claims, `sub` included)
    /// whenever a login is asked for.
    pub async fn start(
        artifacts: &Artifacts,
        dir: &Path,
        redirect_uri: &str,
        account: &Value,
    ) -> Self {
        let port = free_port();
        let mut command = Command::new("node");
        command
            .current_dir(node_dir(artifacts))
            .arg("upstream-idp.mjs")
            .arg(port.to_string())
            .arg(UPSTREAM_CLIENT_ID)
            .arg(UPSTREAM_CLIENT_SECRET)
            .arg(redirect_uri)
            .arg(account.to_string());
        let process = Process::spawn(
            "upstream-idp",
            command,
            &dir.join(format!("idp-{port}.log")),
        );
        let issuer = format!("http://127.0.0.1:{port}");
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        wait_for(
            "the upstream provider's discovery",
            Duration::from_secs(20),
            || answers_ok(&discovery),
        )
        .await;
        Self {
            issuer,
            _process: process,
        }
    }

    /// The `[login]` section that points a companion at this provider,
    /// giving group `group` the scope `scope`.
    pub fn login_config(&self, group: &str, scope: &str) -> String {
        format!(
            "\n[login]\nissuer = \"{}\"\nallow_insecure_http = true\nclient_id = \"{UPSTREAM_CLIENT_ID}\"\n\
             client_secret = \"{UPSTREAM_CLIENT_SECRET}\"\n\
             [login.group_scopes]\n{group} = [\"{scope}\"]\n",
            self.issuer
        )
    }
}

/// Runs the certified relying party against `issuer`; its JSON report, or
/// its error output.
pub fn relying_party(
    artifacts: &Artifacts,
    issuer: &str,
    client_id: &str,
    client_secret: &str,
    redirect_uri: &str,
    session_cookie: &str,
) -> Result<Value, String> {
    let output = Command::new("node")
        .current_dir(node_dir(artifacts))
        .arg("relying-party.mjs")
        .args([
            issuer,
            client_id,
            client_secret,
            redirect_uri,
            session_cookie,
        ])
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
}
