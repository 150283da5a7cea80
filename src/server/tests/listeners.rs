//! The companion's two listeners over real sockets: the ingress endpoints
//! only on the ingress listener, and every listener bounded against slow
//! and numerous clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis::app::App;
use portcullis::serve::{serve, Limits};
use portcullis::services::{Actor, AdminTokenRequest, UserInfo};
use portcullis_core::{Token, TokenType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

mod common;

use common::{backends, Backend, TestStore};
use rstest_reuse::apply;

/// A listener serving `router` on a free loopback port until dropped.
struct Served {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn served(router: axum::Router, limits: Limits) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, limits, None, async move {
        let _ = stopped.await;
    }));
    Served {
        address,
        _stop: stop,
    }
}

const ROOMY: Limits = Limits {
    header_read_timeout: Duration::from_secs(10),
    max_connections: 64,
};

/// Sends `request` on a new connection and reads until it closes; the
/// status of the answer, or `None` if the connection closed without one.
async fn exchange(address: SocketAddr, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the connection closes")
        .ok()?;
    status_of(&answer)
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn get(path: &str, token: Option<&Token>) -> String {
    let auth = token.map_or(String::new(), |t| {
        format!("authorization: Bearer {}\r\n", t.expose())
    });
    format!("GET {path} HTTP/1.1\r\nhost: companion\r\n{auth}connection: close\r\n\r\n")
}

async fn app(store: &TestStore, top: &str) -> App {
    App::from_config(&store.config_with_top_level(top))
        .await
        .unwrap()
}

#[apply(backends)]
#[tokio::test]
async fn ingress_endpoints_answer_only_on_the_ingress_listener(backend: Backend) {
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let app = app(&store, "").await;
    let token = app
        .tokens
        .create_token_from_admin_request(
            AdminTokenRequest {
                user: UserInfo {
                    username: "alice".into(),
                    ..UserInfo::default()
                },
                token_type: TokenType::User,
                token_name: Some("t".into()),
                scopes: vec!["read:all".parse().unwrap(), "user:token".parse().unwrap()],
                expires: None,
            },
            &Actor::Cli,
            None,
        )
        .await
        .unwrap();
    let public = served(app.router(), ROOMY).await;
    let ingress = served(app.ingress_router(), ROOMY).await;
    let paths = [
        "/ingress/auth?scope=read:all",
        "/ingress/auth?scope=read:all&delegate_to=any-service&delegate_scope=read:all",
        "/ingress/auth/",
        "/ingress/changes",
        "/ingress/ext-authz",
        "/ingress/ext-authz/x",
        "/metrics",
    ];
    for path in paths {
        assert_eq!(
            exchange(public.address, &get(path, Some(&token))).await,
            Some(404),
            "public {path}"
        );
    }
    for method in ["POST", "PUT", "DELETE"] {
        let request = format!(
            "{method} /ingress/ext-authz/x HTTP/1.1\r\nhost: c\r\nauthorization: Bearer {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            token.expose()
        );
        assert_eq!(
            exchange(public.address, &request).await,
            Some(404),
            "{method}"
        );
    }
    for path in [
        "/ingress/auth?scope=read:all",
        "/ingress/changes",
        "/metrics",
    ] {
        assert_eq!(
            exchange(ingress.address, &get(path, Some(&token))).await,
            Some(200),
            "ingress {path}"
        );
    }
    // The ingress listener serves nothing else.
    let api = "/auth/api/v1/token-info";
    assert_eq!(
        exchange(ingress.address, &get(api, Some(&token))).await,
        Some(404)
    );
    assert_eq!(
        exchange(public.address, &get(api, Some(&token))).await,
        Some(200)
    );
    for served in [&public, &ingress] {
        assert_eq!(
            exchange(served.address, &get("/health", None)).await,
            Some(200)
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served(backend: Backend) {
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let app = app(&store, "").await;
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 64,
    };
    let listener = served(app.router(), limits).await;
    let mut slow = TcpStream::connect(listener.address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: c\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = async {
        // A byte every 200 ms: never the end of the headers.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"x").await.is_err() {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        (started.elapsed(), rest)
    };
    let others = async {
        let mut served = 0;
        for _ in 0..5 {
            if exchange(listener.address, &get("/health", None)).await == Some(200) {
                served += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        served
    };
    let ((cut_after, rest), served) = tokio::join!(trickle, others);
    assert_eq!(served, 5, "others were served meanwhile");
    // hyper answers 408 or closes; either way no request was handled, and
    // the connection is gone long before 100 trickled bytes (20 s).
    assert!(
        cut_after < Duration::from_secs(8),
        "cut off after {cut_after:?}"
    );
    assert_ne!(
        status_of(&rest),
        Some(200),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[apply(backends)]
#[tokio::test]
async fn a_request_whose_body_trickles_is_answered_503_at_the_time_limit(backend: Backend) {
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let app = app(&store, "request_timeout_seconds = 1").await;
    let bootstrap = common::bootstrap();
    let listener = served(app.router(), ROOMY).await;
    let mut stream = TcpStream::connect(listener.address).await.unwrap();
    let head = format!(
        "POST /auth/api/v1/users/alice/tokens HTTP/1.1\r\nhost: c\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{{",
        bootstrap.expose()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        // A byte every 200 ms: 10 s for the whole body.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = writer.write_all(b" ").await;
        }
    };
    tokio::select! {
        () = trickle => {}
        _ = reader.read_to_end(&mut answer) => {}
    }
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), Some(503), "{text}");
    assert!(text.contains("not answered within 1 s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[apply(backends)]
#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes(backend: Backend) {
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let app = app(&store, "").await;
    let limits = Limits {
        header_read_timeout: Duration::from_secs(2),
        max_connections: 2,
    };
    let listener = served(app.router(), limits).await;
    // Two idle connections take both places.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(listener.address).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        idle.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let third = exchange(listener.address, &get("/health", None)).await;
    // Served only once the header timeout freed a place.
    assert_eq!(third, Some(200));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "served after {:?}, with both places taken",
        started.elapsed()
    );
    drop(idle);
}
