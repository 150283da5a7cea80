//! The token service: every rule about making, finding, changing and
//! removing tokens, over the three stores.

mod create;
mod manage;

mod upkeep;

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::{Group, Scope, Token, TokenKey, TokenType};

pub use create::AdminTokenRequest;
pub use upkeep::{AuditReport, StateMetrics, CREATION_GRACE_SECONDS};

use super::Clock;
use crate::config::TokenPolicy;
use crate::model::{HistoryEntry, TokenChange, TokenData, TokenInfo};
use crate::random::{self, RandomError};
use crate::storage::{StorageError, TokenDataStore, TokenHistoryStore, TokenMetadataStore};

/// Shortest time ahead a new expiry may be (Gafaelfawr's rule): a token
/// that expires sooner could not be used for much.
pub const MIN_LIFETIME: u64 = 5 * 60;

/// Latest expiry accepted: the end of year 9999, far inside what the
/// stores (signed 64-bit) and every clock computation can hold.
pub const MAX_EXPIRES: u64 = 253_402_300_799;

const MAX_USERNAME_LEN: usize = 64;
/// The longest token name, in characters.
pub const MAX_NAME_LEN: usize = 64;

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
    #[error("{0} must be 1 to 64 printable characters")]
    InvalidName(&'static str),
    #[error("group name {0:?} is not valid: a letter, then letters, digits, `.`, `_` or `-`")]
    InvalidGroup(String),
    #[error("a token name is required for user tokens")]
    NameRequired,
    #[error("expires must be at least 5 minutes in the future")]
    ExpiresTooSoon,
    #[error("expires must be before the year 10000 (253402300800)")]
    ExpiresTooLate,
    #[error("unknown scope {0:?}")]
    UnknownScope(String),
    #[error("scopes {0:?} are not held by the authenticating token")]
    ScopesNotHeld(Vec<String>),
    #[error("token type {0} cannot be made this way")]
    WrongTokenType(&'static str),
    #[error("the authenticating token has less than the required lifetime left")]
    InsufficientLifetime,
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    #[error("token not found")]
    NotFound,
    #[error("the token it would derive from has been revoked")]
    ParentRevoked,
    #[error("user {username} already has a token named {name:?}")]
    DuplicateName { username: String, name: String },
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for TokenError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::DuplicateName { username, name } => {
                TokenError::DuplicateName { username, name }
            }
            StorageError::ParentGone => TokenError::ParentRevoked,
            other => TokenError::Storage(other),
        }
    }
}

/// Who a token is for, beyond its scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<Group>,
}

impl UserInfo {
    pub fn of(data: &TokenData) -> Self {
        Self {
            username: data.username.clone(),
            name: data.name.clone(),
            email: data.email.clone(),
            uid: data.uid,
            gid: data.gid,
            groups: data.groups.clone(),
        }
    }
}

/// Everything about one new token, before it is stored.
struct Minted {
    token: Token,
    data: TokenData,
    info: TokenInfo,
}

/// What a new token is: the parts that vary between kinds of token.
struct Spec {
    token_type: TokenType,
    scopes: Vec<Scope>,
    expires: Option<u64>,
    token_name: Option<String>,
    service: Option<String>,
    parent: Option<TokenKey>,
}

pub struct TokenService {
    data: Arc<dyn TokenDataStore>,
    metadata: Arc<dyn TokenMetadataStore>,
    history: Arc<dyn TokenHistoryStore>,
    clock: Arc<dyn Clock>,
    policy: TokenPolicy,
}

impl TokenService {
    pub fn new(
        data: Arc<dyn TokenDataStore>,
        metadata: Arc<dyn TokenMetadataStore>,
        history: Arc<dyn TokenHistoryStore>,
        clock: Arc<dyn Clock>,
        policy: TokenPolicy,
    ) -> Self {
        Self {
            data,
            metadata,
            history,
            clock,
            policy,
        }
    }

    /// The service's time, in Unix seconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Every scope a token may hold, with its description.
    pub fn known_scopes(&self) -> &std::collections::BTreeMap<Scope, String> {
        &self.policy.known_scopes
    }

    /// The data of a presented token, or `None` when it is unknown, its
    /// secret does not match (compared in constant time), it has expired,
    /// or it has gone stale (then it is removed, as Boundary does).
    pub async fn get_data(&self, token: &Token) -> Result<Option<TokenData>, StorageError> {
        match self.readable_data(token.key()).await? {
            Some(data) if data.token.secret().matches(token.secret()) => self.live(data).await,
            _ => Ok(None),
        }
    }

    /// The data of a live token known only by its key: a session that
    /// Portcullis itself recorded (behind an authorization code or an
    /// approved CLI login). `None` on the same terms as `get_data`.
    pub async fn get_data_by_key(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        match self.readable_data(key).await? {
            Some(data) => self.live(data).await,
            None => Ok(None),
        }
    }

    async fn readable_data(&self, key: &TokenKey) -> Result<Option<TokenData>, StorageError> {
        match self.data.get(key).await {
            // Unreadable data cannot authenticate anyone; the audit reports it.
            Err(e @ (StorageError::Sealed { .. } | StorageError::Corrupt { .. })) => {
                tracing::error!(error = %e, "token data unreadable");
                Ok(None)
            }
            other => other,
        }
    }

    /// `data` if it has neither expired nor gone stale (a stale token is
    /// removed, as Boundary does); records the use.
    async fn live(&self, data: TokenData) -> Result<Option<TokenData>, StorageError> {
        let now = self.clock.now();
        if data.expires.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        let key = data.token.key();
        // Data whose metadata is gone belongs to a revoked token (or to one
        // being revoked: the metadata goes first). Writes after the first
        // are conditional, so none should put such data back, but if any
        // is found it authenticates no one; the audit removes it.
        let Some(info) = self.metadata.get_info(key).await? else {
            return Ok(None);
        };
        let last_used = info.last_used.unwrap_or(data.created);
        if self
            .policy
            .time_to_stale
            .is_some_and(|stale| now.saturating_sub(last_used) > stale)
        {
            self.revoke_tree(&info, TokenChange::Expire, None, None)
                .await?;
            return Ok(None);
        }
        // Checked before writing, so most checks read only.
        if now.saturating_sub(last_used) >= self.policy.last_used_interval {
            self.metadata
                .record_use(key, now, self.policy.last_used_interval)
                .await?;
        }
        Ok(Some(data))
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        self.data.ping().await
    }

    /// Whether checks can be answered: the stores answer, with the schema
    /// this build needs. (The keys cannot be missing: a companion whose
    /// keys do not load never starts.)
    pub async fn ready(&self) -> Result<(), StorageError> {
        self.data.ready().await
    }

    fn mint(&self, user: &UserInfo, spec: Spec) -> Result<Minted, TokenError> {
        validate_user(user, spec.token_type)?;
        let token = Token::from_random(random::bytes()?, random::bytes()?);
        let created = self.clock.now();
        let mut scopes = spec.scopes;
        scopes.sort();
        scopes.dedup();
        let data = TokenData {
            token: token.clone(),
            username: user.username.clone(),
            token_type: spec.token_type,
            scopes,
            created,
            expires: spec.expires,
            name: user.name.clone(),
            email: user.email.clone(),
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
            service: spec.service,
        };
        let info = TokenInfo::of_new(&data, spec.token_name, spec.parent);
        Ok(Minted { token, data, info })
    }

    /// Stores a new token: data first, since it is the truth for validity,
    /// and removed again if the metadata cannot be added.
    async fn store(
        &self,
        minted: Minted,
        actor: &str,
        ip: Option<IpAddr>,
    ) -> Result<Token, TokenError> {
        // Data before metadata: whoever finds the key in the metadata must
        // find its data too. A crash between the two leaves data nobody
        // holds the secret of, which authenticates no one (`live` needs the
        // metadata) and which the audit removes.
        self.data.store(&minted.data).await?;
        let created = self.history_entry(&minted.info, TokenChange::Create, Some(actor), ip);
        if let Err(e) = self.metadata.add(&minted.info, &created).await {
            self.data.delete(minted.token.key()).await?;
            return Err(e.into());
        }
        tracing::info!(key = %minted.token.key(), username = %minted.info.username,
            token_type = minted.info.token_type.as_str(), "created token");
        Ok(minted.token)
    }

    /// The record of `action` on `info`, now.
    fn history_entry(
        &self,
        info: &TokenInfo,
        action: TokenChange,
        actor: Option<&str>,
        ip: Option<IpAddr>,
    ) -> HistoryEntry {
        HistoryEntry::new(info, action, actor, ip, self.clock.now())
    }

    /// Records `action` on its own, for a change no metadata write carries
    /// (a repair of data the audit found).
    async fn record(
        &self,
        info: &TokenInfo,
        action: TokenChange,
        actor: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<(), StorageError> {
        self.history
            .add(&self.history_entry(info, action, actor, ip))
            .await
    }

    /// Gives a token's data the scopes and expiry its edited metadata now
    /// holds; false, writing nothing, if the token is gone (revoked while
    /// it was being edited).
    async fn follow_metadata(&self, info: &TokenInfo) -> Result<bool, StorageError> {
        let Some(mut data) = self.data.get(&info.token).await? else {
            return Ok(false);
        };
        data.scopes = info.scopes.clone();
        data.expires = info.expires;
        self.data.update(&data).await
    }

    /// Removes a token and every descendant, recording `action` for each;
    /// false if it was already gone. The metadata of the whole tree goes
    /// first, in one transaction that no new child can slip into: from its
    /// commit nothing in the tree is live (checks need both halves), and
    /// the data follows.
    async fn revoke_tree(
        &self,
        info: &TokenInfo,
        action: TokenChange,
        actor: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<bool, StorageError> {
        let record = |doomed: &TokenInfo| Some(self.history_entry(doomed, action, actor, ip));
        let doomed = self.metadata.delete_tree(&info.token, &record).await?;
        if doomed.is_empty() {
            // Revoked by someone else meanwhile, who records it; any data
            // left of it goes all the same.
            self.data.delete(&info.token).await?;
            return Ok(false);
        }
        for token in &doomed {
            self.data.delete(&token.token).await?;
            tracing::info!(key = %token.token, action = action.as_str(), "removed token");
        }
        Ok(true)
    }

    fn validate_scopes(&self, scopes: &[Scope]) -> Result<(), TokenError> {
        match scopes
            .iter()
            .find(|s| !self.policy.known_scopes.contains_key(*s))
        {
            Some(unknown) => Err(TokenError::UnknownScope(unknown.to_string())),
            None => Ok(()),
        }
    }

    fn validate_expires(&self, expires: Option<u64>) -> Result<(), TokenError> {
        match expires {
            Some(e) if e < self.clock.now().saturating_add(MIN_LIFETIME) => {
                Err(TokenError::ExpiresTooSoon)
            }
            Some(e) if e > MAX_EXPIRES => Err(TokenError::ExpiresTooLate),
            _ => Ok(()),
        }
    }
}

/// Delegation never widens: every wanted scope must be held.
fn require_held(wanted: &[Scope], held: &[Scope]) -> Result<(), TokenError> {
    let missing: Vec<String> = wanted
        .iter()
        .filter(|s| !held.contains(s))
        .map(Scope::to_string)
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(TokenError::ScopesNotHeld(missing)),
    }
}

fn validate_user(user: &UserInfo, token_type: TokenType) -> Result<(), TokenError> {
    if !is_valid_username(&user.username) {
        return Err(TokenError::InvalidUsername(user.username.clone()));
    }
    match (token_type, user.username.starts_with("bot-")) {
        (TokenType::Service, false) => return Err(TokenError::ServiceNeedsBotName),
        (t, true) if t != TokenType::Service => return Err(TokenError::BotNameNeedsService),
        _ => {}
    }
    // The email becomes an upstream header: no control characters.
    if user
        .email
        .as_deref()
        .is_some_and(|e| e.is_empty() || e.chars().any(char::is_control))
    {
        return Err(TokenError::InvalidEmail);
    }
    if user.name.as_deref().is_some_and(|n| !is_valid_name(n)) {
        return Err(TokenError::InvalidName("name"));
    }
    if let Some(bad) = user.groups.iter().find(|g| !is_valid_group_name(&g.name)) {
        return Err(TokenError::InvalidGroup(bad.name.clone()));
    }
    Ok(())
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

/// Gafaelfawr's group names: a letter, then letters, digits, `.`, `_`, `-`.
/// They are joined with commas into a header, so no comma or space.
pub(crate) fn is_valid_group_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Token names, service names and display names: printable, bounded.
fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.chars().count()) && !name.chars().any(char::is_control)
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

    #[test]
    fn group_names_follow_gafaelfawrs_rule() {
        for good in ["staff", "g.team_1-x"] {
            assert!(is_valid_group_name(good), "{good}");
        }
        for bad in ["", "1staff", "a,b", "a b", "ä"] {
            assert!(!is_valid_group_name(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_printable_and_bounded() {
        assert!(is_valid_name("laptop ☕"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\nb"));
        assert!(!is_valid_name(&"x".repeat(65)));
    }
}
