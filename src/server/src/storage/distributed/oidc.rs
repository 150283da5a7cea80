//! OpenID Connect state: clients and grants in PostgreSQL (they last), codes
//! in Redis (they live minutes, and every replica must see a redemption).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::TokenKey;
use redis::Script;

use super::expiring::{self, Fields};
use super::Engines;
use crate::clock::Clock;
use crate::model::{AuthorizationCode, OidcClientRecord, OidcGrant};
use crate::storage::rows::{corrupt, parse_key, words};
use crate::storage::sql;
use crate::storage::{OidcStore, Redemption, StorageError};

/// Spends a fresh code, or marks a spent one replayed; what it found.
const REDEEM: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'fresh' then
  redis.call('HSET', KEYS[1], 'state', 'spent')
  local all = redis.call('HGETALL', KEYS[1])
  table.insert(all, 1, 'first')
  return all
end
redis.call('HSET', KEYS[1], 'state', 'replayed')
return {'replayed', redis.call('HGET', KEYS[1], 'issued') or ''}
";

/// Records what a code's first redemption issued, unless it was replayed.
const RECORD_ISSUED: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'spent' then return 0 end
redis.call('HSET', KEYS[1], 'issued', ARGV[1])
return 1
";

pub struct DistributedOidcStore {
    engines: Engines,
    clock: Arc<dyn Clock>,
}

impl DistributedOidcStore {
    pub fn new(engines: Engines, clock: Arc<dyn Clock>) -> Self {
        Self { engines, clock }
    }
}

fn code_from(code_sha256: &[u8; 32], fields: &Fields) -> Result<AuthorizationCode, StorageError> {
    Ok(AuthorizationCode {
        code_sha256: *code_sha256,
        client_id: fields.text("client_id")?,
        redirect_uri: fields.text("redirect_uri")?,
        session: parse_key(&fields.text("session")?)?,
        scopes: words(&fields.text("scopes")?),
        nonce: fields.optional("nonce"),
        code_challenge: fields.optional("code_challenge"),
        auth_time: fields.number("auth_time")?,
        expires: fields.number("expires")?,
    })
}

#[async_trait]
impl OidcStore for DistributedOidcStore {
    async fn add_client(&self, client: &OidcClientRecord) -> Result<(), StorageError> {
        sql::postgres::insert_client(&self.engines.pg, client).await
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<OidcClientRecord>, StorageError> {
        sql::postgres::client(&self.engines.pg, client_id).await
    }

    async fn list_clients(&self) -> Result<Vec<OidcClientRecord>, StorageError> {
        sql::postgres::clients(&self.engines.pg).await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StorageError> {
        sql::postgres::delete_client(&self.engines.pg, client_id).await
    }

    async fn add_code(&self, code: &AuthorizationCode) -> Result<(), StorageError> {
        let mut fields = vec![
            ("state", "fresh".to_owned()),
            ("client_id", code.client_id.clone()),
            ("redirect_uri", code.redirect_uri.clone()),
            ("session", code.session.to_string()),
            ("scopes", code.scopes.join(" ")),
            ("auth_time", code.auth_time.to_string()),
            ("expires", code.expires.to_string()),
        ];
        fields.extend(code.nonce.clone().map(|n| ("nonce", n)));
        fields.extend(code.code_challenge.clone().map(|c| ("code_challenge", c)));
        let keys = &self.engines.keys;
        expiring::add(
            &mut self.engines.redis.clone(),
            &keys.code(&code.code_sha256),
            &keys.codes_by_expiry(),
            &fields,
            code.expires,
            self.clock.now(),
        )
        .await
    }

    async fn redeem_code(&self, code_sha256: &[u8; 32]) -> Result<Redemption, StorageError> {
        let name = self.engines.keys.code(code_sha256);
        let found: Option<Vec<String>> = Script::new(REDEEM)
            .key(&name)
            .invoke_async(&mut self.engines.redis.clone())
            .await?;
        let Some(found) = found else {
            return Ok(Redemption::Unknown);
        };
        match found.split_first() {
            Some((first, rest)) if first == "first" => {
                let map: HashMap<String, String> = rest
                    .chunks_exact(2)
                    .map(|pair| (pair[0].clone(), pair[1].clone()))
                    .collect();
                let fields = Fields { id: &name, map };
                Ok(Redemption::First(code_from(code_sha256, &fields)?))
            }
            Some((replayed, [issued])) if replayed == "replayed" => Ok(Redemption::Replayed {
                issued: Some(issued)
                    .filter(|k| !k.is_empty())
                    .map(|k| parse_key(k))
                    .transpose()?,
            }),
            _ => Err(corrupt(&name, "unexpected redemption".into())),
        }
    }

    async fn record_grant(
        &self,
        code_sha256: &[u8; 32],
        grant: &OidcGrant,
    ) -> Result<bool, StorageError> {
        // The grant first: if a replay comes between the two steps, it
        // finds nothing issued to revoke, and this then reports the replay
        // so that the caller revokes what it issued.
        sql::postgres::insert_grant(&self.engines.pg, grant).await?;
        let recorded: i64 = Script::new(RECORD_ISSUED)
            .key(self.engines.keys.code(code_sha256))
            .arg(grant.token.as_str())
            .invoke_async(&mut self.engines.redis.clone())
            .await?;
        if recorded == 0 {
            sqlx::query("DELETE FROM oidc_grants WHERE token_key = $1")
                .bind(grant.token.as_str())
                .execute(&self.engines.pg)
                .await?;
        }
        Ok(recorded == 1)
    }

    async fn get_grant(&self, token: &TokenKey) -> Result<Option<OidcGrant>, StorageError> {
        sql::postgres::grant(&self.engines.pg, token).await
    }

    async fn delete_expired_codes(&self, now: u64) -> Result<u64, StorageError> {
        expiring::delete_expired(
            &mut self.engines.redis.clone(),
            &self.engines.keys.codes_by_expiry(),
            now,
        )
        .await
    }
}
