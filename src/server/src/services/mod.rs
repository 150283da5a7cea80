//! The token rules, over the stores. Services take their stores and a clock
//! as values so that tests can drive time without sleeping.

pub mod actor;
pub mod authenticate;
pub mod check;
pub mod cli_login;
pub mod login;
pub mod oidc;
pub mod rate_limit;
pub mod tokens;
pub mod transfer;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use actor::Actor;
pub use authenticate::{AuthError, Authenticator};
pub use check::{CheckError, CheckService};
pub use oidc::OidcProvider;
pub use tokens::{
    AdminTokenRequest, AuditReport, StateMetrics, TokenError, TokenService, UserInfo, MAX_NAME_LEN,
};
