//! Every type that holds a token or a secret prints a redaction in `Debug`:
//! no log line, panic or test failure message can carry one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use portcullis::services::cli_login::StartedLogin;
use portcullis::services::login::LoginState;
use portcullis::services::oidc::provider::{AuthorizeOutcome, TokenRequest, TokenResponse};

const SECRET: &str = "gt-AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB";

#[test]
fn types_holding_secrets_print_no_secret_in_debug() {
    let shown = [
        format!(
            "{:?}",
            TokenResponse {
                access_token: SECRET.into(),
                token_type: "Bearer",
                expires_in: 3600,
                id_token: SECRET.into(),
                scope: "openid".into(),
            }
        ),
        format!(
            "{:?}",
            StartedLogin {
                login_id: "id".into(),
                poll_secret: SECRET.into(),
                user_code: "ABCD-EFGH".into(),
                browser_url: "http://x/login/cli/id".into(),
                expires_in: 600,
                interval: 5,
            }
        ),
        format!(
            "{:?}",
            LoginState {
                state: "s".into(),
                nonce: "n".into(),
                verifier: SECRET.into(),
                return_to: "/".into(),
                expires: 1,
            }
        ),
        format!(
            "{:?}",
            AuthorizeOutcome::Code {
                redirect_uri: "https://app/cb".into(),
                code: SECRET.into(),
                state: None,
            }
        ),
        format!(
            "{:?}",
            TokenRequest {
                grant_type: Some("authorization_code".into()),
                code: Some(SECRET.into()),
                redirect_uri: None,
                code_verifier: Some(SECRET.into()),
            }
        ),
    ];
    for text in shown {
        assert!(!text.contains("AAAA") && !text.contains("BBBB"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
