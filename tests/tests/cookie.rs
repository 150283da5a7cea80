//! The session cookie through the real Envoy: sealed by the companion,
//! opened by the filter, never passed upstream.

use portcullis_e2e::stack::upstream_headers;
use portcullis_e2e::Stack;
use reqwest::StatusCode;

#[tokio::test]
async fn a_session_cookie_authenticates_and_only_it_is_removed_from_cookie() {
    let stack = Stack::start().await;
    let session = stack.companion.session_cookie("alice", &["read:all"]);
    assert!(session.starts_with("portcullis_session=v1."), "{session}");
    let response = stack
        .get(
            "/",
            &[
                ("cookie", &format!("theme=dark; {session}; lang=en")),
                ("x-custom", "kept"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_headers(response).await;
    assert_eq!(headers["x-auth-request-user"][0], "alice");
    assert_eq!(
        headers["cookie"],
        serde_json::json!(["theme=dark; lang=en"])
    );
    assert_eq!(
        headers["x-custom"],
        serde_json::json!(["kept"]),
        "other headers pass untouched"
    );
    assert!(!headers.contains_key("authorization"));

    // Alone, it leaves no Cookie header at all; on an anonymous route it is
    // still taken off.
    let alone = upstream_headers(stack.get("/public/x", &[("cookie", &session)]).await).await;
    assert!(!alone.contains_key("cookie"), "{alone:?}");
}

#[tokio::test]
async fn tampered_and_foreign_cookies_are_no_credential() {
    let stack = Stack::start().await;
    let session = stack.companion.session_cookie("alice", &["read:all"]);
    let mut tampered = session.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    // Sealed by another installation, with another key.
    let other = Stack::start().await;
    let foreign = other.companion.session_cookie("alice", &["read:all"]);
    for cookie in [
        &tampered,
        &foreign,
        &"portcullis_session=garbage".to_owned(),
    ] {
        let response = stack.get("/", &[("cookie", cookie)]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="portcullis""#,
            "as if there were none"
        );
    }
    // A bad cookie does not hide a good bearer token.
    let token = stack.companion.create_token("bob", &["read:all"]);
    let bearer = format!("Bearer {token}");
    let response = stack
        .get("/", &[("cookie", &tampered), ("authorization", &bearer)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        upstream_headers(response).await["x-auth-request-user"][0],
        "bob"
    );
}

#[tokio::test]
async fn the_session_cookie_comes_first_and_revoking_the_session_ends_it() {
    let stack = Stack::start().await;
    let session = stack.companion.session_cookie("alice", &["read:all"]);
    let token = stack.companion.create_token("bob", &["read:all"]);
    let bearer = format!("Bearer {token}");
    let both = upstream_headers(
        stack
            .get("/", &[("cookie", &session), ("authorization", &bearer)])
            .await,
    )
    .await;
    assert_eq!(
        both["x-auth-request-user"][0], "alice",
        "Gafaelfawr's order: the cookie first"
    );

    let listed = stack.companion.cli(&["token", "list", "--user", "alice"]);
    let key = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split('\t').next())
        .expect("alice's session")
        .to_owned();
    stack.companion.cli(&["token", "revoke", &key]);
    let refused = stack.get("/", &[("cookie", &session)]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
}
