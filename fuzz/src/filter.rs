//! The filter's parsers of outside bytes: its JSON configuration, a
//! route's metadata policy, the request path, the companion's answer to a
//! check, and a page of the change feed.

use arbitrary::{Arbitrary, Unstructured};
use portcullis_core::check::{upstream_header_name, CHECK_PATH};
use portcullis_core::{CheckAnswer, CheckRequest};
use portcullis_filter::cache::Cache;
use portcullis_filter::config::{CacheConfig, FilterConfig};
use portcullis_filter::decision::{decide, CheckReply, Decision, MAX_REPLY_BODY};
use portcullis_filter::path;
use portcullis_filter::policy::Policy;
use portcullis_filter::routing::MetadataPolicies;

use crate::core::check_request_holds;
use crate::SESSION_KEY_BASE64;

/// A configuration either is refused with an error that names no secret,
/// or gives policies whose check paths the companion reads back as the
/// same checks.
pub fn filter_config(data: &[u8]) {
    // The key is a secret only where it is the key: the same text in the
    // authority, say, is the author's to see.
    let once = String::from_utf8_lossy(data)
        .matches(SESSION_KEY_BASE64)
        .count()
        == 1;
    let config = match FilterConfig::from_json(data) {
        Ok(config) => config,
        Err(e) => {
            let message = e.to_string();
            assert!(
                !once || !message.contains(SESSION_KEY_BASE64),
                "a configuration error showed the session key"
            );
            return;
        }
    };
    if once && config.session_cookie.is_some() {
        assert!(!format!("{config:?}").contains(SESSION_KEY_BASE64));
    }
    policy_holds(&config.default_policy);
    for rule in &config.rules {
        policy_holds(&rule.policy);
    }
    if let Some(cache) = &config.cache {
        assert!(cache.ttl_seconds >= 1 && cache.max_entries >= 1);
        assert!(cache.max_feed_lag >= cache.poll_interval);
    }
}

/// A route's policy parses the same way every time (the per-worker memo
/// agrees with a fresh parse), and a valid one holds.
pub fn route_policy(data: &[u8]) {
    let mut memo = MetadataPolicies::default();
    let first = memo.get_or_parse(data);
    let second = memo.get_or_parse(data);
    let fresh = Policy::from_json(data);
    match (&first, &second, &fresh) {
        (Ok(a), Ok(b), Ok(c)) => {
            assert!(**a == **b && **b == *c);
            policy_holds(c);
        }
        (Err(a), Err(b), Err(c)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert_eq!(b.to_string(), c.to_string());
        }
        _ => panic!("a route policy parsed one way and then another"),
    }
}

/// What every policy the filter accepts obeys: its check path is the check
/// it stands for, as the companion will read it.
fn policy_holds(policy: &Policy) {
    let query = policy
        .check_path
        .strip_prefix(CHECK_PATH)
        .and_then(|q| q.strip_prefix('?'))
        .unwrap_or_else(|| panic!("check path {:?} is not the check's", policy.check_path));
    let read = CheckRequest::from_query(query);
    assert_eq!(
        read.as_ref(),
        Ok(&policy.check),
        "the companion reads this policy's check differently"
    );
    check_request_holds(&policy.check);
    if policy.anonymous {
        assert!(policy.check.scopes.is_empty() && policy.check.delegation.is_none());
        assert!(!policy.login_redirect);
    }
}

/// The normal form of a path is rooted, has no dot segment, no empty
/// segment but a trailing one and no `\`; and a normal form without `%`
/// is its own normal form.
pub fn request_path(data: &[u8]) {
    let normal = path::normalise(data);
    assert!(normal.starts_with(b"/"), "not rooted");
    assert!(!normal.contains(&b'\\'));
    assert!(!normal.contains(&b'?') || data.contains(&b'%'));
    let segments: Vec<&[u8]> = normal[1..].split(|b| *b == b'/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let bare = segment.split(|b| *b == b';').next().unwrap_or_default();
        assert!(!matches!(bare, b"." | b".."), "a dot segment survived");
        assert!(
            !segment.is_empty() || i + 1 == segments.len(),
            "an empty segment"
        );
    }
    if !normal.contains(&b'%') && !normal.contains(&b'?') && !normal.contains(&b'#') {
        assert_eq!(&*path::normalise(&normal), &*normal, "not a fixed point");
    }
    assert!(path::under(&normal, b"/"));
}

#[derive(Debug, Arbitrary)]
struct ReplyInput<'a> {
    status: Option<&'a [u8]>,
    www_authenticate: Option<&'a [u8]>,
    use_authorization: bool,
    body: &'a [u8],
}

/// Only a 200 with a valid answer lets a request through, with identity
/// headers that are known names and printable values; only 400, 401 and
/// 403 refuse (a 401 always with a printable challenge); anything else
/// fails closed.
pub fn callout_answer(data: &[u8]) {
    let Ok(input) = ReplyInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if input.body.len() > MAX_REPLY_BODY {
        return;
    }
    let reply = CheckReply {
        status: input.status,
        www_authenticate: input.www_authenticate,
        body: input.body,
    };
    match decide(&reply, input.use_authorization) {
        Decision::Allow {
            headers,
            cache_ttl,
            token_expires,
        } => {
            assert_eq!(input.status, Some(&b"200"[..]), "allowed without a 200");
            let answer: CheckAnswer =
                serde_json::from_slice(input.body).expect("allowed on a body that is no answer");
            assert_eq!(
                (cache_ttl, token_expires),
                (answer.cache_ttl, answer.expires)
            );
            for (name, value) in &headers {
                assert_eq!(upstream_header_name(name), Some(*name));
                assert!(
                    !value.chars().any(char::is_control),
                    "{name} is not printable"
                );
            }
            let authorization = headers.iter().any(|(n, _)| *n == "authorization");
            assert_eq!(
                authorization,
                input.use_authorization && answer.delegated_token.is_some()
            );
        }
        Decision::Refuse(refusal) => {
            let status = input.status.unwrap_or_default();
            assert_eq!(status, refusal.status.to_string().as_bytes());
            assert!([400, 401, 403].contains(&refusal.status));
            if let Some(challenge) = &refusal.www_authenticate {
                assert!(!challenge.chars().any(char::is_control));
            }
            assert!(refusal.status != 401 || refusal.www_authenticate.is_some());
            assert_eq!(refusal.body, input.body);
        }
        Decision::Unavailable(_) => {}
    }
}

/// A page of the feed that cannot be read moves nothing; one that can
/// moves the cursor to its own, and reads back as itself.
pub fn feed_page(data: &[u8]) {
    let config = CacheConfig {
        ttl_seconds: 300,
        negative_ttl_seconds: 5,
        max_entries: 16,
        poll_interval: std::time::Duration::from_secs(1),
        max_feed_lag: std::time::Duration::from_secs(3),
        shared_slots: 0,
        stale_if_error_seconds: 0,
    };
    let mut cache = Cache::new(&config);
    let before = cache.poll_path();
    let parsed = serde_json::from_slice::<portcullis_core::check::Changes>(data);
    match (cache.apply(data, 1000), parsed) {
        (Ok(_), Ok(changes)) => {
            assert_eq!(
                cache.poll_path(),
                format!(
                    "{}?since={}",
                    portcullis_core::check::CHANGES_PATH,
                    changes.cursor
                )
            );
            let written = serde_json::to_vec(&changes).expect("a page writes");
            let read: portcullis_core::check::Changes =
                serde_json::from_slice(&written).expect("a written page reads");
            assert_eq!(read, changes);
        }
        (Err(_), Err(_)) => assert_eq!(cache.poll_path(), before, "a bad page moved the cursor"),
        (ours, serde) => panic!("the feed read a page as {ours:?}, serde as {serde:?}"),
    }
}
