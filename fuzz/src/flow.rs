//! The stateful target: the filter's [`Flow`] and two workers' caches
//! driven by a fuzzed run of host events against the fake host (requests
//! with hostile headers, the companion's answers truthful or not, feed
//! pages, revocations, ticks and clock jumps), with a model of the world
//! beside it. After every step:
//!
//! - nothing is let through a checked route without an allowing answer
//!   for that credential and that route's check (from the companion for
//!   this request, or cached: fresh, before the token's expiry, asked for
//!   no earlier than the last revocation of its token this worker heard
//!   of, and only while the feed is heard from);
//! - the caller's credential never reaches the upstream, and no identity
//!   header the client forged does;
//! - the callout carries the credential the companion must judge (the
//!   session cookie's token first) and the route's own check;
//! - every refusal is one the filter may give, and echoes no token;
//! - the caches stay within their bounds.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::authorization::presented_token;
use portcullis_core::check::Changes;
use portcullis_core::session::SessionSeal;
use portcullis_core::{cookie, Token};
use portcullis_filter::cache::Cache;
use portcullis_filter::config::FilterConfig;
use portcullis_filter::decision::{decide, CheckReply, Decision};
use portcullis_filter::fake_host::{FakeHost, SharedData};
use portcullis_filter::flow::{Flow, Start, Step};
use portcullis_filter::request;
use portcullis_filter::routing::MetadataPolicies;

use crate::{SESSION_KEY, SESSION_KEY_BASE64};

/// Four stored tokens and one well-formed stranger.
const TOKENS: [&str; 5] = [
    "gt-AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
    "gt-BBBBBBBBBBBBBBBBBBBBBA.BBBBBBBBBBBBBBBBBBBBBA",
    "gt-CCCCCCCCCCCCCCCCCCCCCA.CCCCCCCCCCCCCCCCCCCCCA",
    "gt-DDDDDDDDDDDDDDDDDDDDDA.DDDDDDDDDDDDDDDDDDDDDA",
    "gt-EEEEEEEEEEEEEEEEEEEEEA.EEEEEEEEEEEEEEEEEEEEEA",
];
/// The scopes each stored token holds.
const SCOPES: [&[&str]; 4] = [
    &["read:all"],
    &["read:all", "admin:all"],
    &[],
    &["admin:all"],
];
/// The token the companion delegates to the `/svc` upstream.
const DELEGATED: &str = "gt-FFFFFFFFFFFFFFFFFFFFFA.FFFFFFFFFFFFFFFFFFFFFA";
/// What a client puts in identity headers it forges.
const FORGED: &str = "forged-by-client";
const LOGIN_URL: &str = "https://login.example/login";
const START_MS: u64 = 1_800_000_000_000;
/// When token 3 expires (seconds since the epoch): within a run's reach.
const EXPIRING_AT: u64 = START_MS / 1000 + 90;
const MAX_ENTRIES: usize = 3;
const SHARED_SLOTS: usize = 4;
const STALE_MS: u64 = 20_000;
const MAX_FEED_LAG_MS: u64 = 3_000;
/// The host's clock stays below this (some 35,000 years): no proxy's
/// wall clock comes near `u64::MAX` milliseconds.
const MAX_CLOCK_MS: u64 = 1 << 50;

fn config_json() -> String {
    format!(
        r#"{{"cluster":"portcullis","login_url":"{LOGIN_URL}",
        "session_cookie":{{"key":"{SESSION_KEY_BASE64}"}},
        "policy":{{"scopes":["read:all"]}},
        "rules":[
          {{"match":{{"prefix":"/public"}},"policy":{{"anonymous":true}}}},
          {{"match":{{"prefix":"/admin"}},"policy":{{"scopes":["admin:all"],"login_redirect":true}}}},
          {{"match":{{"prefix":"/svc"}},"policy":{{"scopes":["read:all"],"delegate_to":"svc","use_authorization":true}}}}
        ],
        "cache":{{"ttl_seconds":60,"negative_ttl_seconds":5,"max_entries":{MAX_ENTRIES},
          "poll_interval_ms":1000,"max_feed_lag_ms":{MAX_FEED_LAG_MS},"shared_slots":{SHARED_SLOTS},
          "stale_if_error_seconds":{}}}}}"#,
        STALE_MS / 1000
    )
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Route {
    Public,
    Default,
    Admin,
    Svc,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Public => "/public/page",
            Route::Default => "/app",
            Route::Admin => "/admin/panel",
            Route::Svc => "/svc/api",
        }
    }

    /// Index of the rule that holds its policy, or none for the default.
    fn rule(self) -> Option<usize> {
        match self {
            Route::Public => Some(0),
            Route::Default => None,
            Route::Admin => Some(1),
            Route::Svc => Some(2),
        }
    }

    fn required(self) -> &'static str {
        match self {
            Route::Admin => "admin:all",
            _ => "read:all",
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Credential<'a> {
    None,
    Bearer(u8),
    /// The token in one of the other accepted spellings.
    Spelled(u8, u8),
    Cookie(u8, [u8; 12]),
    CookieThenBearer(u8, [u8; 12], u8),
    TwoAuthorizations(u8, u8),
    /// A session cookie that does not open, beside a bearer token.
    ForeignCookie(&'a [u8], u8),
    Raw(&'a [u8]),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Forged {
    User,
    Token,
    Groups,
    Check,
    Accept,
}

#[derive(Debug, Arbitrary)]
enum Answer<'a> {
    /// What the companion would say now.
    Truth,
    /// A reply that may be anything.
    Any {
        status: Option<&'a [u8]>,
        www_authenticate: Option<&'a [u8]>,
        body: &'a [u8],
    },
    /// The callout failed (reset, timeout, no cluster).
    None,
}

#[derive(Debug, Arbitrary)]
enum Page<'a> {
    Truth,
    Reset,
    Garbage(&'a [u8]),
}

#[derive(Debug, Arbitrary)]
enum Event<'a> {
    Request {
        worker: bool,
        route: Route,
        credential: Credential<'a>,
        forged: Vec<Forged>,
        html: bool,
    },
    Reply {
        which: u8,
        answer: Answer<'a>,
    },
    Poll {
        worker: bool,
        page: Page<'a>,
    },
    Revoke(u8),
    Tick(u16),
    Jump {
        seconds: u32,
        back: bool,
    },
}

type Headers = Vec<(String, Vec<u8>)>;
/// The credential the companion must be shown; `Err` when the request's
/// `Authorization` is not text (the filter answers 400 itself).
type Expected = Result<Option<String>, ()>;

/// How a request was let through.
#[derive(Debug, Clone, Copy)]
enum Served {
    /// By the companion's answer to it.
    Answered,
    /// From a cache, without asking.
    Cached,
    /// By a stale answer, the companion having failed.
    Stale,
}

/// An allowing answer the companion (or a liar in its place) gave.
#[derive(Debug)]
struct Allowed {
    credential: String,
    check_path: String,
    at_ms: u64,
    ttl_ms: u64,
    expires: Option<u64>,
    /// The asking worker's feed cursor then (none before its first poll:
    /// such an answer is never stored).
    asked_at: Option<i64>,
}

/// What one worker has heard from the feed.
#[derive(Debug, Default)]
struct Heard {
    cursor: Option<i64>,
    at_ms: Option<u64>,
    /// Token key → the cursor at which this worker learnt it is revoked.
    revoked: HashMap<String, i64>,
}

struct Worker {
    cache: Rc<RefCell<Cache>>,
    policies: Rc<RefCell<MetadataPolicies>>,
    heard: Heard,
}

struct Waiting {
    worker: usize,
    flow: Flow,
    host: FakeHost,
    route: Route,
    credential: Option<String>,
    asked_at: Option<i64>,
}

struct World {
    config: Rc<FilterConfig>,
    seal: SessionSeal,
    workers: [Worker; 2],
    shared: Rc<RefCell<SharedData>>,
    now: u64,
    revoked: [bool; 4],
    /// The feed: (cursor, token key), oldest first.
    feed: Vec<(i64, String)>,
    cursor: i64,
    allowed: Vec<Allowed>,
    waiting: Vec<Waiting>,
}

/// Runs the fuzzed events; panics on the first broken invariant.
pub fn flow(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mut world) = World::new() else { return };
    let trace = std::env::var_os("PORTCULLIS_FUZZ_TRACE").is_some();
    for _ in 0..64 {
        let Ok(event) = Event::arbitrary(&mut u) else {
            break;
        };
        if trace {
            eprintln!("{:>8} ms  {event:?}", world.now - START_MS.min(world.now));
        }
        world.step(event);
        world.bounded();
        if u.is_empty() {
            break;
        }
    }
}

impl World {
    fn new() -> Result<Self, String> {
        let config =
            Rc::new(FilterConfig::from_json(config_json().as_bytes()).map_err(|e| e.to_string())?);
        let cache = config.cache.clone().ok_or("no cache")?;
        let worker = || Worker {
            cache: Rc::new(RefCell::new(Cache::new(&cache))),
            policies: Rc::default(),
            heard: Heard::default(),
        };
        Ok(Self {
            config,
            seal: SessionSeal::new(&SESSION_KEY),
            workers: [worker(), worker()],
            shared: Rc::default(),
            now: START_MS,
            revoked: [false; 4],
            feed: Vec::new(),
            cursor: 1,
            allowed: Vec::new(),
            waiting: Vec::new(),
        })
    }

    fn step(&mut self, event: Event<'_>) {
        match event {
            Event::Request {
                worker,
                route,
                credential,
                forged,
                html,
            } => self.request(usize::from(worker), route, &credential, &forged, html),
            Event::Reply { which, answer } => {
                if !self.waiting.is_empty() {
                    let waiting = self.waiting.remove(which as usize % self.waiting.len());
                    self.reply(waiting, &answer);
                }
            }
            Event::Poll { worker, page } => self.poll(usize::from(worker), &page),
            Event::Revoke(i) => {
                let i = i as usize % 4;
                if !self.revoked[i] {
                    self.revoked[i] = true;
                    self.cursor += 1;
                    self.feed.push((self.cursor, key_of(TOKENS[i])));
                }
            }
            Event::Tick(ms) => self.now += u64::from(ms),
            Event::Jump { seconds, back } => {
                let by = u64::from(seconds) * 1000;
                self.now = match back {
                    true => self.now.saturating_sub(by),
                    false => (self.now + by).min(MAX_CLOCK_MS),
                };
            }
        }
    }

    fn host(&self, headers: Vec<(String, Vec<u8>)>) -> FakeHost {
        FakeHost {
            headers: RefCell::new(headers),
            shared: self.shared.clone(),
            now: Cell::new(self.now),
            ..FakeHost::default()
        }
    }

    fn cookie(&self, i: u8, nonce: [u8; 12]) -> String {
        let token: Token = TOKENS[i as usize % 5]
            .parse()
            .unwrap_or_else(|_| unreachable!());
        format!("portcullis_session={}", self.seal.seal(&token, nonce))
    }

    /// A request's headers, and the credential the companion must be
    /// shown: the session cookie's token if it opens, else the first
    /// `Authorization` as it came (`Err` when that is not text).
    fn request_headers(&self, route: Route, credential: &Credential<'_>) -> (Headers, Expected) {
        let mut headers: Vec<(String, Vec<u8>)> = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "app.example"),
            (":path", route.path()),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect();
        let mut add = |name: &str, value: &[u8]| headers.push((name.to_owned(), value.to_vec()));
        let bearer = |i: u8| format!("Bearer {}", TOKENS[i as usize % 5]);
        let expected = match credential {
            Credential::None => Ok(None),
            Credential::Bearer(i) => {
                add("authorization", bearer(*i).as_bytes());
                Ok(Some(bearer(*i)))
            }
            Credential::Spelled(i, how) => {
                let token = TOKENS[*i as usize % 5];
                let value = match how % 4 {
                    0 => format!("bearer   {token}  "),
                    1 => format!("Basic {}", STANDARD.encode(format!("{token}:"))),
                    2 => format!(
                        "basic {}",
                        STANDARD.encode(format!("x-oauth-basic:{token}"))
                    ),
                    _ => format!("BEARER {token}"),
                };
                add("authorization", value.as_bytes());
                Ok(Some(value))
            }
            Credential::Cookie(i, nonce) => {
                add(
                    "cookie",
                    format!("a=1; {}", self.cookie(*i, *nonce)).as_bytes(),
                );
                Ok(Some(bearer(*i)))
            }
            Credential::CookieThenBearer(i, nonce, j) => {
                add("authorization", bearer(*j).as_bytes());
                add("cookie", self.cookie(*i, *nonce).as_bytes());
                Ok(Some(bearer(*i)))
            }
            Credential::TwoAuthorizations(i, j) => {
                add("authorization", bearer(*i).as_bytes());
                add("authorization", bearer(*j).as_bytes());
                Ok(Some(bearer(*i)))
            }
            Credential::ForeignCookie(value, j) => {
                let mut cookie = b"portcullis_session=".to_vec();
                cookie.extend_from_slice(value);
                add("cookie", &cookie);
                add("authorization", bearer(*j).as_bytes());
                match cookie_opens(&self.seal, &cookie) {
                    Some(token) => Ok(Some(format!("Bearer {}", token.expose()))),
                    None => Ok(Some(bearer(*j))),
                }
            }
            Credential::Raw(value) => {
                add("authorization", value);
                std::str::from_utf8(value)
                    .map(|v| Some(v.to_owned()))
                    .map_err(|_| ())
            }
        };
        (headers, expected)
    }

    fn request(
        &mut self,
        worker: usize,
        route: Route,
        credential: &Credential<'_>,
        forged: &[Forged],
        html: bool,
    ) {
        let (mut headers, expected) = self.request_headers(route, credential);
        for forged in forged.iter().take(4) {
            let name = match forged {
                Forged::User => "x-auth-request-user",
                Forged::Token => "x-auth-request-token",
                Forged::Groups => "x-auth-request-groups",
                Forged::Check => "x-portcullis-check",
                Forged::Accept => "accept",
            };
            let value = match forged {
                Forged::Accept => "text/html",
                _ => FORGED,
            };
            headers.push((name.to_owned(), value.as_bytes().to_vec()));
        }
        if html {
            headers.push(("accept".into(), b"text/html,*/*".to_vec()));
        }
        let host = self.host(headers);
        let mut flow = Flow::new(
            self.config.clone(),
            self.workers[worker].policies.clone(),
            Some(self.workers[worker].cache.clone()),
        );
        match flow.on_request(&host) {
            Start::Ask(callout) => {
                assert!(
                    !matches!(route, Route::Public),
                    "an anonymous route was checked"
                );
                let find = |name: &str| callout.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
                assert_eq!(find(":path"), Some(&self.check_path(route)));
                let credential = find("authorization").cloned();
                assert_eq!(
                    Ok(credential.clone()),
                    expected,
                    "the wrong credential was asked about"
                );
                self.waiting.push(Waiting {
                    worker,
                    flow,
                    host,
                    route,
                    credential,
                    asked_at: self.workers[worker].heard.cursor,
                });
                // Unanswered requests are bounded like Envoy's own.
                if self.waiting.len() > 8 {
                    self.waiting.remove(0);
                }
            }
            Start::Done(Step::Continue) => {
                let credential = expected.ok().flatten();
                self.let_through(worker, route, credential.as_deref(), &host, Served::Cached);
            }
            Start::Done(reply) => {
                if expected.is_err() {
                    assert!(matches!(reply, Step::Reply { status: 400, .. }));
                }
                self.refused(route, &reply);
            }
        }
    }

    fn check_path(&self, route: Route) -> String {
        match route.rule() {
            Some(i) => self.config.rules[i].policy.check_path.clone(),
            None => self.config.default_policy.check_path.clone(),
        }
    }

    /// The companion's answer now, as it would give it.
    fn truth(&self, route: Route, credential: Option<&str>) -> (u16, Option<String>, String) {
        let challenge = |error: &str| Some(format!(r#"Bearer realm="x", error="{error}""#));
        let Some(credential) = credential else {
            return (
                401,
                Some(r#"Bearer realm="x""#.into()),
                r#"{"error":"no_token"}"#.into(),
            );
        };
        let Ok(text) = presented_token(credential) else {
            return (400, None, r#"{"error":"invalid_request"}"#.into());
        };
        let Some(i) = TOKENS[..4].iter().position(|t| *t == text) else {
            return (
                401,
                challenge("invalid_token"),
                r#"{"error":"invalid_token"}"#.into(),
            );
        };
        let expired = i == 3 && self.now >= EXPIRING_AT * 1000;
        if self.revoked[i] || expired {
            return (
                401,
                challenge("invalid_token"),
                r#"{"error":"invalid_token"}"#.into(),
            );
        }
        if !SCOPES[i].contains(&route.required()) {
            return (
                403,
                challenge("insufficient_scope"),
                r#"{"error":"insufficient_scope"}"#.into(),
            );
        }
        let scopes: Vec<String> = SCOPES[i].iter().map(|s| format!("{s:?}")).collect();
        let expires = match i {
            3 => EXPIRING_AT.to_string(),
            _ => "null".into(),
        };
        let delegated = match route {
            Route::Svc => format!(r#","service":"svc","delegated_token":"{DELEGATED}""#),
            _ => String::new(),
        };
        let body = format!(
            r#"{{"username":"user{i}","token_type":"user","scopes":[{}],"expires":{expires},
            "email":null,"name":null,"uid":null,"gid":null,"cache_ttl":60{delegated}}}"#,
            scopes.join(",")
        );
        (200, None, body)
    }

    fn reply(&mut self, mut waiting: Waiting, answer: &Answer<'_>) {
        waiting.host.now.set(self.now);
        let credential = waiting.credential.as_deref();
        let (status, challenge, body);
        let reply = match answer {
            Answer::None => None,
            Answer::Truth => {
                let truth = self.truth(waiting.route, credential);
                (status, challenge, body) = (truth.0.to_string(), truth.1, truth.2);
                Some(CheckReply {
                    status: Some(status.as_bytes()),
                    www_authenticate: challenge.as_deref().map(str::as_bytes),
                    body: body.as_bytes(),
                })
            }
            Answer::Any {
                status,
                www_authenticate,
                body,
            } => {
                if body.windows(FORGED.len()).any(|w| w == FORGED.as_bytes()) {
                    return;
                }
                Some(CheckReply {
                    status: *status,
                    www_authenticate: *www_authenticate,
                    body,
                })
            }
        };
        let use_authorization = matches!(waiting.route, Route::Svc);
        let decided = reply.as_ref().map(|r| decide(r, use_authorization));
        if let (
            Some(Decision::Allow {
                cache_ttl,
                token_expires,
                ..
            }),
            Some(credential),
        ) = (&decided, credential)
        {
            self.allowed.push(Allowed {
                credential: credential.to_owned(),
                check_path: self.check_path(waiting.route),
                at_ms: self.now,
                ttl_ms: cache_ttl.saturating_mul(1000),
                expires: *token_expires,
                asked_at: waiting.asked_at,
            });
        }
        let step = match &reply {
            Some(reply) => waiting.flow.on_reply(&waiting.host, reply),
            None => waiting.flow.on_no_reply(&waiting.host, "no reply"),
        };
        match step {
            Step::Continue => {
                // Either this answer allowed it, or a stale one did.
                let served = match decided {
                    Some(Decision::Allow { .. }) => Served::Answered,
                    _ => Served::Stale,
                };
                self.let_through(
                    waiting.worker,
                    waiting.route,
                    credential,
                    &waiting.host,
                    served,
                );
            }
            reply => self.refused(waiting.route, &reply),
        }
    }

    /// Checks a request let through: by whose answer, and what it carries.
    fn let_through(
        &self,
        worker: usize,
        route: Route,
        credential: Option<&str>,
        host: &FakeHost,
        served: Served,
    ) {
        let headers = host.headers.borrow();
        for (name, value) in headers.iter() {
            let value = String::from_utf8_lossy(value);
            // (Other cookies pass on as they came, whatever they hold.)
            assert!(
                name == "cookie" || !value.contains(FORGED),
                "the client's {name} reached the upstream"
            );
            // (A token a client put in some other cookie is its own
            // business; the session cookie is checked below.)
            for token in TOKENS.iter().filter(|_| name != "cookie") {
                assert!(
                    !value.contains(&token[3..]),
                    "a credential reached the upstream in {name}"
                );
            }
            if name.eq_ignore_ascii_case("cookie") {
                let taken = cookie::take(&[value.as_bytes()], "portcullis_session");
                assert!(
                    taken.values.is_empty(),
                    "the session cookie reached the upstream"
                );
            }
        }
        let identity = headers
            .iter()
            .any(|(n, _)| n.starts_with("x-auth-request-"));
        if let Route::Public = route {
            assert!(!identity, "an anonymous request carries an identity");
            assert!(!headers.iter().any(|(n, _)| n == "authorization"));
            return;
        }
        assert!(identity, "let through without an identity");
        let credential = credential.expect("let through without a credential");
        let check_path = self.check_path(route);
        let heard = &self.workers[worker].heard;
        let revoked_at =
            request::token_key(credential).and_then(|k| heard.revoked.get(&k).copied());
        let justified = self.allowed.iter().any(|a| {
            a.credential == credential
                && a.check_path == check_path
                && self.may_serve(a, served, heard, revoked_at)
        });
        assert!(justified, "let through without an allowing answer for it");
    }

    /// Whether answer `a` may let a request through as `served` by a
    /// worker that heard what `heard` says. The companion's own answer for
    /// this request always may. A cached one must have been stored at all,
    /// be fresh while the feed is heard from (or, on the companion's
    /// failure, within stale-if-error), not past the token's expiry, and
    /// asked for no earlier than its token's revocation.
    fn may_serve(
        &self,
        a: &Allowed,
        served: Served,
        heard: &Heard,
        revoked_at: Option<i64>,
    ) -> bool {
        if let Served::Answered = served {
            return a.at_ms == self.now;
        }
        let Some(asked_at) = a.asked_at else {
            return false;
        };
        let in_time = match served {
            Served::Cached => {
                self.now < a.at_ms + a.ttl_ms
                    && heard
                        .at_ms
                        .is_some_and(|at| self.now.saturating_sub(at) <= MAX_FEED_LAG_MS)
            }
            _ => self.now < a.at_ms + a.ttl_ms + STALE_MS,
        };
        in_time
            && a.expires.is_none_or(|e| self.now < e.saturating_mul(1000))
            && revoked_at.is_none_or(|r| asked_at >= r)
    }

    fn refused(&self, route: Route, reply: &Step) {
        let Step::Reply {
            status,
            headers,
            body,
        } = reply
        else {
            return;
        };
        assert!(
            [302, 400, 401, 403, 500, 503].contains(status),
            "answered {status}"
        );
        if *status == 302 {
            assert!(
                matches!(route, Route::Admin),
                "a redirect on a route that asks none"
            );
            let location = headers.iter().find(|(n, _)| *n == "location");
            assert!(location.is_some_and(|(_, l)| l.starts_with(LOGIN_URL)));
        }
        let shown = format!(
            "{headers:?} {}",
            String::from_utf8_lossy(body.as_deref().unwrap_or_default())
        );
        for token in &TOKENS {
            assert!(!shown.contains(&token[3..]), "a refusal echoed a token");
        }
    }

    fn poll(&mut self, worker: usize, page: &Page<'_>) {
        let heard = &self.workers[worker].heard;
        let body = match page {
            Page::Garbage(bytes) => {
                if serde_json::from_slice::<Changes>(bytes).is_ok() {
                    return;
                }
                bytes.to_vec()
            }
            Page::Truth => {
                let keys: Vec<String> = match heard.cursor {
                    None => Vec::new(),
                    Some(since) => self
                        .feed
                        .iter()
                        .filter(|(c, _)| *c > since)
                        .map(|(_, k)| k.clone())
                        .collect(),
                };
                changes(self.cursor, &keys, false)
            }
            Page::Reset => changes(self.cursor, &[], true),
        };
        let applied = self.workers[worker]
            .cache
            .borrow_mut()
            .apply(&body, self.now);
        let Ok(_) = applied else {
            assert!(matches!(page, Page::Garbage(_)), "a good page was refused");
            return;
        };
        assert!(!matches!(page, Page::Garbage(_)), "a bad page was taken");
        let heard = &mut self.workers[worker].heard;
        // On the first page, or a reset, what was revoked before is not
        // known item by item: all of it counts as heard of now.
        let everything = heard.cursor.is_none() || matches!(page, Page::Reset);
        for (cursor, key) in &self.feed {
            if everything || heard.cursor.is_some_and(|since| *cursor > since) {
                let at = if everything { self.cursor } else { *cursor };
                let known = heard.revoked.entry(key.clone()).or_insert(at);
                *known = (*known).max(at);
            }
        }
        heard.cursor = Some(self.cursor);
        heard.at_ms = Some(self.now);
    }

    fn bounded(&self) {
        for worker in &self.workers {
            assert!(
                worker.cache.borrow().len() <= MAX_ENTRIES,
                "a cache outgrew its bound"
            );
        }
        assert!(
            self.shared.borrow().len() <= SHARED_SLOTS,
            "shared data outgrew its slots"
        );
    }
}

fn changes(cursor: i64, keys: &[String], reset: bool) -> Vec<u8> {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    format!(
        r#"{{"cursor":{cursor},"keys":[{}],"reset":{reset}}}"#,
        keys.join(",")
    )
    .into_bytes()
}

fn key_of(token: &str) -> String {
    token[3..25].to_owned()
}

fn cookie_opens(seal: &SessionSeal, header: &[u8]) -> Option<Token> {
    cookie::take(&[header], "portcullis_session")
        .values
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| seal.open(v))
}
