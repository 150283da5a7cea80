//! Short-lived records in Redis: a hash per record, expired by Redis a
//! little after its own expiry, and indexed by expiry so that maintenance
//! closes them by the service's clock (and can count what it closed).

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;

use crate::storage::rows::corrupt;
use crate::storage::StorageError;

/// Redis keeps a record this much longer than its expiry, so that the
/// service, not Redis, decides when it has expired.
const GRACE_SECONDS: u64 = 60;

/// Writes `fields` as the hash `name`, indexed under `index` by `expires`.
pub async fn add(
    redis: &mut ConnectionManager,
    name: &str,
    index: &str,
    fields: &[(&str, String)],
    expires: u64,
    now: u64,
) -> Result<(), StorageError> {
    redis::pipe()
        .atomic()
        .hset_multiple(name, fields)
        .ignore()
        .expire(name, to_ttl(expires.saturating_sub(now) + GRACE_SECONDS))
        .ignore()
        .zadd(index, name, expires)
        .ignore()
        .query_async::<()>(redis)
        .await?;
    Ok(())
}

/// Removes every record of `index` expired at `now`; how many there were.
pub async fn delete_expired(
    redis: &mut ConnectionManager,
    index: &str,
    now: u64,
) -> Result<u64, StorageError> {
    let names: Vec<String> = redis.zrangebyscore(index, "-inf", now).await?;
    if names.is_empty() {
        return Ok(0);
    }
    let (deleted, _): (u64, u64) = redis::pipe()
        .atomic()
        .del(&names)
        .zrem(index, &names)
        .query_async(redis)
        .await?;
    Ok(deleted)
}

fn to_ttl(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// A field of a record read with HGETALL.
pub struct Fields<'a> {
    pub id: &'a str,
    pub map: HashMap<String, String>,
}

impl Fields<'_> {
    pub fn text(&self, field: &str) -> Result<String, StorageError> {
        self.map
            .get(field)
            .cloned()
            .ok_or_else(|| corrupt(self.id, format!("field {field} missing")))
    }

    pub fn optional(&self, field: &str) -> Option<String> {
        self.map.get(field).cloned()
    }

    pub fn number(&self, field: &str) -> Result<u64, StorageError> {
        self.text(field)?
            .parse()
            .map_err(|_| corrupt(self.id, format!("field {field} is not a number")))
    }

    pub fn hash(&self, field: &str) -> Result<[u8; 32], StorageError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(self.text(field)?, &mut out)
            .map_err(|_| corrupt(self.id, format!("field {field} is not a SHA-256")))?;
        Ok(out)
    }
}
