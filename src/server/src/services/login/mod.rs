//! Browser login through the upstream identity provider: `/login` starts it
//! (state, nonce, PKCE S256 in a sealed cookie), the callback checks them,
//! validates the ID token, maps the user's groups to scopes and makes a
//! session token.

mod state;
mod upstream;

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::{Group, Scope, Token};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

pub use state::{LoginState, StateSeal};
pub use upstream::Upstream;

use crate::config::LoginConfig;
use crate::random::{self, RandomError};
use crate::services::oidc::pkce_s256;
use crate::services::tokens::is_valid_group_name;
use crate::services::{Clock, TokenError, TokenService, UserInfo};

/// Path of the callback the upstream provider returns to.
pub const CALLBACK_PATH: &str = "/login/callback";
/// How long a browser has to come back from the provider.
pub const LOGIN_STATE_LIFETIME: u64 = 10 * 60;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("rd must be a path on this site or a URL on an allowed host")]
    InvalidReturnUrl,
    #[error("this login has expired or was started in another browser; start again")]
    StateMismatch,
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    #[error("the identity provider failed: {0}")]
    Upstream(String),
    #[error("the identity provider's ID token is not valid: {0}")]
    InvalidIdToken(String),
    #[error("the identity provider gave no usable {0}")]
    MissingClaim(String),
    #[error("none of your groups grants access here")]
    NoScopes,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// A login under way: where to send the browser, and the state cookie.
pub struct LoginStart {
    pub redirect: String,
    pub state: LoginState,
}

pub struct LoginService {
    upstream: Upstream,
    public_url: String,
    tokens: Arc<TokenService>,
    clock: Arc<dyn Clock>,
}

impl LoginService {
    pub fn new(
        config: LoginConfig,
        public_url: String,
        tokens: Arc<TokenService>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LoginError> {
        Ok(Self {
            upstream: Upstream::new(config)?,
            public_url,
            tokens,
            clock,
        })
    }

    fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.public_url)
    }

    /// Where `rd` may send the browser: a path on this site (one leading
    /// slash) or an http(s) URL on an allowed host. Anything else is an
    /// open redirect and refused.
    pub fn return_url(&self, rd: Option<&str>) -> Result<String, LoginError> {
        let Some(rd) = rd else {
            return Ok("/".to_owned());
        };
        if rd.chars().any(|c| c.is_control() || c == '\\') {
            return Err(LoginError::InvalidReturnUrl);
        }
        if rd.starts_with('/') && !rd.starts_with("//") {
            return Ok(rd.to_owned());
        }
        let url = url::Url::parse(rd).map_err(|_| LoginError::InvalidReturnUrl)?;
        let host_allowed = url.host_str().is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            self.upstream.config().allowed_redirect_hosts.contains(&h)
        });
        if matches!(url.scheme(), "https" | "http") && host_allowed && url.username().is_empty() {
            Ok(url.into())
        } else {
            Err(LoginError::InvalidReturnUrl)
        }
    }

    /// Starts a login that will return to `rd`.
    pub async fn start(&self, rd: Option<&str>) -> Result<LoginStart, LoginError> {
        let return_to = self.return_url(rd)?;
        let random = random::url_safe_string;
        let state = LoginState {
            state: random()?,
            nonce: random()?,
            verifier: random()?.into(),
            return_to,
            expires: self.clock.now() + LOGIN_STATE_LIFETIME,
        };
        let redirect = self
            .upstream
            .authorization_url(
                &self.callback_url(),
                &state.state,
                &state.nonce,
                &pkce_s256(state.verifier.expose()),
            )
            .await?;
        Ok(LoginStart { redirect, state })
    }

    /// Finishes a login at the callback: `saved` is the opened state
    /// cookie, `state` and `code` the provider's query. Returns the new
    /// session token and where to send the browser.
    pub async fn finish(
        &self,
        saved: Option<LoginState>,
        state: Option<&str>,
        code: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<(Token, String), LoginError> {
        let saved = saved
            .filter(|s| s.expires > self.clock.now())
            .ok_or(LoginError::StateMismatch)?;
        let state_ok =
            state.is_some_and(|s| bool::from(s.as_bytes().ct_eq(saved.state.as_bytes())));
        if !state_ok {
            return Err(LoginError::StateMismatch);
        }
        let code = code.ok_or_else(|| LoginError::Refused("no code in the callback".into()))?;
        let claims = self
            .upstream
            .exchange(
                code,
                saved.verifier.expose(),
                &self.callback_url(),
                &saved.nonce,
            )
            .await?;
        let (user, scopes) = self.user_of(&claims)?;
        let token = self.tokens.create_session_token(&user, scopes, ip).await?;
        tracing::info!(user = %user.username, "logged in through the identity provider");
        Ok((token, saved.return_to))
    }

    /// The user and the scopes their groups grant.
    fn user_of(&self, claims: &Map<String, Value>) -> Result<(UserInfo, Vec<Scope>), LoginError> {
        let config = self.upstream.config();
        let username = claims
            .get(&config.username_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| LoginError::MissingClaim(config.username_claim.clone()))?;
        let groups: Vec<String> = match claims.get(&config.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let mut scopes: Vec<Scope> = groups
            .iter()
            .filter_map(|g| config.group_scopes.get(g))
            .flatten()
            .cloned()
            .collect();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            // The person sees only "no access"; the operator needs to know
            // which groups the provider sent.
            // At most a few groups: a provider may send hundreds.
            let shown: Vec<&String> = groups.iter().take(20).collect();
            tracing::info!(
                user = %username,
                groups = ?shown,
                group_count = groups.len(),
                "login refused: none of the user's groups grants a scope"
            );
            return Err(LoginError::NoScopes);
        }
        let text = |claim: &str| claims.get(claim).and_then(Value::as_str).map(str::to_owned);
        let user = UserInfo {
            username: username.to_owned(),
            name: text("name"),
            // An address the provider has not verified is anyone's claim.
            email: text("email").filter(|_| {
                config.trust_unverified_email
                    || claims.get("email_verified") == Some(&Value::Bool(true))
            }),
            uid: None,
            gid: None,
            // A group name the token rules refuse cannot be carried (it
            // would reach upstream headers), but need not stop the login.
            groups: groups
                .into_iter()
                .filter(|g| is_valid_group_name(g))
                .map(|name| Group { name, id: None })
                .collect(),
        };
        Ok((user, scopes))
    }
}
