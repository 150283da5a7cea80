//! Creating tokens and looking them up by a presented token.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::{Group, Scope, Token, TokenType};

use crate::storage::{StorageError, TokenData, TokenDataStore};

use super::Clock;

/// Shortest lifetime a new token may have (Gafaelfawr's rule): anything
/// shorter would expire before it could be used for much.
pub const MIN_LIFETIME: Duration = Duration::from_secs(5 * 60);

const MAX_USERNAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("username {0:?} is not valid: use 1 to 64 of a-z 0-9 and single inner hyphens, not only digits")]
    InvalidUsername(String),
    #[error("service token usernames must start with `bot-`")]
    ServiceNeedsBotName,
    #[error("only service tokens may have usernames starting with `bot-`")]
    BotNameNeedsService,
    #[error("email must be non-empty and free of control characters")]
    InvalidEmail,
    #[error("token lifetime must be at least 5 minutes")]
    LifetimeTooShort,
    #[error("the system random source failed")]
    Random,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a new token is for; the service adds key, secret and times.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub username: String,
    pub token_type: TokenType,
    pub scopes: Vec<Scope>,
    /// `None` never expires.
    pub lifetime: Option<Duration>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<Group>,
}

pub struct TokenService {
    data: Arc<dyn TokenDataStore>,
    clock: Arc<dyn Clock>,
}

impl TokenService {
    pub fn new(data: Arc<dyn TokenDataStore>, clock: Arc<dyn Clock>) -> Self {
        Self { data, clock }
    }

    pub async fn create_token(&self, new: NewToken) -> Result<Token, TokenError> {
        if !is_valid_username(&new.username) {
            return Err(TokenError::InvalidUsername(new.username));
        }
        match (new.token_type, new.username.starts_with("bot-")) {
            (TokenType::Service, false) => return Err(TokenError::ServiceNeedsBotName),
            (t, true) if t != TokenType::Service => return Err(TokenError::BotNameNeedsService),
            _ => {}
        }
        // The email becomes an upstream header: no control characters.
        if new
            .email
            .as_deref()
            .is_some_and(|e| e.is_empty() || e.chars().any(char::is_control))
        {
            return Err(TokenError::InvalidEmail);
        }
        if new.lifetime.is_some_and(|l| l < MIN_LIFETIME) {
            return Err(TokenError::LifetimeTooShort);
        }
        let (mut key, mut secret) = ([0u8; 16], [0u8; 16]);
        getrandom::fill(&mut key).map_err(|_| TokenError::Random)?;
        getrandom::fill(&mut secret).map_err(|_| TokenError::Random)?;
        let token = Token::from_random(key, secret);
        let created = self.clock.now();
        let data = TokenData {
            token: token.clone(),
            username: new.username,
            token_type: new.token_type,
            scopes: new.scopes,
            created,
            expires: new.lifetime.map(|l| created + l.as_secs()),
            name: new.name,
            email: new.email,
            uid: new.uid,
            gid: new.gid,
            groups: new.groups,
        };
        self.data.store(&data).await?;
        tracing::info!(key = %token.key(), username = %data.username, token_type = data.token_type.as_str(), "created token");
        Ok(token)
    }

    /// The data of a presented token, or `None` when it is unknown, its
    /// secret does not match (compared in constant time) or it has expired.
    pub async fn get_data(&self, token: &Token) -> Result<Option<TokenData>, StorageError> {
        let Some(data) = self.data.get(token.key()).await? else {
            return Ok(None);
        };
        if !data.token.secret().matches(token.secret()) {
            return Ok(None);
        }
        if data.expires.is_some_and(|e| e <= self.clock.now()) {
            return Ok(None);
        }
        Ok(Some(data))
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        self.data.ping().await
    }
}

/// Gafaelfawr's username rule: lower-case letters, digits and single inner
/// hyphens, not all digits (so it cannot be mistaken for a uid).
fn is_valid_username(name: &str) -> bool {
    (1..=MAX_USERNAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && !name.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rule() {
        for good in ["alice", "a", "bot-ci", "user-2", "x9"] {
            assert!(is_valid_username(good), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "-a",
            "a-",
            "a--b",
            "1234",
            "a b",
            "a_b",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }
}
