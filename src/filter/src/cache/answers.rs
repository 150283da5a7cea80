//! The per-worker cache of check answers: bounded, each entry living no
//! longer than the configured TTL and what the companion allowed, and
//! evictable by token key when the companion reports a revocation.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::decision::Refusal;
use crate::request::Shown;

/// A hash of the credential and the policy: the token itself is never kept.
pub type CacheKey = [u8; 32];

pub fn cache_key(credential: &str, check_path: &str) -> CacheKey {
    let mut hash = Sha256::new();
    hash.update(credential.as_bytes());
    // A separator that neither part can contain, so no two pairs collide.
    hash.update([0]);
    hash.update(check_path.as_bytes());
    hash.finalize().into()
}

/// A decision worth reusing.
#[derive(Clone, PartialEq, Eq)]
pub enum Cached {
    Allow(Vec<(&'static str, String)>),
    Refuse(Refusal),
}

/// The identity may hold a delegated token: shown redacted.
impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cached::Allow(identity) => f.debug_tuple("Allow").field(&Shown(identity)).finish(),
            Cached::Refuse(refusal) => f.debug_tuple("Refuse").field(refusal).finish(),
        }
    }
}

struct Entry {
    value: Cached,
    token_key: Option<String>,
    expires_at_ms: u64,
    /// Kept (but served only on the companion's failure) until then; at
    /// least `expires_at_ms`.
    kept_until_ms: u64,
    /// Which insertion this is, so an older place in `order` for the same
    /// key is known to be stale.
    generation: u64,
}

pub struct AnswerCache {
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order, oldest first, for eviction when full. A place
    /// whose generation no longer matches its entry is stale and skipped.
    order: VecDeque<(CacheKey, u64)>,
    by_token: HashMap<String, Vec<CacheKey>>,
    max_entries: usize,
    next_generation: u64,
}

impl AnswerCache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            by_token: HashMap::new(),
            max_entries: max_entries.max(1),
            next_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached decision, if there is one that has not expired.
    pub fn get(&mut self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        match self.entries.get(key) {
            Some(entry) if entry.expires_at_ms > now_ms => Some(entry.value.clone()),
            Some(entry) if entry.kept_until_ms > now_ms => None,
            Some(_) => {
                self.remove(key);
                None
            }
            None => None,
        }
    }

    /// An allowed answer past its freshness but still kept, for when the
    /// companion cannot be asked (stale-if-error).
    pub fn get_stale(&self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        let entry = self.entries.get(key).filter(|e| e.kept_until_ms > now_ms)?;
        matches!(entry.value, Cached::Allow(_)).then(|| entry.value.clone())
    }

    /// Keeps the entry for `key` until `until_ms`, past its freshness.
    pub fn keep_until(&mut self, key: &CacheKey, until_ms: u64) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.kept_until_ms = entry.kept_until_ms.max(until_ms);
        }
    }

    pub fn insert(
        &mut self,
        key: CacheKey,
        value: Cached,
        token_key: Option<String>,
        ttl_ms: u64,
        now_ms: u64,
    ) {
        if ttl_ms == 0 {
            return;
        }
        self.remove(&key);
        while self.entries.len() >= self.max_entries {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            if self.is_current(&oldest, generation) {
                self.remove(&oldest);
            }
        }
        if let Some(token) = &token_key {
            self.by_token.entry(token.clone()).or_default().push(key);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let expires_at_ms = now_ms + ttl_ms;
        let entry = Entry {
            value,
            token_key,
            expires_at_ms,
            kept_until_ms: expires_at_ms,
            generation,
        };
        self.entries.insert(key, entry);
        self.order.push_back((key, generation));
        // Stale places pile up on reinsertion and removal: drop them now
        // and then, so the queue stays within twice the bound.
        if self.order.len() > 2 * self.max_entries {
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    fn is_current(&self, key: &CacheKey, generation: u64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.generation == generation)
    }

    /// Drops every answer for the token with this key; how many there were.
    pub fn evict_token(&mut self, token_key: &str) -> usize {
        let keys = self.by_token.remove(token_key).unwrap_or_default();
        keys.iter()
            .filter(|k| self.entries.remove(*k).is_some())
            .count()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.by_token.clear();
    }

    fn remove(&mut self, key: &CacheKey) {
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        if let Some(token) = entry.token_key {
            if let Some(keys) = self.by_token.get_mut(&token) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.by_token.remove(&token);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(user: &str) -> Cached {
        Cached::Allow(vec![("x-auth-request-user", user.to_owned())])
    }

    #[test]
    fn keys_differ_by_credential_and_policy_and_hide_the_token() {
        let a = cache_key("Bearer gt-a", "/ingress/auth?satisfy=all");
        assert_ne!(a, cache_key("Bearer gt-b", "/ingress/auth?satisfy=all"));
        assert_ne!(
            a,
            cache_key("Bearer gt-a", "/ingress/auth?scope=x&satisfy=all")
        );
        assert_ne!(cache_key("ab", "c"), cache_key("a", "bc"));
        assert!(!a.windows(4).any(|w| w == b"gt-a"));
    }

    #[test]
    fn entries_live_until_their_ttl_and_no_longer() {
        let mut cache = AnswerCache::new(10);
        let key = cache_key("Bearer t", "/p");
        cache.insert(key, allow("alice"), Some("k".into()), 1000, 5000);
        assert_eq!(cache.get(&key, 5999), Some(allow("alice")));
        assert_eq!(cache.get(&key, 6000), None);
        assert!(cache.is_empty(), "expired entries are dropped");
        cache.insert(key, allow("alice"), None, 0, 5000);
        assert!(cache.is_empty(), "a zero TTL caches nothing");
    }

    #[test]
    fn the_cache_stays_within_its_bound_dropping_the_oldest() {
        let mut cache = AnswerCache::new(3);
        let keys: Vec<CacheKey> = (0..5).map(|i| cache_key(&format!("t{i}"), "/p")).collect();
        for (i, key) in keys.iter().enumerate() {
            cache.insert(
                *key,
                allow(&i.to_string()),
                Some(format!("k{i}")),
                60_000,
                0,
            );
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&keys[0], 1), None);
        assert_eq!(cache.get(&keys[4], 1), Some(allow("4")));
        for _ in 0..100 {
            cache.insert(keys[4], allow("4"), Some("k4".into()), 60_000, 0);
        }
        assert!(cache.order.len() <= 6, "reinsertions do not grow the queue");
    }

    #[test]
    fn stale_answers_are_kept_but_served_only_when_asked_for() {
        let mut cache = AnswerCache::new(10);
        let key = cache_key("Bearer t", "/p");
        cache.insert(key, allow("alice"), Some("k".into()), 1000, 0);
        cache.keep_until(&key, 5000);
        assert_eq!(cache.get(&key, 1500), None, "not fresh");
        assert_eq!(
            cache.get_stale(&key, 1500),
            Some(allow("alice")),
            "but kept"
        );
        assert_eq!(cache.get_stale(&key, 5000), None);
        assert_eq!(cache.get(&key, 5000), None);
        assert!(cache.is_empty(), "dropped once past keeping");
        let refusal = Cached::Refuse(Refusal {
            status: 403,
            www_authenticate: None,
            body: vec![],
        });
        cache.insert(key, refusal, None, 1000, 0);
        cache.keep_until(&key, 5000);
        assert_eq!(
            cache.get_stale(&key, 1500),
            None,
            "only allowed answers go stale"
        );
        cache.insert(key, allow("a"), Some("k".into()), 1000, 0);
        cache.keep_until(&key, 5000);
        cache.evict_token("k");
        assert_eq!(
            cache.get_stale(&key, 1500),
            None,
            "revocation drops stale answers too"
        );
    }

    #[test]
    fn revocation_evicts_every_answer_for_the_token() {
        let mut cache = AnswerCache::new(10);
        let (a1, a2, b) = (
            cache_key("Bearer a", "/p1"),
            cache_key("Bearer a", "/p2"),
            cache_key("Bearer b", "/p1"),
        );
        cache.insert(a1, allow("a"), Some("ka".into()), 60_000, 0);
        cache.insert(a2, allow("a"), Some("ka".into()), 60_000, 0);
        cache.insert(b, allow("b"), Some("kb".into()), 60_000, 0);
        assert_eq!(cache.evict_token("ka"), 2);
        assert_eq!(cache.get(&a1, 1), None);
        assert_eq!(cache.get(&b, 1), Some(allow("b")));
        assert_eq!(cache.evict_token("ka"), 0);
        cache.clear();
        assert!(cache.is_empty());
    }
}
