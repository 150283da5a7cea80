//! Turning the companion's reply to a check into what the filter does:
//! let the request through with identity headers, refuse it with the
//! companion's own status and challenge, or fail closed with 503.

use portcullis_core::CheckAnswer;

use crate::request::Shown;

/// Largest check reply body read; anything larger is not a check answer.
pub const MAX_REPLY_BODY: usize = 64 * 1024;

/// Body of the filter's own 503: it names no token and no internal detail.
pub const UNAVAILABLE_BODY: &[u8] =
    br#"{"error":"temporarily_unavailable","error_description":"Authentication service unavailable"}"#;

/// Body of the filter's own 500 for a route whose metadata policy is invalid.
pub const BAD_ROUTE_POLICY_BODY: &[u8] =
    br#"{"error":"server_error","error_description":"This route's authentication policy is invalid"}"#;

/// Body of the filter's own 400 for an Authorization header it cannot read.
pub const BAD_AUTHORIZATION_BODY: &[u8] =
    br#"{"error":"invalid_request","error_description":"Authorization header is not valid UTF-8"}"#;

/// Body of the filter's own 400 for a path that different upstreams could
/// read as different routes (see `routing::select`).
pub const AMBIGUOUS_PATH_BODY: &[u8] =
    br#"{"error":"invalid_request","error_description":"The request's path is not in normal form"}"#;

/// The parts of the companion's reply that matter, as raw bytes from the host.
#[derive(Debug, Default)]
pub struct CheckReply<'a> {
    /// `:status`; absent when Envoy reset the callout or it timed out.
    pub status: Option<&'a [u8]>,
    pub www_authenticate: Option<&'a [u8]>,
    pub body: &'a [u8],
}

#[derive(PartialEq, Eq)]
pub enum Decision {
    /// Continue to the upstream with these identity headers set; the
    /// answer may be reused for `cache_ttl` seconds.
    Allow {
        headers: Vec<(&'static str, String)>,
        cache_ttl: u64,
        /// The token's own expiry, seconds since the Unix epoch.
        token_expires: Option<u64>,
    },
    Refuse(Refusal),
    /// Answer 503; the reason is for the log, never for the client.
    Unavailable(String),
}

/// The identity may hold a delegated token: shown redacted.
impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Allow {
                headers,
                cache_ttl,
                token_expires,
            } => f
                .debug_struct("Allow")
                .field("headers", &Shown(headers))
                .field("cache_ttl", cache_ttl)
                .field("token_expires", token_expires)
                .finish(),
            Decision::Refuse(refusal) => f.debug_tuple("Refuse").field(refusal).finish(),
            Decision::Unavailable(reason) => f.debug_tuple("Unavailable").field(reason).finish(),
        }
    }
}

/// A refusal forwarded from the companion: 400, 401 or 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u32,
    pub www_authenticate: Option<String>,
    pub body: Vec<u8>,
}

/// `use_authorization`: the route wants the delegated token in
/// `Authorization` as well.
pub fn decide(reply: &CheckReply<'_>, use_authorization: bool) -> Decision {
    let Some(status) = reply.status else {
        return Decision::Unavailable("check callout failed: no response".into());
    };
    match status {
        b"200" => decide_allowed(reply.body, use_authorization),
        b"400" | b"401" | b"403" => refuse(status, reply),
        other => Decision::Unavailable(format!(
            "check answered status {}",
            String::from_utf8_lossy(other)
        )),
    }
}

/// The decision for a 200: the answer's identity (and any delegated
/// token), or unavailable when the answer cannot be read.
fn decide_allowed(body: &[u8], use_authorization: bool) -> Decision {
    let answer: CheckAnswer = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(e) => return Decision::Unavailable(format!("check answer is not valid: {e}")),
    };
    if !answer.is_header_safe() {
        return Decision::Unavailable("check answer has control characters".into());
    }
    Decision::Allow {
        headers: answer.upstream_headers(use_authorization),
        cache_ttl: answer.cache_ttl,
        token_expires: answer.expires,
    }
}

fn refuse(status: &[u8], reply: &CheckReply<'_>) -> Decision {
    let status = match status {
        b"400" => 400,
        b"401" => 401,
        _ => 403,
    };
    let www_authenticate = match reply.www_authenticate.map(header_text) {
        None => None,
        Some(Some(text)) => Some(text),
        Some(None) => {
            return Decision::Unavailable("check refusal has an unusable WWW-Authenticate".into())
        }
    };
    // RFC 6750 §3: a 401 must carry a challenge.
    if status == 401 && www_authenticate.is_none() {
        return Decision::Unavailable("check answered 401 without WWW-Authenticate".into());
    }
    if !is_error_body(reply.body) {
        return Decision::Unavailable("check refusal has no error body".into());
    }
    Decision::Refuse(Refusal {
        status,
        www_authenticate,
        body: reply.body.to_vec(),
    })
}

/// True for the RFC 6749-style body the companion sends with a refusal: a
/// JSON object with a string `error`. It is forwarded as it is.
fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("error").is_some_and(serde_json::Value::is_string))
}

/// A header value fit to be sent on: UTF-8 with no control characters.
fn header_text(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    (!text.chars().any(char::is_control)).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_plain(reply: &CheckReply<'_>) -> Decision {
        decide(reply, false)
    }

    const ANSWER: &[u8] = br#"{"username":"alice","token_type":"user","scopes":["read:all","exec:x"],
        "expires":null,"email":"alice@example.org","name":null,"uid":null,"gid":null,"cache_ttl":60}"#;
    const CHALLENGE: &[u8] =
        br#"Bearer realm="r", error="invalid_token", error_description="Token is not valid""#;
    const ERROR: &[u8] = br#"{"error":"invalid_token","error_description":"Token is not valid"}"#;

    fn reply<'a>(status: &'a [u8], challenge: Option<&'a [u8]>, body: &'a [u8]) -> CheckReply<'a> {
        CheckReply {
            status: Some(status),
            www_authenticate: challenge,
            body,
        }
    }

    #[test]
    fn decisions_and_cache_entries_print_no_delegated_token() {
        let identity = vec![
            ("x-auth-request-user", "alice".to_owned()),
            ("x-auth-request-token", "gt-delegated.secret".to_owned()),
            ("authorization", "Bearer gt-delegated.secret".to_owned()),
        ];
        let decision = Decision::Allow {
            headers: identity.clone(),
            cache_ttl: 1,
            token_expires: None,
        };
        let cached = crate::cache::Cached::Allow(identity.clone());
        let start = crate::flow::Start::Ask(identity);
        for shown in [
            format!("{decision:?}"),
            format!("{cached:?}"),
            format!("{start:?}"),
        ] {
            assert!(!shown.contains("gt-delegated"), "{shown}");
            assert!(shown.contains("alice"), "{shown}");
        }
    }

    #[test]
    fn ok_answer_allows_with_identity_headers() {
        assert_eq!(
            decide_plain(&reply(b"200", None, ANSWER)),
            Decision::Allow {
                headers: vec![
                    ("x-auth-request-user", "alice".into()),
                    ("x-auth-request-email", "alice@example.org".into()),
                    ("x-auth-request-token-scopes", "read:all exec:x".into()),
                ],
                cache_ttl: 60,
                token_expires: None,
            }
        );
    }

    #[test]
    fn delegated_token_goes_to_its_header_and_where_asked_to_authorization() {
        let body = String::from_utf8_lossy(ANSWER).replace(
            r#""cache_ttl":60"#,
            r#""cache_ttl":60,"delegated_token":"gt-d""#,
        );
        let Decision::Allow { headers: plain, .. } =
            decide(&reply(b"200", None, body.as_bytes()), false)
        else {
            panic!("not allowed");
        };
        assert!(plain.contains(&("x-auth-request-token", "gt-d".into())));
        assert!(plain.iter().all(|(name, _)| *name != "authorization"));
        let Decision::Allow { headers: with, .. } =
            decide(&reply(b"200", None, body.as_bytes()), true)
        else {
            panic!("not allowed");
        };
        assert!(with.contains(&("authorization", "Bearer gt-d".into())));
    }

    #[test]
    fn answer_without_email_sets_no_email_header() {
        let body = String::from_utf8_lossy(ANSWER).replace(r#""alice@example.org""#, "null");
        let Decision::Allow { headers: set, .. } =
            decide_plain(&reply(b"200", None, body.as_bytes()))
        else {
            panic!("not allowed");
        };
        assert!(set.iter().all(|(name, _)| *name != "x-auth-request-email"));
    }

    #[test]
    fn refusals_carry_the_companions_status_challenge_and_body() {
        for status in [&b"400"[..], b"401", b"403"] {
            let Decision::Refuse(refusal) = decide_plain(&reply(status, Some(CHALLENGE), ERROR))
            else {
                panic!("not refused");
            };
            assert_eq!(refusal.status.to_string().as_bytes(), status);
            assert_eq!(
                refusal.www_authenticate.as_deref().map(str::as_bytes),
                Some(CHALLENGE)
            );
            assert_eq!(refusal.body, ERROR);
        }
    }

    #[test]
    fn every_failure_of_the_companion_fails_closed() {
        let header_split = b"Bearer realm=\"r\"\r\nx-evil: 1";
        let cases: Vec<(&str, CheckReply)> = vec![
            ("reset", CheckReply::default()),
            ("500", reply(b"500", None, b"oops")),
            ("503", reply(b"503", None, b"")),
            ("302", reply(b"302", None, b"")),
            ("garbage 200", reply(b"200", None, b"<html>")),
            ("200 missing fields", reply(b"200", None, br#"{"username":"a"}"#)),
            (
                "200 header split",
                reply(b"200", None, br#"{"username":"a\r\nb","token_type":"user","scopes":[],"expires":null,"email":null,"name":null,"uid":null,"gid":null,"cache_ttl":1}"#),
            ),
            ("401 without challenge", reply(b"401", None, ERROR)),
            ("401 split challenge", reply(b"401", Some(header_split), ERROR)),
            ("403 garbage body", reply(b"403", Some(CHALLENGE), b"nope")),
        ];
        for (name, case) in cases {
            assert!(
                matches!(decide_plain(&case), Decision::Unavailable(_)),
                "{name} did not fail closed"
            );
        }
    }
}
