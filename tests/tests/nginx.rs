//! nginx's `auth_request` in front of the companion, as Gafaelfawr is
//! deployed: `/ingress/auth` decides by the session cookie or the bearer
//! token, nginx passes the identity headers and the other cookies on, and
//! neither the session cookie nor the token reaches the upstream.

use std::process::Command;
use std::time::Duration;

use portcullis_e2e::process::{free_ports, wait_for, Process};
use portcullis_e2e::stack::{start_upstream, upstream_headers};
use portcullis_e2e::{tools, Artifacts, Companion};
use reqwest::StatusCode;
use serde_json::json;

/// The configuration an operator would write: the check as an internal
/// subrequest, its answer's headers set on the proxied request.
fn nginx_config(dir: &std::path::Path, port: u16, ingress: u16, upstream: u16) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/nginx-body;
  proxy_temp_path {dir}/nginx-proxy;
  fastcgi_temp_path {dir}/nginx-fastcgi;
  uwsgi_temp_path {dir}/nginx-uwsgi;
  scgi_temp_path {dir}/nginx-scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /_portcullis {{
      internal;
      proxy_pass http://127.0.0.1:{ingress}/ingress/auth?scope=read:all;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
    location / {{
      auth_request /_portcullis;
      auth_request_set $auth_user $upstream_http_x_auth_request_user;
      auth_request_set $auth_scopes $upstream_http_x_auth_request_token_scopes;
      auth_request_set $auth_cookie $upstream_http_cookie;
      auth_request_set $auth_challenge $upstream_http_www_authenticate;
      proxy_set_header X-Auth-Request-User $auth_user;
      proxy_set_header X-Auth-Request-Token-Scopes $auth_scopes;
      # The cookies less the session cookie; none left, no header.
      proxy_set_header Cookie $auth_cookie;
      # The credential is the companion's business, not the upstream's.
      proxy_set_header Authorization "";
      error_page 401 = @unauthorized;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location @unauthorized {{
      add_header WWW-Authenticate $auth_challenge always;
      return 401;
    }}
  }}
}}
"#
    )
}

#[tokio::test]
async fn nginx_auth_request_takes_the_session_cookie_or_a_bearer_token_and_keeps_both_from_the_upstream(
) {
    let Some(nginx) = tools::program("nginx", "nginx-light") else {
        return;
    };
    let artifacts = Artifacts::get();
    let dir = tempfile::tempdir().unwrap();
    let companion = Companion::start(&artifacts, dir.path()).await;
    let [port, upstream_port] = free_ports();
    let _upstream = start_upstream(&artifacts, upstream_port, dir.path())
        .await
        .expect("the echo upstream");
    let config = dir.path().join("nginx.conf");
    std::fs::write(
        &config,
        nginx_config(dir.path(), port, companion.ingress_port, upstream_port),
    )
    .unwrap();
    let mut command = Command::new(nginx);
    command.arg("-c").arg(&config).arg("-p").arg(dir.path());
    let _nginx = Process::spawn("nginx", command, &dir.path().join("nginx.log"));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let probe = url("/");
    wait_for("nginx", Duration::from_secs(10), || {
        let probe = probe.clone();
        async move { reqwest::get(&probe).await.is_ok() }
    })
    .await;

    // No credential: 401 with the companion's challenge.
    let refused = client.get(url("/page")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");

    // A bearer token: through as its user, the token not passed on, the
    // caller's own cookies passed unchanged.
    let token = companion.create_token("alice", &["read:all"]);
    let reply = client
        .get(url("/page"))
        .bearer_auth(&token)
        .header("cookie", "theme=dark")
        .header("x-auth-request-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let seen = upstream_headers(reply).await;
    assert_eq!(seen["x-auth-request-user"], json!(["alice"]));
    assert_eq!(seen["x-auth-request-token-scopes"], json!(["read:all"]));
    assert_eq!(seen["cookie"], json!(["theme=dark"]));
    assert!(!seen.contains_key("authorization"), "{seen:?}");

    // The session cookie: through as its user, with the other cookies and
    // without the session cookie.
    let session = companion.session_cookie("bob", &["read:all"]);
    let reply = client
        .get(url("/page"))
        .header("cookie", format!("theme=dark; {session}; lang=cy"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let seen = upstream_headers(reply).await;
    assert_eq!(seen["x-auth-request-user"], json!(["bob"]));
    assert_eq!(seen["cookie"], json!(["theme=dark; lang=cy"]));
    // Only the session cookie: no Cookie header at all upstream.
    let reply = client
        .get(url("/page"))
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap();
    let seen = upstream_headers(reply).await;
    assert_eq!(seen["x-auth-request-user"], json!(["bob"]));
    assert!(!seen.contains_key("cookie"), "{seen:?}");

    // The cookie is read first: with a weaker bearer token beside it, the
    // session decides.
    let writer = companion.create_token("carol", &["write:all"]);
    let reply = client
        .get(url("/page"))
        .bearer_auth(&writer)
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(
        upstream_headers(reply).await["x-auth-request-user"],
        json!(["bob"])
    );
    // Refusals: a token without the scope is 403; a revoked session 401.
    let reply = client
        .get(url("/page"))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let logout = client
        .get(companion.url("/logout"))
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success() || logout.status().is_redirection());
    let reply = client
        .get(url("/page"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
}
