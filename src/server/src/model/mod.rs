//! Domain types that configuration, services, handlers and stores share,
//! each validated where it is made. They depend on nothing else in the
//! companion: storage keeps only its traits and engines, and handlers
//! import these, never storage.

pub mod history;
pub mod login;
pub mod oidc;
pub mod token;

pub use history::{
    BadCursor, HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage, TokenChange,
};
pub use login::PendingLogin;
pub use oidc::{AuthorizationCode, ClientId, OidcClientRecord, OidcGrant, RedirectUri};
pub use token::{TokenChanges, TokenData, TokenInfo, TokenListing};
