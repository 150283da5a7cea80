//! Token change history as the API and the services see it: who created,
//! edited, revoked or saw expire which token, from where, and when; the
//! filters and pages a query uses.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ipnet::IpNet;
use portcullis_core::{Scope, TokenKey, TokenType};
use serde::{Deserialize, Serialize};

use super::TokenInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenChange {
    Create,
    Revoke,
    Expire,
    Edit,
}

impl TokenChange {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenChange::Create => "create",
            TokenChange::Revoke => "revoke",
            TokenChange::Expire => "expire",
            TokenChange::Edit => "edit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Create, Self::Revoke, Self::Expire, Self::Edit]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub token: TokenKey,
    pub username: String,
    pub token_type: TokenType,
    pub token_name: Option<String>,
    pub parent: Option<TokenKey>,
    pub scopes: Vec<Scope>,
    pub service: Option<String>,
    pub expires: Option<u64>,
    /// Who made the change; `None` for Portcullis's own bookkeeping.
    pub actor: Option<String>,
    pub action: TokenChange,
    pub old_token_name: Option<String>,
    pub old_scopes: Option<Vec<Scope>>,
    pub old_expires: Option<u64>,
    #[schema(value_type = Option<String>, example = "192.0.2.1")]
    pub ip_address: Option<IpAddr>,
    pub event_time: u64,
}

impl HistoryEntry {
    /// The record of `action` on the token `info` describes (as it is
    /// after the change), by `actor` from `ip` at `event_time`; the `old_*`
    /// fields are for an edit to fill.
    pub fn new(
        info: &TokenInfo,
        action: TokenChange,
        actor: Option<&str>,
        ip: Option<IpAddr>,
        event_time: u64,
    ) -> Self {
        Self {
            token: info.token.clone(),
            username: info.username.clone(),
            token_type: info.token_type,
            token_name: info.token_name.clone(),
            parent: info.parent.clone(),
            scopes: info.scopes.clone(),
            service: info.service.clone(),
            expires: info.expires,
            actor: actor.map(str::to_owned),
            action,
            old_token_name: None,
            old_scopes: None,
            old_expires: None,
            ip_address: ip,
            event_time,
        }
    }
}

/// Which entries a history query wants; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub username: Option<String>,
    pub actor: Option<String>,
    /// This token and its direct children.
    pub key: Option<TokenKey>,
    /// This token only.
    pub token: Option<TokenKey>,
    pub token_type: Option<TokenType>,
    pub ip_or_cidr: Option<IpNet>,
}

/// A position in the newest-first history: entries strictly older than
/// `(time, id)` (or strictly newer, going back). Keyed on the row, not on
/// an offset, so entries added meanwhile do not shift a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub time: u64,
    pub id: i64,
    pub previous: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this server issued")]
pub struct BadCursor;

impl HistoryCursor {
    pub fn encode(&self) -> String {
        let direction = if self.previous { 'p' } else { 'n' };
        URL_SAFE_NO_PAD.encode(format!("{direction}{}_{}", self.time, self.id))
    }

    pub fn decode(text: &str) -> Result<Self, BadCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| BadCursor)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| BadCursor)?;
        let previous = match text.as_bytes().first() {
            Some(b'n') => false,
            Some(b'p') => true,
            _ => return Err(BadCursor),
        };
        let (time, id) = text[1..].split_once('_').ok_or(BadCursor)?;
        Ok(Self {
            time: time.parse().map_err(|_| BadCursor)?,
            id: id.parse().map_err(|_| BadCursor)?,
            previous,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    pub next: Option<HistoryCursor>,
    pub previous: Option<HistoryCursor>,
}

impl HistoryPage {
    /// The page from up to `limit + 1` rows fetched from `cursor` on, in
    /// the cursor's direction (the extra row says whether there are more).
    pub fn from_rows(
        mut found: Vec<(i64, HistoryEntry)>,
        cursor: Option<HistoryCursor>,
        limit: u32,
    ) -> Self {
        let backwards = cursor.is_some_and(|c| c.previous);
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        if backwards {
            found.reverse();
        }
        let at = |(id, e): &(i64, HistoryEntry), previous| HistoryCursor {
            time: e.event_time,
            id: *id,
            previous,
        };
        // Newest first now: `previous` leads to newer entries, `next` to older.
        let (has_newer, has_older) = match backwards {
            false => (cursor.is_some(), more),
            true => (more, true),
        };
        HistoryPage {
            previous: found.first().filter(|_| has_newer).map(|f| at(f, true)),
            next: found.last().filter(|_| has_older).map(|l| at(l, false)),
            entries: found.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_forgeries() {
        let c = HistoryCursor {
            time: 1_900_000_000,
            id: 42,
            previous: true,
        };
        assert_eq!(HistoryCursor::decode(&c.encode()), Ok(c));
        for bad in ["", "!!", "eDEyXzM", &URL_SAFE_NO_PAD.encode("n12")] {
            assert_eq!(HistoryCursor::decode(bad), Err(BadCursor), "{bad}");
        }
    }
}
