//! The pure core of Portcullis, compiled both into the proxy-wasm filter and
//! into the companion: nothing here does I/O or reads a clock.

pub mod authorization;
pub mod challenge;
pub mod check;
pub mod cookie;
pub mod redact;
pub mod scope;
pub mod secret;
pub mod session;
pub mod token;

pub use check::{AuthType, CheckAnswer, CheckRequest, DelegatedToken, Delegation};
pub use scope::{Satisfy, Scope};
pub use token::{Group, Token, TokenKey, TokenSecret, TokenType, UnknownTokenType};
