//! The bench's load generator: a fixed number of keep-alive HTTP/1.1
//! connections on one thread pinned to a core of its own, each sending its
//! next request as soon as the last is answered (a closed loop).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::cpu;

pub struct Target {
    pub addr: SocketAddr,
    /// Path and query of every request.
    pub path: Uri,
    /// `Authorization` values, taken in turn; none when empty.
    pub credentials: Vec<HeaderValue>,
}

impl Target {
    /// `path` on 127.0.0.1:`port`, with each of `tokens` in turn as the
    /// bearer token.
    pub fn bearer<'a>(port: u16, path: &str, tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            path: path.parse().expect("a path"),
            credentials: tokens
                .into_iter()
                .map(|t| {
                    HeaderValue::from_str(&format!("Bearer {t}"))
                        .expect("a token is a header value")
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Amount {
    /// Count what is answered within this long (a warm-up is a run of its
    /// own, not counted).
    For(Duration),
    /// Each credential exactly once, every answer counted.
    EachCredentialOnce,
}

/// What one load run measured. `requests` are answers of 200; anything
/// else, and every broken connection, is an error.
pub struct Sample {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Microseconds, of the answered requests.
    pub latency_us: Histogram<u64>,
}

impl Sample {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0.5, 0.99), in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// This run followed by `next`, as one.
    pub fn then(mut self, next: Sample) -> Sample {
        self.requests += next.requests;
        self.errors += next.errors;
        self.elapsed += next.elapsed;
        // Both have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&next.latency_us);
        self
    }
}

/// Runs `amount` of load at `target` over `connections` connections, on a
/// thread pinned to `cpu`.
pub fn run(target: Target, connections: usize, amount: Amount, load_cpu: usize) -> Sample {
    std::thread::spawn(move || {
        if let Err(e) = cpu::pin_current_thread(load_cpu) {
            eprintln!("bench: cannot pin the load generator to cpu {load_cpu}: {e}");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the load generator");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, drive(target, connections, amount))
    })
    .join()
    .expect("the load generator panicked")
}

/// The run's state, shared by its connections on one thread.
struct Run {
    target: Target,
    amount: Amount,
    until: Option<Instant>,
    next: Cell<usize>,
    requests: Cell<u64>,
    errors: Cell<u64>,
    latency_us: RefCell<Histogram<u64>>,
}

impl Run {
    /// The credential index of the next request, or `None` when the run is
    /// over.
    fn next_request(&self) -> Option<usize> {
        let n = self.next.get();
        let len = self.target.credentials.len();
        let more = match self.amount {
            Amount::For(_) => self.until.is_some_and(|u| Instant::now() < u),
            Amount::EachCredentialOnce => n < len,
        };
        self.next.set(n + 1);
        more.then(|| if len == 0 { 0 } else { n % len })
    }

    fn request(&self, index: usize) -> Request<Empty<Bytes>> {
        let mut request = Request::get(self.target.path.clone())
            .header(HOST, "bench.local")
            .body(Empty::new())
            .expect("a request from valid parts");
        if let Some(credential) = self.target.credentials.get(index) {
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.clone());
        }
        request
    }

    fn record(&self, sent: Instant, answered: Instant, ok: bool) {
        // An answer after the end is outside the measured time.
        if self.until.is_some_and(|u| answered > u) {
            return;
        }
        if !ok {
            self.errors.set(self.errors.get() + 1);
            return;
        }
        self.requests.set(self.requests.get() + 1);
        let micros = answered.duration_since(sent).as_micros() as u64;
        // Saturates rather than fails past the histogram's range.
        self.latency_us.borrow_mut().saturating_record(micros);
    }
}

async fn drive(target: Target, connections: usize, amount: Amount) -> Sample {
    let start = Instant::now();
    let until = match amount {
        Amount::For(measure) => Some(start + measure),
        Amount::EachCredentialOnce => None,
    };
    let run = Rc::new(Run {
        target,
        amount,
        until,
        next: Cell::new(0),
        requests: Cell::new(0),
        errors: Cell::new(0),
        // 1 µs to 60 s at 3 significant figures.
        latency_us: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
    });
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::task::spawn_local(connection(run.clone())))
        .collect();
    for task in tasks {
        task.await.expect("a connection task panicked");
    }
    let elapsed = match amount {
        Amount::For(measure) => measure,
        Amount::EachCredentialOnce => start.elapsed(),
    };
    let run = Rc::try_unwrap(run).unwrap_or_else(|_| panic!("connections still running"));
    Sample {
        requests: run.requests.get(),
        errors: run.errors.get(),
        elapsed,
        latency_us: run.latency_us.into_inner(),
    }
}

/// One connection's requests, one after another; a broken connection
/// counts an error and is made again.
async fn connection(run: Rc<Run>) {
    let mut sender = None;
    while let Some(index) = run.next_request() {
        let ready = match sender.take() {
            Some(ready) => Some(ready),
            None => connect(run.target.addr).await,
        };
        let Some(mut ready) = ready else {
            run.record(Instant::now(), Instant::now(), false);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let sent = Instant::now();
        let status = exchange(&mut ready, run.request(index)).await;
        run.record(
            sent,
            Instant::now(),
            status.as_ref().is_ok_and(|s| *s == 200),
        );
        if status.is_ok() {
            sender = Some(ready);
        }
    }
}

async fn connect(addr: SocketAddr) -> Option<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::task::spawn_local(connection);
    Some(sender)
}

/// Sends `request` and reads the whole answer; its status.
async fn exchange(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> Result<u16, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};

    use super::*;

    type Seen = Arc<Mutex<HashMap<String, usize>>>;

    /// 200 for `Bearer good-*`, 401 for anything else; counts what it saw.
    async fn server() -> (u16, Seen) {
        async fn answer(State(seen): State<Seen>, headers: HeaderMap) -> StatusCode {
            let credential = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let good = credential.starts_with("Bearer good-");
            *seen.lock().unwrap().entry(credential).or_default() += 1;
            if good {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }
        let seen = Seen::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (port, seen)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn each_credential_once_sends_every_one_exactly_once_and_counts_refusals_as_errors() {
        let (port, seen) = server().await;
        let tokens: Vec<String> = (0..50)
            .map(|i| match i % 10 {
                0 => format!("bad-{i}"),
                _ => format!("good-{i}"),
            })
            .collect();
        let target = Target::bearer(port, "/", tokens.iter().map(String::as_str));
        let sample =
            tokio::task::spawn_blocking(move || run(target, 4, Amount::EachCredentialOnce, 0))
                .await
                .unwrap();
        assert_eq!((sample.requests, sample.errors), (45, 5));
        assert_eq!(
            sample.latency_us.len(),
            45,
            "one latency per answered request"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 50);
        assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_timed_run_counts_what_is_answered_within_its_time() {
        let (port, seen) = server().await;
        let amount = Amount::For(Duration::from_millis(500));
        let target = Target::bearer(port, "/", ["good-1"]);
        let started = Instant::now();
        let sample = tokio::task::spawn_blocking(move || run(target, 2, amount, 0))
            .await
            .unwrap();
        let took = started.elapsed();
        let sent: usize = seen.lock().unwrap().values().sum();
        assert_eq!(sample.errors, 0);
        assert_eq!(sample.elapsed, Duration::from_millis(500));
        assert!(
            took >= Duration::from_millis(500),
            "stopped early: {took:?}"
        );
        assert!(sample.requests > 0, "nothing counted");
        assert!(
            sample.requests as usize <= sent,
            "{} of {sent}",
            sample.requests
        );
    }
}
