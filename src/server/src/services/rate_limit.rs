//! Bounds on what strangers may do without a token: a fixed window of so
//! many events per key (a client address, a client id), on the service's
//! clock. Memory is bounded too: past `max_keys` live windows a new key is
//! refused rather than remembered, so a flood of keys (IPv6 addresses are
//! plentiful) cannot grow it. Per process: with several replicas, each
//! allows its own share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;

pub struct RateLimiter {
    limit: u32,
    window: u64,
    max_keys: usize,
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u64,
}

impl RateLimiter {
    /// At most `limit` events per key per `window` seconds.
    pub fn new(limit: u32, window: u64, max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            window,
            max_keys,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key`, unless its window is full: the test
    /// and the count under one lock, so parallel callers cannot all pass.
    pub fn hit(&self, key: &str) -> Result<(), Limited> {
        let now = self.clock.now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let live = |start: u64| now < start.saturating_add(self.window);
        if !windows.contains_key(key) && windows.len() >= self.max_keys {
            windows.retain(|_, (start, _)| live(*start));
            if windows.len() >= self.max_keys {
                return Err(Limited {
                    retry_after: self.window,
                });
            }
        }
        let slot = windows.entry(key.to_owned()).or_insert((now, 0));
        if !live(slot.0) {
            *slot = (now, 0);
        }
        if slot.1 >= self.limit {
            return Err(Limited {
                retry_after: slot
                    .0
                    .saturating_add(self.window)
                    .saturating_sub(now)
                    .max(1),
            });
        }
        slot.1 += 1;
        Ok(())
    }

    /// Takes back one event counted for `key` in its current window: for
    /// a caller that counts an attempt before knowing whether it fails (so
    /// that parallel attempts cannot all pass one check) and then learns
    /// it did not.
    pub fn refund(&self, key: &str) {
        let now = self.clock.now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, n)) = windows.get_mut(key) {
            if now < start.saturating_add(self.window) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_key_gets_its_limit_per_window_and_is_told_when_to_retry() {
        let clock = Arc::new(ManualClock::at(1000));
        let limiter = RateLimiter::new(3, 60, 10, clock.clone());
        for _ in 0..3 {
            limiter.hit("a").unwrap();
        }
        assert_eq!(limiter.hit("a"), Err(Limited { retry_after: 60 }));
        limiter.hit("b").unwrap();
        clock.advance(Duration::from_secs(59));
        assert_eq!(limiter.hit("a"), Err(Limited { retry_after: 1 }));
        clock.advance(Duration::from_secs(1));
        limiter.hit("a").unwrap();
    }

    #[test]
    fn a_refund_gives_back_one_event_of_the_current_window_only() {
        let clock = Arc::new(ManualClock::at(1000));
        let limiter = RateLimiter::new(2, 60, 10, clock.clone());
        limiter.hit("a").unwrap();
        limiter.hit("a").unwrap();
        limiter.refund("a");
        limiter.hit("a").unwrap();
        assert!(limiter.hit("a").is_err());
        // A refund of nothing, or of a window gone by, adds no room.
        limiter.refund("b");
        clock.advance(Duration::from_secs(60));
        limiter.refund("a");
        limiter.hit("a").unwrap();
        limiter.hit("a").unwrap();
        assert!(limiter.hit("a").is_err());
    }

    #[test]
    fn memory_is_bounded_by_refusing_new_keys_while_full() {
        let clock = Arc::new(ManualClock::at(1000));
        let limiter = RateLimiter::new(1, 60, 2, clock.clone());
        limiter.hit("a").unwrap();
        limiter.hit("b").unwrap();
        assert!(limiter.hit("c").is_err());
        clock.advance(Duration::from_secs(60));
        limiter.hit("c").unwrap();
    }
}
