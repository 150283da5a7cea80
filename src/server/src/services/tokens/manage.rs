//! Reading, listing, changing and revoking tokens, and their history, with
//! the permission rules: users see their own, administrators everyone's.

use std::net::IpAddr;

use portcullis_core::{Scope, TokenKey, TokenType};

use super::{is_valid_name, TokenError, TokenService};
use crate::model::{
    HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage, TokenChange, TokenChanges, TokenInfo,
    TokenListing,
};
use crate::services::actor::Actor;

/// Largest page of history one query returns.
pub const MAX_HISTORY_PAGE: u32 = 1000;

impl TokenService {
    /// Information about `username`'s token `key`; `None` when there is no
    /// such token or it belongs to someone else.
    pub async fn get_token_info(
        &self,
        key: &TokenKey,
        actor: &Actor,
        username: &str,
    ) -> Result<Option<TokenInfo>, TokenError> {
        if !actor.may_manage(username) {
            return Err(TokenError::PermissionDenied(
                "only administrators may see other users' tokens",
            ));
        }
        self.get_token_info_unchecked(key, Some(username)).await
    }

    /// The same without the permission check, for Portcullis's own use.
    pub async fn get_token_info_unchecked(
        &self,
        key: &TokenKey,
        username: Option<&str>,
    ) -> Result<Option<TokenInfo>, TokenError> {
        let info = self.metadata.get_info(key).await?;
        Ok(info.filter(|i| username.is_none_or(|u| i.username == u)))
    }

    /// `username`'s tokens, or with `None` (administrators only) everyone's.
    pub async fn list_tokens(
        &self,
        actor: &Actor,
        username: Option<&str>,
    ) -> Result<Vec<TokenInfo>, TokenError> {
        let allowed = match username {
            Some(user) => actor.may_manage(user),
            None => actor.is_admin(),
        };
        if !allowed {
            return Err(TokenError::PermissionDenied(
                "listing tokens needs scope user:token for your own, admin:token for others'",
            ));
        }
        let listing = TokenListing {
            username: username.map(str::to_owned),
            token_type: None,
        };
        Ok(self.metadata.list_tokens(&listing).await?)
    }

    /// Changes a user or service token's name, scopes or expiry
    /// (administrators only), in both stores, with an `edit` history entry
    /// holding the old values.
    pub async fn modify_token(
        &self,
        key: &TokenKey,
        actor: &Actor,
        username: &str,
        changes: TokenChanges,
        ip: Option<IpAddr>,
    ) -> Result<TokenInfo, TokenError> {
        if !actor.is_admin() {
            return Err(TokenError::PermissionDenied(
                "only administrators may modify tokens",
            ));
        }
        let old = self
            .get_token_info_unchecked(key, Some(username))
            .await?
            .ok_or(TokenError::NotFound)?;
        // Sessions and children follow their login and their parent.
        if !matches!(old.token_type, TokenType::User | TokenType::Service) {
            return Err(TokenError::WrongTokenType(
                "only user and service tokens can be modified",
            ));
        }
        if changes
            .token_name
            .as_deref()
            .is_some_and(|n| !is_valid_name(n))
        {
            return Err(TokenError::InvalidName("token_name"));
        }
        if let Some(scopes) = &changes.scopes {
            self.validate_scopes(scopes)?;
        }
        if let Some(expires) = changes.expires {
            self.validate_expires(expires)?;
        }
        let record = |new: &TokenInfo| Some(self.edit_entry(&old, new, &changes, actor, ip));
        let new = self
            .metadata
            .modify(key, &changes, &record)
            .await?
            .ok_or(TokenError::NotFound)?;
        // Revoked meanwhile: the revocation stands (the edit's record only
        // evicts cached answers once more).
        if !self.follow_metadata(&new).await? {
            return Err(TokenError::NotFound);
        }
        self.narrow_descendants(&new, actor, ip).await?;
        Ok(new)
    }

    /// An `edit` history entry for `old` becoming `new`, holding the old
    /// values of what `changes` changed.
    fn edit_entry(
        &self,
        old: &TokenInfo,
        new: &TokenInfo,
        changes: &TokenChanges,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> HistoryEntry {
        let mut entry = self.history_entry(new, TokenChange::Edit, Some(&actor.history_name()), ip);
        entry.old_token_name = changes.token_name.as_ref().and(old.token_name.clone());
        entry.old_scopes = changes.scopes.as_ref().map(|_| old.scopes.clone());
        entry.old_expires = changes.expires.and(old.expires);
        entry
    }

    /// A child never holds more than its parent nor outlives it: after an
    /// edit, every descendant loses the scopes `parent` lost and is cut to
    /// its expiry, each change recorded (and so heard of at the edge).
    async fn narrow_descendants(
        &self,
        parent: &TokenInfo,
        actor: &Actor,
        ip: Option<IpAddr>,
    ) -> Result<(), TokenError> {
        for child in self.metadata.get_children(&parent.token).await? {
            let scopes: Vec<Scope> = child
                .scopes
                .iter()
                .filter(|s| parent.scopes.contains(s))
                .cloned()
                .collect();
            let expires = match (child.expires, parent.expires) {
                (Some(c), Some(p)) => Some(c.min(p)),
                (c, p) => c.or(p),
            };
            let changes = TokenChanges {
                token_name: None,
                scopes: (scopes != child.scopes).then_some(scopes),
                expires: (expires != child.expires).then_some(expires),
            };
            if changes.scopes.is_none() && changes.expires.is_none() {
                continue;
            }
            let record = |new: &TokenInfo| Some(self.edit_entry(&child, new, &changes, actor, ip));
            let Some(new) = self
                .metadata
                .modify(&child.token, &changes, &record)
                .await?
            else {
                continue;
            };
            self.follow_metadata(&new).await?;
        }
        Ok(())
    }

    /// Revokes `username`'s token `key` and, recursively, its children.
    /// False when there is no such token.
    pub async fn delete_token(
        &self,
        key: &TokenKey,
        actor: &Actor,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<bool, TokenError> {
        if !actor.may_manage(username) {
            return Err(TokenError::PermissionDenied(
                "revoking needs scope user:token for your own tokens, admin:token for others'",
            ));
        }
        let Some(info) = self.get_token_info_unchecked(key, Some(username)).await? else {
            return Ok(false);
        };
        Ok(self
            .revoke_tree(&info, TokenChange::Revoke, Some(&actor.history_name()), ip)
            .await?)
    }

    /// Revokes token `key` and its children on Portcullis's own authority,
    /// recorded as done by `actor`. False when there is no such token.
    pub async fn revoke_by_key(
        &self,
        key: &TokenKey,
        actor: &str,
        ip: Option<IpAddr>,
    ) -> Result<bool, TokenError> {
        let Some(info) = self.get_token_info_unchecked(key, None).await? else {
            return Ok(false);
        };
        Ok(self
            .revoke_tree(&info, TokenChange::Revoke, Some(actor), ip)
            .await?)
    }

    /// Ends a browser session: revokes the session token (and so its
    /// children), recorded as done by its user. Anything but a valid
    /// session token is left alone; false then.
    pub async fn logout(
        &self,
        token: &portcullis_core::Token,
        ip: Option<IpAddr>,
    ) -> Result<bool, TokenError> {
        let Some(data) = self.get_data(token).await? else {
            return Ok(false);
        };
        if data.token_type != portcullis_core::TokenType::Session {
            return Ok(false);
        }
        let Some(info) = self
            .get_token_info_unchecked(token.key(), Some(&data.username))
            .await?
        else {
            return Ok(false);
        };
        Ok(self
            .revoke_tree(&info, TokenChange::Revoke, Some(&data.username), ip)
            .await?)
    }

    /// History entries matching `filter`, newest first. A user who is not
    /// an administrator sees only their own tokens' history.
    pub async fn get_change_history(
        &self,
        actor: &Actor,
        filter: HistoryFilter,
        cursor: Option<HistoryCursor>,
        limit: Option<u32>,
    ) -> Result<HistoryPage, TokenError> {
        let allowed = match filter.username.as_deref() {
            Some(username) => actor.may_manage(username),
            None => actor.is_admin(),
        };
        if !allowed {
            return Err(TokenError::PermissionDenied(
                "history needs scope user:token for your own tokens, admin:token for others'",
            ));
        }
        let limit = limit.unwrap_or(MAX_HISTORY_PAGE).clamp(1, MAX_HISTORY_PAGE);
        Ok(self.history.list(&filter, cursor, limit).await?)
    }
}
