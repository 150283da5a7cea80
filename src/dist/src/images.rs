//! The two images Portcullis ships.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageManifestBuilder, MediaType,
    Os, RootFsBuilder,
};

use crate::layer::{self, Entry};
use crate::layout::{canonical_json, Layout};
use crate::DistError;

/// The annotation by which Istio's image fetcher, and the Wasm image
/// specification's "compat" variant, know a Wasm plugin image with a
/// standard layer (github.com/solo-io/wasm, spec-compat.md).
pub const WASM_VARIANT: &str = "module.wasm.image/variant";

/// The file Istio takes from the compat variant's layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// The companion's user in its image: not root, and not a user the host is
/// likely to have (distroless's `nonroot`).
pub const COMPANION_UID: u32 = 65532;

/// Where the image expects the configuration and the embedded store:
/// volumes, so that both outlive the container.
pub const CONFIG_DIR: &str = "/etc/portcullis";
pub const STATE_DIR: &str = "/var/lib/portcullis";
pub const COMPANION_PATH: &str = "/usr/local/bin/portcullis";
/// The companion's listeners as `config init` writes them.
pub const PUBLIC_PORT: u16 = 8300;
pub const INGRESS_PORT: u16 = 8303;

/// What every image says of itself.
pub struct Release<'a> {
    pub version: &'a str,
    pub source: Option<&'a str>,
    /// Seconds since the epoch for every time in the images.
    pub epoch: u64,
}

impl Release<'_> {
    fn labels(&self, title: &str, description: &str) -> HashMap<String, String> {
        [
            ("org.opencontainers.image.title", title),
            ("org.opencontainers.image.description", description),
            ("org.opencontainers.image.version", self.version),
            ("org.opencontainers.image.licenses", "MIT"),
        ]
        .into_iter()
        .chain(self.source.map(|s| ("org.opencontainers.image.source", s)))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn created(&self) -> String {
        rfc3339(self.epoch)
    }
}

/// The filter as Istio pulls it: one `tar+gzip` layer holding
/// `plugin.wasm`, and the `compat` annotation on the manifest. (A single
/// layer of the Wasm media type, the "oci" variant's type without its
/// second layer, is what Istio refuses: its fetcher wants that variant in
/// exactly two layers.)
pub fn filter(dir: &Path, wasm: &[u8], release: &Release<'_>) -> Result<Descriptor, DistError> {
    let layout = Layout::create(dir)?;
    let layer = layer::build(
        &[Entry::File {
            path: PLUGIN_FILE,
            mode: 0o644,
            contents: wasm,
        }],
        release.epoch,
    )?;
    let labels = release.labels(
        "portcullis-filter",
        "Portcullis token authentication, the proxy-wasm filter for Envoy and Istio",
    );
    let run = ConfigBuilder::default().labels(labels.clone()).build()?;
    let platform = (Arch::Wasm, Os::Other("wasip1".to_owned()));
    let variant = (WASM_VARIANT.to_owned(), "compat".to_owned());
    finish(layout, layer, platform, run, labels, Some(variant), release)
}

/// Stores `layer`, the image configuration (`platform`, `run`) and the
/// manifest (`labels` and `extra` as its annotations), and tags it.
fn finish(
    layout: Layout,
    layer: layer::Layer,
    platform: (Arch, Os),
    run: oci_spec::image::Config,
    labels: HashMap<String, String>,
    extra: Option<(String, String)>,
    release: &Release<'_>,
) -> Result<Descriptor, DistError> {
    let layer_descriptor = layout.put_blob(MediaType::ImageLayerGzip, &layer.compressed)?;
    let config = ImageConfigurationBuilder::default()
        .created(release.created())
        .architecture(platform.0)
        .os(platform.1)
        .config(run)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.diff_id])
                .build()?,
        )
        .build()?;
    let config_descriptor = layout.put_blob(MediaType::ImageConfig, &canonical_json(&config)?)?;
    let mut annotations = labels;
    annotations.extend(extra);
    annotations.insert(
        "org.opencontainers.image.created".to_owned(),
        release.created(),
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(vec![layer_descriptor])
        .annotations(annotations)
        .build()?;
    layout.finish(&manifest, release.version)
}

/// The companion in an image with nothing else: the static binary, the CA
/// certificates its calls to an identity provider need, a non-root user,
/// and the configuration and store directories as volumes.
pub fn companion(
    dir: &Path,
    binary: &[u8],
    ca_certificates: Option<&[u8]>,
    release: &Release<'_>,
) -> Result<Descriptor, DistError> {
    let layout = Layout::create(dir)?;
    let passwd = format!(
        "portcullis:x:{COMPANION_UID}:{COMPANION_UID}:portcullis:{STATE_DIR}:/sbin/nologin\n"
    );
    let group = format!("portcullis:x:{COMPANION_UID}:\n");
    let config_dir = format!("{}/", &CONFIG_DIR[1..]);
    let state_dir = format!("{}/", &STATE_DIR[1..]);
    let mut entries = vec![
        Entry::Dir {
            path: "etc/",
            mode: 0o755,
            owner: 0,
        },
        Entry::File {
            path: "etc/passwd",
            mode: 0o644,
            contents: passwd.as_bytes(),
        },
        Entry::File {
            path: "etc/group",
            mode: 0o644,
            contents: group.as_bytes(),
        },
        Entry::Dir {
            path: &config_dir,
            mode: 0o750,
            owner: COMPANION_UID,
        },
        Entry::Dir {
            path: "tmp/",
            mode: 0o1777,
            owner: 0,
        },
        Entry::Dir {
            path: "usr/",
            mode: 0o755,
            owner: 0,
        },
        Entry::Dir {
            path: "usr/local/",
            mode: 0o755,
            owner: 0,
        },
        Entry::Dir {
            path: "usr/local/bin/",
            mode: 0o755,
            owner: 0,
        },
        Entry::File {
            path: &COMPANION_PATH[1..],
            mode: 0o755,
            contents: binary,
        },
        Entry::Dir {
            path: "var/",
            mode: 0o755,
            owner: 0,
        },
        Entry::Dir {
            path: "var/lib/",
            mode: 0o755,
            owner: 0,
        },
        Entry::Dir {
            path: &state_dir,
            mode: 0o750,
            owner: COMPANION_UID,
        },
    ];
    if let Some(bundle) = ca_certificates {
        entries.splice(
            3..3,
            [
                Entry::Dir {
                    path: "etc/ssl/",
                    mode: 0o755,
                    owner: 0,
                },
                Entry::Dir {
                    path: "etc/ssl/certs/",
                    mode: 0o755,
                    owner: 0,
                },
                Entry::File {
                    path: "etc/ssl/certs/ca-certificates.crt",
                    mode: 0o644,
                    contents: bundle,
                },
            ],
        );
    }
    let layer = layer::build(&entries, release.epoch)?;
    let labels = release.labels(
        "portcullis",
        "Portcullis companion: token storage, the checks, the token API and login",
    );
    let run = ConfigBuilder::default()
        .user(format!("{COMPANION_UID}:{COMPANION_UID}"))
        .entrypoint(vec![COMPANION_PATH.to_owned()])
        .cmd(vec!["serve".to_owned()])
        .env(vec![
            "PATH=/usr/local/bin".to_owned(),
            format!("PORTCULLIS_CONFIG={CONFIG_DIR}/portcullis.toml"),
        ])
        .exposed_ports(vec![
            format!("{PUBLIC_PORT}/tcp"),
            format!("{INGRESS_PORT}/tcp"),
        ])
        .volumes(vec![CONFIG_DIR.to_owned(), STATE_DIR.to_owned()])
        .working_dir(STATE_DIR)
        .labels(labels.clone())
        .stop_signal("SIGTERM")
        .build()?;
    finish(
        layout,
        layer,
        (native_arch(), Os::Linux),
        run,
        labels,
        None,
        release,
    )
}

/// The architecture the companion was built for (this machine's, as
/// `./build.sh` builds it), in the OCI's (Go's) names.
fn native_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::from(other),
    }
}

/// `epoch` as an RFC 3339 UTC time.
fn rfc3339(epoch: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
