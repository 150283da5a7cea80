//! Who is asking, and what that lets them do.

use portcullis_core::Scope;

use crate::model::TokenData;

/// Scope that makes a token an administrator of every user's tokens.
pub const ADMIN_SCOPE: &str = "admin:token";
/// Scope a user needs to make their own user tokens.
pub const USER_TOKEN_SCOPE: &str = "user:token";

/// The authenticated caller of a token operation.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The configured bootstrap token: an administrator with no user.
    Bootstrap,
    /// The `portcullis` command, run by whoever can read the configuration:
    /// an administrator with no user.
    Cli,
    Token(Box<TokenData>),
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        match self {
            Actor::Bootstrap | Actor::Cli => true,
            Actor::Token(data) => holds_admin(&data.scopes),
        }
    }

    /// The user this actor is, if any.
    pub fn username(&self) -> Option<&str> {
        match self {
            Actor::Bootstrap | Actor::Cli => None,
            Actor::Token(data) => Some(&data.username),
        }
    }

    /// The name history records for this actor.
    pub fn history_name(&self) -> String {
        match self {
            Actor::Bootstrap => "<bootstrap>".to_owned(),
            Actor::Cli => "<cli>".to_owned(),
            Actor::Token(data) => data.username.clone(),
        }
    }

    /// True when the actor may see and change `username`'s tokens: an
    /// administrator, or that user with `user:token` (as in Gafaelfawr), so
    /// a token with fewer powers, such as a delegated one, manages nothing.
    pub fn may_manage(&self, username: &str) -> bool {
        self.is_admin()
            || matches!(self, Actor::Token(data)
                if data.username == username && has_scope(&data.scopes, USER_TOKEN_SCOPE))
    }
}

/// Whether a token with `scopes` is an administrator.
pub fn holds_admin(scopes: &[Scope]) -> bool {
    has_scope(scopes, ADMIN_SCOPE)
}

pub fn has_scope(scopes: &[Scope], wanted: &str) -> bool {
    scopes.iter().any(|s| s.as_str() == wanted)
}
