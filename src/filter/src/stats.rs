//! The filter's Envoy stats: what is counted, under which names. The glue
//! defines them once per VM; Envoy keys stats by name, so every worker's
//! counts land in the same counters.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Let through after a check.
    Allowed,
    /// Let through with no check: an anonymous route or a CORS preflight.
    Unchecked,
    Denied400,
    Denied401,
    Denied403,
    /// Answered 503 because the companion failed.
    Unavailable,
    /// The check callout failed: not dispatched, reset, timed out, or an
    /// answer that could not be used.
    CalloutError,
    /// A route's metadata policy was invalid (answered 500).
    BadRoutePolicy,
    /// A browser sent to log in (302) instead of a 401.
    LoginRedirect,
    /// Answered from this worker's cache.
    CacheHitLocal,
    /// Answered from the cross-worker tier (shared data).
    CacheHitShared,
    CacheMiss,
    /// An allowed answer served past its freshness while the companion failed.
    StaleServed,
    /// Cached answers dropped because the companion reported their token
    /// revoked, expired or changed.
    RevocationsApplied,
    /// A poll of the change feed that failed.
    FeedErrors,
}

impl Event {
    pub const ALL: [Event; 15] = [
        Event::Allowed,
        Event::Unchecked,
        Event::Denied400,
        Event::Denied401,
        Event::Denied403,
        Event::Unavailable,
        Event::CalloutError,
        Event::BadRoutePolicy,
        Event::LoginRedirect,
        Event::CacheHitLocal,
        Event::CacheHitShared,
        Event::CacheMiss,
        Event::StaleServed,
        Event::RevocationsApplied,
        Event::FeedErrors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Allowed => "portcullis.allowed",
            Event::Unchecked => "portcullis.unchecked",
            Event::Denied400 => "portcullis.denied_400",
            Event::Denied401 => "portcullis.denied_401",
            Event::Denied403 => "portcullis.denied_403",
            Event::Unavailable => "portcullis.unavailable",
            Event::CalloutError => "portcullis.callout_errors",
            Event::BadRoutePolicy => "portcullis.bad_route_policy",
            Event::LoginRedirect => "portcullis.login_redirects",
            Event::CacheHitLocal => "portcullis.cache_hits_local",
            Event::CacheHitShared => "portcullis.cache_hits_shared",
            Event::CacheMiss => "portcullis.cache_misses",
            Event::StaleServed => "portcullis.stale_served",
            Event::RevocationsApplied => "portcullis.revocations_applied",
            Event::FeedErrors => "portcullis.feed_errors",
        }
    }

    /// Position in [`Event::ALL`], for a table of metric ids.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Histogram of the check callout's round trip, in milliseconds.
pub const CALLOUT_LATENCY: &str = "portcullis.callout_latency_ms";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_name_and_index() {
        for (i, event) in Event::ALL.iter().enumerate() {
            assert_eq!(event.index(), i);
            assert!(event.name().starts_with("portcullis."));
        }
        // Every pair, not only neighbours: two events of one name would
        // count into one statistic.
        let names: std::collections::HashSet<_> = Event::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), Event::ALL.len());
    }
}
