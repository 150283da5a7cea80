//! An OCI image layout on disk (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), as `skopeo`, `umoci` and `podman` read it under the
//! `oci:` transport.

use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageIndexBuilder, ImageManifest, MediaType, OciLayoutBuilder,
    Sha256Digest,
};
use sha2::{Digest as _, Sha256};

use crate::DistError;

/// The annotation that names a manifest in `index.json`: the tag of
/// `oci:DIR:TAG`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// A fresh layout at `dir`, which must not exist yet: a stale blob from
    /// an earlier build would otherwise ship beside the new ones.
    pub fn create(dir: &Path) -> Result<Self, DistError> {
        if dir.exists() {
            return Err(DistError::Exists(dir.to_owned()));
        }
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| DistError::io(&blobs, e))?;
        let marker = OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()?;
        write(&dir.join("oci-layout"), &canonical_json(&marker)?)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// Stores `bytes` under their digest and describes them.
    pub fn put_blob(&self, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor, DistError> {
        let hex = hex::encode(Sha256::digest(bytes));
        write(&self.dir.join("blobs/sha256").join(&hex), bytes)?;
        let digest: Sha256Digest = hex.parse()?;
        Ok(DescriptorBuilder::default()
            .media_type(media_type)
            .size(bytes.len() as u64)
            .digest(digest)
            .build()?)
    }

    /// Stores `manifest` and makes it the layout's one image, tagged `tag`.
    /// Returns the manifest's descriptor (its digest is the image's).
    pub fn finish(self, manifest: &ImageManifest, tag: &str) -> Result<Descriptor, DistError> {
        let stored = self.put_blob(MediaType::ImageManifest, &canonical_json(manifest)?)?;
        let mut named = stored.clone();
        named.set_annotations(Some([(REF_NAME.to_owned(), tag.to_owned())].into()));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![named])
            .build()?;
        write(&self.dir.join("index.json"), &canonical_json(&index)?)?;
        Ok(stored)
    }
}

/// JSON with every object's keys sorted. oci-spec keeps annotations and
/// labels in hash maps, whose order changes from run to run; sorted, the
/// same image always has the same digest.
pub fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>, DistError> {
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    let value = serde_json::to_value(value).map_err(DistError::Json)?;
    serde_json::to_vec(&sorted(value)).map_err(DistError::Json)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DistError> {
    std::fs::write(path, bytes).map_err(|e| DistError::io(path, e))
}
