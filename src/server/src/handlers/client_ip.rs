//! The address of the client a request came from, for history: the peer,
//! or behind trusted proxies the nearest untrusted `X-Forwarded-For` hop.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

use super::AppState;

pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        // Every X-Forwarded-For header, in order, is one list (RFC 9110
        // §5.3): a client's own header before the proxy's cannot hide it.
        let values: Option<Vec<&str>> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().ok())
            .collect();
        let forwarded = values.map(|v| v.join(","));
        Ok(ClientIp(client_ip(
            peer,
            forwarded.as_deref().filter(|f| !f.is_empty()),
            &state.trusted_proxies,
        )))
    }
}

/// Walks `X-Forwarded-For` from the right, past trusted proxies only: a hop
/// added by an untrusted party (or an unreadable one) ends the walk, so a
/// client cannot choose the address history records for it.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    for hop in forwarded.unwrap_or("").rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn loopback() -> Vec<IpNet> {
        vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    #[test]
    fn with_no_trusted_proxy_the_peer_is_the_client() {
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("203.0.113.9"), &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client_ip(ip("192.0.2.5"), Some("198.51.100.1"), &loopback()),
            ip("192.0.2.5")
        );
    }

    #[test]
    fn trusted_proxies_are_walked_to_the_first_untrusted_hop() {
        let trusted = loopback();
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("203.0.113.9, 10.0.0.2"), &trusted),
            ip("203.0.113.9")
        );
        // A client-supplied left part is not believed past an untrusted hop.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                Some("1.1.1.1, 203.0.113.9, 10.0.0.2"),
                &trusted
            ),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("junk, 10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(client_ip(None, Some("203.0.113.9"), &trusted), None);
    }
}
