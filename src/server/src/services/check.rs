//! The ingress check: does this request's credential satisfy the route?

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::authorization::{self, AuthorizationError};
use portcullis_core::{CheckAnswer, CheckRequest, Scope, Token};

use crate::storage::StorageError;

use super::{Clock, TokenService};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("No token was presented")]
    NoCredential,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("Token lacks a required scope")]
    InsufficientScope(Vec<Scope>),
    #[error("Token storage is unavailable: {0}")]
    Unavailable(#[from] StorageError),
}

impl From<AuthorizationError> for CheckError {
    fn from(e: AuthorizationError) -> Self {
        CheckError::InvalidRequest(e.to_string())
    }
}

pub struct CheckService {
    tokens: Arc<TokenService>,
    clock: Arc<dyn Clock>,
    /// Acts as an admin on the API only; at the ingress it is refused.
    bootstrap: Option<Token>,
    max_cache_ttl: Duration,
}

impl CheckService {
    pub fn new(
        tokens: Arc<TokenService>,
        clock: Arc<dyn Clock>,
        bootstrap: Option<Token>,
        max_cache_ttl: Duration,
    ) -> Self {
        Self {
            tokens,
            clock,
            bootstrap,
            max_cache_ttl,
        }
    }

    /// Checks an `Authorization` header value against what a route requires.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        request: &CheckRequest,
    ) -> Result<CheckAnswer, CheckError> {
        let text = authorization::bearer_token(authorization.ok_or(CheckError::NoCredential)?)?;
        let token: Token = text
            .parse()
            .map_err(|_| CheckError::InvalidToken("Token is malformed"))?;
        if self.is_bootstrap(&token) {
            return Err(CheckError::InvalidToken("Token is not valid"));
        }
        // Unknown, wrong secret and expired read alike: no oracle for keys.
        let data = self
            .tokens
            .get_data(&token)
            .await?
            .ok_or(CheckError::InvalidToken("Token is not valid"))?;
        if !request.satisfy.is_met(&data.scopes, &request.scopes) {
            return Err(CheckError::InsufficientScope(request.scopes.clone()));
        }
        let max_ttl = self.max_cache_ttl.as_secs();
        let cache_ttl = data
            .expires
            .map_or(max_ttl, |e| e.saturating_sub(self.clock.now()).min(max_ttl));
        Ok(CheckAnswer {
            username: data.username,
            token_type: data.token_type,
            scopes: data.scopes,
            expires: data.expires,
            email: data.email,
            name: data.name,
            uid: data.uid,
            gid: data.gid,
            groups: data.groups,
            cache_ttl,
        })
    }

    fn is_bootstrap(&self, token: &Token) -> bool {
        self.bootstrap
            .as_ref()
            .is_some_and(|b| b.key() == token.key() && b.secret().matches(token.secret()))
    }
}
