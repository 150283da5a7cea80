//! The proxy-wasm glue: Envoy's calls in, [`Flow`]'s steps out. It decides
//! nothing; it implements [`Host`] with host calls, polls the change feed
//! on the root context's tick, and carries out what the flow returns.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

use crate::cache::Cache;
use crate::config::FilterConfig;
use crate::decision::{self, CheckReply};
use crate::flow::{Flow, Host, Level, Start, Step};
use crate::poller::FeedPoller;
use crate::routing::MetadataPolicies;
use crate::stats::{self, Event};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

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

    fn add(&self, event: Event, n: i64) {
        if let Some(id) = self.counters.get(event.index()) {
            // A stat that cannot be bumped must not fail the request.
            let _ = hostcalls::increment_metric(*id, n);
        }
    }

    fn latency(&self, since: Option<u64>) {
        if let (Some(id), Some(since)) = (self.latency, since) {
            let _ = hostcalls::record_metric(id, now_ms().saturating_sub(since));
        }
    }
}

/// [`Host`] by proxy-wasm's host calls, which act on the current context.
struct EnvoyHost<'a> {
    stats: &'a Stats,
}

impl Host for EnvoyHost<'_> {
    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn shared(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set_shared(&self, key: &str, value: &[u8], cas: Option<u32>) {
        // A stale CAS means another worker just wrote the slot: fine.
        let _ = hostcalls::set_shared_data(key, Some(value), cas);
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn count_by(&self, event: Event, n: u64) {
        self.stats.add(event, i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        log(level, message);
    }
}

#[derive(Default)]
struct Root {
    config: Option<Rc<FilterConfig>>,
    route_policies: Rc<RefCell<MetadataPolicies>>,
    stats: Rc<Stats>,
    cache: Option<Rc<RefCell<Cache>>>,
    poller: FeedPoller,
}

impl Root {
    /// Asks the companion what was revoked or changed since the last poll.
    fn poll_changes(&mut self) {
        let (Some(config), Some(cache)) = (&self.config, &self.cache) else {
            return;
        };
        let Some(headers) = self.poller.due(&config.authority, &cache.borrow()) else {
            return;
        };
        let headers = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let host = EnvoyHost { stats: &self.stats };
        match self.dispatch_http_call(&config.cluster, headers, None, vec![], config.timeout) {
            Ok(_) => self.poller.sent(),
            Err(status) => self.poller.not_sent(&host, &format!("{status:?}")),
        }
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
        let status = self.get_http_call_response_header_bytes(":status");
        let body = self
            .get_http_call_response_body(0, body_size.min(decision::MAX_REPLY_BODY))
            .unwrap_or_default();
        let Some(cache) = self.cache.clone() else {
            return;
        };
        let host = EnvoyHost { stats: &self.stats };
        self.poller
            .answered(&host, &mut cache.borrow_mut(), status.as_deref(), &body);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match FilterConfig::from_json(&bytes) {
            Ok(config) => {
                if let Some(cache) = &config.cache {
                    self.cache = Some(Rc::new(RefCell::new(Cache::new(cache))));
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
        Some(Box::new(RequestContext {
            flow: Flow::new(
                config.clone(),
                self.route_policies.clone(),
                self.cache.clone(),
            ),
            config,
            stats: self.stats.clone(),
            asked_at: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request's HTTP context: its flow, and what it needs to carry out
/// the flow's steps.
struct RequestContext {
    flow: Flow,
    config: Rc<FilterConfig>,
    stats: Rc<Stats>,
    /// When the companion was asked, for the latency histogram.
    asked_at: Option<u64>,
}

impl RequestContext {
    /// Carries out a step; true when the request goes on.
    fn carry_out(&self, step: Step) -> bool {
        match step {
            Step::Continue => true,
            Step::Reply {
                status,
                headers,
                body,
            } => {
                let headers = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                self.send_http_response(status, headers, body.as_deref());
                false
            }
        }
    }
}

impl Context for RequestContext {
    fn on_http_call_response(
        &mut self,
        _id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.stats.latency(self.asked_at);
        let host = EnvoyHost { stats: &self.stats };
        let step = if body_size > decision::MAX_REPLY_BODY {
            self.flow.on_no_reply(
                &host,
                &format!("check reply of {body_size} bytes is too large"),
            )
        } else {
            let status = self.get_http_call_response_header_bytes(":status");
            let challenge = self.get_http_call_response_header_bytes("www-authenticate");
            let body = self
                .get_http_call_response_body(0, body_size)
                .unwrap_or_default();
            let reply = CheckReply {
                status: status.as_deref(),
                www_authenticate: challenge.as_deref(),
                body: &body,
            };
            self.flow.on_reply(&host, &reply)
        };
        if self.carry_out(step) {
            self.resume_http_request();
        }
    }
}

impl HttpContext for RequestContext {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let host = EnvoyHost { stats: &self.stats };
        let step = match self.flow.on_request(&host) {
            Start::Done(step) => step,
            Start::Ask(headers) => {
                let headers = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let config = &self.config;
                match self.dispatch_http_call(
                    &config.cluster,
                    headers,
                    None,
                    vec![],
                    config.timeout,
                ) {
                    Ok(_) => {
                        self.asked_at = Some(now_ms());
                        return Action::Pause;
                    }
                    Err(status) => self
                        .flow
                        .on_no_reply(&host, &format!("check callout not dispatched: {status:?}")),
                }
            }
        };
        match self.carry_out(step) {
            true => Action::Continue,
            false => Action::Pause,
        }
    }
}

/// Milliseconds since the Unix epoch, by the host's clock.
fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t: SystemTime| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn log(level: LogLevel, message: &str) {
    // Logging can only fail if the host is gone; there is nowhere to report it.
    let _ = hostcalls::log(level, message);
}
