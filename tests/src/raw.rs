//! HTTP/1.1 written byte for byte: paths no URL library would leave as
//! they are (`/a/../b`, `//b`, `%2e`), header values that are not UTF-8,
//! repeated headers, and requests sent slowly.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back, read to the end of the connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The head's lines after the status line, as they came.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The echo upstream's answer as JSON.
    pub fn echoed(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not the echo upstream's JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The headers the echo upstream saw.
    pub fn upstream_headers(&self) -> serde_json::Map<String, Value> {
        self.echoed()["headers"]
            .as_object()
            .cloned()
            .expect("echo answer has headers")
    }
}

/// `GET target` on `port` with `headers` (name, raw value), then reads the
/// whole answer (the request asks to close the connection).
pub async fn get(port: u16, target: &[u8], headers: &[(&str, &[u8])]) -> RawResponse {
    let mut request = Vec::new();
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    send(port, &request).await
}

/// Sends `request` as it is and reads the answer to the end.
pub async fn send(port: u16, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("send the request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s")
        .expect("read the answer");
    parse(&answer)
}

fn parse(answer: &[u8]) -> RawResponse {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let (status_line, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let mut body = answer[split + 4..].to_vec();
    if rest
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"))
    {
        body = dechunk(&body);
    }
    RawResponse {
        status,
        head: rest.to_owned(),
        body,
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(at) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..at])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || body.len() < at + 2 + size {
            break;
        }
        out.extend_from_slice(&body[at + 2..at + 2 + size]);
        body = &body[(at + 4 + size).min(body.len())..];
    }
    out
}
