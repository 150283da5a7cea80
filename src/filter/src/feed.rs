//! What the filter caches, and how the companion's change feed keeps the
//! cache honest: nothing is cached until the feed's first cursor is known,
//! so no revocation can fall between the two.

use portcullis_core::check::{Changes, CHANGES_PATH};

use crate::cache::{AnswerCache, CacheKey, Cached};
use crate::config::CacheConfig;
use crate::decision::Decision;

/// A worker's cache, shared by its root context (which polls the feed) and
/// its requests.
pub struct CacheState {
    pub answers: AnswerCache,
    /// Where the next poll starts; `None` until the first poll answers.
    pub cursor: Option<i64>,
}

impl CacheState {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            answers: AnswerCache::new(config.max_entries),
            cursor: None,
        }
    }

    /// The cache may be used once the feed's position is known.
    pub fn is_ready(&self) -> bool {
        self.cursor.is_some()
    }

    pub fn lookup(&mut self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        self.is_ready()
            .then(|| self.answers.get(key, now_ms))
            .flatten()
    }

    /// Applies one page of the feed; how many cached answers it dropped.
    pub fn apply(&mut self, body: &[u8]) -> Result<usize, String> {
        let changes: Changes = serde_json::from_slice(body)
            .map_err(|e| format!("change feed answer is not valid: {e}"))?;
        let dropped = if changes.reset {
            let all = self.answers.len();
            self.answers.clear();
            all
        } else {
            changes
                .keys
                .iter()
                .map(|k| self.answers.evict_token(k.as_str()))
                .sum()
        };
        self.cursor = Some(changes.cursor);
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

/// What of a decision may be cached, and for how many milliseconds. An
/// allowed answer lives no longer than the configured TTL nor what the
/// companion said; refusals of a token (401, 403) live the short negative
/// TTL; malformed requests and failures are never cached.
pub fn cacheable(decision: &Decision, config: &CacheConfig) -> Option<(Cached, u64)> {
    match decision {
        Decision::Allow { headers, cache_ttl } => {
            let ttl = config.ttl_seconds.min(*cache_ttl);
            Some((Cached::Allow(headers.clone()), ttl * 1000))
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
    fn nothing_is_served_from_cache_before_the_first_cursor() {
        let mut state = CacheState::new(&config());
        let key = cache_key("Bearer t", "/p");
        state
            .answers
            .insert(key, Cached::Allow(vec![]), None, 60_000, 0);
        assert_eq!(state.poll_path(), "/ingress/changes");
        assert!(state.lookup(&key, 1).is_none());
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#)
            .unwrap();
        assert_eq!(state.poll_path(), "/ingress/changes?since=7");
        assert!(state.lookup(&key, 1).is_some());
    }

    #[test]
    fn the_feed_evicts_the_keys_it_names_or_everything_on_reset() {
        let mut state = CacheState::new(&config());
        state
            .apply(br#"{"cursor":1,"keys":[],"reset":false}"#)
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
        assert_eq!(state.apply(page.as_bytes()), Ok(1));
        assert!(state.lookup(&a, 1).is_none() && state.lookup(&b, 1).is_some());
        assert_eq!(
            state.apply(br#"{"cursor":0,"keys":[],"reset":true}"#),
            Ok(1)
        );
        assert!(state.answers.is_empty());
        assert!(state.apply(b"<html>").is_err());
        assert_eq!(state.cursor, Some(0), "a bad page moves nothing");
    }
}
