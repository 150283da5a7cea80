//! Token metadata: names, parent/child links, listing and counts. The data
//! store decides whether a token is valid; this one knows how tokens relate.
//!
//! Every change here is written with its history entries in one
//! transaction (the history lives in the same database): a crash leaves a
//! token and its record both there or both not, and the change feed that
//! edge caches follow never misses a revocation or an edit that happened.

use async_trait::async_trait;
use portcullis_core::{Scope, TokenKey, TokenType};

use super::StorageError;
use crate::model::{HistoryEntry, TokenChanges, TokenInfo, TokenListing};

/// The history entry of a change, made from the token as it is after it
/// (`None`: the change is not recorded, as for a repair).
pub type Record<'a> = &'a (dyn Fn(&TokenInfo) -> Option<HistoryEntry> + Send + Sync);

/// Which existing child a get-or-create may hand back instead of a new one.
#[derive(Debug, Clone)]
pub struct ReusableChild {
    pub parent: TokenKey,
    pub token_type: TokenType,
    /// For internal tokens: the service and the exact (sorted) scopes.
    pub service: Option<String>,
    pub scopes: Vec<Scope>,
    /// An existing child must not expire before this time.
    pub min_expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildSlot {
    /// The new child was added.
    Added,
    /// A matching child exists: use it, and discard the new one.
    Existing(TokenKey),
}

#[async_trait]
pub trait TokenMetadataStore: Send + Sync {
    /// Adds a token; `StorageError::DuplicateName` when its owner already
    /// has a token of that name. A child is added only while its parent
    /// is there, checked under the parent's lock (the foreign key's), the
    /// lock [`delete_tree`](Self::delete_tree) holds: `ParentGone` else.
    /// `created` is recorded with it.
    async fn add(&self, info: &TokenInfo, created: &HistoryEntry) -> Result<(), StorageError>;
    /// Adds a child unless a reusable one exists, atomically: however many
    /// callers race, one child is added (and `created` recorded).
    /// `ParentGone` as for `add`.
    async fn add_child_unless_reusable(
        &self,
        info: &TokenInfo,
        reuse: &ReusableChild,
        created: &HistoryEntry,
    ) -> Result<ChildSlot, StorageError>;
    async fn get_info(&self, key: &TokenKey) -> Result<Option<TokenInfo>, StorageError>;
    /// Every descendant of `key`, deepest first, so that deleting in order
    /// never leaves a child without its parent's record.
    async fn get_children(&self, key: &TokenKey) -> Result<Vec<TokenInfo>, StorageError>;
    async fn list_tokens(&self, listing: &TokenListing) -> Result<Vec<TokenInfo>, StorageError>;
    /// Child-type tokens whose parent is gone.
    async fn list_orphaned(&self) -> Result<Vec<TokenInfo>, StorageError>;
    /// Applies `changes` and records what `record` makes of the result;
    /// the updated info, or `None` if there is no token.
    async fn modify(
        &self,
        key: &TokenKey,
        changes: &TokenChanges,
        record: Record<'_>,
    ) -> Result<Option<TokenInfo>, StorageError>;
    /// Sets `last_used` to `now` unless it was set less than `interval`
    /// seconds ago; true when it wrote.
    async fn record_use(
        &self,
        key: &TokenKey,
        now: u64,
        interval: u64,
    ) -> Result<bool, StorageError>;
    /// Removes one token's metadata, leaving any children (orphaned), and
    /// records `removed` if it was there.
    async fn delete(
        &self,
        key: &TokenKey,
        removed: Option<&HistoryEntry>,
    ) -> Result<bool, StorageError>;
    /// Removes a token and every descendant in one transaction that holds
    /// each of them against new children until all are gone, so that no
    /// child added meanwhile survives, recording what `record` makes of
    /// each. What was removed, deepest first and the token last; empty when
    /// the token was already gone.
    async fn delete_tree(
        &self,
        key: &TokenKey,
        record: Record<'_>,
    ) -> Result<Vec<TokenInfo>, StorageError>;
    /// Tokens whose expiry is at or before `now`.
    async fn list_expired(&self, now: u64) -> Result<Vec<TokenInfo>, StorageError>;
    /// Users with at least one unexpired session token.
    async fn count_unique_sessions(&self, now: u64) -> Result<u64, StorageError>;
    /// Unexpired user tokens.
    async fn count_user_tokens(&self, now: u64) -> Result<u64, StorageError>;
}
