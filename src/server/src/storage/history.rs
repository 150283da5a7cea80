//! Token change history: who created, edited, revoked or saw expire which
//! token, from where, and when.

use std::net::IpAddr;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ipnet::IpNet;
use portcullis_core::{Scope, TokenKey, TokenType};
use serde::{Deserialize, Serialize};

use super::{StorageError, TokenInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Keys of tokens revoked, expired or edited after a history position,
/// read in one snapshot of the history: a change committed while the feed
/// is read is either in it or after `last_read`, never skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeFeed {
    /// (row id, key), oldest first.
    pub changes: Vec<(i64, TokenKey)>,
    /// The id of the last row read, change or not: a reader's next
    /// position. `None` when no row follows the position asked for.
    pub last_read: Option<i64>,
    /// Lowest and highest row ids the history held in that snapshot.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
}

/// The actions a feed reader must hear of.
pub const CHANGE_ACTIONS: [&str; 3] = ["revoke", "expire", "edit"];

impl ChangeFeed {
    /// The feed from the rows after a position, in id order (`limit` of
    /// them at most, every action), and the history's bounds.
    pub fn from_rows(
        rows: Vec<(i64, String, String)>,
        oldest: Option<i64>,
        newest: Option<i64>,
    ) -> Result<Self, StorageError> {
        let last_read = rows.last().map(|(id, _, _)| *id);
        let changes = rows
            .into_iter()
            .filter(|(_, action, _)| CHANGE_ACTIONS.contains(&action.as_str()))
            .map(|(id, _, key)| Ok((id, crate::storage::rows::parse_key(&key)?)))
            .collect::<Result<_, StorageError>>()?;
        Ok(Self {
            changes,
            last_read,
            oldest,
            newest,
        })
    }
}

#[async_trait]
pub trait TokenHistoryStore: Send + Sync {
    async fn add(&self, entry: &HistoryEntry) -> Result<(), StorageError>;
    /// Entries newest first, at most `limit`, from `cursor` on.
    async fn list(
        &self,
        filter: &HistoryFilter,
        cursor: Option<HistoryCursor>,
        limit: u32,
    ) -> Result<HistoryPage, StorageError>;
    /// Up to `limit` revoke, expire and edit entries after row `after`.
    /// The rows after `after` (at most `limit`, every action) and the
    /// history's bounds, all from one snapshot.
    async fn changes_since(&self, after: i64, limit: u32) -> Result<ChangeFeed, StorageError>;
    /// Deletes entries older than `cutoff`; how many went.
    async fn delete_older_than(&self, cutoff: u64) -> Result<u64, StorageError>;
}

/// The address as 16 bytes, IPv4 mapped into IPv6, so that a network's
/// addresses form one contiguous range.
pub fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// First and last address of a network, as [`ip_bytes`].
pub fn net_range(net: &IpNet) -> ([u8; 16], [u8; 16]) {
    (ip_bytes(net.network()), ip_bytes(net.broadcast()))
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

    #[test]
    fn ipv4_networks_are_ranges_of_mapped_addresses() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        let (lo, hi) = net_range(&net);
        let inside = ip_bytes("10.1.200.3".parse().unwrap());
        let outside = ip_bytes("10.2.0.1".parse().unwrap());
        assert!(lo <= inside && inside <= hi);
        assert!(!(lo <= outside && outside <= hi));
        let v6 = ip_bytes("2001:db8::1".parse().unwrap());
        assert!(!(lo <= v6 && v6 <= hi));
    }
}
