//! CLI logins waiting for a browser, in Redis: they live ten minutes, and
//! the browser's approval and the CLI's poll may reach different replicas.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::TokenKey;
use redis::{AsyncCommands as _, Script};

use super::expiring::{self, Fields};
use super::Engines;
use crate::clock::Clock;
use crate::model::PendingLogin;
use crate::storage::rows::parse_key;
use crate::storage::{PendingLoginStore, StorageError};

const APPROVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'approved') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'approved', ARGV[1])
return 1
";

const TAKE_APPROVED: &str = r"
local session = redis.call('HGET', KEYS[1], 'approved')
if not session then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return session
";

pub struct RedisPendingLoginStore {
    engines: Engines,
    clock: Arc<dyn Clock>,
}

impl RedisPendingLoginStore {
    pub fn new(engines: Engines, clock: Arc<dyn Clock>) -> Self {
        Self { engines, clock }
    }
}

#[async_trait]
impl PendingLoginStore for RedisPendingLoginStore {
    async fn add(&self, login: &PendingLogin) -> Result<(), StorageError> {
        let fields = [
            ("poll_sha256", hex::encode(login.poll_sha256)),
            ("user_code", login.user_code.clone()),
            ("created", login.created.to_string()),
            ("expires", login.expires.to_string()),
        ];
        let keys = &self.engines.keys;
        expiring::add(
            &mut self.engines.redis.clone(),
            &keys.pending_login(&login.login_id),
            &keys.pending_logins_by_expiry(),
            &fields,
            login.expires,
            self.clock.now(),
        )
        .await
    }

    async fn get(&self, login_id: &str) -> Result<Option<PendingLogin>, StorageError> {
        let mut redis = self.engines.redis.clone();
        let map: HashMap<String, String> = redis
            .hgetall(self.engines.keys.pending_login(login_id))
            .await?;
        if map.is_empty() {
            return Ok(None);
        }
        let fields = Fields { id: login_id, map };
        Ok(Some(PendingLogin {
            login_id: login_id.to_owned(),
            poll_sha256: fields.hash("poll_sha256")?,
            user_code: fields.text("user_code")?,
            created: fields.number("created")?,
            expires: fields.number("expires")?,
            approved_session: fields
                .optional("approved")
                .as_deref()
                .map(parse_key)
                .transpose()?,
        }))
    }

    async fn approve(&self, login_id: &str, session: &TokenKey) -> Result<bool, StorageError> {
        let approved: i64 = Script::new(APPROVE)
            .key(self.engines.keys.pending_login(login_id))
            .arg(session.as_str())
            .invoke_async(&mut self.engines.redis.clone())
            .await?;
        Ok(approved == 1)
    }

    async fn take_approved(&self, login_id: &str) -> Result<Option<TokenKey>, StorageError> {
        let keys = &self.engines.keys;
        let session: Option<String> = Script::new(TAKE_APPROVED)
            .key(keys.pending_login(login_id))
            .key(keys.pending_logins_by_expiry())
            .invoke_async(&mut self.engines.redis.clone())
            .await?;
        session.as_deref().map(parse_key).transpose()
    }

    async fn delete_expired(&self, now: u64) -> Result<u64, StorageError> {
        expiring::delete_expired(
            &mut self.engines.redis.clone(),
            &self.engines.keys.pending_logins_by_expiry(),
            now,
        )
        .await
    }
}
