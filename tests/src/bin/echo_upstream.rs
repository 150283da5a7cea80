//! The demo and test upstream: answers every request with the method, path
//! and headers it received, as JSON, so a test can see what Envoy forwarded.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::Request;
use axum::Json;
use serde_json::{json, Value};

async fn echo(request: Request) -> Json<Value> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().to_string(),
        "headers": headers,
    }))
}

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: echo-upstream PORT");
            std::process::exit(2);
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("echo-upstream: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let app = axum::Router::new().fallback(echo);
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("echo-upstream: {e}");
        std::process::exit(1);
    }
}
