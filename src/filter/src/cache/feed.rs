//! What the companion's change feed has told this worker: where it stands
//! in the feed, when it last heard from it, and which tokens changed
//! lately. The trust rule lives here: an answer is good only if it was
//! asked for at or after the first cursor this worker knew and nothing
//! about its token changed after that, so no revocation slips between.

use std::collections::HashMap;

use portcullis_core::check::{Changes, CHANGES_PATH};

use crate::config::CacheConfig;

/// Most revocations remembered; past it the worker acts as on a reset.
const MAX_REMEMBERED_REVOCATIONS: usize = 100_000;

/// Revocations this worker has applied lately, each with the feed cursor
/// it arrived with: an answer asked for at an earlier cursor may predate it.
#[derive(Debug, Default)]
struct Revocations {
    by_key: HashMap<String, (i64, u64)>,
    /// Answers asked for before this cursor predate a reset: never stored.
    reset_at: i64,
}

impl Revocations {
    fn record(&mut self, key: &str, cursor: i64, now_ms: u64) {
        if self.by_key.len() >= MAX_REMEMBERED_REVOCATIONS {
            self.reset(cursor);
        }
        self.by_key.insert(key.to_owned(), (cursor, now_ms));
    }

    fn reset(&mut self, cursor: i64) {
        self.by_key.clear();
        self.reset_at = cursor;
    }

    /// Forgets revocations older than `horizon_ms`: no answer asked for
    /// before them can still be waiting to be stored.
    fn prune(&mut self, now_ms: u64, horizon_ms: u64) {
        self.by_key.retain(|_, (_, at)| *at + horizon_ms > now_ms);
    }

    /// True when an answer about `token_key` asked for at `cursor` may be
    /// out of date.
    fn outdates(&self, token_key: Option<&str>, cursor: i64) -> bool {
        cursor < self.reset_at
            || token_key.is_some_and(|k| {
                self.by_key
                    .get(k)
                    .is_some_and(|(revoked, _)| *revoked > cursor)
            })
    }
}

/// This worker's place in the change feed.
#[derive(Debug)]
pub struct FeedView {
    /// Where the next poll starts; `None` until the first poll answers.
    cursor: Option<i64>,
    revocations: Revocations,
    /// How long a revocation is remembered: longer than any answer, here
    /// or in the shared tier, can live or wait.
    horizon_ms: u64,
    /// The first cursor this worker had: what was revoked before it is
    /// unknown here, so shared answers asked for earlier are not trusted.
    first_cursor: Option<i64>,
    /// When the feed last answered (ms): a silent feed may be hiding a
    /// revocation, so past `max_lag_ms` no cached answer is served.
    heard_at_ms: Option<u64>,
    max_lag_ms: u64,
}

impl FeedView {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            cursor: None,
            revocations: Revocations::default(),
            // An answer lives at most the TTL, and waits at most a callout
            // timeout (60 s at most) before that.
            horizon_ms: config.ttl_seconds * 1000 + 120_000,
            first_cursor: None,
            heard_at_ms: None,
            max_lag_ms: config.max_feed_lag.as_millis() as u64,
        }
    }

    /// Where the feed stands now: what an answer asked for now is asked at.
    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    /// True once the feed's position is known and while the feed has
    /// answered within the allowed lag: only then may this worker answer
    /// from its cache or the shared tier.
    pub fn serves(&self, now_ms: u64) -> bool {
        self.cursor.is_some()
            && self
                .heard_at_ms
                .is_some_and(|heard| now_ms.saturating_sub(heard) <= self.max_lag_ms)
    }

    /// True when an answer about `token_key` asked for at `asked_at` can be
    /// trusted by this worker: nothing it knows of changed since.
    pub fn trusts(&self, token_key: Option<&str>, asked_at: i64) -> bool {
        self.first_cursor.is_some_and(|first| asked_at >= first)
            && !self.revocations.outdates(token_key, asked_at)
    }

    /// Takes in one page of the feed: its changes, for the cache to evict.
    /// A page that cannot be read moves nothing.
    pub fn apply(&mut self, body: &[u8], now_ms: u64) -> Result<Changes, String> {
        let changes: Changes = serde_json::from_slice(body)
            .map_err(|e| format!("change feed answer is not valid: {e}"))?;
        self.revocations.prune(now_ms, self.horizon_ms);
        if changes.reset {
            self.revocations.reset(changes.cursor);
        } else {
            for key in &changes.keys {
                self.revocations
                    .record(key.as_str(), changes.cursor, now_ms);
            }
        }
        self.cursor = Some(changes.cursor);
        self.first_cursor.get_or_insert(changes.cursor);
        self.heard_at_ms = Some(now_ms);
        Ok(changes)
    }

    /// `:path` of the next poll.
    pub fn poll_path(&self) -> String {
        match self.cursor {
            Some(cursor) => format!("{CHANGES_PATH}?since={cursor}"),
            None => CHANGES_PATH.to_owned(),
        }
    }

    #[cfg(test)]
    pub fn outdates(&self, token_key: Option<&str>, cursor: i64) -> bool {
        self.revocations.outdates(token_key, cursor)
    }
}
