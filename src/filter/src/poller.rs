//! The change feed's poller: one poll in flight at a time; every failure
//! counted, and logged once until the feed answers again (a silent feed
//! on every tick would flood the log). Pure: the glue sends the callout
//! it asks for and hands back the answer.

use crate::cache::Cache;
use crate::flow::{Host, Level};
use crate::request;
use crate::stats::Event;

#[derive(Debug, Default)]
pub struct FeedPoller {
    /// A poll is under way.
    polling: bool,
    /// The last poll failed (and was logged).
    failing: bool,
}

impl FeedPoller {
    /// On a tick: the headers of the poll to send, unless one is under way.
    pub fn due(&self, authority: &str, cache: &Cache) -> Option<Vec<(&'static str, String)>> {
        (!self.polling).then(|| request::callout_headers(authority, &cache.poll_path(), None))
    }

    /// The poll `due` asked for went out.
    pub fn sent(&mut self) {
        self.polling = true;
    }

    /// The poll could not be sent.
    pub fn not_sent(&mut self, host: &impl Host, why: &str) {
        self.failed(host, &format!("not dispatched: {why}"));
    }

    /// The companion's answer (no status when the poll timed out).
    pub fn answered(
        &mut self,
        host: &impl Host,
        cache: &mut Cache,
        status: Option<&[u8]>,
        body: &[u8],
    ) {
        self.polling = false;
        if status != Some(b"200") {
            return self.failed(host, "the companion did not answer 200");
        }
        match cache.apply(body, host.now_ms()) {
            Ok(dropped) => {
                host.count_by(Event::RevocationsApplied, dropped as u64);
                if self.failing {
                    host.log(Level::Info, "portcullis: change feed: answering again");
                }
                self.failing = false;
            }
            Err(reason) => self.failed(host, &reason),
        }
    }

    fn failed(&mut self, host: &impl Host, reason: &str) {
        host.count(Event::FeedErrors);
        if !self.failing {
            host.log(Level::Warn, &format!("portcullis: change feed: {reason}"));
        }
        self.failing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FilterConfig;
    use crate::fake_host::FakeHost;

    fn cache() -> Cache {
        let config = FilterConfig::from_json(br#"{"cluster":"c","cache":{}}"#).unwrap();
        Cache::new(config.cache.as_ref().unwrap())
    }

    #[test]
    fn one_poll_is_in_flight_at_a_time() {
        let (host, mut cache, mut poller) = (FakeHost::default(), cache(), FeedPoller::default());
        let headers = poller.due("auth", &cache).unwrap();
        assert!(
            headers.contains(&(":path", "/ingress/changes".to_owned())),
            "{headers:?}"
        );
        poller.sent();
        assert!(poller.due("auth", &cache).is_none(), "still under way");
        poller.answered(
            &host,
            &mut cache,
            Some(b"200"),
            br#"{"cursor":7,"keys":[],"reset":false}"#,
        );
        let headers = poller.due("auth", &cache).unwrap();
        assert!(
            headers.contains(&(":path", "/ingress/changes?since=7".to_owned())),
            "{headers:?}"
        );
    }

    #[test]
    fn failures_are_counted_each_time_and_logged_once_until_the_feed_answers() {
        let (host, mut cache, mut poller) = (FakeHost::default(), cache(), FeedPoller::default());
        poller.sent();
        poller.answered(&host, &mut cache, Some(b"503"), b"");
        poller.not_sent(&host, "BadArgument");
        poller.sent();
        poller.answered(&host, &mut cache, None, b"");
        poller.sent();
        poller.answered(&host, &mut cache, Some(b"200"), b"not json");
        assert_eq!(host.counted(Event::FeedErrors), 4);
        assert_eq!(host.logs.borrow().len(), 1, "{:?}", host.logs.borrow());
        assert_eq!(host.logs.borrow()[0].0, Level::Warn);
        assert!(host.logs.borrow()[0].1.contains("did not answer 200"));

        poller.sent();
        poller.answered(
            &host,
            &mut cache,
            Some(b"200"),
            br#"{"cursor":3,"keys":[],"reset":false}"#,
        );
        assert_eq!(host.logs.borrow().len(), 2);
        assert_eq!(
            host.logs.borrow()[1],
            (
                Level::Info,
                "portcullis: change feed: answering again".to_owned()
            )
        );
        // Quiet while it keeps answering; the next failure is news again.
        poller.sent();
        poller.answered(
            &host,
            &mut cache,
            Some(b"200"),
            br#"{"cursor":3,"keys":[],"reset":false}"#,
        );
        poller.sent();
        poller.answered(&host, &mut cache, Some(b"500"), b"");
        assert_eq!(host.logs.borrow().len(), 3);
        assert_eq!(host.counted(Event::FeedErrors), 5);
    }
}
