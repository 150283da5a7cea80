//! CLI login, after Boundary's pending tokens: the CLI asks for a pending
//! login and gets a browser URL and a poll secret; the user opens the URL,
//! logs in if needed and approves; the CLI's next poll gets a new session
//! token made from the approving session. Nothing secret is stored: the
//! poll secret as a hash, the approval as the session's key.

use portcullis_core::secret::Secret;
use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::Token;
use subtle::ConstantTimeEq;

use super::oidc::sha256;
use super::rate_limit::{Limited, RateLimiter};
use super::{Clock, TokenError, TokenService, UserInfo};
use crate::model::{PendingLogin, TokenData};
use crate::random::{self, RandomError};
use crate::storage::{PendingLoginStore, StorageError};

/// How long a pending login waits for its browser.
pub const PENDING_LIFETIME: u64 = 10 * 60;
/// Seconds the CLI waits between polls.
pub const POLL_INTERVAL: u64 = 2;
/// Path of the approval page; the login id follows.
pub const APPROVE_PATH: &str = "/login/cli";

/// Letters that cannot be mistaken for one another.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

#[derive(Debug, thiserror::Error)]
pub enum CliLoginError {
    #[error("this login is unknown, expired or already completed; run `portcullis login` again")]
    NotFound,
    #[error("this login was already approved")]
    AlreadyApproved,
    #[error("the session that approved this login has ended")]
    SessionEnded,
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("too many logins started; try again in {} s", .0.retry_after)]
    TooMany(Limited),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl From<Limited> for CliLoginError {
    fn from(limited: Limited) -> Self {
        CliLoginError::TooMany(limited)
    }
}

impl From<StorageError> for CliLoginError {
    fn from(e: StorageError) -> Self {
        CliLoginError::Token(e.into())
    }
}

/// What the CLI gets when it starts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StartedLogin {
    pub login_id: String,
    #[schema(value_type = String)]
    pub poll_secret: Secret,
    pub user_code: String,
    pub browser_url: String,
    pub expires_in: u64,
    pub interval: u64,
}

#[derive(Debug)]
pub enum PollOutcome {
    Pending,
    Issued(Token),
}

pub struct CliLoginService {
    store: Arc<dyn PendingLoginStore>,
    tokens: Arc<TokenService>,
    clock: Arc<dyn Clock>,
    public_url: String,
    /// Anyone may start a login: so many per client address...
    per_client: RateLimiter,
    /// ...and so many in all per pending lifetime, which bounds the rows
    /// waiting at any time (maintenance removes them once expired).
    overall: RateLimiter,
}

/// Logins one client address may start per pending lifetime.
pub const STARTS_PER_CLIENT: u32 = 10;
/// Logins all clients together may start per pending lifetime.
pub const STARTS_OVERALL: u32 = 1000;

impl CliLoginService {
    pub fn new(
        store: Arc<dyn PendingLoginStore>,
        tokens: Arc<TokenService>,
        clock: Arc<dyn Clock>,
        public_url: String,
    ) -> Self {
        Self {
            store,
            tokens,
            per_client: RateLimiter::new(
                STARTS_PER_CLIENT,
                PENDING_LIFETIME,
                10_000,
                clock.clone(),
            ),
            overall: RateLimiter::new(STARTS_OVERALL, PENDING_LIFETIME, 1, clock.clone()),
            clock,
            public_url,
        }
    }

    /// Starts a pending login for the CLI at `client` (unauthenticated).
    pub async fn start(&self, client: Option<IpAddr>) -> Result<StartedLogin, CliLoginError> {
        let address = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        self.per_client.hit(&address)?;
        if let Err(full) = self.overall.hit("all") {
            // Refused for everyone's sake, not for this client's doing.
            self.per_client.refund(&address);
            return Err(full.into());
        }
        let random = random::url_safe_string;
        let login_id = random()?;
        let poll_secret = random()?;
        let user_code = user_code()?;
        let now = self.clock.now();
        self.store
            .add(&PendingLogin {
                login_id: login_id.clone(),
                poll_sha256: sha256(poll_secret.as_bytes()),
                user_code: user_code.clone(),
                created: now,
                expires: now + PENDING_LIFETIME,
                approved_session: None,
            })
            .await?;
        Ok(StartedLogin {
            browser_url: format!("{}{APPROVE_PATH}/{login_id}", self.public_url),
            login_id,
            poll_secret: poll_secret.into(),
            user_code,
            expires_in: PENDING_LIFETIME,
            interval: POLL_INTERVAL,
        })
    }

    /// A login still waiting for approval, for the approval page.
    pub async fn waiting(&self, login_id: &str) -> Result<PendingLogin, CliLoginError> {
        let login = self.live(login_id).await?;
        if login.approved_session.is_some() {
            return Err(CliLoginError::AlreadyApproved);
        }
        Ok(login)
    }

    async fn live(&self, login_id: &str) -> Result<PendingLogin, CliLoginError> {
        self.store
            .get(login_id)
            .await?
            .filter(|l| l.expires > self.clock.now())
            .ok_or(CliLoginError::NotFound)
    }

    /// The browser's session approves the login.
    pub async fn approve(&self, login_id: &str, session: &TokenData) -> Result<(), CliLoginError> {
        self.waiting(login_id).await?;
        if self.store.approve(login_id, session.token.key()).await? {
            Ok(())
        } else {
            Err(CliLoginError::AlreadyApproved)
        }
    }

    /// The CLI asks whether its login is done; once it is, the token is
    /// made and handed over exactly once.
    pub async fn poll(
        &self,
        login_id: &str,
        poll_secret: &str,
        ip: Option<IpAddr>,
    ) -> Result<PollOutcome, CliLoginError> {
        let login = self.live(login_id).await?;
        if !bool::from(sha256(poll_secret.as_bytes()).ct_eq(&login.poll_sha256)) {
            return Err(CliLoginError::NotFound);
        }
        if login.approved_session.is_none() {
            return Ok(PollOutcome::Pending);
        }
        let session_key = self
            .store
            .take_approved(login_id)
            .await?
            .ok_or(CliLoginError::NotFound)?;
        let session = self
            .tokens
            .get_data_by_key(&session_key)
            .await?
            .ok_or(CliLoginError::SessionEnded)?;
        let token = self
            .tokens
            .create_session_token(&UserInfo::of(&session), session.scopes.clone(), ip)
            .await?;
        Ok(PollOutcome::Issued(token))
    }

    /// Closes logins that were never completed; how many.
    pub async fn delete_expired(&self) -> Result<u64, CliLoginError> {
        Ok(self.store.delete_expired(self.clock.now()).await?)
    }
}

/// Eight letters as XXXX-XXXX, each equally likely: bytes past the last
/// whole multiple of the alphabet are drawn again, not folded onto its
/// first letters.
fn user_code() -> Result<String, CliLoginError> {
    let n = USER_CODE_ALPHABET.len();
    let limit = 256 - 256 % n;
    let mut code = String::with_capacity(9);
    while code.len() < 9 {
        let fair = random::bytes::<16>()?.into_iter().map(usize::from);
        for b in fair.filter(|b| *b < limit) {
            if code.len() == 4 {
                code.push('-');
            }
            if code.len() < 9 {
                code.push(char::from(USER_CODE_ALPHABET[b % n]));
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_two_groups_of_four_letters_of_the_alphabet() {
        for _ in 0..200 {
            let code = user_code().unwrap();
            let (a, b) = code.split_once('-').unwrap();
            for group in [a, b] {
                assert_eq!(group.len(), 4, "{code}");
                assert!(
                    group.bytes().all(|c| USER_CODE_ALPHABET.contains(&c)),
                    "{code}"
                );
            }
        }
    }
}
