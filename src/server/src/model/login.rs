//! A CLI login waiting for a browser, after Boundary's pending tokens.

use portcullis_core::TokenKey;

/// One pending CLI login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// Public: it is in the URL the browser opens.
    pub login_id: String,
    /// SHA-256 of the secret only the CLI holds, which it polls with.
    pub poll_sha256: [u8; 32],
    /// Shown by the CLI and on the approval page, so that the user can see
    /// the two are the same login.
    pub user_code: String,
    pub created: u64,
    pub expires: u64,
    /// The session that approved it, once one has.
    pub approved_session: Option<TokenKey>,
}
