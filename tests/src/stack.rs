//! The whole path: client → Envoy + filter → (companion) → echo upstream.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::process::{free_ports, Process};
use crate::{Artifacts, Companion, Envoy};

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub proxy: u16,
    pub admin: u16,
    pub upstream: u16,
    /// The companion's ingress listener, which the filter calls.
    pub ingress: u16,
}

impl Ports {
    /// Four free ports, for a configuration with nothing behind it yet.
    pub fn free() -> Self {
        let [proxy, admin, upstream, ingress] = free_ports();
        Self {
            proxy,
            admin,
            upstream,
            ingress,
        }
    }
}

/// A well-formed session key, for configurations no companion serves.
pub const ANY_SESSION_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// `envoy/demo.yaml` with its placeholders filled. `session_key` is the
/// companion's `session.key`. Without the access log: the tests and the
/// soak send millions of requests, and `tests/tests/demo.rs` reads the
/// demo's own log.
pub fn render_demo_config(artifacts: &Artifacts, ports: &Ports, session_key: &str) -> String {
    without_access_log(&render_shipped_demo_config(artifacts, ports, session_key))
}

/// `envoy/demo.yaml` with its placeholders filled and nothing else changed.
pub fn render_shipped_demo_config(
    artifacts: &Artifacts,
    ports: &Ports,
    session_key: &str,
) -> String {
    let template = std::fs::read_to_string(artifacts.root.join("envoy/demo.yaml"))
        .expect("read envoy/demo.yaml");
    template
        .replace("{{ADMIN_PORT}}", &ports.admin.to_string())
        .replace("{{PROXY_PORT}}", &ports.proxy.to_string())
        .replace("{{UPSTREAM_PORT}}", &ports.upstream.to_string())
        .replace("{{INGRESS_PORT}}", &ports.ingress.to_string())
        .replace("{{WASM_PATH}}", &artifacts.wasm.display().to_string())
        .replace("{{SESSION_KEY}}", session_key)
}

/// `config` without its `access_log:` block (up to `route_config:`).
fn without_access_log(config: &str) -> String {
    let (head, rest) = config
        .split_once("          access_log:\n")
        .expect("the demo's access log");
    let (_, tail) = rest
        .split_once("          route_config:\n")
        .expect("route_config after it");
    format!("{head}          route_config:\n{tail}")
}

/// `config` with the companion's cluster holding these ports too, so that
/// Envoy spreads its calls over several replicas.
pub fn with_more_companions(config: &str, ports: &[u16]) -> String {
    let first = "        - endpoint:\n            address:\n              socket_address: { address: 127.0.0.1, port_value: ";
    let (head, tail) = config
        .rsplit_once(first)
        .expect("the companion's endpoint is the last in the demo");
    let (first_port, rest) = tail.split_once(" }").expect("an endpoint");
    let more: String = ports
        .iter()
        .map(|port| format!("\n{first}{port} }}"))
        .collect();
    format!("{head}{first}{first_port} }}{more}{rest}")
}

/// `config` with the Wasm filter's JSON configuration replaced by `json`.
pub fn with_filter_config(config: &str, json: &str) -> String {
    let mut out = Vec::new();
    let mut lines = config.lines().peekable();
    while let Some(line) = lines.next() {
        out.push(line.to_owned());
        if line.trim() == "value: |" {
            let indent = line.len() - line.trim_start().len() + 2;
            while lines
                .peek()
                .is_some_and(|l| l.len() - l.trim_start().len() >= indent)
            {
                lines.next();
            }
            // Every line indented, so the block scalar holds all of it.
            out.extend(json.lines().map(|l| format!("{}{l}", " ".repeat(indent))));
        }
    }
    out.join("\n")
}

/// `config` with `routes` (YAML list items, at the demo's indentation)
/// placed before the catch-all route.
pub fn with_routes_before_catch_all(config: &str, routes: &str) -> String {
    let catch_all = "              - match: { prefix: \"/\" }";
    config.replacen(catch_all, &format!("{routes}\n{catch_all}"), 1)
}

/// `config` without the lines whose trimmed text is one of `lines`, each
/// of which must be there: a test of what the filter does on its own
/// takes away the Envoy settings that would otherwise do it.
pub fn without_lines(config: &str, lines: &[&str]) -> String {
    for line in lines {
        assert!(
            config.lines().any(|l| l.trim() == *line),
            "the configuration has no line {line:?}"
        );
    }
    config
        .lines()
        .filter(|l| !lines.contains(&l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts Envoy on the demo configuration with the filter's JSON replaced
/// by `json`, expecting it to refuse; returns its log.
pub async fn envoy_refuses_filter_config(json: &str) -> String {
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = Ports::free();
    let config = with_filter_config(
        &render_demo_config(&artifacts, &ports, ANY_SESSION_KEY),
        json,
    );
    match Envoy::start(&artifacts.envoy, &config, ports.admin, dir.path()).await {
        Ok(_) => panic!("Envoy served with an invalid plugin configuration"),
        Err(log) => log,
    }
}

/// Starts of a stack on fresh ports before giving up.
const ATTEMPTS: usize = 3;

/// The echo upstream on `port`, once it answers; `None` if it could not
/// take the port.
pub async fn start_upstream(
    artifacts: &Artifacts,
    port: u16,
    dir: &std::path::Path,
) -> Option<Process> {
    let mut command = Command::new(&artifacts.echo);
    command.arg(port.to_string());
    let mut upstream = Process::spawn("echo-upstream", command, &dir.join("upstream.log"));
    let echo_url = format!("http://127.0.0.1:{port}/");
    let started = std::time::Instant::now();
    while !crate::process::answers_ok(&echo_url).await {
        if !upstream.is_running() || started.elapsed() > Duration::from_secs(10) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Whatever answered must be this upstream, not another test's server.
    upstream.is_running().then_some(upstream)
}

pub struct Stack {
    pub companion: Companion,
    pub envoy: Envoy,
    pub ports: Ports,
    pub client: reqwest::Client,
    _upstream: Process,
    // Dropped last: the processes above are stopped before their files go.
    _dir: TempDir,
}

impl Stack {
    /// The demo configuration, as users get it.
    pub async fn start() -> Self {
        Self::start_with(|_, config| config).await
    }

    /// The demo configuration changed by `edit` before Envoy reads it.
    pub async fn start_with(edit: impl Fn(&Ports, String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let companion = Companion::start(&Artifacts::get(), dir.path()).await;
        Self::start_on(dir, companion, edit).await
    }

    /// Envoy and the upstream in front of a companion already serving,
    /// whose files are in `dir` (which the stack keeps until dropped).
    pub async fn start_on(
        dir: TempDir,
        companion: Companion,
        edit: impl Fn(&Ports, String) -> String,
    ) -> Self {
        let artifacts = Artifacts::get();
        // Parallel tests choose ports independently; one released here may
        // be taken elsewhere before Envoy or the upstream binds it. Then
        // start again on fresh ports.
        for attempt in 1..=ATTEMPTS {
            let [proxy, admin, upstream] = free_ports();
            let ports = Ports {
                proxy,
                admin,
                upstream,
                ingress: companion.ingress_port,
            };
            let Some(upstream) = start_upstream(&artifacts, ports.upstream, dir.path()).await
            else {
                continue;
            };
            let config = edit(
                &ports,
                render_demo_config(&artifacts, &ports, &companion.session_key()),
            );
            let envoy = match Envoy::start(&artifacts.envoy, &config, ports.admin, dir.path()).await
            {
                Ok(envoy) => envoy,
                Err(log) if log.contains("Address already in use") && attempt < ATTEMPTS => {
                    continue
                }
                Err(log) => panic!("Envoy exited during start-up:\n{log}"),
            };
            return Self {
                companion,
                envoy,
                ports,
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("http client"),
                _upstream: upstream,
                _dir: dir,
            };
        }
        panic!("no free ports for the stack after {ATTEMPTS} attempts");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.proxy)
    }

    /// Envoy killed with SIGKILL, then started again on the same ports and
    /// configuration: every cache it had is gone.
    pub async fn crash_envoy_and_restart(&mut self) {
        self.envoy.kill();
        let artifacts = Artifacts::get();
        let config = std::fs::read_to_string(self._dir.path().join("envoy.yaml"))
            .expect("the running configuration");
        self.envoy = Envoy::start(
            &artifacts.envoy,
            &config,
            self.ports.admin,
            self._dir.path(),
        )
        .await
        .unwrap_or_else(|log| panic!("Envoy did not start again:\n{log}"));
    }

    /// GET through Envoy with the given headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request through Envoy")
    }

    /// A counter of Envoy's (summed over workers), by the end of its name.
    pub async fn envoy_counter(&self, name: &str) -> u64 {
        crate::envoy::counter(self.ports.admin, name).await
    }

    /// Revokes `token` (of `user`) through the companion's API.
    pub async fn revoke(&self, user: &str, token: &str) {
        self.revoke_via(&self.companion, user, token).await
    }

    /// Revokes `token` (of `user`) through `companion`'s API.
    pub async fn revoke_via(&self, companion: &Companion, user: &str, token: &str) {
        let key = &token[3..25];
        let reply = self
            .client
            .delete(companion.url(&format!("/auth/api/v1/users/{user}/tokens/{key}")))
            .bearer_auth(companion.bootstrap_token())
            .send()
            .await
            .expect("revoke");
        assert_eq!(
            reply.status(),
            reqwest::StatusCode::NO_CONTENT,
            "revoking {key}"
        );
    }

    /// GET through Envoy with a bearer token.
    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.get(path, &[("authorization", &format!("Bearer {token}"))])
            .await
    }
}

/// The headers the echo upstream saw, from its JSON answer.
pub async fn upstream_headers(response: reqwest::Response) -> serde_json::Map<String, Value> {
    let body: Value = response.json().await.expect("echo answer is JSON");
    body["headers"]
        .as_object()
        .cloned()
        .expect("echo answer has headers")
}

/// The type of the filter's configuration as extension config discovery
/// (ECDS) carries it.
pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// `config` with the Wasm filter's inline configuration replaced by an
/// ECDS subscription to the file `path`, as Istio's agent delivers a
/// `WasmPlugin`: the listener warms (serves nothing) until the first
/// configuration arrives, and Envoy reloads the file when a new one is
/// moved into its directory.
pub fn with_filter_from_discovery(config: &str, path: &std::path::Path) -> String {
    let (head, rest) = config
        .split_once("          - name: envoy.filters.http.wasm\n")
        .expect("the demo's Wasm filter");
    let (_, tail) = rest
        .split_once("          - name: envoy.filters.http.router\n")
        .expect("the router after it");
    let directory = path.parent().expect("a file in a directory");
    // A subscription needs the node to name itself, as Istio's agent
    // names each proxy.
    format!(
        "node: {{ id: edge-1, cluster: edge }}\n{head}          - name: portcullis\n            config_discovery:\n              \
         config_source:\n                path_config_source:\n                  path: {}\n                  \
         watched_directory: {{ path: {} }}\n              type_urls: [\"{WASM_TYPE_URL}\"]\n          \
         - name: envoy.filters.http.router\n{tail}",
        path.display(),
        directory.display()
    )
}

/// The ECDS resource file for the filter with `filter_json` as its
/// configuration (a DiscoveryResponse, as a path config source reads it).
pub fn filter_discovery_resource(artifacts: &Artifacts, filter_json: &str) -> String {
    serde_json::json!({
        "version_info": format!("{:x}", fnv(filter_json)),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "portcullis",
            "typed_config": {
                "@type": WASM_TYPE_URL,
                "config": {
                    "name": "portcullis",
                    "root_id": "portcullis",
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": filter_json,
                    },
                    "vm_config": {
                        "vm_id": "portcullis",
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": artifacts.wasm.display().to_string()}},
                    },
                },
            },
        }],
    })
    .to_string()
}

/// A version string that changes with the content.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes `contents` to `path` as Envoy's file watch wants it: whole,
/// by a rename within the watched directory.
pub fn replace_file(path: &std::path::Path, contents: &str) {
    let staging = path.with_extension("staging");
    std::fs::write(&staging, contents).expect("write the new file");
    std::fs::rename(&staging, path).expect("move it into place");
}
