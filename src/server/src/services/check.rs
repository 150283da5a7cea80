//! The ingress check: does this request's credential satisfy the route?

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{CheckAnswer, CheckRequest, Scope};

use super::authenticate::{AuthError, Authenticator};
use super::Clock;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Token lacks a required scope")]
    InsufficientScope(Vec<Scope>),
}

pub struct CheckService {
    auth: Arc<Authenticator>,
    clock: Arc<dyn Clock>,
    max_cache_ttl: Duration,
}

impl CheckService {
    pub fn new(auth: Arc<Authenticator>, clock: Arc<dyn Clock>, max_cache_ttl: Duration) -> Self {
        Self {
            auth,
            clock,
            max_cache_ttl,
        }
    }

    /// Checks an `Authorization` header value against what a route requires.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        request: &CheckRequest,
    ) -> Result<CheckAnswer, CheckError> {
        let data = self.auth.ingress_data(authorization).await?;
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
}
