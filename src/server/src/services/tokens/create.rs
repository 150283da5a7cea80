//! Making tokens: sessions, user tokens, admin-made tokens, and the child
//! tokens (notebook, internal, oidc) that a parent delegates.

use std::net::IpAddr;

use portcullis_core::{Scope, Token, TokenType};

use super::{is_valid_name, require_held, Spec, TokenError, TokenService, UserInfo, MIN_LIFETIME};
use crate::model::{TokenChange, TokenData};
use crate::services::actor::{has_scope, Actor, USER_TOKEN_SCOPE};
use crate::storage::{ChildSlot, ReusableChild};

/// An administrator's request for a service or user token for anyone.
#[derive(Debug, Clone)]
pub struct AdminTokenRequest {
    pub user: UserInfo,
    pub token_type: TokenType,
    pub token_name: Option<String>,
    pub scopes: Vec<Scope>,
    pub expires: Option<u64>,
}

/// How many times a get-or-create retries when it finds a child whose data
/// has vanished underneath it.
const CHILD_ATTEMPTS: usize = 3;

impl TokenService {
    pub async fn create_session_token(
        &self,
        user: &UserInfo,
        scopes: Vec<Scope>,
        ip: Option<IpAddr>,
    ) -> Result<Token, TokenError> {
        self.validate_scopes(&scopes)?;
        let spec = Spec {
            token_type: TokenType::Session,
            scopes,
            expires: Some(
                self.clock
                    .now()
                    .saturating_add(self.policy.session_lifetime),
            ),
            token_name: None,
            service: None,
            parent: None,
        };
        let minted = self.mint(user, spec)?;
        self.store(minted, &user.username, ip).await
    }

    /// A user token made by its owner, who needs `user:token`; its scopes
    /// must be held by the authenticating token, and the user details come
    /// from it. `expires`: `None` for the session's expiry, `Some(None)`
    /// for never.
    pub async fn create_user_token(
        &self,
        actor: &Actor,
        username: &str,
        token_name: String,
        scopes: Vec<Scope>,
        expires: Option<Option<u64>>,
        ip: Option<IpAddr>,
    ) -> Result<Token, TokenError> {
        let Actor::Token(auth) = actor else {
            return Err(TokenError::PermissionDenied(
                "the bootstrap token has no user; use the admin API",
            ));
        };
        if auth.username != username {
            return Err(TokenError::PermissionDenied(
                "user tokens are made by their owner",
            ));
        }
        if !has_scope(&auth.scopes, USER_TOKEN_SCOPE) {
            return Err(TokenError::PermissionDenied(
                "making user tokens needs scope user:token",
            ));
        }
        // As in Gafaelfawr: a child (notebook, internal, oidc) or another
        // user token cannot mint a token that would outlive it.
        if auth.token_type != TokenType::Session {
            return Err(TokenError::PermissionDenied(
                "user tokens are made from a login session",
            ));
        }
        if !is_valid_name(&token_name) {
            return Err(TokenError::InvalidName("token_name"));
        }
        self.validate_scopes(&scopes)?;
        require_held(&scopes, &auth.scopes)?;
        let expires = expires.unwrap_or(auth.expires);
        self.validate_expires(expires)?;
        let spec = Spec {
            token_type: TokenType::User,
            scopes,
            expires,
            token_name: Some(token_name),
            service: None,
            parent: None,
        };
        let minted = self.mint(&UserInfo::of(auth), spec)?;
        self.store(minted, username, ip).await
    }

    /// A service or user token for anyone, by an administrator.
    pub async fn create_token_from_admin_request(
        &self,
        request: AdminTokenRequest,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<Token, TokenError> {
        if !actor.is_admin() {
            return Err(TokenError::PermissionDenied(
                "making tokens for others needs scope admin:token",
            ));
        }
        match (request.token_type, &request.token_name) {
            (TokenType::User, None) => return Err(TokenError::NameRequired),
            (TokenType::User | TokenType::Service, Some(name)) if !is_valid_name(name) => {
                return Err(TokenError::InvalidName("token_name"))
            }
            (TokenType::User | TokenType::Service, _) => {}
            (other, _) => return Err(TokenError::WrongTokenType(other.as_str())),
        }
        self.validate_scopes(&request.scopes)?;
        self.validate_expires(request.expires)?;
        let spec = Spec {
            token_type: request.token_type,
            scopes: request.scopes,
            expires: request.expires,
            token_name: request.token_name,
            service: None,
            parent: None,
        };
        let minted = self.mint(&request.user, spec)?;
        self.store(minted, &actor.history_name(), ip).await
    }

    /// A new OpenID Connect access token for a relying party: a child of
    /// the session that authenticated the user, with no scopes (as in
    /// Gafaelfawr: it is good for userinfo and introspection, not for the
    /// session's powers), living `lifetime` seconds but never past the
    /// session.
    pub async fn create_oidc_token(
        &self,
        parent: &TokenData,
        lifetime: u64,
        ip: Option<IpAddr>,
    ) -> Result<Token, TokenError> {
        let now = self.clock.now();
        if parent.expires.is_some_and(|e| e <= now) {
            return Err(TokenError::InsufficientLifetime);
        }
        let own = now
            .checked_add(lifetime)
            .ok_or(TokenError::ExpiresTooLate)?;
        let spec = Spec {
            token_type: TokenType::Oidc,
            scopes: vec![],
            expires: Some(parent.expires.map_or(own, |e| e.min(own))),
            token_name: None,
            service: None,
            parent: Some(parent.token.key().clone()),
        };
        let minted = self.mint(&UserInfo::of(parent), spec)?;
        self.store(minted, &parent.username, ip).await
    }

    /// An internal token delegated to `service`, reused while one with the
    /// same scopes has at least `minimum_lifetime` (default 5 minutes) left.
    pub async fn get_internal_token(
        &self,
        parent: &TokenData,
        service: &str,
        scopes: Vec<Scope>,
        ip: Option<IpAddr>,
        minimum_lifetime: Option<u64>,
    ) -> Result<Token, TokenError> {
        if !is_valid_name(service) {
            return Err(TokenError::InvalidName("service"));
        }
        require_held(&scopes, &parent.scopes)?;
        self.get_or_create_child(
            parent,
            TokenType::Internal,
            Some(service),
            scopes,
            ip,
            minimum_lifetime,
        )
        .await
    }

    /// A notebook token with all of the parent's scopes, reused like an
    /// internal token.
    pub async fn get_notebook_token(
        &self,
        parent: &TokenData,
        ip: Option<IpAddr>,
        minimum_lifetime: Option<u64>,
    ) -> Result<Token, TokenError> {
        let scopes = parent.scopes.clone();
        self.get_or_create_child(
            parent,
            TokenType::Notebook,
            None,
            scopes,
            ip,
            minimum_lifetime,
        )
        .await
    }

    async fn get_or_create_child(
        &self,
        parent: &TokenData,
        token_type: TokenType,
        service: Option<&str>,
        mut scopes: Vec<Scope>,
        ip: Option<IpAddr>,
        minimum_lifetime: Option<u64>,
    ) -> Result<Token, TokenError> {
        let now = self.clock.now();
        if let (Some(min), Some(expires)) = (minimum_lifetime, parent.expires) {
            if expires < now.saturating_add(min) {
                return Err(TokenError::InsufficientLifetime);
            }
        }
        scopes.sort();
        scopes.dedup();
        // A child never outlives its parent, so a reusable one need only
        // last as long as the parent can.
        let wanted = now.saturating_add(minimum_lifetime.unwrap_or(MIN_LIFETIME));
        let reuse = ReusableChild {
            parent: parent.token.key().clone(),
            token_type,
            service: service.map(str::to_owned),
            scopes: scopes.clone(),
            min_expires: parent.expires.map_or(wanted, |e| e.min(wanted)),
        };
        for _ in 0..CHILD_ATTEMPTS {
            let spec = Spec {
                token_type,
                scopes: scopes.clone(),
                expires: parent.expires,
                token_name: None,
                service: service.map(str::to_owned),
                parent: Some(parent.token.key().clone()),
            };
            let minted = self.mint(&UserInfo::of(parent), spec)?;
            // Data before metadata: whoever finds the child's key in the
            // metadata must find its data too.
            self.data.store(&minted.data).await?;
            let created = self.history_entry(
                &minted.info,
                TokenChange::Create,
                Some(&parent.username),
                ip,
            );
            let slot = match self
                .metadata
                .add_child_unless_reusable(&minted.info, &reuse, &created)
                .await
            {
                Ok(slot) => slot,
                Err(e) => {
                    self.data.delete(minted.token.key()).await?;
                    return Err(e.into());
                }
            };
            let existing = match slot {
                ChildSlot::Added => return Ok(minted.token),
                ChildSlot::Existing(key) => key,
            };
            self.data.delete(minted.token.key()).await?;
            if let Some(data) = self.data.get(&existing).await? {
                return Ok(data.token);
            }
            // Metadata without data is a dead token: clear it and try again.
            tracing::warn!(key = %existing, "reusable child has no data; replacing it");
            self.metadata.delete(&existing, None).await?;
        }
        Err(TokenError::Storage(crate::storage::StorageError::Corrupt {
            key: parent.token.key().to_string(),
            reason: "child tokens keep vanishing during get-or-create".into(),
        }))
    }
}
