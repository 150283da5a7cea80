//! A filesystem layer: a reproducible tar, gzip-compressed, as an OCI
//! `application/vnd.oci.image.layer.v1.tar+gzip` blob.
//!
//! Reproducible means the same inputs give the same bytes, so the same
//! digests: every entry has the same modification time (`mtime`, from
//! `SOURCE_DATE_EPOCH` by convention), numeric owners and no host names.

use std::io::Write as _;

use sha2::{Digest as _, Sha256};

use crate::DistError;

/// One entry of a layer.
pub enum Entry<'a> {
    Dir {
        path: &'a str,
        mode: u32,
        owner: u32,
    },
    File {
        path: &'a str,
        mode: u32,
        contents: &'a [u8],
    },
}

/// A built layer: the compressed blob and the digest of its uncompressed
/// tar, which the image configuration lists as the layer's `diff_id`.
pub struct Layer {
    pub compressed: Vec<u8>,
    pub diff_id: String,
}

pub fn build(entries: &[Entry<'_>], mtime: u64) -> Result<Layer, DistError> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        let (path, contents): (&str, &[u8]) = match entry {
            Entry::Dir { path, mode, owner } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_uid(u64::from(*owner));
                header.set_gid(u64::from(*owner));
                header.set_size(0);
                (path, &[])
            }
            Entry::File {
                path,
                mode,
                contents,
            } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(contents.len() as u64);
                (path, contents)
            }
        };
        tar.append_data(&mut header, path, contents)
            .map_err(|source| DistError::Layer {
                path: (*path).to_owned(),
                source,
            })?;
    }
    let uncompressed = tar.into_inner().map_err(|source| DistError::Layer {
        path: "(end of archive)".to_owned(),
        source,
    })?;
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&uncompressed)));
    // No file name and no time in the gzip header: flate2's GzBuilder
    // writes mtime 0 unless told otherwise.
    let mut gzip = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    let compressed = gzip
        .write_all(&uncompressed)
        .and_then(|()| gzip.finish())
        .map_err(|source| DistError::Layer {
            path: "(gzip)".to_owned(),
            source,
        })?;
    Ok(Layer {
        compressed,
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn the_same_entries_give_the_same_bytes_and_unpack_to_what_went_in() {
        let entries = [
            Entry::Dir {
                path: "etc/",
                mode: 0o755,
                owner: 0,
            },
            Entry::File {
                path: "plugin.wasm",
                mode: 0o644,
                contents: b"\0asm\x01\0\0\0",
            },
        ];
        let one = build(&entries, 1_700_000_000).unwrap();
        let two = build(&entries, 1_700_000_000).unwrap();
        assert_eq!(one.compressed, two.compressed);
        assert_eq!(one.diff_id, two.diff_id);

        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&one.compressed[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            one.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            assert_eq!(entry.header().mtime().unwrap(), 1_700_000_000);
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            seen.push((path, body));
        }
        assert_eq!(
            seen,
            [
                ("etc/".to_owned(), vec![]),
                ("plugin.wasm".to_owned(), b"\0asm\x01\0\0\0".to_vec())
            ]
        );
    }
}
