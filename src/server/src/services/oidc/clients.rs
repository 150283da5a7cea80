//! Registered OpenID Connect clients: those in the configuration file and
//! those added through the admin API. Secrets are kept as SHA-256 hashes
//! (they are 256 random bits when Portcullis makes them) and compared in
//! constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::{sha256, OidcError};
use crate::config::ConfiguredClient;
use crate::model::oidc::{ClientId, RedirectUri};
use crate::model::OidcClientRecord;
use crate::random;
use crate::services::rate_limit::RateLimiter;
use crate::services::{Actor, Clock};
use crate::storage::{OidcStore, StorageError};

/// Scope that lets a token register and remove clients.
pub const ADMIN_OIDC_SCOPE: &str = "admin:oidc";

/// What the admin API asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub name: Option<String>,
}

/// A client that authenticated (or, public, identified itself).
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub redirect_uris: Vec<String>,
    pub public: bool,
}

pub struct OidcClients {
    configured: Vec<ConfiguredClient>,
    store: Arc<dyn OidcStore>,
    clock: Arc<dyn Clock>,
    /// Failed authentications per registered client: guessing a secret
    /// costs a minute per few tries.
    failures: RateLimiter,
}

/// Failed authentications a client may have per minute before it waits.
pub const FAILURES_PER_MINUTE: u32 = 10;

impl OidcClients {
    pub fn new(
        configured: Vec<ConfiguredClient>,
        store: Arc<dyn OidcStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            configured,
            store,
            failures: RateLimiter::new(FAILURES_PER_MINUTE, 60, 10_000, clock.clone()),
            clock,
        }
    }

    async fn find(&self, client_id: &str) -> Result<Option<OidcClientRecord>, StorageError> {
        match self.configured.iter().find(|c| c.id == client_id) {
            Some(c) => Ok(Some(record_of(c))),
            None => self.store.get_client(client_id).await,
        }
    }

    /// The client named by an authorization request, before any secret.
    pub async fn identify(&self, client_id: &str) -> Result<Option<Client>, StorageError> {
        Ok(self.find(client_id).await?.map(client_of))
    }

    /// Authenticates a client at the token, introspection and revocation
    /// endpoints. A public client presents no secret; a confidential one
    /// must present its own.
    pub async fn authenticate(
        &self,
        client_id: &str,
        secret: Option<&str>,
    ) -> Result<Client, OidcError> {
        let record = self
            .find(client_id)
            .await?
            .ok_or(OidcError::InvalidClient)?;
        // Only known clients are counted, so the limiter's keys are few.
        // Every attempt is counted before the secret is compared, and a
        // good one given back: parallel guesses cannot all pass the check
        // before any is counted.
        self.failures
            .hit(&record.client_id)
            .map_err(|l| OidcError::TooManyAttempts(l.retry_after))?;
        let good = match (record.secret_sha256, secret) {
            (Some(hash), Some(secret)) => bool::from(sha256(secret.as_bytes()).ct_eq(&hash)),
            (None, None) => record.public,
            _ => false,
        };
        if !good {
            return Err(OidcError::InvalidClient);
        }
        self.failures.refund(&record.client_id);
        Ok(client_of(record))
    }

    /// Registers a client; returns it and, for a confidential client, its
    /// secret, which is not stored and cannot be shown again.
    pub async fn register(
        &self,
        actor: &Actor,
        new: NewClient,
    ) -> Result<(OidcClientRecord, Option<String>), OidcError> {
        require_admin(actor)?;
        new.client_id
            .parse::<ClientId>()
            .map_err(|r| OidcError::InvalidRequest(r.into()))?;
        if new.redirect_uris.is_empty() {
            return Err(OidcError::InvalidRequest(
                "redirect_uris needs at least one URI".into(),
            ));
        }
        for uri in &new.redirect_uris {
            uri.parse::<RedirectUri>()
                .map_err(|r| OidcError::InvalidRequest(format!("redirect_uri {uri:?}: {r}")))?;
        }
        if self.configured.iter().any(|c| c.id == new.client_id) {
            return Err(OidcError::DuplicateClient(new.client_id));
        }
        let secret = if new.public {
            None
        } else {
            Some(random::url_safe_string()?)
        };
        let record = OidcClientRecord {
            client_id: new.client_id,
            secret_sha256: secret.as_deref().map(|s| sha256(s.as_bytes())),
            redirect_uris: new.redirect_uris,
            public: new.public,
            name: new.name,
            created: self.clock.now(),
        };
        self.store.add_client(&record).await?;
        Ok((record, secret))
    }

    /// Every client, configured ones first.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<OidcClientRecord>, OidcError> {
        require_admin(actor)?;
        let mut all: Vec<_> = self.configured.iter().map(record_of).collect();
        all.extend(self.store.list_clients().await?);
        Ok(all)
    }

    pub async fn get(
        &self,
        actor: &Actor,
        client_id: &str,
    ) -> Result<Option<OidcClientRecord>, OidcError> {
        require_admin(actor)?;
        Ok(self.find(client_id).await?)
    }

    /// Removes a client registered through the API; false when there is
    /// none. A configured client is removed by editing the file.
    pub async fn delete(&self, actor: &Actor, client_id: &str) -> Result<bool, OidcError> {
        require_admin(actor)?;
        if self.configured.iter().any(|c| c.id == client_id) {
            return Err(OidcError::InvalidRequest(
                "this client is in the configuration file; remove it there".into(),
            ));
        }
        Ok(self.store.delete_client(client_id).await?)
    }
}

fn record_of(c: &ConfiguredClient) -> OidcClientRecord {
    OidcClientRecord {
        client_id: c.id.clone(),
        secret_sha256: c.secret_sha256,
        redirect_uris: c.redirect_uris.clone(),
        public: c.public,
        name: c.name.clone(),
        created: 0,
    }
}

fn client_of(record: OidcClientRecord) -> Client {
    Client {
        client_id: record.client_id,
        redirect_uris: record.redirect_uris,
        public: record.public,
    }
}

fn require_admin(actor: &Actor) -> Result<(), OidcError> {
    let allowed = match actor {
        Actor::Bootstrap | Actor::Cli => true,
        Actor::Token(data) => crate::services::actor::has_scope(&data.scopes, ADMIN_OIDC_SCOPE),
    };
    if allowed {
        Ok(())
    } else {
        Err(OidcError::PermissionDenied(
            "managing OpenID Connect clients needs scope admin:oidc",
        ))
    }
}
