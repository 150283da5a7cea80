//! Portcullis's release artefacts, written as OCI image layouts with the
//! OCI's own types (`oci-spec`), a reproducible tar (`tar`) and gzip
//! (`flate2`): the filter in the Wasm image specification's "compat"
//! variant, which Istio's `WasmPlugin` pulls, and the companion's image.

use std::path::{Path, PathBuf};

pub mod images;
pub mod layer;
pub mod layout;

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists already: remove it first, or build into an empty directory", .0.display())]
    Exists(PathBuf),
    #[error("the layer entry {path}: {source}")]
    Layer {
        path: String,
        source: std::io::Error,
    },
    #[error("an OCI document: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("JSON: {0}")]
    Json(serde_json::Error),
}

impl DistError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
