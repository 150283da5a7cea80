//! Bookkeeping outside any request: expiry, history truncation, audits of
//! the stores' consistency, key rotation and state metrics.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_core::check::Changes;
use portcullis_core::TokenKey;

use super::{TokenError, TokenService};
use crate::model::{TokenChange, TokenChanges, TokenData, TokenInfo, TokenListing};
use crate::storage::StorageError;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Problems still there after the audit.
    pub problems: Vec<String>,
    /// Problems the audit fixed (only with `fix`).
    pub fixed: Vec<String>,
}

impl AuditReport {
    fn found(&mut self, fix: bool, fixable: bool, message: String) {
        match fix && fixable {
            true => self.fixed.push(message),
            false => self.problems.push(message),
        }
    }
}

/// Most changes one poll returns; the rest come with the next.
const MAX_CHANGES: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateMetrics {
    /// Users with an unexpired session token.
    pub active_sessions: u64,
    /// Unexpired user tokens.
    pub user_tokens: u64,
}

/// How long after its creation data without metadata may be a creation
/// under way, which the audit leaves alone.
pub const CREATION_GRACE_SECONDS: u64 = 60;

impl TokenService {
    /// Removes every expired token from both stores with an `expire`
    /// history entry; how many there were.
    pub async fn expire_tokens(&self) -> Result<usize, TokenError> {
        let expired = self.metadata.list_expired(self.clock.now()).await?;
        for info in &expired {
            self.data.delete(&info.token).await?;
            let expired = self.history_entry(info, TokenChange::Expire, None, None);
            self.metadata.delete(&info.token, Some(&expired)).await?;
        }
        Ok(expired.len())
    }

    /// Tokens revoked, expired or edited since `since` (a cursor this
    /// returned before); with no cursor, just where to start.
    pub async fn token_changes(&self, since: Option<i64>) -> Result<Changes, TokenError> {
        let after = since.unwrap_or(i64::MAX);
        let feed = self.history.changes_since(after, MAX_CHANGES).await?;
        let newest = feed.newest.unwrap_or(0);
        let Some(since) = since else {
            return Ok(Changes {
                cursor: newest,
                keys: vec![],
                reset: false,
            });
        };
        // Rows after `since` were dropped by truncation, or `since` is from
        // the future of this store: the feed cannot say what changed.
        let gap = feed.oldest.is_some_and(|oldest| oldest > since + 1);
        if gap || since > newest {
            return Ok(Changes {
                cursor: newest,
                keys: vec![],
                reset: true,
            });
        }
        // Only past what was read: a row committed since is read next time.
        let cursor = feed.last_read.unwrap_or(since);
        let keys = feed.changes.into_iter().map(|(_, key)| key).collect();
        Ok(Changes {
            cursor,
            keys,
            reset: false,
        })
    }

    /// Drops history older than the configured retention; how many entries.
    pub async fn truncate_history(&self) -> Result<u64, TokenError> {
        let cutoff = self
            .clock
            .now()
            .saturating_sub(self.policy.history_retention);
        Ok(self.history.delete_older_than(cutoff).await?)
    }

    /// Removes every token's data (the metadata and history stay, as in
    /// Gafaelfawr, for the caller to truncate), with a revocation in the
    /// history for each, so that the edge caches drop their answers too.
    pub async fn delete_all_tokens(&self) -> Result<(), TokenError> {
        let infos = self.metadata.list_tokens(&TokenListing::default()).await?;
        let known: BTreeSet<&TokenKey> = infos.iter().map(|i| &i.token).collect();
        let mut unlisted = Vec::new();
        for key in self
            .data
            .list()
            .await?
            .iter()
            .filter(|k| !known.contains(k))
        {
            let data = self.readable(key).await?;
            unlisted.extend(data.map(|d| TokenInfo::of_new(&d, None, None)));
        }
        self.data.delete_all().await?;
        for info in infos.iter().chain(&unlisted) {
            self.record(info, TokenChange::Revoke, None, None).await?;
        }
        Ok(())
    }

    /// What the history needs of a token that has data but no metadata;
    /// `None` if its data cannot be read (then no check can pass with it).
    async fn readable(&self, key: &TokenKey) -> Result<Option<TokenData>, TokenError> {
        match self.data.peek(key).await {
            Ok(data) => Ok(data),
            Err(StorageError::Sealed { .. } | StorageError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Re-seals all token data under the active key; how many records
    /// were sealed with an older one.
    pub async fn reseal_all(&self) -> Result<u64, TokenError> {
        Ok(self.data.reseal_all().await?)
    }

    pub async fn gather_state_metrics(&self) -> Result<StateMetrics, TokenError> {
        let now = self.clock.now();
        Ok(StateMetrics {
            active_sessions: self.metadata.count_unique_sessions(now).await?,
            user_tokens: self.metadata.count_user_tokens(now).await?,
        })
    }

    /// Checks the stores against each other: data without metadata and the
    /// reverse, fields that disagree, children outliving their parents,
    /// orphans, unknown scopes, and (distributed) live tokens missing from
    /// Redis. With `fix`, repairs what it can; the data store is the truth
    /// where the two disagree.
    pub async fn audit(&self, fix: bool) -> Result<AuditReport, TokenError> {
        let mut report = AuditReport::default();
        let infos: BTreeMap<TokenKey, TokenInfo> = self
            .metadata
            .list_tokens(&TokenListing::default())
            .await?
            .into_iter()
            .map(|i| (i.token.clone(), i))
            .collect();
        // Of tokens: durable data without metadata is data without
        // metadata, reported below.
        let unrestored: Vec<TokenKey> = self
            .data
            .list_unrestored(self.clock.now())
            .await?
            .into_iter()
            .filter(|k| infos.contains_key(k))
            .collect();
        for key in &unrestored {
            report.found(
                fix,
                true,
                format!("token {key}: data missing from Redis (kept in PostgreSQL)"),
            );
            if fix {
                // Reading a token restores it.
                self.data.get(key).await?;
            }
        }
        let data_keys: BTreeSet<TokenKey> = self.data.list().await?.into_iter().collect();

        for key in data_keys.iter().filter(|k| !infos.contains_key(*k)) {
            let data = self.readable(key).await?;
            // A creation writes its data first and its metadata a moment
            // later: data this young may be one under way (removing it
            // would break the token), or one a crash cut short, whose
            // secret nobody was given. Either way it authenticates no one.
            let now = self.clock.now();
            if data
                .as_ref()
                .is_some_and(|d| d.created.saturating_add(CREATION_GRACE_SECONDS) > now)
            {
                continue;
            }
            report.found(fix, true, format!("token {key}: data without metadata"));
            if fix {
                let info = data.map(|d| TokenInfo::of_new(&d, None, None));
                self.data.delete(key).await?;
                // Checks read the data alone: an edge may have this cached.
                if let Some(info) = info {
                    self.record(&info, TokenChange::Revoke, None, None).await?;
                }
            }
        }
        for (key, info) in infos.iter().filter(|(k, _)| !data_keys.contains(*k)) {
            report.found(fix, true, format!("token {key}: metadata without data"));
            if fix {
                let revoked = self.history_entry(info, TokenChange::Revoke, None, None);
                self.metadata.delete(key, Some(&revoked)).await?;
            }
        }
        for (key, info) in infos.iter().filter(|(k, _)| data_keys.contains(*k)) {
            // Reading would restore it: without `fix`, the audit only reads.
            if !fix && unrestored.contains(key) {
                continue;
            }
            self.audit_fields(key, info, fix, &mut report).await?;
        }
        self.audit_children(&infos, fix, &mut report).await?;
        for orphan in self.metadata.list_orphaned().await? {
            report.found(
                fix,
                true,
                format!(
                    "token {}: {} token without a parent",
                    orphan.token,
                    orphan.token_type.as_str()
                ),
            );
            if fix {
                self.revoke_tree(&orphan, TokenChange::Revoke, None, None)
                    .await?;
            }
        }
        Ok(report)
    }

    /// Data and metadata of one token must agree on who, what and when, and
    /// its scopes (the data's, which checks use) must be known.
    async fn audit_fields(
        &self,
        key: &TokenKey,
        info: &TokenInfo,
        fix: bool,
        report: &mut AuditReport,
    ) -> Result<(), TokenError> {
        let data = match self.data.get(key).await {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(e @ (StorageError::Sealed { .. } | StorageError::Corrupt { .. })) => {
                report.found(fix, false, format!("token {key}: {e}"));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let unknown: Vec<&str> = data
            .scopes
            .iter()
            .filter(|s| !self.policy.known_scopes.contains_key(*s))
            .map(|s| s.as_str())
            .collect();
        if !unknown.is_empty() {
            report.found(
                fix,
                false,
                format!("token {key}: unknown scopes {unknown:?}"),
            );
        }
        if data.username != info.username || data.token_type != info.token_type {
            report.found(
                fix,
                false,
                format!("token {key}: data and metadata disagree on its user or type"),
            );
        }
        let mut changes = TokenChanges::default();
        if data.scopes != info.scopes {
            changes.scopes = Some(data.scopes.clone());
        }
        if data.expires != info.expires {
            changes.expires = Some(data.expires);
        }
        if changes.scopes.is_some() || changes.expires.is_some() {
            report.found(
                fix,
                true,
                format!("token {key}: metadata scopes or expiry differ from its data"),
            );
            if fix {
                self.metadata.modify(key, &changes, &|_| None).await?;
            }
        }
        Ok(())
    }

    /// A child must expire no later than its parent.
    async fn audit_children(
        &self,
        infos: &BTreeMap<TokenKey, TokenInfo>,
        fix: bool,
        report: &mut AuditReport,
    ) -> Result<(), TokenError> {
        for (key, child) in infos {
            let Some(parent) = child.parent.as_ref().and_then(|p| infos.get(p)) else {
                continue;
            };
            let Some(limit) = parent.expires else {
                continue;
            };
            if child.expires.is_some_and(|e| e <= limit) {
                continue;
            }
            report.found(
                fix,
                true,
                format!("token {key}: outlives its parent {}", parent.token),
            );
            if fix {
                let changes = TokenChanges {
                    expires: Some(Some(limit)),
                    ..TokenChanges::default()
                };
                // Cached answers may outlive the new expiry: the edit
                // evicts them.
                let record =
                    |_: &TokenInfo| Some(self.history_entry(child, TokenChange::Edit, None, None));
                if let Some(new) = self.metadata.modify(key, &changes, &record).await? {
                    self.follow_metadata(&new).await?;
                }
            }
        }
        Ok(())
    }
}
