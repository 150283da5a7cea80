//! The ingress check: does this request's credential satisfy the route,
//! and which token, if any, does the route delegate to its upstream?

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{CheckAnswer, CheckRequest, DelegatedToken, Delegation, Scope};

use super::authenticate::{AuthError, Authenticator, Credential};
use super::{Clock, TokenError, TokenService};
use crate::model::TokenData;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Token lacks a required scope")]
    InsufficientScope(Vec<Scope>),
    #[error("cannot delegate a token: {0}")]
    Delegation(#[from] TokenError),
}

/// Told to a caller whose token expires before the route's minimum
/// lifetime: it must authenticate again, as with an invalid token.
pub const LIFETIME_TOO_SHORT: &str = "Remaining token lifetime is too short";

pub struct CheckService {
    auth: Arc<Authenticator>,
    tokens: Arc<TokenService>,
    clock: Arc<dyn Clock>,
    max_cache_ttl: Duration,
}

impl CheckService {
    pub fn new(
        auth: Arc<Authenticator>,
        tokens: Arc<TokenService>,
        clock: Arc<dyn Clock>,
        max_cache_ttl: Duration,
    ) -> Self {
        Self {
            auth,
            tokens,
            clock,
            max_cache_ttl,
        }
    }

    /// Checks an `Authorization` header value against what a route requires.
    pub async fn check(
        &self,
        credential: Credential<'_>,
        request: &CheckRequest,
        ip: Option<IpAddr>,
    ) -> Result<CheckAnswer, CheckError> {
        let data = self.auth.ingress_data(credential).await?;
        let now = self.clock.now();
        let minimum = request.minimum_lifetime.unwrap_or(0);
        // Saturating: a bound past the end of time is one no token meets.
        if data
            .expires
            .is_some_and(|e| e < now.saturating_add(minimum))
        {
            return Err(AuthError::InvalidToken(LIFETIME_TOO_SHORT).into());
        }
        if !request.satisfy.is_met(&data.scopes, &request.scopes) {
            return Err(CheckError::InsufficientScope(request.scopes.clone()));
        }
        let delegated = self.delegate(&data, request, ip).await?;
        // Never cached past the token's expiry, nor, for a delegated token,
        // past the point where it has less than the minimum lifetime left.
        let cache_ttl = data.expires.map_or(self.max_cache_ttl.as_secs(), |e| {
            let usable_until = match delegated {
                Some(_) => e.saturating_sub(minimum),
                None => e,
            };
            usable_until
                .saturating_sub(now)
                .min(self.max_cache_ttl.as_secs())
        });
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
            service: data.service,
            cache_ttl,
            delegated_token: delegated,
        })
    }

    async fn delegate(
        &self,
        data: &TokenData,
        request: &CheckRequest,
        ip: Option<IpAddr>,
    ) -> Result<Option<DelegatedToken>, TokenError> {
        let token = match &request.delegation {
            None => return Ok(None),
            Some(Delegation::Notebook) => {
                self.tokens
                    .get_notebook_token(data, ip, request.minimum_lifetime)
                    .await?
            }
            // A route may ask for more than this caller holds; the delegated
            // token gets what the caller has of it, never more.
            Some(Delegation::Internal { service, scopes }) => {
                let held = scopes
                    .iter()
                    .filter(|s| data.scopes.contains(s))
                    .cloned()
                    .collect();
                self.tokens
                    .get_internal_token(data, service, held, ip, request.minimum_lifetime)
                    .await?
            }
        };
        Ok(Some(DelegatedToken::new(token.expose())))
    }
}
