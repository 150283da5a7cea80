//! Policy per route, through the real Envoy: rules matched by route name,
//! host, exact or prefix path and method; a route's own metadata policy,
//! which wins; and each policy field.

use base64::Engine as _;
use portcullis_e2e::stack::{upstream_headers, with_filter_config, with_routes_before_catch_all};
use portcullis_e2e::Stack;
use reqwest::{Method, StatusCode};

const FILTER: &str = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]}, "rules": [
  {"match": {"prefix": "/public/"}, "policy": {"anonymous": true}},
  {"match": {"path": "/exact", "method": "POST"}, "policy": {"scopes": ["write:all"]}},
  {"match": {"host": "api.example.org"}, "policy": {"scopes": ["exec:notebook"]}},
  {"match": {"route": "named"}, "policy": {"scopes": ["admin:token"]}},
  {"match": {"prefix": "/any/"}, "policy": {"scopes": ["write:all", "exec:notebook"], "satisfy": "any"}},
  {"match": {"prefix": "/basic/"}, "policy": {"auth_type": "basic"}},
  {"match": {"prefix": "/cors/"}, "policy": {"cors_preflight": true}},
  {"match": {"prefix": "/delegate/"}, "policy": {"delegate_to": "svc", "delegate_scopes": ["read:all"]}},
  {"match": {"prefix": "/meta/"}, "policy": {"anonymous": true}}]}"#;

const ROUTES: &str = r#"              - name: named
                match: { prefix: "/named/" }
                route: { cluster: upstream }
              - name: meta
                match: { prefix: "/meta/" }
                route: { cluster: upstream }
                metadata:
                  filter_metadata:
                    portcullis:
                      policy: '{"scopes": ["write:all"]}'
              - name: broken
                match: { prefix: "/broken/" }
                route: { cluster: upstream }
                metadata:
                  filter_metadata:
                    portcullis:
                      policy: '{"scopes": "write:all"}'"#;

async fn stack() -> Stack {
    Stack::start_with(|_, config| {
        with_routes_before_catch_all(&with_filter_config(&config, FILTER), ROUTES)
    })
    .await
}

struct Tokens {
    read: String,
    write: String,
    notebook: String,
    admin: String,
}

fn tokens(stack: &Stack) -> Tokens {
    Tokens {
        read: stack.companion.create_token("reader", &["read:all"]),
        write: stack.companion.create_token("writer", &["write:all"]),
        notebook: stack.companion.create_token("nb", &["exec:notebook"]),
        admin: stack
            .companion
            .create_token("root", &["admin:token", "read:all"]),
    }
}

async fn send(
    stack: &Stack,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = stack.client.request(method, stack.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request through Envoy")
}

async fn status(stack: &Stack, method: Method, path: &str, token: Option<&str>) -> StatusCode {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    send(stack, method, path, &headers).await.status()
}

#[tokio::test]
async fn rules_match_by_path_method_host_and_route_name_first_match_wins() {
    let stack = stack().await;
    let t = tokens(&stack);
    let get = Method::GET;
    // The default policy: read:all.
    assert_eq!(
        status(&stack, get.clone(), "/exact", Some(&t.read)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&stack, get.clone(), "/exact", Some(&t.write)).await,
        StatusCode::FORBIDDEN
    );
    // Exact path and method: POST /exact needs write:all; a query is not part of the path.
    assert_eq!(
        status(&stack, Method::POST, "/exact?x=1", Some(&t.read)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&stack, Method::POST, "/exact?x=1", Some(&t.write)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&stack, Method::POST, "/exact/more", Some(&t.read)).await,
        StatusCode::OK,
        "exact, not prefix"
    );
    // Host, ignoring the port and case.
    let host = |token: &str| {
        let bearer = format!("Bearer {token}");
        let stack = &stack;
        async move {
            send(
                stack,
                Method::GET,
                "/x",
                &[("host", "API.example.org:443"), ("authorization", &bearer)],
            )
            .await
            .status()
        }
    };
    assert_eq!(host(&t.read).await, StatusCode::FORBIDDEN);
    assert_eq!(host(&t.notebook).await, StatusCode::OK);
    // Envoy's route name.
    assert_eq!(
        status(&stack, get.clone(), "/named/x", Some(&t.read)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&stack, get.clone(), "/named/x", Some(&t.admin)).await,
        StatusCode::OK
    );
    // satisfy: any.
    assert_eq!(
        status(&stack, get.clone(), "/any/x", Some(&t.notebook)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&stack, get.clone(), "/any/x", Some(&t.write)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&stack, get.clone(), "/any/x", Some(&t.read)).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn anonymous_routes_need_no_token_but_still_strip_credentials() {
    let stack = stack().await;
    let t = tokens(&stack);
    assert_eq!(
        status(&stack, Method::GET, "/public/page", None).await,
        StatusCode::OK
    );
    let bearer = format!("Bearer {}", t.read);
    let response = send(
        &stack,
        Method::GET,
        "/public/page",
        &[("authorization", &bearer), ("x-auth-request-user", "admin")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = upstream_headers(response).await;
    assert!(!headers.contains_key("authorization"), "{headers:?}");
    assert!(!headers.contains_key("x-auth-request-user"), "{headers:?}");
}

#[tokio::test]
async fn basic_routes_challenge_with_basic_and_delegating_routes_delegate() {
    let stack = stack().await;
    let t = tokens(&stack);
    let refused = send(&stack, Method::GET, "/basic/x", &[]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Basic realm="portcullis", charset="UTF-8""#
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", t.read))
    );
    assert_eq!(
        send(
            &stack,
            Method::GET,
            "/basic/x",
            &[("authorization", &basic)]
        )
        .await
        .status(),
        StatusCode::OK
    );
    // Elsewhere a refusal is a Bearer challenge.
    let bearer_route = send(&stack, Method::GET, "/x", &[]).await;
    assert_eq!(
        bearer_route.headers()["www-authenticate"],
        r#"Bearer realm="portcullis""#
    );

    let bearer = format!("Bearer {}", t.read);
    let delegated = upstream_headers(
        send(
            &stack,
            Method::GET,
            "/delegate/x",
            &[("authorization", &bearer)],
        )
        .await,
    )
    .await;
    assert!(
        delegated.contains_key("x-auth-request-token"),
        "{delegated:?}"
    );
    let plain =
        upstream_headers(send(&stack, Method::GET, "/x", &[("authorization", &bearer)]).await)
            .await;
    assert!(
        !plain.contains_key("x-auth-request-token"),
        "only the delegating route delegates"
    );
}

#[tokio::test]
async fn cors_preflights_pass_unauthenticated_only_where_allowed() {
    let stack = stack().await;
    let preflight = [
        ("origin", "https://app.example.org"),
        ("access-control-request-method", "POST"),
    ];
    let passed = send(&stack, Method::OPTIONS, "/cors/x", &preflight).await;
    assert_eq!(passed.status(), StatusCode::OK);
    assert_eq!(
        upstream_headers(passed).await["origin"][0],
        "https://app.example.org"
    );
    // Not a full preflight, or not a CORS route: authentication as usual.
    assert_eq!(
        send(&stack, Method::OPTIONS, "/cors/x", &preflight[..1])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&stack, Method::GET, "/cors/x", &preflight)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&stack, Method::OPTIONS, "/x", &preflight)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_routes_metadata_policy_wins_over_the_rules_and_an_invalid_one_fails_closed() {
    let stack = stack().await;
    let t = tokens(&stack);
    // The rule for /meta/ says anonymous; the route's metadata says write:all.
    assert_eq!(
        status(&stack, Method::GET, "/meta/x", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&stack, Method::GET, "/meta/x", Some(&t.read)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&stack, Method::GET, "/meta/x", Some(&t.write)).await,
        StatusCode::OK
    );
    // The demo's own /admin/ route carries admin:token in its metadata.
    assert_eq!(
        status(&stack, Method::GET, "/admin/x", Some(&t.read)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&stack, Method::GET, "/admin/x", Some(&t.admin)).await,
        StatusCode::OK
    );

    let broken = send(
        &stack,
        Method::GET,
        "/broken/x",
        &[("authorization", &format!("Bearer {}", t.admin))],
    )
    .await;
    assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(broken
        .text()
        .await
        .expect("body")
        .contains("policy is invalid"));
    assert!(
        stack
            .envoy
            .log()
            .contains("route policy: invalid plugin configuration: field `scopes`"),
        "the log names the field"
    );
}

#[tokio::test]
async fn an_invalid_rule_is_refused_at_load_naming_its_field() {
    let bad = r#"{"cluster": "portcullis", "rules": [{"match": {"prefix": "/a/"}, "policy": {}}, {"match": {"path": "nope"}, "policy": {}}]}"#;
    let log = portcullis_e2e::stack::envoy_refuses_filter_config(bad).await;
    assert!(
        log.contains("field `rules[1].match.path`: must start with / and hold no query"),
        "{log}"
    );
}

#[tokio::test]
async fn a_minimum_lifetime_refuses_tokens_that_expire_too_soon() {
    let filter = r#"{"cluster": "portcullis", "policy": {"scopes": ["read:all"]}, "rules": [
      {"match": {"prefix": "/long/"}, "policy": {"minimum_lifetime": 3600}}]}"#;
    let stack = Stack::start_with(|_, config| with_filter_config(&config, filter)).await;
    let lasting = |lifetime| {
        stack
            .companion
            .create_token_with("alice", &["read:all"], &["--lifetime", lifetime])
    };
    let short = lasting("30m");
    let long = lasting("2h");
    assert_eq!(
        status(&stack, Method::GET, "/long/x", Some(&long)).await,
        StatusCode::OK
    );
    let refused = send(
        &stack,
        Method::GET,
        "/long/x",
        &[("authorization", &format!("Bearer {short}"))],
    )
    .await;
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "must log in again for a longer-lived token"
    );
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("lifetime is too short"));
    // Elsewhere the short-lived token is fine.
    assert_eq!(
        status(&stack, Method::GET, "/x", Some(&short)).await,
        StatusCode::OK
    );
}
