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
        // §5.3): a client's own header before the proxy's cannot hide it,
        // nor can bytes that are not text (they are one more bad hop).
        let forwarded: Vec<&[u8]> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        Ok(ClientIp(client_ip(
            peer,
            &forwarded.join(&b","[..]),
            &state.trusted_proxies,
        )))
    }
}

/// Walks `X-Forwarded-For` from the right, past trusted proxies only: a hop
/// added by an untrusted party (or an unreadable one) ends the walk, so a
/// client cannot choose the address history records for it.
pub fn client_ip(peer: Option<IpAddr>, forwarded: &[u8], trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    let hops = forwarded
        .rsplit(|b| *b == b',')
        .filter(|_| !forwarded.is_empty());
    for hop in hops {
        let Some(ip) = std::str::from_utf8(hop)
            .ok()
            .and_then(|h| h.trim().parse::<IpAddr>().ok())
        else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
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
            client_ip(ip("127.0.0.1"), b"203.0.113.9", &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client_ip(ip("192.0.2.5"), b"198.51.100.1", &loopback()),
            ip("192.0.2.5")
        );
    }

    #[test]
    fn trusted_proxies_are_walked_to_the_first_untrusted_hop() {
        let trusted = loopback();
        assert_eq!(
            client_ip(ip("127.0.0.1"), b"203.0.113.9, 10.0.0.2", &trusted),
            ip("203.0.113.9")
        );
        // A client-supplied left part is not believed past an untrusted hop.
        assert_eq!(
            client_ip(ip("127.0.0.1"), b"1.1.1.1, 203.0.113.9, 10.0.0.2", &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), b"", &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), b"junk, 10.0.0.3", &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(client_ip(None, b"203.0.113.9", &trusted), None);
        // Bytes that are not text are a hop that cannot be read: the walk
        // stops there, as at any other bad hop.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                b"203.0.113.9, \xff\xfe, 10.0.0.2",
                &trusted
            ),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), b"\xff, 203.0.113.9, 10.0.0.2", &trusted),
            ip("203.0.113.9")
        );
    }
}
