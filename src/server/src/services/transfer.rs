//! `portcullis export` and `portcullis import`: a whole store as one JSON
//! document, so that a deployment that outgrows one machine moves from the
//! embedded store to the distributed one (or back) and keeps its tokens.
//! Token data stays sealed in the file; the target needs the same
//! `[encryption]` keys, which the import checks before writing anything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::storage::{Dump, StorageError, TransferStore};

const FORMAT: &str = "portcullis-export";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("not a Portcullis export: {0}")]
    Format(String),
    #[error("export version {0} is not one this companion reads (it reads {VERSION})")]
    Version(u32),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportFile {
    format: String,
    version: u32,
    store: Dump,
}

/// How much moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub tokens: usize,
    pub history: usize,
    pub oidc_clients: usize,
}

impl Moved {
    fn of(dump: &Dump) -> Self {
        Self {
            tokens: dump.data.len(),
            history: dump.history.len(),
            oidc_clients: dump.oidc_clients.len(),
        }
    }
}

pub struct TransferService {
    store: Arc<dyn TransferStore>,
}

impl TransferService {
    pub fn new(store: Arc<dyn TransferStore>) -> Self {
        Self { store }
    }

    /// The whole store as the export document.
    pub async fn export(&self) -> Result<(Vec<u8>, Moved), TransferError> {
        let store = self.store.export().await?;
        let moved = Moved::of(&store);
        let file = ExportFile {
            format: FORMAT.to_owned(),
            version: VERSION,
            store,
        };
        // Plain data serializes to JSON without fail.
        Ok((serde_json::to_vec(&file).unwrap_or_default(), moved))
    }

    /// Adds an export document to this (empty) store: all of it, or
    /// nothing when any part is malformed, unreadable or already there.
    pub async fn import(&self, document: &[u8]) -> Result<Moved, TransferError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header =
            serde_json::from_slice(document).map_err(|e| TransferError::Format(e.to_string()))?;
        if header.format != FORMAT {
            return Err(TransferError::Format(format!(
                "format is {:?}",
                header.format
            )));
        }
        if header.version != VERSION {
            return Err(TransferError::Version(header.version));
        }
        let file: ExportFile =
            serde_json::from_slice(document).map_err(|e| TransferError::Format(e.to_string()))?;
        self.store.import(&file.store).await?;
        Ok(Moved::of(&file.store))
    }
}
