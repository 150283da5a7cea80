//! A request's way through the filter: choose the policy, take the
//! credential, answer from cache or ask the companion, act on the answer.
//! Everything but the host calls themselves, over a small [`Host`] trait,
//! so that it runs natively in tests against a fake host. The proxy-wasm
//! glue only carries out the [`Start`] and [`Step`] it returns.

use std::cell::RefCell;
use std::rc::Rc;

use portcullis_core::{cookie, Token};

use crate::browser;
use crate::cache::{Cache, Cached, Lookup, Pending};
use crate::config::FilterConfig;
use crate::decision::{
    self, CheckReply, Decision, Refusal, AMBIGUOUS_PATH_BODY, BAD_AUTHORIZATION_BODY,
    BAD_ROUTE_POLICY_BODY, UNAVAILABLE_BODY,
};
use crate::invalid::ConfigError;
use crate::policy::Policy;
use crate::request::{self, Shown};
use crate::routing::{self, AmbiguousPath, MetadataPolicies, RequestFacts};
use crate::stats::Event;

/// Where a route's own policy sits in its metadata, as a JSON string.
const ROUTE_POLICY: [&str; 5] = [
    "xds",
    "route_metadata",
    "filter_metadata",
    "portcullis",
    "policy",
];
const JSON: (&str, &str) = ("content-type", "application/json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the flow needs of the proxy.
pub trait Host {
    fn request_headers(&self) -> Vec<(String, Vec<u8>)>;
    fn request_header(&self, name: &str) -> Option<Vec<u8>>;
    /// Sets (replacing every copy) or, with `None`, removes a header.
    fn set_request_header(&self, name: &str, value: Option<&[u8]>);
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// A shared-data value and its compare-and-swap token.
    fn shared(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes shared data unless `cas` is stale (then another worker won).
    fn set_shared(&self, key: &str, value: &[u8], cas: Option<u32>);
    fn now_ms(&self) -> u64;
    fn count(&self, event: Event) {
        self.count_by(event, 1);
    }
    fn count_by(&self, event: Event, n: u64);
    fn log(&self, level: Level, message: &str);
}

/// Why no policy could be chosen for a request.
#[derive(Debug, thiserror::Error)]
enum PolicyError {
    #[error(transparent)]
    Route(#[from] ConfigError),
    #[error(transparent)]
    Ambiguous(#[from] AmbiguousPath),
}

/// How a request ends for now.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// On to the upstream (the request headers are set).
    Continue,
    /// Answer the client.
    Reply {
        status: u32,
        headers: Vec<(&'static str, String)>,
        body: Option<Vec<u8>>,
    },
}

/// How a request starts: done, or waiting for the companion.
#[derive(PartialEq, Eq)]
pub enum Start {
    Done(Step),
    /// Ask the companion with these headers; then [`Flow::on_reply`], or
    /// [`Flow::on_no_reply`] if the call cannot be made.
    Ask(Vec<(&'static str, String)>),
}

/// The callout carries the caller's credential: shown redacted.
impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Done(step) => f.debug_tuple("Done").field(step).finish(),
            Start::Ask(headers) => f.debug_tuple("Ask").field(&Shown(headers)).finish(),
        }
    }
}

/// One request's flow.
pub struct Flow {
    config: Rc<FilterConfig>,
    route_policies: Rc<RefCell<MetadataPolicies>>,
    cache: Option<Rc<RefCell<Cache>>>,
    /// The policy the request is checked against, once chosen.
    policy: Option<Rc<Policy>>,
    /// On a cache miss: where the companion's answer goes (and where a
    /// stale one may be found).
    pending: Option<Pending>,
}

impl Flow {
    pub fn new(
        config: Rc<FilterConfig>,
        route_policies: Rc<RefCell<MetadataPolicies>>,
        cache: Option<Rc<RefCell<Cache>>>,
    ) -> Self {
        Self {
            config,
            route_policies,
            cache,
            policy: None,
            pending: None,
        }
    }

    /// The request's headers have arrived.
    pub fn on_request(&mut self, host: &impl Host) -> Start {
        let headers = host.request_headers();
        strip_reserved_headers(host, &headers);
        // Taken off every request, checked or not: the credential never
        // reaches the upstream.
        let session = self.take_session_cookie(host, &headers);
        let policy = match self.choose_policy(host, &headers) {
            Ok(policy) => policy,
            Err(PolicyError::Ambiguous(_)) => {
                host.count(Event::Denied400);
                return Start::Done(json_reply(400, AMBIGUOUS_PATH_BODY));
            }
            Err(PolicyError::Route(e)) => {
                // A route's metadata is not seen at configure time: an
                // invalid one fails closed here, and says why in the log.
                host.count(Event::BadRoutePolicy);
                host.log(Level::Error, &format!("portcullis: route policy: {e}"));
                return Start::Done(json_reply(500, BAD_ROUTE_POLICY_BODY));
            }
        };
        if policy.anonymous || (policy.cors_preflight && is_cors_preflight(&headers)) {
            host.set_request_header("authorization", None);
            host.count(Event::Unchecked);
            return Start::Done(Step::Continue);
        }
        let authorization = find(&headers, "authorization");
        let Ok(credential) = request::credential(session.as_ref(), authorization) else {
            host.count(Event::Denied400);
            return Start::Done(json_reply(400, BAD_AUTHORIZATION_BODY));
        };
        self.policy = Some(policy.clone());
        match credential
            .as_deref()
            .and_then(|c| self.cached(host, &policy, c))
        {
            Some(Cached::Allow(identity)) => {
                host.count(Event::Allowed);
                let_through(host, &identity);
                Start::Done(Step::Continue)
            }
            Some(Cached::Refuse(refusal)) => Start::Done(self.refuse(host, &refusal)),
            None => Start::Ask(request::callout_headers(
                &self.config.authority,
                &policy.check_path,
                credential.as_deref(),
            )),
        }
    }

    /// The companion answered.
    pub fn on_reply(&mut self, host: &impl Host, reply: &CheckReply<'_>) -> Step {
        let use_authorization = self
            .policy
            .as_ref()
            .is_some_and(|p| p.check.use_authorization);
        let decision = decision::decide(reply, use_authorization);
        self.remember(host, &decision);
        match decision {
            Decision::Allow { headers, .. } => {
                host.count(Event::Allowed);
                let_through(host, &headers);
                Step::Continue
            }
            Decision::Refuse(refusal) => self.refuse(host, &refusal),
            Decision::Unavailable(reason) => self.on_no_reply(host, &reason),
        }
    }

    /// The companion could not be asked, or gave nothing usable.
    pub fn on_no_reply(&mut self, host: &impl Host, reason: &str) -> Step {
        host.count(Event::CalloutError);
        if let Some(identity) = self.stale_answer(host) {
            host.log(
                Level::Warn,
                "portcullis: companion failed; serving a stale answer",
            );
            host.count(Event::StaleServed);
            host.count(Event::Allowed);
            let_through(host, &identity);
            return Step::Continue;
        }
        host.count(Event::Unavailable);
        host.log(Level::Warn, &format!("portcullis: {reason}; answering 503"));
        json_reply(503, UNAVAILABLE_BODY)
    }

    /// The route's own policy if its metadata has one, else the first rule
    /// that matches, else the default.
    fn choose_policy(
        &self,
        host: &impl Host,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Rc<Policy>, PolicyError> {
        if let Some(json) = host.property(&ROUTE_POLICY).filter(|j| !j.is_empty()) {
            return Ok(self.route_policies.borrow_mut().get_or_parse(&json)?);
        }
        let route = match self.config.reads_route_name {
            true => host.property(&["xds", "route_name"]),
            false => None,
        };
        let facts = RequestFacts {
            route: text(&route),
            host: find_text(headers, ":authority"),
            path: find(headers, ":path").unwrap_or_default(),
            method: find_text(headers, ":method").unwrap_or(""),
        };
        Ok(routing::select(&self.config.rules, &self.config.default_policy, &facts)?.clone())
    }

    /// Removes the session cookie (every copy, in every `Cookie` header)
    /// from the request, keeping the other cookies byte for byte, and
    /// returns the token of the first copy that opens with our key. A
    /// cookie that does not open is no credential at all.
    fn take_session_cookie(
        &self,
        host: &impl Host,
        headers: &[(String, Vec<u8>)],
    ) -> Option<Token> {
        let session = self.config.session_cookie.as_ref()?;
        let cookies: Vec<&[u8]> = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .map(|(_, value)| value.as_slice())
            .collect();
        let taken = cookie::take(&cookies, &session.name);
        if taken.values.is_empty() {
            return None;
        }
        host.set_request_header("cookie", taken.rest.as_deref());
        taken
            .values
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| session.seal.open(v))
    }

    /// Answers a refusal: the companion's status and challenge, or for a
    /// browser that must log in on a redirecting route, a 302.
    fn refuse(&self, host: &impl Host, refusal: &Refusal) -> Step {
        host.count(match refusal.status {
            400 => Event::Denied400,
            401 => Event::Denied401,
            _ => Event::Denied403,
        });
        let redirects = self.policy.as_ref().is_some_and(|p| p.login_redirect);
        if let (401, true, Some(login_url)) = (refusal.status, redirects, &self.config.login_url) {
            if browser::wants_html(text(&host.request_header("accept"))) {
                host.count(Event::LoginRedirect);
                let location = login_location(host, login_url);
                return Step::Reply {
                    status: 302,
                    headers: vec![("location", location), ("cache-control", "no-store".into())],
                    body: None,
                };
            }
        }
        let mut headers = vec![(JSON.0, JSON.1.to_owned())];
        if let Some(challenge) = &refusal.www_authenticate {
            headers.push(("www-authenticate", challenge.clone()));
        }
        Step::Reply {
            status: refusal.status,
            headers,
            body: Some(refusal.body.clone()),
        }
    }

    /// The cached answer for this credential and policy; on a miss,
    /// remembers where the answer will go.
    fn cached(&mut self, host: &impl Host, policy: &Policy, credential: &str) -> Option<Cached> {
        let cache = self.cache.as_ref()?;
        let found = cache
            .borrow_mut()
            .lookup(host, credential, &policy.check_path);
        match found {
            Lookup::Hit(hit) => Some(hit),
            Lookup::Miss(pending) => {
                self.pending = Some(pending);
                None
            }
        }
    }

    /// Stores the companion's answer in the cache.
    fn remember(&mut self, host: &impl Host, decision: &Decision) {
        // Kept: a failed answer may still find a stale one by it.
        if let (Some(pending), Some(cache)) = (&self.pending, &self.cache) {
            cache.borrow_mut().remember(host, pending, decision);
        }
    }

    /// Stale-if-error: an allowed answer past its freshness, if the
    /// configuration keeps one for this request.
    fn stale_answer(&self, host: &impl Host) -> Option<Vec<(&'static str, String)>> {
        let (cache, pending) = (self.cache.as_ref()?, self.pending.as_ref()?);
        cache.borrow().stale_answer(pending, host.now_ms())
    }
}

/// Lets the request on with the identity headers.
fn let_through(host: &impl Host, identity: &[(&'static str, String)]) {
    // The upstream gets the identity, never the caller's credential;
    // removed first, so that a delegated token set in its place stays.
    host.set_request_header("authorization", None);
    for (name, value) in identity {
        host.set_request_header(name, Some(value.as_bytes()));
    }
}

fn strip_reserved_headers(host: &impl Host, headers: &[(String, Vec<u8>)]) {
    for (name, _) in headers {
        if request::is_reserved_header(name) {
            host.set_request_header(name, None);
        }
    }
}

fn is_cors_preflight(headers: &[(String, Vec<u8>)]) -> bool {
    request::is_cors_preflight(
        find_text(headers, ":method").unwrap_or(""),
        find(headers, "origin").is_some(),
        find(headers, "access-control-request-method").is_some(),
    )
}

/// A header from the request's headers as fetched once; names arrive
/// lower-cased from Envoy.
fn find<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

fn find_text<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    find(headers, name).and_then(|v| std::str::from_utf8(v).ok())
}

/// The login URL with this request's URL in `rd`.
fn login_location(host: &impl Host, login_url: &str) -> String {
    // Envoy sets x-forwarded-proto to what the client spoke.
    let scheme = host
        .request_header("x-forwarded-proto")
        .or_else(|| host.request_header(":scheme"));
    let (authority, path) = (
        host.request_header(":authority"),
        host.request_header(":path"),
    );
    browser::login_location(
        login_url,
        text(&scheme).unwrap_or("https"),
        text(&authority).unwrap_or(""),
        text(&path).unwrap_or("/"),
    )
}

fn json_reply(status: u32, body: &[u8]) -> Step {
    Step::Reply {
        status,
        headers: vec![(JSON.0, JSON.1.to_owned())],
        body: Some(body.to_vec()),
    }
}

/// A host value as text, if it is UTF-8.
fn text(bytes: &Option<Vec<u8>>) -> Option<&str> {
    bytes.as_deref().and_then(|b| std::str::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use portcullis_core::session::SessionSeal;

    use super::*;
    use crate::fake_host::FakeHost;

    const TOKEN: &str = "gt-AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBA";
    const ANSWER: &[u8] = br#"{"username":"alice","token_type":"user","scopes":["read:all"],
        "expires":null,"email":null,"name":null,"uid":null,"gid":null,"cache_ttl":300}"#;

    /// A worker: the configuration and its own cache state.
    struct Worker {
        config: Rc<FilterConfig>,
        policies: Rc<RefCell<MetadataPolicies>>,
        cache: Option<Rc<RefCell<Cache>>>,
    }

    impl Worker {
        fn new(json: &str) -> Self {
            let config = Rc::new(FilterConfig::from_json(json.as_bytes()).unwrap());
            let cache = config.cache.as_ref().map(|c| {
                let mut state = Cache::new(c);
                state
                    .apply(br#"{"cursor":1,"keys":[],"reset":false}"#, 0)
                    .unwrap();
                Rc::new(RefCell::new(state))
            });
            Self {
                config,
                policies: Rc::default(),
                cache,
            }
        }

        fn flow(&self) -> Flow {
            Flow::new(
                self.config.clone(),
                self.policies.clone(),
                self.cache.clone(),
            )
        }
    }

    fn ok(body: &[u8]) -> CheckReply<'_> {
        CheckReply {
            status: Some(b"200"),
            www_authenticate: None,
            body,
        }
    }

    fn bearer() -> String {
        format!("Bearer {TOKEN}")
    }

    #[test]
    fn a_checked_request_carries_the_identity_and_never_the_credential() {
        let worker = Worker::new(r#"{"cluster":"c","policy":{"scopes":["read:all"]}}"#);
        let host = FakeHost::default();
        host.request(&[
            (":path", "/x"),
            ("authorization", &bearer()),
            ("x-auth-request-user", "admin"),
        ]);
        let mut flow = worker.flow();
        let Start::Ask(callout) = flow.on_request(&host) else {
            panic!("not asked")
        };
        assert!(callout.contains(&(
            ":path",
            "/ingress/auth?scope=read%3Aall&satisfy=all".to_owned()
        )));
        assert!(callout.contains(&("authorization", bearer())));
        assert_eq!(
            host.header("x-auth-request-user"),
            None,
            "the forged header is gone at once"
        );
        assert_eq!(flow.on_reply(&host, &ok(ANSWER)), Step::Continue);
        assert_eq!(host.header("x-auth-request-user").as_deref(), Some("alice"));
        assert_eq!(host.header("authorization"), None);
        assert_eq!(host.counted(Event::Allowed), 1);
    }

    #[test]
    fn anonymous_routes_continue_at_once_without_the_credential() {
        let worker = Worker::new(
            r#"{"cluster":"c","rules":[{"match":{"prefix":"/pub/"},"policy":{"anonymous":true}}]}"#,
        );
        let host = FakeHost::default();
        host.request(&[(":path", "/pub/a"), ("authorization", &bearer())]);
        assert_eq!(worker.flow().on_request(&host), Start::Done(Step::Continue));
        assert_eq!(host.header("authorization"), None);
        assert_eq!(host.counted(Event::Unchecked), 1);
    }

    #[test]
    fn the_session_cookie_is_presented_and_taken_off() {
        let key = [9u8; 32];
        let json = format!(
            r#"{{"cluster":"c","session_cookie":{{"key":"{}"}}}}"#,
            STANDARD.encode(key)
        );
        let worker = Worker::new(&json);
        let sealed = SessionSeal::new(&key).seal(&TOKEN.parse().unwrap(), [1; 12]);
        let host = FakeHost::default();
        host.request(&[
            (":path", "/"),
            ("cookie", &format!("a=1; portcullis_session={sealed}")),
        ]);
        let Start::Ask(callout) = worker.flow().on_request(&host) else {
            panic!("not asked")
        };
        assert!(callout.contains(&("authorization", bearer())));
        assert_eq!(host.header("cookie").as_deref(), Some("a=1"));
    }

    #[test]
    fn answers_are_reused_by_this_worker_and_by_the_other_through_shared_data() {
        let json = r#"{"cluster":"c","cache":{}}"#;
        let (first, second) = (Worker::new(json), Worker::new(json));
        let host = FakeHost::default();
        host.request(&[(":path", "/"), ("authorization", &bearer())]);
        let mut flow = first.flow();
        assert!(matches!(flow.on_request(&host), Start::Ask(_)));
        flow.on_reply(&host, &ok(ANSWER));

        host.request(&[(":path", "/"), ("authorization", &bearer())]);
        assert_eq!(first.flow().on_request(&host), Start::Done(Step::Continue));
        assert_eq!(host.counted(Event::CacheHitLocal), 1);
        host.request(&[(":path", "/"), ("authorization", &bearer())]);
        assert_eq!(second.flow().on_request(&host), Start::Done(Step::Continue));
        assert_eq!(host.counted(Event::CacheHitShared), 1);
        assert_eq!(host.header("x-auth-request-user").as_deref(), Some("alice"));

        // The companion reports the token revoked: both workers ask again.
        let page = br#"{"cursor":2,"keys":["AAAAAAAAAAAAAAAAAAAAAA"],"reset":false}"#;
        for worker in [&first, &second] {
            worker
                .cache
                .as_ref()
                .unwrap()
                .borrow_mut()
                .apply(page, 1)
                .unwrap();
            host.request(&[(":path", "/"), ("authorization", &bearer())]);
            assert!(
                matches!(worker.flow().on_request(&host), Start::Ask(_)),
                "revoked answers are not reused"
            );
        }
    }

    #[test]
    fn a_known_token_is_served_stale_while_the_companion_fails_then_not() {
        let worker = Worker::new(
            r#"{"cluster":"c","cache":{"ttl_seconds":1,"stale_if_error_seconds":10,"shared_slots":0}}"#,
        );
        let host = FakeHost::default();
        let request = || host.request(&[(":path", "/"), ("authorization", &bearer())]);
        request();
        let mut flow = worker.flow();
        flow.on_request(&host);
        flow.on_reply(&host, &ok(ANSWER));
        host.now.set(1500);
        request();
        let mut flow = worker.flow();
        assert!(
            matches!(flow.on_request(&host), Start::Ask(_)),
            "no longer fresh"
        );
        assert_eq!(
            flow.on_no_reply(&host, "down"),
            Step::Continue,
            "served stale"
        );
        assert_eq!(host.counted(Event::StaleServed), 1);
        // The same when the companion answers, but with a failure.
        request();
        let mut flow = worker.flow();
        flow.on_request(&host);
        let failed = CheckReply {
            status: Some(b"503"),
            www_authenticate: None,
            body: b"",
        };
        assert_eq!(
            flow.on_reply(&host, &failed),
            Step::Continue,
            "served stale"
        );
        assert_eq!(host.counted(Event::StaleServed), 2);
        host.now.set(11_500);
        request();
        let mut flow = worker.flow();
        flow.on_request(&host);
        let Step::Reply { status, .. } = flow.on_no_reply(&host, "down") else {
            panic!("passed")
        };
        assert_eq!(status, 503);
    }

    #[test]
    fn a_browser_that_must_log_in_is_redirected_and_a_bad_route_policy_fails_closed() {
        let worker =
            Worker::new(r#"{"cluster":"c","login_url":"/login","policy":{"login_redirect":true}}"#);
        let host = FakeHost::default();
        host.request(&[
            (":path", "/a?b=1"),
            (":authority", "app"),
            ("x-forwarded-proto", "https"),
            ("accept", "text/html"),
        ]);
        let mut flow = worker.flow();
        flow.on_request(&host);
        let refusal = CheckReply {
            status: Some(b"401"),
            www_authenticate: Some(b"Bearer realm=\"r\""),
            body: br#"{"error":"x"}"#,
        };
        let Step::Reply {
            status, headers, ..
        } = flow.on_reply(&host, &refusal)
        else {
            panic!("passed")
        };
        assert_eq!(status, 302);
        assert!(headers.contains(&(
            "location",
            "/login?rd=https%3A%2F%2Fapp%2Fa%3Fb%3D1".to_owned()
        )));

        let mut broken = FakeHost::default();
        broken
            .properties
            .insert(ROUTE_POLICY.join("."), br#"{"scopes":"x"}"#.to_vec());
        broken.request(&[(":path", "/")]);
        let Start::Done(Step::Reply { status, .. }) = worker.flow().on_request(&broken) else {
            panic!("passed")
        };
        assert_eq!(status, 500);
        assert_eq!(broken.counted(Event::BadRoutePolicy), 1);
    }
}
