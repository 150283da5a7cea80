//! Tokens as services, handlers and stores share them: everything known
//! of one (its data, which the data store seals), what is known without
//! its secret (its metadata), and a change to that.

use portcullis_core::{Group, Scope, Token, TokenKey, TokenType};
use serde::{Deserialize, Serialize};

/// Everything known about a token, keyed by its public key: the truth for
/// whether it exists, sealed at rest by the data store.
#[derive(Debug, Clone)]
pub struct TokenData {
    /// Key and secret. The secret is kept (sealed) so that a stored token can
    /// be handed back to its owner, as get-or-create of child tokens needs.
    pub token: Token,
    pub username: String,
    pub token_type: TokenType,
    pub scopes: Vec<Scope>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub expires: Option<u64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<Group>,
    /// For an internal token, the service it was delegated to.
    pub service: Option<String>,
}

/// What is known of a token without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub token: TokenKey,
    pub username: String,
    pub token_type: TokenType,
    pub token_name: Option<String>,
    /// Sorted.
    pub scopes: Vec<Scope>,
    /// The service an internal token was delegated to.
    pub service: Option<String>,
    pub created: u64,
    pub last_used: Option<u64>,
    pub expires: Option<u64>,
    pub parent: Option<TokenKey>,
}

impl TokenInfo {
    /// The metadata of a token just made with `data`: named `token_name`,
    /// the child of `parent`, never used.
    pub fn of_new(data: &TokenData, token_name: Option<String>, parent: Option<TokenKey>) -> Self {
        Self {
            token: data.token.key().clone(),
            username: data.username.clone(),
            token_type: data.token_type,
            token_name,
            scopes: data.scopes.clone(),
            service: data.service.clone(),
            created: data.created,
            last_used: None,
            expires: data.expires,
            parent,
        }
    }
}

/// A change to a token's metadata; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub token_name: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    /// `Some(None)` removes the expiry.
    pub expires: Option<Option<u64>>,
}

impl TokenChanges {
    /// `info` with these changes made (scopes kept sorted).
    pub fn applied_to(&self, mut info: TokenInfo) -> TokenInfo {
        if let Some(name) = &self.token_name {
            info.token_name = Some(name.clone());
        }
        if let Some(scopes) = &self.scopes {
            info.scopes = scopes.clone();
            info.scopes.sort();
        }
        if let Some(expires) = self.expires {
            info.expires = expires;
        }
        info
    }
}

#[derive(Debug, Clone, Default)]
pub struct TokenListing {
    pub username: Option<String>,
    pub token_type: Option<TokenType>,
}
