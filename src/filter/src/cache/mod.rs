//! The filter's cache of check answers, behind one front. Two tiers: this
//! worker's own ([`answers`]), and Envoy's shared data, which every worker
//! reads ([`shared`]). The change feed ([`feed`]) keeps both honest: no
//! answer is served while the feed is silent, none is trusted that was
//! asked for before a change to its token. A request looks up, and on a
//! miss gets a [`Pending`] to remember the companion's answer with (or to
//! find a stale one by, should the companion fail).

mod answers;
mod feed;
mod shared;

pub use answers::Cached;

use answers::{cache_key, AnswerCache, CacheKey};
use feed::FeedView;
use shared::SharedEntry;

use crate::config::CacheConfig;
use crate::decision::Decision;
use crate::flow::Host;
use crate::request;
use crate::stats::Event;

/// One worker's cache, shared by its root context (which polls the feed)
/// and its requests.
pub struct Cache {
    config: CacheConfig,
    local: AnswerCache,
    feed: FeedView,
}

/// A miss: where the companion's answer goes, the key of the token it is
/// about (for eviction on revocation), and the feed cursor it is asked at
/// (none before the feed first answers: then it is not stored).
#[derive(Debug)]
pub struct Pending {
    key: CacheKey,
    token_key: Option<String>,
    asked_at: Option<i64>,
}

#[derive(Debug)]
pub enum Lookup {
    Hit(Cached),
    Miss(Pending),
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            config: config.clone(),
            local: AnswerCache::new(config.max_entries),
            feed: FeedView::new(config),
        }
    }

    /// The cached answer for this credential and policy, from this worker
    /// or the shared tier, counting the hit or miss.
    pub fn lookup(&mut self, host: &impl Host, credential: &str, check_path: &str) -> Lookup {
        let key = cache_key(credential, check_path);
        let now = host.now_ms();
        if let Some((hit, tier)) = self.served(host, &key, now) {
            host.count(tier);
            return Lookup::Hit(hit);
        }
        host.count(Event::CacheMiss);
        Lookup::Miss(Pending {
            key,
            token_key: request::token_key(credential),
            asked_at: self.feed.cursor(),
        })
    }

    /// Stores the companion's answer here and, for the other workers, in
    /// the shared tier.
    pub fn remember(&mut self, host: &impl Host, pending: &Pending, decision: &Decision) {
        let Some(asked_at) = pending.asked_at else {
            return;
        };
        let now = host.now_ms();
        let Some((cached, ttl_ms)) = cacheable(decision, &self.config, now) else {
            return;
        };
        // Built before `cached` is moved into this worker's tier, and only
        // when the shared tier will take it.
        let shared = self.shared_slots().filter(|_| ttl_ms > 0).map(|slots| {
            let entry = SharedEntry::new(
                &pending.key,
                &cached,
                pending.token_key.clone(),
                asked_at,
                now + ttl_ms,
            );
            (shared::slot_name(&pending.key, slots), entry)
        });
        if !self.store(
            pending.key,
            cached,
            pending.token_key.clone(),
            asked_at,
            ttl_ms,
            now,
        ) {
            return;
        }
        if let Some(until) = stale_until(decision, &self.config, now + ttl_ms) {
            self.local.keep_until(&pending.key, until);
        }
        if let Some((slot, entry)) = shared {
            let (_, cas) = host.shared(&slot);
            host.set_shared(&slot, &entry.encode(), cas);
        }
    }

    /// Stale-if-error: an allowed answer past its freshness, if the
    /// configuration keeps one. Off unless configured: then a failing
    /// companion is a 503, even for an answer still fresh but not served
    /// (the feed fell silent).
    pub fn stale_answer(
        &self,
        pending: &Pending,
        now_ms: u64,
    ) -> Option<Vec<(&'static str, String)>> {
        if self.config.stale_if_error_seconds == 0 {
            return None;
        }
        match self.local.get_stale(&pending.key, now_ms) {
            Some(Cached::Allow(identity)) => Some(identity),
            _ => None,
        }
    }

    /// How many answers this worker holds (never more than `max_entries`).
    pub fn len(&self) -> usize {
        self.local.len()
    }

    pub fn is_empty(&self) -> bool {
        self.local.len() == 0
    }

    /// `:path` of the next poll of the change feed.
    pub fn poll_path(&self) -> String {
        self.feed.poll_path()
    }

    /// Applies one page of the feed; how many cached answers it dropped.
    pub fn apply(&mut self, body: &[u8], now_ms: u64) -> Result<usize, String> {
        let changes = self.feed.apply(body, now_ms)?;
        if changes.reset {
            let all = self.local.len();
            self.local.clear();
            return Ok(all);
        }
        Ok(changes
            .keys
            .iter()
            .map(|key| self.local.evict_token(key.as_str()))
            .sum())
    }

    /// The answer for `key` from this worker or the shared tier, and which
    /// tier; none while the feed lets nothing be served (the shared tier is
    /// then not even read).
    fn served(&mut self, host: &impl Host, key: &CacheKey, now_ms: u64) -> Option<(Cached, Event)> {
        if !self.feed.serves(now_ms) {
            return None;
        }
        if let Some(hit) = self.local.get(key, now_ms) {
            return Some((hit, Event::CacheHitLocal));
        }
        self.shared_hit(host, key, now_ms)
            .map(|hit| (hit, Event::CacheHitShared))
    }

    /// An answer another worker put in the shared tier, if this worker can
    /// trust it; copied into this worker's cache for the rest of its life.
    fn shared_hit(&mut self, host: &impl Host, key: &CacheKey, now: u64) -> Option<Cached> {
        let slots = self.shared_slots()?;
        let (bytes, _) = host.shared(&shared::slot_name(key, slots));
        let entry = SharedEntry::read(&bytes?, key, now)?;
        let cached = entry.cached()?;
        let ttl_ms = entry.expires_at_ms - now;
        self.store(
            *key,
            cached.clone(),
            entry.token_key,
            entry.asked_at,
            ttl_ms,
            now,
        )
        .then_some(cached)
    }

    /// Stores an answer asked for at `asked_at`, unless its token changed
    /// since (then the answer may be out of date and is dropped). True
    /// when it was stored.
    fn store(
        &mut self,
        key: CacheKey,
        cached: Cached,
        token_key: Option<String>,
        asked_at: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> bool {
        let trusted = self.feed.trusts(token_key.as_deref(), asked_at);
        if trusted {
            self.local.insert(key, cached, token_key, ttl_ms, now_ms);
        }
        trusted
    }

    fn shared_slots(&self) -> Option<u32> {
        Some(self.config.shared_slots).filter(|s| *s > 0)
    }
}

/// Until when (ms) an allowed answer may be served stale while the
/// companion fails: `stale_if_error_seconds` past its freshness, never past
/// the token's own expiry, and never for an answer carrying a delegated
/// token (its minimum lifetime could not be kept).
fn stale_until(decision: &Decision, config: &CacheConfig, fresh_until_ms: u64) -> Option<u64> {
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

/// What of a decision made at `now_ms` may be cached, and for how many
/// milliseconds. An allowed answer lives no longer than the configured
/// TTL, nor what the companion said, nor the token itself (the companion
/// promises that much; the cache does not rely on it); refusals of a token
/// (401, 403) live the short negative TTL; malformed requests and failures
/// are never cached.
fn cacheable(decision: &Decision, config: &CacheConfig, now_ms: u64) -> Option<(Cached, u64)> {
    match decision {
        Decision::Allow {
            headers,
            cache_ttl,
            token_expires,
        } => {
            let ttl_ms = config.ttl_seconds.min(*cache_ttl).saturating_mul(1000);
            let ttl_ms = token_expires.map_or(ttl_ms, |e| {
                ttl_ms.min(e.saturating_mul(1000).saturating_sub(now_ms))
            });
            Some((Cached::Allow(headers.clone()), ttl_ms))
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
    use crate::fake_host::FakeHost;

    /// What a request at `now_ms` would be served for `key`.
    fn hit(state: &mut Cache, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        state
            .served(&FakeHost::default(), key, now_ms)
            .map(|(hit, _)| hit)
    }
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
        let cacheable = |decision: &Decision, config: &CacheConfig| cacheable(decision, config, 0);
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
    fn no_answer_is_fresh_past_its_token() {
        let expiring = |token_expires| Decision::Allow {
            headers: vec![],
            cache_ttl: 60,
            token_expires: Some(token_expires),
        };
        let ttl = |decision, now_ms| cacheable(&decision, &config(), now_ms).map(|c| c.1);
        assert_eq!(ttl(expiring(100), 90_000), Some(10_000), "the token's end");
        assert_eq!(
            ttl(expiring(1000), 90_000),
            Some(60_000),
            "the answer's TTL"
        );
        assert_eq!(ttl(expiring(90), 90_000), Some(0), "expired: not kept");
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
        let mut state = Cache::new(&config());
        let key = cache_key("Bearer t", "/p");
        state
            .local
            .insert(key, Cached::Allow(vec![]), None, 60_000, 0);
        assert_eq!(state.poll_path(), "/ingress/changes");
        assert!(hit(&mut state, &key, 1).is_none());
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#, 0)
            .unwrap();
        assert_eq!(state.poll_path(), "/ingress/changes?since=7");
        assert!(hit(&mut state, &key, 1).is_some());
    }

    #[test]
    fn a_silent_feed_stops_the_cache_serving_until_it_answers_again() {
        let mut state = Cache::new(&config());
        let key = cache_key("Bearer t", "/p");
        state
            .local
            .insert(key, Cached::Allow(vec![]), None, 600_000, 0);
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#, 1_000)
            .unwrap();
        assert!(hit(&mut state, &key, 4_000).is_some(), "within the lag");
        assert!(!state.feed.serves(4_001));
        assert!(
            hit(&mut state, &key, 4_001).is_none(),
            "a revocation may be unheard"
        );
        assert!(hit(&mut state, &key, 60_000).is_none());
        state
            .apply(br#"{"cursor":7,"keys":[],"reset":false}"#, 60_000)
            .unwrap();
        assert!(hit(&mut state, &key, 60_001).is_some(), "heard again");
    }

    #[test]
    fn an_answer_asked_for_before_its_token_was_revoked_is_not_stored() {
        let mut state = Cache::new(&config());
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
            hit(&mut state, &a, 21).is_none(),
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
        assert!(hit(&mut state, &a, 21).is_some() && hit(&mut state, &b, 21).is_some());
        // After a reset, nothing asked for before it is stored.
        state
            .apply(br#"{"cursor":9,"keys":[],"reset":true}"#, 30)
            .unwrap();
        state.store(b, Cached::Allow(vec![]), None, 8, 60_000, 40);
        assert!(hit(&mut state, &b, 41).is_none());
        // Revocations are forgotten once no answer can still be waiting.
        state.apply(page.as_bytes(), 50).unwrap();
        assert!(state.feed.outdates(Some(key), 5));
        state
            .apply(br#"{"cursor":9,"keys":[],"reset":false}"#, 50 + 120_001)
            .unwrap();
        assert!(!state.feed.outdates(Some(key), 10));
    }

    #[test]
    fn the_feed_evicts_the_keys_it_names_or_everything_on_reset() {
        let mut state = Cache::new(&config());
        state
            .apply(br#"{"cursor":1,"keys":[],"reset":false}"#, 0)
            .unwrap();
        let key = "AAAAAAAAAAAAAAAAAAAAAA";
        let (a, b) = (cache_key("Bearer a", "/p"), cache_key("Bearer b", "/p"));
        state
            .local
            .insert(a, Cached::Allow(vec![]), Some(key.into()), 60_000, 0);
        state.local.insert(
            b,
            Cached::Allow(vec![]),
            Some("BBBBBBBBBBBBBBBBBBBBBA".into()),
            60_000,
            0,
        );
        let page = format!(r#"{{"cursor":2,"keys":["{key}"],"reset":false}}"#);
        assert_eq!(state.apply(page.as_bytes(), 0), Ok(1));
        assert!(hit(&mut state, &a, 1).is_none() && hit(&mut state, &b, 1).is_some());
        assert_eq!(
            state.apply(br#"{"cursor":0,"keys":[],"reset":true}"#, 0),
            Ok(1)
        );
        assert!(state.local.is_empty());
        assert!(state.apply(b"<html>", 0).is_err());
        assert_eq!(state.feed.cursor(), Some(0), "a bad page moves nothing");
    }
}
