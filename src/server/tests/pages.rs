//! The pages people use, through the router: a browser without a session
//! is sent to sign in; every page carries the strict policy; forms act
//! only when they come from this site with the session's CSRF token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use portcullis::app::App;
use portcullis::services::{Actor, ManualClock, UserInfo};
use portcullis_core::{Token, TokenType};

mod common;

use common::{backends, session_cookie, Backend, TestStore};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;

/// A login section whose provider is never reached: only the redirect to
/// `/login` is looked at.
const LOGIN: &str = "\n[login]\nissuer = \"http://127.0.0.1:9\"\nallow_insecure_http = true\n\
    client_id = \"p\"\nclient_secret = \"s\"\n[login.group_scopes]\nstaff = [\"read:all\"]\n";

struct Fixture {
    app: App,
    alice: Token,
    _store: TestStore,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let (app, _, store) =
        common::app_with(backend, Arc::new(ManualClock::at(START)), LOGIN).await?;
    let user = UserInfo {
        username: "alice".into(),
        ..UserInfo::default()
    };
    let scopes = vec!["read:all".parse().unwrap(), "user:token".parse().unwrap()];
    let alice = app
        .tokens
        .create_session_token(&user, scopes, None)
        .await
        .unwrap();
    Some(Fixture {
        app,
        alice,
        _store: store,
    })
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Fixture {
    async fn get(&self, path: &str, cookie: Option<&Token>) -> Page {
        let mut request = Request::get(path);
        if let Some(token) = cookie {
            request = request.header("cookie", session_cookie(token));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", session_cookie(&self.alice));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    async fn send(&self, request: Request<Body>) -> Page {
        let (status, headers, body) = common::send(&self.app, request).await;
        Page {
            status,
            headers,
            html: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// The CSRF token in the page's forms.
    async fn csrf(&self) -> String {
        let page = self.get("/auth/tokens/new", Some(&self.alice)).await;
        let at = page.html.find("name=\"csrf\" value=\"").unwrap() + 19;
        page.html[at..].split('"').next().unwrap().to_owned()
    }

    async fn user_token_names(&self) -> Vec<String> {
        self.app
            .tokens
            .list_tokens(&Actor::Cli, Some("alice"))
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.token_type == TokenType::User)
            .filter_map(|t| t.token_name)
            .collect()
    }
}

const SAME_ORIGIN: (&str, &str) = ("sec-fetch-site", "same-origin");

#[apply(backends)]
#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_sign_in_and_back(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    for (path, back) in [
        ("/auth/tokens", "%2Fauth%2Ftokens"),
        (
            "/auth/tokens/history?key=x",
            "%2Fauth%2Ftokens%2Fhistory%3Fkey%3Dx",
        ),
    ] {
        let page = f.get(path, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.headers["location"], format!("/login?rd={back}"));
    }
    // The start page says who you are, or offers to sign in.
    let signed_out = f.get("/", None).await;
    assert_eq!(signed_out.status, StatusCode::OK);
    assert!(signed_out.html.contains("Sign in"), "{}", signed_out.html);
    let signed_in = f.get("/", Some(&f.alice)).await;
    assert!(
        signed_in.html.contains("<strong>alice</strong>"),
        "{}",
        signed_in.html
    );
    assert!(signed_in.html.contains("<code>read:all</code>"));
    // A revoked session is no session.
    f.app.tokens.logout(&f.alice, None).await.unwrap();
    let page = f.get("/auth/tokens", Some(&f.alice)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[apply(backends)]
#[tokio::test]
async fn every_page_allows_no_inline_script_no_framing_and_no_caching(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let key = f.alice.key().as_str().to_owned();
    for path in [
        "/".to_owned(),
        "/signed-out".to_owned(),
        "/auth/tokens".to_owned(),
        "/auth/tokens/new".to_owned(),
        "/auth/tokens/history".to_owned(),
        format!("/auth/tokens/{key}"),
        format!("/auth/tokens/{key}/revoke"),
        "/no/such/page".to_owned(),
    ] {
        let page = f.get(&path, Some(&f.alice)).await;
        let policy = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'none'; script-src 'self';"),
            "{path}"
        );
        assert!(!policy.contains("unsafe-inline"), "{path}");
        assert_eq!(page.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(page.headers["cache-control"], "no-store", "{path}");
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        // No script or style but the site's own files.
        assert!(!page.html.contains("<script>"), "{path}");
        assert!(!page.html.contains("style="), "{path}");
        assert!(!page.html.contains("onclick"), "{path}");
    }
    assert_eq!(
        f.get("/no/such/page", None).await.status,
        StatusCode::NOT_FOUND
    );
    // Under the API and the checks, a client still reads JSON.
    let api = f.get("/auth/api/v1/nothing", None).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.headers["content-type"], "application/json");
    let wrong_method = f.post("/auth/api/v1/user-info", "", &[]).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.html.contains("method_not_allowed"));
    let page = f.post("/signed-out", "", &[]).await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.html.starts_with("<!doctype html>"));
}

#[apply(backends)]
#[tokio::test]
async fn a_form_acts_only_from_this_site_with_the_session_s_csrf_token(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let csrf = f.csrf().await;
    let form = |csrf: &str| format!("csrf={csrf}&name=laptop&scope=read:all&expires=30");
    for (form, headers, why) in [
        // Another site's page posting a form: the browser says so.
        (
            form(&csrf),
            vec![("sec-fetch-site", "cross-site")],
            "cross-site",
        ),
        // A sibling application on the cookie's domain is same-site.
        (
            form(&csrf),
            vec![("sec-fetch-site", "same-site")],
            "same-site",
        ),
        (
            form(&csrf),
            vec![("origin", "https://evil.example")],
            "another origin",
        ),
        // An old browser that says nothing: the token alone must hold.
        (form(""), vec![], "no token"),
        (form("forged"), vec![SAME_ORIGIN], "a wrong token"),
    ] {
        let page = f.post("/auth/tokens/new", &form, &headers).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{why}");
        assert!(page.html.contains("Request refused"), "{why}");
    }
    assert!(f.user_token_names().await.is_empty());

    // The page's own form passes, and shows the secret this once.
    let made = f
        .post("/auth/tokens/new", &form(&csrf), &[SAME_ORIGIN])
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.html);
    assert!(made.html.contains("it is shown this once"));
    let at = made.html.find("id=\"secret\" value=\"").unwrap() + 19;
    let secret = made.html[at..].split('"').next().unwrap();
    let token: Token = secret.parse().unwrap();
    assert!(f.app.tokens.get_data(&token).await.unwrap().is_some());
    assert_eq!(f.user_token_names().await, ["laptop"]);
    // The list never shows it again.
    let list = f.get("/auth/tokens", Some(&f.alice)).await;
    assert!(list.html.contains(token.key().as_str()));
    assert!(!list.html.contains(secret));

    // The same name again: said beside the field, with the form kept.
    let again = f
        .post("/auth/tokens/new", &form(&csrf), &[SAME_ORIGIN])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.html.contains("id=\"name-error\""), "{}", again.html);
    assert!(again.html.contains("value=\"laptop\""));
    // A scope the session does not hold is refused, nothing made.
    let wider = f
        .post(
            "/auth/tokens/new",
            &format!("csrf={csrf}&name=wide&scope=admin:token&expires=30"),
            &[SAME_ORIGIN],
        )
        .await;
    assert_eq!(wider.status, StatusCode::BAD_REQUEST, "{}", wider.html);
    assert_eq!(f.user_token_names().await, ["laptop"]);

    // Revoking: the confirmation, then the form.
    let key = token.key().as_str();
    let revoke = format!("/auth/tokens/{key}/revoke");
    let refused = f.post(&revoke, "csrf=forged", &[SAME_ORIGIN]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let done = f
        .post(&revoke, &format!("csrf={csrf}"), &[SAME_ORIGIN])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.headers["location"], "/auth/tokens");
    assert!(f.app.tokens.get_data(&token).await.unwrap().is_none());
}

#[apply(backends)]
#[tokio::test]
async fn signing_out_everywhere_else_keeps_only_this_browser(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let user = UserInfo {
        username: "alice".into(),
        ..UserInfo::default()
    };
    let scopes = vec!["read:all".parse().unwrap()];
    let phone = f
        .app
        .tokens
        .create_session_token(&user, scopes, None)
        .await
        .unwrap();
    let list = f.get("/auth/tokens", Some(&f.alice)).await;
    assert!(list.html.contains("Sign out everywhere else"));
    assert!(list.html.contains("this browser"));
    let csrf = f.csrf().await;
    let done = f
        .post(
            "/auth/tokens/sign-out-others",
            &format!("csrf={csrf}"),
            &[SAME_ORIGIN],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(f.app.tokens.get_data(&phone).await.unwrap().is_none());
    assert!(f.app.tokens.get_data(&f.alice).await.unwrap().is_some());
}

#[apply(backends)]
#[tokio::test]
async fn a_person_sees_and_touches_only_their_own_tokens_whatever_the_query_says(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let bob = f
        .app
        .tokens
        .create_session_token(
            &UserInfo {
                username: "bob".into(),
                ..UserInfo::default()
            },
            vec!["user:token".parse().unwrap()],
            None,
        )
        .await
        .unwrap();
    let bobs_key = bob.key().as_str();
    for path in [
        "/auth/tokens?user=bob".to_owned(),
        format!("/auth/tokens/{bobs_key}?user=bob"),
        format!("/auth/tokens/{bobs_key}/revoke?user=bob"),
    ] {
        let page = f.get(&path, Some(&f.alice)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!page.html.contains(bobs_key), "{path}");
    }
    // Without ?user=, bob's key is no token of alice's.
    let page = f
        .get(&format!("/auth/tokens/{bobs_key}"), Some(&f.alice))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let csrf = f.csrf().await;
    let refused = f
        .post(
            &format!("/auth/tokens/{bobs_key}/revoke?user=bob"),
            &format!("csrf={csrf}"),
            &[SAME_ORIGIN],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(f.app.tokens.get_data(&bob).await.unwrap().is_some());
    // History by someone else's name is one's own history.
    let history = f
        .get("/auth/tokens/history?username=bob", Some(&f.alice))
        .await;
    assert_eq!(history.status, StatusCode::OK);
    assert!(!history.html.contains(bobs_key));
    assert!(history.html.contains(f.alice.key().as_str()));
}

#[apply(backends)]
#[tokio::test]
async fn hostile_queries_paths_and_forms_get_a_refusal_page_and_change_nothing(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    for (query, what) in [
        ("since=yesterday", "date and time"),
        ("until=2026-13-45T99:99", "date and time"),
        ("key=not-a-key", "token key"),
        ("address=300.1.1.1", "IP address"),
        ("cursor=%FF%FE", "page of history"),
    ] {
        let page = f
            .get(&format!("/auth/tokens/history?{query}"), Some(&f.alice))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.html.contains(what), "{query}: {}", page.html);
    }
    // A key that cannot be one, as text or not text at all.
    for path in ["/auth/tokens/short", "/auth/tokens/%FF%FE"] {
        let page = f.get(path, Some(&f.alice)).await;
        assert!(page.status.is_client_error(), "{path}: {}", page.status);
    }
    let csrf = f.csrf().await;
    let long = "n".repeat(10_000);
    for (form, status) in [
        (
            format!("csrf={csrf}&name=a&expires=forever"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("csrf={csrf}&name=&expires=30"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("csrf={csrf}&name={long}&expires=30"),
            StatusCode::BAD_REQUEST,
        ),
        // Bytes that are not UTF-8 are read as replacement characters: no
        // name may hold them.
        (
            format!("csrf={csrf}&name=%FF%FE&expires=30"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("csrf={csrf}&name=a&scope=%FF&expires=30"),
            StatusCode::BAD_REQUEST,
        ),
        // The first CSRF field is the one read: a wrong one first fails.
        (
            format!("csrf=forged&csrf={csrf}&name=a&expires=30"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let page = f.post("/auth/tokens/new", &form, &[SAME_ORIGIN]).await;
        assert_eq!(page.status, status, "{}", &form[..form.len().min(80)]);
        assert!(!page.html.contains(&long));
    }
    assert!(f.user_token_names().await.is_empty());
}
