//! The filter's Envoy stats: what is counted, under which names. The glue
//! defines them once per VM; Envoy keys stats by name, so every worker's
//! counts land in the same counters.

use crate::decision::Decision;

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
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::Allowed,
        Event::Unchecked,
        Event::Denied400,
        Event::Denied401,
        Event::Denied403,
        Event::Unavailable,
        Event::CalloutError,
        Event::BadRoutePolicy,
        Event::LoginRedirect,
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
        }
    }

    /// Position in [`Event::ALL`], for a table of metric ids.
    pub fn index(self) -> usize {
        self as usize
    }

    /// What a check's decision counts as.
    pub fn of(decision: &Decision) -> &'static [Event] {
        match decision {
            Decision::Allow(_) => &[Event::Allowed],
            Decision::Refuse(r) if r.status == 400 => &[Event::Denied400],
            Decision::Refuse(r) if r.status == 401 => &[Event::Denied401],
            Decision::Refuse(_) => &[Event::Denied403],
            Decision::Unavailable(_) => &[Event::Unavailable, Event::CalloutError],
        }
    }
}

/// Histogram of the check callout's round trip, in milliseconds.
pub const CALLOUT_LATENCY: &str = "portcullis.callout_latency_ms";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Refusal;

    #[test]
    fn every_event_has_its_own_name_and_index() {
        for (i, event) in Event::ALL.iter().enumerate() {
            assert_eq!(event.index(), i);
            assert!(event.name().starts_with("portcullis."));
        }
        let mut names: Vec<_> = Event::ALL.iter().map(|e| e.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Event::ALL.len());
    }

    #[test]
    fn decisions_count_by_outcome() {
        let refusal = |status| {
            Decision::Refuse(Refusal {
                status,
                www_authenticate: None,
                body: vec![],
            })
        };
        assert_eq!(Event::of(&Decision::Allow(vec![])), [Event::Allowed]);
        assert_eq!(Event::of(&refusal(400)), [Event::Denied400]);
        assert_eq!(Event::of(&refusal(401)), [Event::Denied401]);
        assert_eq!(Event::of(&refusal(403)), [Event::Denied403]);
        assert_eq!(
            Event::of(&Decision::Unavailable("x".into())),
            [Event::Unavailable, Event::CalloutError]
        );
    }
}
