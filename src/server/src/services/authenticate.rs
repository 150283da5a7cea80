//! Turning a presented credential (an `Authorization` header, or the token a
//! session cookie held) into who is asking: the one place that parses
//! presented tokens, for the ingress and the API alike.

use std::sync::Arc;

use portcullis_core::authorization::{self, AuthorizationError};
use portcullis_core::{Token, TokenType};

use super::{Actor, TokenService};
use crate::model::TokenData;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("No token was presented")]
    NoCredential,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("Token storage is unavailable: {0}")]
    Unavailable(#[from] StorageError),
}

impl From<AuthorizationError> for AuthError {
    fn from(e: AuthorizationError) -> Self {
        AuthError::InvalidRequest(e.to_string())
    }
}

/// What a request presented.
pub enum Credential<'a> {
    /// The one `Authorization` header value, if any, as it came.
    Header(Option<&'a str>),
    /// The token in a session cookie that opened with the companion's key:
    /// no one else can have sealed it.
    Cookie(Token),
}

/// Unknown, wrong secret, expired and (at the ingress) bootstrap all read
/// alike: no oracle for which keys exist.
pub const NOT_VALID: &str = "Token is not valid";

pub struct Authenticator {
    tokens: Arc<TokenService>,
    bootstrap: Option<Token>,
}

impl Authenticator {
    pub fn new(tokens: Arc<TokenService>, bootstrap: Option<Token>) -> Self {
        Self { tokens, bootstrap }
    }

    /// The caller of the token API: the bootstrap token is an administrator.
    pub async fn api_actor(&self, credential: Credential<'_>) -> Result<Actor, AuthError> {
        let token = presented(credential)?;
        if self.is_bootstrap(&token) {
            return Ok(Actor::Bootstrap);
        }
        let data = self.valid_data(&token).await?;
        // A relying party's access token speaks for the user to that party
        // alone: it manages no tokens.
        if data.token_type == TokenType::Oidc {
            return Err(AuthError::InvalidToken(
                "An OpenID Connect access token cannot use the token API",
            ));
        }
        Ok(Actor::Token(Box::new(data)))
    }

    /// The caller at the ingress: only stored tokens, never the bootstrap.
    pub async fn ingress_data(&self, credential: Credential<'_>) -> Result<TokenData, AuthError> {
        let token = presented(credential)?;
        if self.is_bootstrap(&token) {
            return Err(AuthError::InvalidToken(NOT_VALID));
        }
        self.valid_data(&token).await
    }

    async fn valid_data(&self, token: &Token) -> Result<TokenData, AuthError> {
        self.tokens
            .get_data(token)
            .await?
            .ok_or(AuthError::InvalidToken(NOT_VALID))
    }

    fn is_bootstrap(&self, token: &Token) -> bool {
        self.bootstrap
            .as_ref()
            .is_some_and(|b| b.key() == token.key() && b.secret().matches(token.secret()))
    }
}

fn presented(credential: Credential<'_>) -> Result<Token, AuthError> {
    let authorization = match credential {
        Credential::Cookie(token) => return Ok(token),
        Credential::Header(header) => header.ok_or(AuthError::NoCredential)?,
    };
    let text = authorization::presented_token(authorization)?;
    text.parse()
        .map_err(|_| AuthError::InvalidToken("Token is malformed"))
}
