//! The proxy-wasm glue: host calls in, pure decisions out. Nothing here
//! decides anything that the pure modules could.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

use portcullis_core::Token;

use crate::browser;
use crate::cache::{cache_key, CacheKey, Cached};
use crate::config::{ConfigError, FilterConfig};
use crate::cookie;
use crate::decision::{
    self, CheckReply, Decision, Refusal, BAD_AUTHORIZATION_BODY, BAD_ROUTE_POLICY_BODY,
    UNAVAILABLE_BODY,
};
use crate::feed::{self, CacheState};
use crate::policy::Policy;
use crate::request;
use crate::routing::{self, MetadataPolicies, RequestFacts};
use crate::shared::{self, SharedEntry};
use crate::stats::{self, Event};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const JSON: (&str, &str) = ("content-type", "application/json");

#[derive(Default)]
struct Root {
    config: Option<Rc<FilterConfig>>,
    route_policies: Rc<RefCell<MetadataPolicies>>,
    stats: Rc<Stats>,
    cache: Option<Rc<RefCell<CacheState>>>,
    /// A poll of the change feed is under way.
    polling: bool,
    /// The last poll failed; logged once, not on every tick.
    feed_failing: bool,
}

/// Metric ids of this VM, by [`Event::index`]; defined in `on_configure`.
#[derive(Default)]
struct Stats {
    counters: Vec<u32>,
    latency: Option<u32>,
}

impl Stats {
    fn define() -> Self {
        let counters = Event::ALL
            .iter()
            .filter_map(|e| hostcalls::define_metric(MetricType::Counter, e.name()).ok())
            .collect();
        let latency = hostcalls::define_metric(MetricType::Histogram, stats::CALLOUT_LATENCY).ok();
        Self { counters, latency }
    }

    fn count(&self, event: Event) {
        self.add(event, 1);
    }

    fn add(&self, event: Event, n: i64) {
        if let Some(id) = self.counters.get(event.index()) {
            // A stat that cannot be bumped must not fail the request.
            let _ = hostcalls::increment_metric(*id, n);
        }
    }

    fn latency(&self, since: Option<SystemTime>) {
        let elapsed =
            since.and_then(|t| hostcalls::get_current_time().ok()?.duration_since(t).ok());
        if let (Some(id), Some(elapsed)) = (self.latency, elapsed) {
            let _ = hostcalls::record_metric(id, elapsed.as_millis() as u64);
        }
    }
}

impl Root {
    /// Asks the companion what was revoked or changed since the last poll.
    fn poll_changes(&mut self) {
        let (Some(config), Some(cache)) = (&self.config, &self.cache) else {
            return;
        };
        if self.polling {
            return;
        }
        let path = cache.borrow().poll_path();
        let headers = request::callout_headers(&config.authority, &path, None);
        match self.dispatch_http_call(&config.cluster, headers, None, vec![], config.timeout) {
            Ok(_) => self.polling = true,
            Err(status) => self.feed_failed(&format!("not dispatched: {status:?}")),
        }
    }

    fn feed_failed(&mut self, reason: &str) {
        self.stats.count(Event::FeedErrors);
        if !self.feed_failing {
            log(
                LogLevel::Warn,
                &format!("portcullis: change feed: {reason}"),
            );
        }
        self.feed_failing = true;
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        _id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.polling = false;
        let status = self.get_http_call_response_header_bytes(":status");
        let body = self
            .get_http_call_response_body(0, body_size.min(decision::MAX_REPLY_BODY))
            .unwrap_or_default();
        let Some(cache) = self.cache.clone() else {
            return;
        };
        if status.as_deref() != Some(b"200") {
            return self.feed_failed("the companion did not answer 200");
        }
        let applied = cache.borrow_mut().apply(&body, now_ms());
        match applied {
            Ok(dropped) => {
                self.stats.add(Event::RevocationsApplied, dropped as i64);
                if self.feed_failing {
                    log(LogLevel::Info, "portcullis: change feed: answering again");
                }
                self.feed_failing = false;
            }
            Err(reason) => self.feed_failed(&reason),
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match FilterConfig::from_json(&bytes) {
            Ok(config) => {
                if let Some(cache) = &config.cache {
                    self.cache = Some(Rc::new(RefCell::new(CacheState::new(cache))));
                    self.set_tick_period(cache.poll_interval);
                }
                self.config = Some(Rc::new(config));
                self.stats = Rc::new(Stats::define());
                true
            }
            Err(e) => {
                // Returning false makes Envoy refuse the filter, and so the
                // listener: a bad configuration never serves.
                log(LogLevel::Critical, &format!("portcullis: {e}"));
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.poll_changes();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(Check {
            config,
            route_policies: self.route_policies.clone(),
            stats: self.stats.clone(),
            cache: self.cache.clone(),
            policy: None,
            dispatched_at: None,
            pending: None,
            cache_key: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Where a route's own policy sits in its metadata, as a JSON string.
const ROUTE_POLICY: [&str; 5] = [
    "xds",
    "route_metadata",
    "filter_metadata",
    "portcullis",
    "policy",
];

/// One request's check.
struct Check {
    config: Rc<FilterConfig>,
    route_policies: Rc<RefCell<MetadataPolicies>>,
    stats: Rc<Stats>,
    cache: Option<Rc<RefCell<CacheState>>>,
    /// The policy this request is checked against, once chosen.
    policy: Option<Rc<Policy>>,
    dispatched_at: Option<SystemTime>,
    /// Where the companion's answer goes in the cache, the key of the
    /// token it is about (for eviction on revocation), and the feed cursor
    /// when it was asked for.
    pending: Option<(CacheKey, Option<String>, i64)>,
    /// This request's cache key, for stale-if-error.
    cache_key: Option<CacheKey>,
}

impl Check {
    /// The route's own policy if its metadata has one, else the first rule
    /// that matches, else the default.
    fn choose_policy(&self) -> Result<Rc<Policy>, ConfigError> {
        if let Some(json) = self
            .get_property(ROUTE_POLICY.to_vec())
            .filter(|j| !j.is_empty())
        {
            return self.route_policies.borrow_mut().get_or_parse(&json);
        }
        let route = match self.config.reads_route_name {
            true => self.get_property(vec!["xds", "route_name"]),
            false => None,
        };
        let host = self.get_http_request_header_bytes(":authority");
        let path = self.get_http_request_header_bytes(":path");
        let method = self.get_http_request_header_bytes(":method");
        let facts = RequestFacts {
            route: text(&route),
            host: text(&host),
            path: text(&path).unwrap_or(""),
            method: text(&method).unwrap_or(""),
        };
        Ok(routing::select(&self.config.rules, &self.config.default_policy, &facts).clone())
    }

    /// A browser on a route whose policy sends it to log in.
    fn redirects_to_login(&self) -> bool {
        let wanted = self.policy.as_ref().is_some_and(|p| p.login_redirect)
            && self.config.login_url.is_some();
        wanted && browser::wants_html(text(&self.get_http_request_header_bytes("accept")))
    }

    /// The login URL with this request's URL in `rd`.
    fn login_location(&self) -> String {
        // Envoy sets x-forwarded-proto to what the client spoke.
        let scheme = self
            .get_http_request_header_bytes("x-forwarded-proto")
            .or_else(|| self.get_http_request_header_bytes(":scheme"));
        let authority = self.get_http_request_header_bytes(":authority");
        let path = self.get_http_request_header_bytes(":path");
        browser::login_location(
            self.config.login_url.as_deref().unwrap_or("/"),
            text(&scheme).unwrap_or("https"),
            text(&authority).unwrap_or(""),
            text(&path).unwrap_or("/"),
        )
    }

    fn is_cors_preflight(&self) -> bool {
        let method = self.get_http_request_header_bytes(":method");
        request::is_cors_preflight(
            std::str::from_utf8(method.as_deref().unwrap_or_default()).unwrap_or(""),
            self.get_http_request_header_bytes("origin").is_some(),
            self.get_http_request_header_bytes("access-control-request-method")
                .is_some(),
        )
    }

    fn strip_identity_headers(&self, headers: &[(String, Vec<u8>)]) {
        for (name, _) in headers {
            if request::is_identity_header(name) {
                self.set_http_request_header(name, None);
            }
        }
    }

    /// Removes the session cookie (every copy) from the request, keeping
    /// the other cookies, and returns its token if it opens with our key.
    /// A cookie that does not open is no credential at all.
    fn take_session_cookie(&self, headers: &[(String, Vec<u8>)]) -> Option<Token> {
        let session = self.config.session_cookie.as_ref()?;
        let cookies: Vec<&str> = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .collect();
        let (value, rest) = cookie::take(&cookies, &session.name);
        let value = value?;
        self.set_http_request_header("cookie", rest.as_deref());
        session.seal.open(value)
    }

    fn dispatch_check(&self, policy: &Policy, credential: Option<&str>) -> Action {
        let headers =
            request::callout_headers(&self.config.authority, &policy.check_path, credential);
        let dispatched = self.dispatch_http_call(
            &self.config.cluster,
            headers,
            None,
            vec![],
            self.config.timeout,
        );
        match dispatched {
            Ok(_) => Action::Pause,
            Err(status) => {
                self.stats.count(Event::CalloutError);
                match self.serve_stale() {
                    true => Action::Continue,
                    false => {
                        self.fail_closed(&format!("check callout not dispatched: {status:?}"));
                        Action::Pause
                    }
                }
            }
        }
    }

    /// Stale-if-error: lets the request on with an allowed answer past its
    /// freshness, if the configuration allows one and one is kept.
    fn serve_stale(&self) -> bool {
        let (Some(cache), Some(key)) = (&self.cache, &self.cache_key) else {
            return false;
        };
        let stale = cache.borrow().answers.get_stale(key, now_ms());
        let Some(Cached::Allow(identity)) = stale else {
            return false;
        };
        log(
            LogLevel::Warn,
            "portcullis: companion failed; serving a stale answer",
        );
        self.stats.count(Event::StaleServed);
        self.stats.count(Event::Allowed);
        self.allow(&identity);
        true
    }

    fn fail_closed(&self, reason: &str) {
        self.stats.count(Event::Unavailable);
        log(
            LogLevel::Warn,
            &format!("portcullis: {reason}; answering 503"),
        );
        self.send_http_response(503, vec![JSON], Some(UNAVAILABLE_BODY));
    }

    /// Lets the request on with the identity headers.
    fn allow(&self, identity: &[(&'static str, String)]) {
        // The upstream gets the identity, never the caller's credential;
        // removed first, so that a delegated token set in its place stays.
        self.set_http_request_header("authorization", None);
        for (name, value) in identity {
            self.set_http_request_header(name, Some(value));
        }
    }

    /// Answers a refusal: the companion's status and challenge, or for a
    /// browser that must log in on a redirecting route, a 302.
    fn refuse(&self, refusal: &Refusal) {
        self.stats.count(match refusal.status {
            400 => Event::Denied400,
            401 => Event::Denied401,
            _ => Event::Denied403,
        });
        if refusal.status == 401 && self.redirects_to_login() {
            let location = self.login_location();
            self.stats.count(Event::LoginRedirect);
            let headers = vec![
                ("location", location.as_str()),
                ("cache-control", "no-store"),
            ];
            return self.send_http_response(302, headers, None);
        }
        let mut headers = vec![JSON];
        if let Some(challenge) = &refusal.www_authenticate {
            headers.push(("www-authenticate", challenge));
        }
        self.send_http_response(refusal.status, headers, Some(&refusal.body));
    }

    /// The cached answer for this credential and policy, from this worker
    /// or the shared tier, counting the hit or miss; on a miss, remembers
    /// where the answer will go.
    fn cached(&mut self, policy: &Policy, credential: &str) -> Option<Cached> {
        let cache = self.cache.clone()?;
        let key = cache_key(credential, &policy.check_path);
        let now = now_ms();
        if let Some(hit) = cache.borrow_mut().lookup(&key, now) {
            self.stats.count(Event::CacheHitLocal);
            return Some(hit);
        }
        if let Some(hit) = self.shared_answer(&key, now) {
            self.stats.count(Event::CacheHitShared);
            return Some(hit);
        }
        self.stats.count(Event::CacheMiss);
        self.cache_key = Some(key);
        if let Some(cursor) = cache.borrow().cursor {
            self.pending = Some((key, request::token_key(credential), cursor));
        }
        None
    }

    /// An answer another worker put in the shared tier, if this worker can
    /// trust it; copied into this worker's cache for the rest of its life.
    fn shared_answer(&self, key: &CacheKey, now: u64) -> Option<Cached> {
        let (cache, slots) = (self.cache.as_ref()?, self.shared_slots()?);
        let (bytes, _) = self.get_shared_data(&shared::slot_name(key, slots));
        let entry = SharedEntry::read(&bytes?, key, now)?;
        let mut state = cache.borrow_mut();
        if !state.trusts(entry.token_key.as_deref(), entry.asked_at) {
            return None;
        }
        let cached = entry.cached()?;
        let ttl_ms = entry.expires_at_ms - now;
        state.store(
            *key,
            cached.clone(),
            entry.token_key,
            entry.asked_at,
            ttl_ms,
            now,
        );
        Some(cached)
    }

    fn shared_slots(&self) -> Option<u32> {
        self.config
            .cache
            .as_ref()
            .map(|c| c.shared_slots)
            .filter(|s| *s > 0)
    }

    /// Stores the companion's answer here and, for the other workers, in
    /// the shared tier.
    fn remember(&mut self, decision: &Decision) {
        let (Some((key, token_key, asked_at)), Some(cache), Some(config)) =
            (self.pending.take(), &self.cache, &self.config.cache)
        else {
            return;
        };
        let Some((cached, ttl_ms)) = feed::cacheable(decision, config) else {
            return;
        };
        let now = now_ms();
        let entry = SharedEntry::new(&key, &cached, token_key.clone(), asked_at, now + ttl_ms);
        let mut state = cache.borrow_mut();
        let stored = state.store(key, cached, token_key, asked_at, ttl_ms, now);
        if let Some(until) = feed::stale_until(decision, config, now + ttl_ms).filter(|_| stored) {
            state.answers.keep_until(&key, until);
        }
        drop(state);
        if let (true, Some(slots)) = (stored && ttl_ms > 0, self.shared_slots()) {
            let slot = shared::slot_name(&key, slots);
            let (_, cas) = self.get_shared_data(&slot);
            // A lost race means another worker just wrote the slot: fine.
            let _ = self.set_shared_data(&slot, Some(&entry.encode()), cas);
        }
    }
}

impl Context for Check {
    fn on_http_call_response(
        &mut self,
        _id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.stats.latency(self.dispatched_at);
        let status = self.get_http_call_response_header_bytes(":status");
        let challenge = self.get_http_call_response_header_bytes("www-authenticate");
        let body = match body_size {
            0 => None,
            n if n > decision::MAX_REPLY_BODY => {
                self.stats.count(Event::CalloutError);
                return self.fail_closed(&format!("check reply of {n} bytes is too large"));
            }
            n => self.get_http_call_response_body(0, n),
        };
        let reply = CheckReply {
            status: status.as_deref(),
            www_authenticate: challenge.as_deref(),
            body: body.as_deref().unwrap_or_default(),
        };
        let use_authorization = self
            .policy
            .as_ref()
            .is_some_and(|p| p.check.use_authorization);
        let decision = decision::decide(&reply, use_authorization);
        self.remember(&decision);
        match decision {
            Decision::Allow { headers, .. } => {
                self.stats.count(Event::Allowed);
                self.allow(&headers);
                self.resume_http_request();
            }
            Decision::Refuse(refusal) => self.refuse(&refusal),
            Decision::Unavailable(reason) => {
                self.stats.count(Event::CalloutError);
                match self.serve_stale() {
                    true => self.resume_http_request(),
                    false => self.fail_closed(&reason),
                }
            }
        }
    }
}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers_bytes();
        self.strip_identity_headers(&headers);
        // Taken off every request, checked or not: the credential never
        // reaches the upstream.
        let session = self.take_session_cookie(&headers);
        let policy = match self.choose_policy() {
            Ok(policy) => policy,
            Err(e) => {
                // A route's metadata is not seen at configure time: an
                // invalid one fails closed here, and says why in the log.
                self.stats.count(Event::BadRoutePolicy);
                log(LogLevel::Error, &format!("portcullis: route policy: {e}"));
                self.send_http_response(500, vec![JSON], Some(BAD_ROUTE_POLICY_BODY));
                return Action::Pause;
            }
        };
        if policy.anonymous || (policy.cors_preflight && self.is_cors_preflight()) {
            // Nothing to check, but a credential still never reaches the
            // upstream.
            self.set_http_request_header("authorization", None);
            self.stats.count(Event::Unchecked);
            return Action::Continue;
        }
        let authorization = self.get_http_request_header_bytes("authorization");
        let Ok(credential) = request::credential(session.as_ref(), authorization.as_deref()) else {
            self.stats.count(Event::Denied400);
            self.send_http_response(400, vec![JSON], Some(BAD_AUTHORIZATION_BODY));
            return Action::Pause;
        };
        self.policy = Some(policy.clone());
        match credential.as_deref().and_then(|c| self.cached(&policy, c)) {
            Some(Cached::Allow(identity)) => {
                self.stats.count(Event::Allowed);
                self.allow(&identity);
                Action::Continue
            }
            Some(Cached::Refuse(refusal)) => {
                self.refuse(&refusal);
                Action::Pause
            }
            None => {
                self.dispatched_at = hostcalls::get_current_time().ok();
                self.dispatch_check(&policy, credential.as_deref())
            }
        }
    }
}

/// Milliseconds since the Unix epoch, by the host's clock.
fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// A host value as text, if it is UTF-8.
fn text(bytes: &Option<Vec<u8>>) -> Option<&str> {
    bytes.as_deref().and_then(|b| std::str::from_utf8(b).ok())
}

fn log(level: LogLevel, message: &str) {
    // Logging can only fail if the host is gone; there is nowhere to report it.
    let _ = proxy_wasm::hostcalls::log(level, message);
}
