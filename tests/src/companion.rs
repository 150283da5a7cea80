//! The companion, started from its own binary on a fresh store: embedded,
//! or distributed on a test's scratch engines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::process::{answers_ok, free_ports, wait_for, Process};
use crate::{Artifacts, ScratchEngines};

pub struct Companion {
    /// The public listener: the API, login, OpenID Connect.
    pub port: u16,
    /// The ingress listener, which Envoy calls: the checks and the feed.
    pub ingress_port: u16,
    pub dir: PathBuf,
    binary: PathBuf,
    process: Option<Process>,
}

impl Companion {
    /// Writes a fresh configuration in `dir` and starts serving.
    pub async fn start(artifacts: &Artifacts, dir: &Path) -> Self {
        Self::embedded(artifacts, dir).start_serving().await
    }

    /// A fresh configuration on the embedded store in `dir`, not serving
    /// yet (`resume` starts it).
    pub fn embedded(artifacts: &Artifacts, dir: &Path) -> Self {
        Self::init(artifacts, dir, &["--database", "portcullis.sqlite"])
    }

    /// The same on the distributed store of `engines` (its own key prefix,
    /// migrated, and a 1-second storage timeout so that outages show fast).
    pub async fn start_distributed(
        artifacts: &Artifacts,
        dir: &Path,
        engines: &ScratchEngines,
    ) -> Self {
        Self::distributed(artifacts, dir, engines)
            .start_serving()
            .await
    }

    /// A fresh, migrated configuration on the distributed store of
    /// `engines`, not serving yet.
    pub fn distributed(artifacts: &Artifacts, dir: &Path, engines: &ScratchEngines) -> Self {
        let companion = Self::init(
            artifacts,
            dir,
            &[
                "--database-url",
                &engines.database_url,
                "--redis-url",
                &engines.redis_url,
                "--key-prefix",
                &engines.prefix,
            ],
        );
        companion.edit_config(|text| {
            text.replace("migrate_on_start", "timeout_seconds = 1\nmigrate_on_start")
        });
        companion.cli(&["migrate"]);
        companion
    }

    async fn start_serving(mut self) -> Self {
        self.resume().await;
        self
    }

    /// `config init` in `dir` with `storage` options, not started.
    fn init(artifacts: &Artifacts, dir: &Path, storage: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("companion folder");
        let [port, ingress_port] = free_ports();
        let companion = Self {
            port,
            ingress_port,
            dir: dir.to_owned(),
            binary: artifacts.companion.clone(),
            process: None,
        };
        let listen = format!("127.0.0.1:{port}");
        let ingress_listen = format!("127.0.0.1:{ingress_port}");
        let mut args = vec![
            "config",
            "init",
            "--listen",
            &listen,
            "--ingress-listen",
            &ingress_listen,
        ];
        args.extend(storage);
        companion.cli(&args);
        companion
    }

    /// This companion's binary and port with the configuration in `dir`
    /// (a stopped companion, moved to another store).
    pub fn moved_to(&self, dir: &Path) -> Self {
        Self {
            port: self.port,
            ingress_port: self.ingress_port,
            dir: dir.to_owned(),
            binary: self.binary.clone(),
            process: None,
        }
    }

    /// Another companion on the same store and keys, configured in `dir`
    /// and serving on a port of its own.
    pub async fn replica(&self, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("replica folder");
        let [port, ingress_port] = free_ports();
        let text = std::fs::read_to_string(self.config_path()).expect("read config");
        let text = text
            .replace(
                &format!("listen = \"127.0.0.1:{}\"", self.port),
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                &format!("ingress_listen = \"127.0.0.1:{}\"", self.ingress_port),
                &format!("ingress_listen = \"127.0.0.1:{ingress_port}\""),
            );
        std::fs::write(dir.join("portcullis.toml"), text).expect("write replica config");
        let replica = Self {
            port,
            ingress_port,
            dir: dir.to_owned(),
            binary: self.binary.clone(),
            process: None,
        };
        replica.start_serving().await
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("portcullis.toml")
    }

    pub fn database_path(&self) -> PathBuf {
        self.dir.join("portcullis.sqlite")
    }

    /// A top-level string setting of the configuration `config init` wrote.
    fn setting(&self, name: &str) -> String {
        let config = std::fs::read_to_string(self.config_path()).expect("read config");
        let prefix = format!("{name} = \"");
        config
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no {name} in the config"))
            .to_owned()
    }

    /// The admin token `config init` wrote into the configuration.
    pub fn bootstrap_token(&self) -> String {
        self.setting("bootstrap_token")
    }

    /// The key that seals session cookies (`session.key`).
    pub fn session_key(&self) -> String {
        self.setting("key")
    }

    /// The PEM of the OpenID Connect signing key `config init` made, whose
    /// key id is `s1`.
    pub fn signing_key_pem(&self) -> String {
        let config = std::fs::read_to_string(self.config_path()).expect("read config");
        let (begin, end) = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----");
        let start = config.find(begin).expect("a signing key in the config");
        let stop = config[start..].find(end).expect("the key's end") + start + end.len();
        config[start..stop].to_owned()
    }

    /// A new session token for `user`, as the `name=value` session cookie.
    pub fn session_cookie(&self, user: &str, scopes: &[&str]) -> String {
        let mut args = vec![
            "token", "create", "--type", "session", "--user", user, "--cookie",
        ];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        self.cli(&args).trim().to_owned()
    }

    /// `path` on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `path` on the ingress listener.
    pub fn ingress_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ingress_port)
    }

    /// Runs a `portcullis` command on this companion's configuration.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .expect("run portcullis")
    }

    /// Runs a `portcullis` command and returns its standard output; panics
    /// with stderr if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// A new user token with these scopes, as its bearer string. Each gets
    /// its own name, as user tokens must.
    pub fn create_token(&self, user: &str, scopes: &[&str]) -> String {
        self.create_token_with(user, scopes, &[])
    }

    /// The same, with more `token create` options (`--lifetime 5m`, …).
    pub fn create_token_with(&self, user: &str, scopes: &[&str], options: &[&str]) -> String {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let name = format!("test-{}", MADE.fetch_add(1, Ordering::Relaxed));
        let mut args = vec!["token", "create", "--user", user, "--token-name", &name];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        args.extend(options);
        self.cli(&args).trim().to_owned()
    }

    /// Rewrites the configuration file (for the next `resume`).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.config_path()).expect("read config");
        std::fs::write(self.config_path(), edit(text)).expect("write config");
    }

    /// Restarts with the configuration changed by `edit`.
    pub async fn reconfigure(&mut self, edit: impl FnOnce(String) -> String) {
        self.stop();
        self.edit_config(edit);
        self.resume().await;
    }

    /// Cookies for plain http, as a test's browser talks to 127.0.0.1.
    pub fn plain_http_cookies(config: String) -> String {
        config.replacen("[session]\n", "[session]\nsecure = false\n", 1)
    }

    /// The companion's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("companion.log")).unwrap_or_default()
    }

    /// The serving process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::pid)
    }

    /// Ends the companion with SIGKILL (what `Child::kill` sends): no
    /// graceful shutdown, no flush, as a crash would end it.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Starts the serving process without waiting for it (for an ingress
    /// listener that plain HTTP cannot check, say).
    pub fn spawn(&mut self) {
        self.spawn_with_env(&[]);
    }

    /// The same with these environment variables set.
    pub fn spawn_with_env(&mut self, env: &[(&str, &str)]) {
        let mut command = Command::new(&self.binary);
        command.arg("--config").arg(self.config_path()).arg("serve");
        command.envs(env.iter().copied());
        self.process = Some(Process::spawn(
            "companion",
            command,
            &self.dir.join("companion.log"),
        ));
    }

    /// Starts serving (again) on the same port and store.
    pub async fn resume(&mut self) {
        self.spawn();
        for health in [self.url("/health"), self.ingress_url("/health")] {
            wait_for("the companion's /health", Duration::from_secs(20), || {
                answers_ok(&health)
            })
            .await;
        }
        // A companion that could not bind its port has exited, and its
        // health check may have reached someone else's: make sure.
        let alive = self.process.as_mut().is_some_and(|p| p.is_running());
        assert!(alive, "the companion exited during start-up");
    }
}
