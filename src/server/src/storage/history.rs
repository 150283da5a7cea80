//! The history store: entries kept, queried by page, and read as the
//! change feed.

use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;
use portcullis_core::TokenKey;

use super::StorageError;
use crate::model::{HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage};

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
