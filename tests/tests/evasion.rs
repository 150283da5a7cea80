//! An attacker's spellings at the edge, through the real Envoy on the
//! configuration users copy (and, for what the filter must hold on its
//! own, on one with Envoy's normalisation taken away): the session cookie
//! never reaches the upstream, no spelling of an identity header is
//! forged, and no spelling of a path dodges its route's policy.

use portcullis_e2e::raw::{self, RawResponse};
use portcullis_e2e::stack::{with_filter_config, without_lines};
use portcullis_e2e::Stack;

/// The session cookie's value, as the companion sealed it.
fn sealed(cookie: &str) -> &str {
    cookie
        .strip_prefix("portcullis_session=")
        .expect("a portcullis_session cookie")
}

/// Asserts the request reached the upstream as `user` and that no header
/// the upstream saw holds the session cookie, in name or value.
fn reached_without_the_cookie(answer: &RawResponse, user: &str, value: &str, case: &str) {
    assert_eq!(answer.status, 200, "{case}: {answer:?}");
    let headers = answer.upstream_headers();
    assert_eq!(headers["x-auth-request-user"][0], user, "{case}");
    let seen = serde_json::to_string(&headers).unwrap();
    assert!(
        !seen.contains(value),
        "{case}: the cookie reached the upstream: {seen}"
    );
    assert!(!seen.contains("portcullis_session"), "{case}: {seen}");
}

#[tokio::test]
async fn the_session_cookie_never_reaches_the_upstream_whatever_surrounds_it() {
    let stack = Stack::start().await;
    let cookie = stack.companion.session_cookie("alice", &["read:all"]);
    let value = sealed(&cookie);
    let port = stack.ports.proxy;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "beside bytes that are not UTF-8",
            vec![[&b"evil=\xff\xfe; "[..], cookie.as_bytes(), b"; ok=\xc3"].concat()],
        ),
        (
            "in the second of two Cookie headers",
            vec![b"theme=dark".to_vec(), cookie.clone().into_bytes()],
        ),
        (
            "in the first of two Cookie headers",
            vec![cookie.clone().into_bytes(), b"theme=dark".to_vec()],
        ),
        (
            "named twice",
            vec![format!("{cookie}; theme=dark; portcullis_session=v1.stale").into_bytes()],
        ),
        (
            "named twice, the stale one first",
            vec![format!("portcullis_session=v1.stale; {cookie}").into_bytes()],
        ),
        (
            "with odd spacing",
            vec![format!("theme=dark;portcullis_session =\t{value} ;  lang=en").into_bytes()],
        ),
        (
            "quoted",
            vec![format!("theme=dark; portcullis_session=\"{value}\"").into_bytes()],
        ),
        (
            "inside another cookie's open quote",
            vec![format!("a=\"x; {cookie}; b=y\"").into_bytes()],
        ),
    ];
    for (case, cookies) in &cases {
        let headers: Vec<(&str, &[u8])> =
            cookies.iter().map(|c| ("cookie", c.as_slice())).collect();
        let answer = raw::get(port, b"/hello", &headers).await;
        reached_without_the_cookie(&answer, "alice", value, case);
    }

    // The other cookies pass byte for byte, the one that is not UTF-8 too.
    let sent = [&b"evil=\xff\xfe; "[..], cookie.as_bytes(), b"; theme=dark"].concat();
    let answer = raw::get(port, b"/hello", &[("cookie", &sent)]).await;
    let kept = &answer.upstream_headers()["cookie"];
    assert_eq!(
        kept,
        &serde_json::json!(["evil=\u{fffd}\u{fffd}; theme=dark"])
    );

    // With a bearer token, and on a route that checks nothing, the cookie
    // is still taken off.
    let token = stack.companion.create_token("bob", &["read:all"]);
    let bearer = format!("Bearer {token}");
    let answer = raw::get(
        port,
        b"/hello",
        &[("authorization", bearer.as_bytes()), ("cookie", &sent)],
    )
    .await;
    reached_without_the_cookie(&answer, "alice", value, "with a bearer token too");
    let answer = raw::get(port, b"/public/x", &[("cookie", &sent)]).await;
    assert_eq!(answer.status, 200);
    let seen = serde_json::to_string(&answer.upstream_headers()).unwrap();
    assert!(!seen.contains(value), "anonymous route: {seen}");
}

/// Spellings of identity headers that some upstream reads as the real ones.
const FORGED: [&str; 6] = [
    "X_Auth_Request_Groups",
    "x-auth_request-email",
    "x_auth_request_user",
    "X.Auth.Request.Uid",
    "x-auth-request-token",
    "X-Portcullis-Check",
];

/// Folds a header name as CGI, WSGI, Rack and PHP do.
fn folded(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

#[tokio::test]
async fn the_shipped_configuration_refuses_headers_with_underscores() {
    let stack = Stack::start().await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    let bearer = format!("Bearer {token}");
    for name in FORGED.iter().filter(|n| n.contains('_')) {
        let answer = raw::get(
            stack.ports.proxy,
            b"/hello",
            &[("authorization", bearer.as_bytes()), (name, b"admins")],
        )
        .await;
        assert_eq!(answer.status, 400, "{name}: {answer:?}");
    }
}

#[tokio::test]
async fn no_spelling_of_an_identity_header_reaches_the_upstream_whatever_envoy_allows() {
    // Envoy's default: headers with underscores are forwarded.
    let stack = Stack::start_with(|_, config| {
        without_lines(
            &config,
            &["headers_with_underscores_action: REJECT_REQUEST"],
        )
    })
    .await;
    let token = stack.companion.create_token("alice", &["read:all"]);
    let bearer = format!("Bearer {token}");
    let mut headers: Vec<(&str, &[u8])> = vec![("authorization", bearer.as_bytes())];
    headers.extend(FORGED.iter().map(|name| (*name, &b"forged"[..])));
    for path in [&b"/hello"[..], b"/public/x"] {
        let answer = raw::get(stack.ports.proxy, path, &headers).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let seen = answer.upstream_headers();
        for (name, values) in &seen {
            assert!(
                !values.to_string().contains("forged"),
                "{name} reached the upstream on {:?}: {seen:?}",
                String::from_utf8_lossy(path)
            );
        }
        let folded_names: Vec<String> = seen.keys().map(|n| folded(n)).collect();
        for name in FORGED {
            let real = folded(name);
            let count = folded_names.iter().filter(|n| **n == real).count();
            assert!(count <= 1, "{real} twice: {seen:?}");
        }
    }
}

const READER_SCOPES: &[&str] = &["read:all"];

/// Paths that mean `/admin/x` (or `/admin`) to some upstream, each of which
/// must be checked as the admin route or refused.
const ADMIN_SPELLINGS: [&[u8]; 12] = [
    b"/admin",
    b"//admin/x",
    b"/admin//x",
    b"/./admin/x",
    b"/public/../admin/x",
    b"/public/%2e%2e/admin/x",
    b"/public/%2E%2E/admin/x",
    b"/public/..%2Fadmin/x",
    b"/admin%2Fx",
    b"/admin%5Cx",
    b"/public/..%5Cadmin",
    b"/%61dmin/x",
];

/// Paths that leave `/public/` for a checked route to some upstream.
const OUT_OF_PUBLIC: [&[u8]; 5] = [
    b"/public/../x",
    b"/public/%2e%2e/x",
    b"/public/..%2Fx",
    b"/public/..;/x",
    b"/public%2F..%2Fx",
];

/// Asserts that a reader (no `admin:token`) reaches none of the admin
/// spellings and that no one without a token leaves `/public/`; what
/// refuses (Envoy's 400, the filter's 400 or 403) may differ.
async fn no_spelling_dodges_a_policy(stack: &Stack) {
    let port = stack.ports.proxy;
    let reader = stack.companion.create_token("reader", READER_SCOPES);
    let admin = stack
        .companion
        .create_token("root", &["admin:token", "read:all"]);
    let bearer = |t: &str| format!("Bearer {t}");
    for path in ADMIN_SPELLINGS {
        let shown = String::from_utf8_lossy(path);
        let answer = raw::get(port, path, &[("authorization", bearer(&reader).as_bytes())]).await;
        assert!(
            matches!(answer.status, 400 | 403),
            "a reader reached {shown}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    for path in OUT_OF_PUBLIC {
        let shown = String::from_utf8_lossy(path);
        let answer = raw::get(port, path, &[]).await;
        assert!(
            matches!(answer.status, 400 | 401),
            "no token reached {shown}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    // The policies themselves still hold as written.
    let ok = |path: &'static [u8], token: Option<String>| async move {
        let auth = token.map(|t| bearer(&t));
        let headers: Vec<(&str, &[u8])> = auth
            .iter()
            .map(|a| ("authorization", a.as_bytes()))
            .collect();
        raw::get(port, path, &headers).await.status
    };
    assert_eq!(ok(b"/admin/x", Some(admin.clone())).await, 200);
    assert_eq!(ok(b"/admin", Some(admin.clone())).await, 200);
    assert_eq!(
        ok(b"/administrator", Some(reader.clone())).await,
        200,
        "segments, not bytes"
    );
    assert_eq!(ok(b"/public/x", None).await, 200);
    assert_eq!(ok(b"/x", None).await, 401);
}

#[tokio::test]
async fn no_spelling_of_a_path_dodges_a_routes_policy_on_the_shipped_configuration() {
    let stack = Stack::start().await;
    no_spelling_dodges_a_policy(&stack).await;
}

/// The filter's own rules, for an Envoy that normalises nothing: the admin
/// route's metadata cannot help there (Envoy routes on the raw path).
const FILTER_RULES: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]}, "rules": [
  {"match": {"prefix": "/public/"}, "policy": {"anonymous": true}},
  {"match": {"prefix": "/admin"}, "policy": {"scopes": ["admin:token"]}}]}"#;

#[tokio::test]
async fn the_filters_rules_hold_behind_an_envoy_that_normalises_nothing() {
    let stack = Stack::start_with(|_, config| {
        let config = without_lines(
            &config,
            &[
                "normalize_path: true",
                "merge_slashes: true",
                "path_with_escaped_slashes_action: REJECT_REQUEST",
            ],
        );
        with_filter_config(&config, FILTER_RULES)
    })
    .await;
    no_spelling_dodges_a_policy(&stack).await;
    // The filter answered these itself, before the upstream saw them.
    let answer = raw::get(stack.ports.proxy, b"/public/../x", &[]).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        String::from_utf8_lossy(&answer.body).contains("not in normal form"),
        "{answer:?}"
    );
}
