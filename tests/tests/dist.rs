//! `./build.sh dist`'s artefacts, read by the real tools that consume them:
//! `skopeo` reads both OCI layouts, a real registry (Debian's
//! `docker-registry`) takes and gives them back with their digests, the
//! filter's image is read the way Istio's image fetcher reads it and gives
//! the very `.wasm` that `./build.sh` built, and the companion's image
//! unpacks (`umoci`) to a root filesystem whose binary serves.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use portcullis_e2e::process::{free_port, free_ports, wait_for, Process};
use portcullis_e2e::{tools, Artifacts};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const FILTER: &str = "oci/portcullis-filter";
const COMPANION: &str = "oci/portcullis";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The version the images are tagged with: the workspace's.
fn version() -> String {
    let manifest = std::fs::read_to_string(Artifacts::get().root.join("Cargo.toml")).unwrap();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("the workspace's version")
        .to_owned()
}

fn run(program: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{} {args:?}: {}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// Every file of a gzip-compressed tar, by path.
fn unpack(layer: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer)
        .read_to_end(&mut tar)
        .expect("a gzip layer");
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .expect("a tar layer")
        .map(|entry| {
            let mut entry = entry.expect("an entry");
            let path = entry.path().expect("a path").display().to_string();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).expect("its bytes");
            (path, body)
        })
        .collect()
}

/// What Istio's image fetcher does with a manifest that is not Docker's
/// (pkg/wasm/imagefetcher.go): the *compat* variant when the last layer is
/// an OCI tar+gzip holding a file named `plugin.wasm`; otherwise the *oci*
/// variant, which must have exactly two layers. The Wasm, or why not.
fn istio_extracts(manifest: &Value, blob: impl Fn(&str) -> Vec<u8>) -> Result<Vec<u8>, String> {
    let layers = manifest["layers"].as_array().ok_or("no layers")?;
    let last = layers
        .last()
        .ok_or("number of layers must be greater than zero")?;
    if last["mediaType"] == OCI_LAYER_GZIP {
        let files = unpack(&blob(last["digest"].as_str().ok_or("no digest")?));
        return files
            .into_iter()
            .find(|(path, _)| Path::new(path).file_name() == Some("plugin.wasm".as_ref()))
            .map(|(_, body)| body)
            .ok_or_else(|| "plugin.wasm not found in the archive".to_owned());
    }
    if layers.len() != 2 {
        return Err(format!(
            "number of layers must be 2 but got {}",
            layers.len()
        ));
    }
    Err("not the layout Portcullis ships".to_owned())
}

struct Registry {
    _process: Process,
    _dir: tempfile::TempDir,
    host: String,
}

impl Registry {
    /// Debian's `docker-registry` (the CNCF Distribution registry) on a
    /// loopback port, storing into a scratch directory.
    async fn start(binary: &Path) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let host = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("registry config");
        let mut command = Command::new(binary);
        command.arg("serve").arg(&config);
        let process = Process::spawn("docker-registry", command, &dir.path().join("log"));
        let url = format!("http://{host}/v2/");
        wait_for("the registry", Duration::from_secs(30), || {
            let url = url.clone();
            async move { portcullis_e2e::process::answers_ok(&url).await }
        })
        .await;
        Self {
            _process: process,
            _dir: dir,
            host,
        }
    }
}

struct Tools {
    skopeo: PathBuf,
    umoci: PathBuf,
    registry: PathBuf,
}

fn tools() -> Option<(PathBuf, Tools)> {
    let dist = tools::dist()?;
    Some((
        dist,
        Tools {
            skopeo: tools::program("skopeo", "skopeo")?,
            umoci: tools::program("umoci", "umoci")?,
            registry: tools::program("docker-registry", "docker-registry")?,
        },
    ))
}

/// The manifest a layout's tag names, read by skopeo, and its digest as
/// skopeo reports it.
fn inspect_layout(skopeo: &Path, layout: &Path, tag: &str) -> (Value, String) {
    let reference = format!("oci:{}:{tag}", layout.display());
    let raw = run(skopeo, &["inspect", "--raw", &reference]);
    let digest = json(&run(skopeo, &["inspect", &reference]))["Digest"]
        .as_str()
        .expect("skopeo's Digest")
        .to_owned();
    assert_eq!(digest, sha256(&raw), "skopeo's digest is the manifest's");
    (json(&raw), digest)
}

fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("the blob");
    assert_eq!(sha256(&bytes), digest, "a blob is stored under its digest");
    bytes
}

#[test]
fn the_plain_files_are_the_built_ones_with_their_checksums() {
    let Some(dist) = tools::dist() else { return };
    let artifacts = Artifacts::get();
    let wasm = std::fs::read(&artifacts.wasm).expect("the built .wasm");
    assert_eq!(
        std::fs::read(dist.join("portcullis_filter.wasm")).expect("dist's .wasm"),
        wasm
    );
    let out = Command::new("sha256sum")
        .arg("--check")
        .arg("SHA256SUMS")
        .current_dir(&dist)
        .output()
        .expect("sha256sum");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("SHA256SUMS");
    assert!(sums.contains("  portcullis_filter.wasm\n"), "{sums}");
    assert!(
        sums.contains("  portcullis-x86_64-unknown-linux-musl\n"),
        "{sums}"
    );
    let one = std::fs::read_to_string(dist.join("portcullis_filter.wasm.sha256")).unwrap();
    assert_eq!(
        one,
        format!("{}  portcullis_filter.wasm\n", &sha256(&wasm)[7..])
    );
}

#[test]
fn the_filter_image_is_istios_compat_variant_holding_the_built_wasm() {
    let Some((dist, tools)) = tools() else { return };
    let layout = dist.join(FILTER);
    let (manifest, _) = inspect_layout(&tools.skopeo, &layout, &version());
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], OCI_LAYER_GZIP);
    // Nothing in the layer but the plugin.
    let files = unpack(&layout_blob(&layout, layers[0]["digest"].as_str().unwrap()));
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["plugin.wasm"]);
    let wasm = istio_extracts(&manifest, |d| layout_blob(&layout, d)).expect("Istio's rules");
    assert_eq!(wasm, std::fs::read(Artifacts::get().wasm).unwrap());
    // The configuration's rootfs names the layer's uncompressed digest.
    let config = json(&layout_blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layout_blob(&layout, layers[0]["digest"].as_str().unwrap())[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar));
    assert_eq!(config["architecture"], "wasm");
}

/// The failure Higress shipped: one layer of the Wasm media type, which is
/// neither variant. The rules above refuse it, as Istio does, so they are
/// not a rubber stamp.
#[test]
fn istios_rules_refuse_a_single_layer_wasm_artifact() {
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.module.wasm.config.v1+json", "digest": "sha256:00", "size": 2},
        "layers": [{"mediaType": "application/vnd.module.wasm.content.layer.v1+wasm", "digest": "sha256:01", "size": 8}]
    });
    let refused = istio_extracts(&artifact, |_| unreachable!("nothing to fetch")).unwrap_err();
    assert!(refused.contains("must be 2 but got 1"), "{refused}");
}

/// Pulls like go-containerregistry: the manifest by tag, its digest from
/// the registry's header and from its bytes, then the blobs by digest.
async fn pull_manifest(host: &str, name: &str, tag: &str) -> (Value, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{host}/v2/{name}/manifests/{tag}"))
        .header(
            "accept",
            format!("{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"),
        )
        .send()
        .await
        .expect("the manifest");
    assert_eq!(response.status(), 200);
    let header = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.bytes().await.expect("its bytes");
    assert_eq!(
        header,
        sha256(&bytes),
        "the registry's digest is the bytes'"
    );
    (json(&bytes), header)
}

async fn pull_blob(host: &str, name: &str, digest: &str) -> Vec<u8> {
    let bytes = reqwest::get(format!("http://{host}/v2/{name}/blobs/{digest}"))
        .await
        .expect("a blob")
        .bytes()
        .await
        .expect("its bytes")
        .to_vec();
    assert_eq!(sha256(&bytes), digest);
    bytes
}

#[tokio::test]
async fn both_images_go_through_a_registry_with_their_digests_and_the_filter_pulls_as_istio_pulls_it(
) {
    let Some((dist, tools)) = tools() else { return };
    let registry = Registry::start(&tools.registry).await;
    let tag = version();
    for (layout, name) in [
        (FILTER, "portcullis/filter"),
        (COMPANION, "portcullis/companion"),
    ] {
        let layout = dist.join(layout);
        let (_, digest) = inspect_layout(&tools.skopeo, &layout, &tag);
        let remote = format!("docker://{}/{name}:{tag}", registry.host);
        run(
            &tools.skopeo,
            &[
                "copy",
                "--dest-tls-verify=false",
                &format!("oci:{}:{tag}", layout.display()),
                &remote,
            ],
        );
        let seen = json(&run(
            &tools.skopeo,
            &["inspect", "--tls-verify=false", &remote],
        ));
        assert_eq!(
            seen["Digest"],
            digest.as_str(),
            "{name}: the digest survives"
        );
        let (manifest, pulled) = pull_manifest(&registry.host, name, &tag).await;
        assert_eq!(pulled, digest);
        if name == "portcullis/filter" {
            let mut blobs = std::collections::HashMap::new();
            for layer in manifest["layers"].as_array().unwrap() {
                let d = layer["digest"].as_str().unwrap().to_owned();
                blobs.insert(d.clone(), pull_blob(&registry.host, name, &d).await);
            }
            let wasm = istio_extracts(&manifest, |d| blobs[d].clone()).expect("Istio's rules");
            assert_eq!(wasm, std::fs::read(Artifacts::get().wasm).unwrap());
        }
        // And back into a layout, byte for byte.
        let back = tempfile::tempdir().unwrap();
        let copy = format!("oci:{}:{tag}", back.path().join("image").display());
        run(
            &tools.skopeo,
            &["copy", "--src-tls-verify=false", &remote, &copy],
        );
        let (_, again) = inspect_layout(&tools.skopeo, &back.path().join("image"), &tag);
        assert_eq!(again, digest, "{name}: pulled back with the same digest");
    }
}

/// Whether an ELF executable asks for a dynamic loader (has PT_INTERP).
fn asks_for_a_loader(elf: &[u8]) -> bool {
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[tokio::test]
async fn the_companion_image_unpacks_to_a_root_filesystem_whose_static_binary_serves() {
    let Some((dist, tools)) = tools() else { return };
    let tag = version();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    run(
        &tools.umoci,
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{tag}", dist.join(COMPANION).display()),
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    // Nothing to run but the companion: no shell, no package manager.
    for absent in ["bin/sh", "bin", "usr/bin", "sbin"] {
        assert!(!rootfs.join(absent).exists(), "{absent} in the image");
    }
    let binary = rootfs.join("usr/local/bin/portcullis");
    let elf = std::fs::read(&binary).expect("the companion in the image");
    assert!(!asks_for_a_loader(&elf), "the companion must be static");
    assert_eq!(
        elf,
        std::fs::read(dist.join("portcullis-x86_64-unknown-linux-musl")).unwrap()
    );
    assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file());

    // The runtime configuration umoci derived from the image's: not root,
    // the companion as the entrypoint, `serve` by default.
    let runtime = json(&std::fs::read(bundle.join("config.json")).unwrap());
    assert_eq!(runtime["process"]["user"]["uid"], 65532);
    assert_eq!(runtime["process"]["user"]["gid"], 65532);
    assert_eq!(
        runtime["process"]["args"],
        serde_json::json!(["/usr/local/bin/portcullis", "serve"])
    );
    let env: Vec<&str> = runtime["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        env.contains(&"PORTCULLIS_CONFIG=/etc/portcullis/portcullis.toml"),
        "{env:?}"
    );

    // The binary from the image, as the image would run it: a
    // configuration under the config volume, the store under the state one.
    let [public, ingress] = free_ports();
    let config = work.path().join("etc/portcullis.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    run(
        &binary,
        &[
            "--config",
            config.to_str().unwrap(),
            "config",
            "init",
            "--listen",
            &format!("127.0.0.1:{public}"),
            "--ingress-listen",
            &format!("127.0.0.1:{ingress}"),
            "--database",
            work.path().join("var/portcullis.sqlite").to_str().unwrap(),
        ],
    );
    std::fs::create_dir_all(work.path().join("var")).unwrap();
    run(&binary, &["--config", config.to_str().unwrap(), "migrate"]);
    let mut command = Command::new(&binary);
    command.arg("--config").arg(&config).arg("serve");
    let _companion = Process::spawn("companion", command, &work.path().join("companion.log"));
    for port in [public, ingress] {
        let url = format!("http://127.0.0.1:{port}/health");
        wait_for("the image's companion", Duration::from_secs(30), || {
            let url = url.clone();
            async move { portcullis_e2e::process::answers_ok(&url).await }
        })
        .await;
    }
}

/// The Dockerfile builds what `./build.sh dist` writes: the same user,
/// entrypoint, command, ports, volumes and environment.
#[test]
fn the_dockerfile_describes_the_image_dist_writes() {
    let Some((dist, tools)) = tools() else { return };
    let config = json(&run(
        &tools.skopeo,
        &[
            "inspect",
            "--config",
            &format!("oci:{}:{}", dist.join(COMPANION).display(), version()),
        ],
    ))["config"]
        .clone();
    let dockerfile =
        std::fs::read_to_string(Artifacts::get().root.join("Dockerfile")).expect("Dockerfile");
    let last_stage = dockerfile
        .rsplit_once("\nFROM scratch\n")
        .expect("a FROM scratch stage")
        .1;
    let instruction = |name: &str| {
        last_stage
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in the final stage"))
            .to_owned()
    };
    assert_eq!(instruction("USER"), config["User"].as_str().unwrap());
    let as_list = |v: &Value| serde_json::to_string(v).unwrap().replace(',', ", ");
    assert_eq!(instruction("ENTRYPOINT"), as_list(&config["Entrypoint"]));
    assert_eq!(instruction("CMD"), as_list(&config["Cmd"]));
    assert_eq!(
        instruction("WORKDIR"),
        config["WorkingDir"].as_str().unwrap()
    );
    assert_eq!(
        instruction("STOPSIGNAL"),
        config["StopSignal"].as_str().unwrap()
    );
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let mut exposed: Vec<String> = instruction("EXPOSE")
        .split(' ')
        .map(str::to_owned)
        .collect();
    exposed.sort();
    assert_eq!(exposed, keys(&config["ExposedPorts"]));
    let mut volumes: Vec<String> = serde_json::from_str(&instruction("VOLUME")).unwrap();
    volumes.sort();
    assert_eq!(volumes, keys(&config["Volumes"]));
    let mut env: Vec<String> = instruction("ENV").split(' ').map(str::to_owned).collect();
    env.sort();
    let mut image_env: Vec<String> = serde_json::from_value(config["Env"].clone()).unwrap();
    image_env.sort();
    assert_eq!(env, image_env);
}
