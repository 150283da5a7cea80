//! What the filter caches, and how the companion's change feed keeps the
//! cache honest: nothing is cached until the feed's first cursor is known,
//! and an answer is stored only if nothing about its token changed after
//! the cursor at which it was asked for, so no revocation can slip between.

use std::collections::HashMap;

use portcullis_core::check::{Changes, CHANGES_PATH};

use crate::cache::{AnswerCache, CacheKey, Cached};
use crate::config::CacheConfig;
use crate::decision::Decision;

/// Most revocations remembered; past it the worker acts as on a reset.
const MAX_REMEMBERED_REVOCATIONS: usize = 100_000;

/// Revocations this worker has applied lately, each with the feed cursor
/// it arrived with: an answer asked for at an earlier cursor may predate it.
#[derive(Debug, Default)]
pub struct Revocations {
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
    pub fn outdates(&self, token_key: Option<&str>, cursor: i64) -> bool {
        cursor < self.reset_at
            || token_key.is_some_and(|k| {
                self.by_key
                    .get(k)
                    .is_some_and(|(revoked, _)| *revoked > cursor)
            })
    }
}

/// A worker's cache, shared by its root context (which polls the feed) and
/// its requests.
pub struct CacheState {
    pub answers: AnswerCache,
    /// Where the next poll starts; `None` until the first poll answers.
    pub cursor: Option<i64>,
    pub revocations: Revocations,
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

impl CacheState {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            answers: AnswerCache::new(config.max_entries),
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

    /// Stores an answer asked for at `asked_at`, unless its token changed
    /// since (then the answer may be out of date and is dropped).
    /// True when it was stored.
    pub fn store(
        &mut self,
        key: CacheKey,
        cached: Cached,
        token_key: Option<String>,
        asked_at: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> bool {
        let trusted = self.trusts(token_key.as_deref(), asked_at);
        if trusted {
            self.answers.insert(key, cached, token_key, ttl_ms, now_ms);
        }
        trusted
    }

    /// This worker's answer for `key`, if it [`serves`](Self::serves).
    pub fn lookup(&mut self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        self.serves(now_ms)
            .then(|| self.answers.get(key, now_ms))
            .flatten()
    }

    /// Applies one page of the feed; how many cached answers it dropped.
    pub fn apply(&mut self, body: &[u8], now_ms: u64) -> Result<usize, String> {
        let changes: Changes = serde_json::from_slice(body)
            .map_err(|e| format!("change feed answer is not valid: {e}"))?;
        self.revocations.prune(now_ms, self.horizon_ms);
        let dropped = if changes.reset {
            self.revocations.reset(changes.cursor);
            let all = self.answers.len();
            self.answers.clear();
            all
        } else {
            let mut dropped = 0;
            for key in &changes.keys {
                self.revocations
                    .record(key.as_str(), changes.cursor, now_ms);
                dropped += self.answers.evict_token(key.as_str());
            }
            dropped
        };
        self.cursor = Some(changes.cursor);
        self.first_cursor.get_or_insert(changes.cursor);
        self.heard_at_ms = Some(now_ms);
        Ok(dropped)
    }

    /// `:path` of the next poll.
    pub fn poll_path(&self) -> String {
        match self.cursor {
            Some(cursor) => format!("{CHANGES_PATH}?since={cursor}"),
            None => CHANGES_PATH.to_owned(),
        }
    }
}

/// Until when (ms) an allowed answer may be served stale while the
/// companion fails: `stale_if_error_seconds` past its freshness, never past
/// the token's own expiry, and never for an answer carrying a delegated
/// token (its minimum lifetime could not be kept).
pub fn stale_until(decision: &Decision, config: &CacheConfig, fresh_until_ms: u64) -> Option<u64> {
    let Decision::Allow {
        headers,
        token_expires,
        ..
    } = decision
    else {
        return None;
    };
    let delegates = headers
        .iter()
        .any(|(name, _)| *name == portcullis_core::check::headers::TOKEN);
    if config.stale_if_error_seconds == 0 || delegates {
        return None;
    }
    let until = fresh_until_ms + config.stale_if_error_seconds * 1000;
    Some(token_expires.map_or(until, |e| until.min(e.saturating_mul(1000))))
}

/// What of a decision may be cached, and for how many milliseconds. An
/// allowed answer lives no longer than the configured TTL nor what the
/// companion said; refusals of a token (401, 403) live the short negative
/// TTL; malformed requests and failures are never cached.
pub fn cacheable(decision: &Decision, config: &CacheConfig) -> Option<(Cached, u64)> {
    match decision {
        Decision::Allow {
            headers, cache_ttl, ..
        } => {
            let ttl = config.ttl_seconds.min(*cache_ttl);
            Some((Cached::Allow(headers.clone()), ttl.saturating_mul(1000)))
        }
        Decision::Refuse(refusal) if refusal.status == 401 || refusal.status == 403 => Some((
            Cached::Refuse(refusal.clone()),
            config.negative_ttl_seconds * 1000,
        )),
        Decision::Refuse(_) | Decision::Unavailable(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::cache_key;
    use crate::decision::Refusal;

    fn config() -> CacheConfig {
        CacheConfig {
            ttl_seconds: 300,
            negative_ttl_seconds: 5,
            max_entries: 100,
            poll_interval: std::time::Duration::from_millis(1000),
            max_feed_lag: std::time::Duration::from_millis(3000),
            shared_slots: 16,
            stale_if_error_seconds: 60,
        }
    }

    fn refusal(status: u32) -> Decision {
        Decision::Refuse(Refusal {
            status,
            www_authenticate: None,
            body: vec![],
        })
    }

    #[test]
    fn what_is_cached_and_for_how_long() {
        let allow = |cache_ttl| Decision::Allow {
            headers: vec![],
            cache_ttl,
            token_expires: None,
        };
        assert_eq!(
            cacheable(&allow(60), &config()).map(|c| c.1),
            Some(60_000),
            "the companion's word"
        );
        assert_eq!(
            cacheable(&allow(3600), &config()).map(|c| c.1),
            Some(300_000),
            "the configured TTL"
        );
        assert_eq!(
            cacheable(&refusal(401), &config()).map(|c| c.1),
            Some(5_000)
        );
        assert_eq!(
            cacheable(&refusal(403), &config()).map(|c| c.1),
            Some(5_000)
        );
        assert!(cacheable(&refusal(400), &config()).is_none());
        assert!(cacheable(&Decision::Unavailable("x".into()), &config()).is_none());
    }

    #[test]
    fn stale_answers_are_bounded_by_the_window_and_the_tokens_expiry() {
        let allow = |headers: Vec<(&'static str, String)>, token_expires| Decision::Allow {
            headers,
            cache_ttl: 60,
            token_expires,
        };
        assert_eq!(
            stale_until(&allow(vec![], None), &config(), 1000),
            Some(61_000)
        );
        assert_eq!(
            stale_until(&allow(vec![], Some(30)), &config(), 1000),
            Some(30_000),
            "never past the token's expiry"
        );
        let delegated = allow(vec![("x-auth-request-token", "gt-d".into())], None);
        assert_eq!(stale_until(&delegated, &config(), 1000), None);
        assert_eq!(stale_until(&refusal(403), &config(), 1000), None);
        let off = CacheConfig {
            stale_if_error_seconds: 0,
            ..config()
        };
        assert_eq!(stale_until(&allow(vec![], None), &off, 1000), None);
    }

    #[test]
    fn nothing_is_served_from_cache_before_the_first_cursor() {
        let mut state = CacheState::new(&config());
        let key = cache_key("Bearer t", "/p");
        state
            .answers
            .insert(key, Cached::Allow(vec![]), None, 60_000, 0);
        assert_eq!(state.poll_path(), "/ingress/changes");
        assert!(state.lookup(&key, 1).is_none());
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#, 0)
            .unwrap();
        assert_eq!(state.poll_path(), "/ingress/changes?since=7");
        assert!(state.lookup(&key, 1).is_some());
    }

    #[test]
    fn a_silent_feed_stops_the_cache_serving_until_it_answers_again() {
        let mut state = CacheState::new(&config());
        let key = cache_key("Bearer t", "/p");
        state
            .answers
            .insert(key, Cached::Allow(vec![]), None, 600_000, 0);
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#, 1_000)
            .unwrap();
        assert!(state.lookup(&key, 4_000).is_some(), "within the lag");
        assert!(!state.serves(4_001));
        assert!(
            state.lookup(&key, 4_001).is_none(),
            "a revocation may be unheard"
        );
        assert!(state.lookup(&key, 60_000).is_none());
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#, 60_000)
            .unwrap();
        assert!(state.lookup(&key, 60_001).is_some(), "heard again");
    }

    #[test]
    fn an_answer_asked_for_before_its_token_was_revoked_is_not_stored() {
        let mut state = CacheState::new(&config());
        let key = "AAAAAAAAAAAAAAAAAAAAAA";
        state
            .apply(br#"{"cursor":5,"keys":[],"reset":false}"#, 0)
            .unwrap();
        // Asked at cursor 5; the revocation arrives (cursor 6) before the answer.
        let page = format!(r#"{{"cursor":6,"keys":["{key}"],"reset":false}}"#);
        state.apply(page.as_bytes(), 10).unwrap();
        let (a, b) = (cache_key("Bearer a", "/p"), cache_key("Bearer b", "/p"));
        state.store(a, Cached::Allow(vec![]), Some(key.into()), 5, 60_000, 20);
        assert!(
            state.lookup(&a, 21).is_none(),
            "the stale answer was dropped"
        );
        // Another token's answer, or one asked for after the revocation, is kept.
        state.store(
            b,
            Cached::Allow(vec![]),
            Some("BBBBBBBBBBBBBBBBBBBBBA".into()),
            5,
            60_000,
            20,
        );
        state.store(a, Cached::Allow(vec![]), Some(key.into()), 6, 60_000, 20);
        assert!(state.lookup(&a, 21).is_some() && state.lookup(&b, 21).is_some());
        // After a reset, nothing asked for before it is stored.
        state
            .apply(br#"{"cursor":9,"keys":[],"reset":true}"#, 30)
            .unwrap();
        state.store(b, Cached::Allow(vec![]), None, 8, 60_000, 40);
        assert!(state.lookup(&b, 41).is_none());
        // Revocations are forgotten once no answer can still be waiting.
        state.apply(page.as_bytes(), 50).unwrap();
        assert!(state.revocations.outdates(Some(key), 5));
        state
            .apply(br#"{"cursor":9,"keys":[],"reset":false}"#, 50 + 120_001)
            .unwrap();
        assert!(!state.revocations.outdates(Some(key), 10));
    }

    #[test]
    fn the_feed_evicts_the_keys_it_names_or_everything_on_reset() {
        let mut state = CacheState::new(&config());
        state
            .apply(br#"{"cursor":1,"keys":[],"reset":false}"#, 0)
            .unwrap();
        let key = "AAAAAAAAAAAAAAAAAAAAAA";
        let (a, b) = (cache_key("Bearer a", "/p"), cache_key("Bearer b", "/p"));
        state
            .answers
            .insert(a, Cached::Allow(vec![]), Some(key.into()), 60_000, 0);
        state.answers.insert(
            b,
            Cached::Allow(vec![]),
            Some("BBBBBBBBBBBBBBBBBBBBBA".into()),
            60_000,
            0,
        );
        let page = format!(r#"{{"cursor":2,"keys":["{key}"],"reset":false}}"#);
        assert_eq!(state.apply(page.as_bytes(), 0), Ok(1));
        assert!(state.lookup(&a, 1).is_none() && state.lookup(&b, 1).is_some());
        assert_eq!(
            state.apply(br#"{"cursor":0,"keys":[],"reset":true}"#, 0),
            Ok(1)
        );
        assert!(state.answers.is_empty());
        assert!(state.apply(b"<html>", 0).is_err());
        assert_eq!(state.cursor, Some(0), "a bad page moves nothing");
    }
}
