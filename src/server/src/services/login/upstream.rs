//! The upstream identity provider, as its relying party: discovery, the
//! code exchange, and ID-token validation against its JWKS. Discovery and
//! keys are fetched when first needed and kept; the keys are fetched again
//! when a token names a key id not yet seen (the provider rotated).

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;

use super::LoginError;
use crate::config::LoginConfig;

/// How long a call to the provider may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Unknown key ids refetch the JWKS at most this often.
const JWKS_REFRESH: Duration = Duration::from_secs(60);
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY: u64 = 60;

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct TokenReply {
    id_token: String,
}

pub struct Upstream {
    config: LoginConfig,
    http: reqwest::Client,
    metadata: RwLock<Option<Metadata>>,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

/// Largest answer read from the provider: discovery, keys, the token reply.
const MAX_REPLY: usize = 1 << 20;

/// The body of `reply`, refused past [`MAX_REPLY`] bytes however it comes
/// (a declared length or an endless stream).
async fn read_limited(mut reply: reqwest::Response, what: &str) -> Result<Vec<u8>, LoginError> {
    let too_large = || LoginError::Upstream(format!("{what} is larger than {MAX_REPLY} bytes"));
    if reply.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = reply.chunk().await.map_err(|e| upstream_error(what, e))? {
        if body.len() + chunk.len() > MAX_REPLY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn upstream_error(what: &str, e: impl std::fmt::Display) -> LoginError {
    LoginError::Upstream(format!("{what}: {e}"))
}

impl Upstream {
    pub fn new(config: LoginConfig) -> Result<Self, LoginError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| upstream_error("cannot make an HTTP client", e))?;
        Ok(Self {
            config,
            http,
            metadata: RwLock::new(None),
            keys: RwLock::new(None),
        })
    }

    pub fn config(&self) -> &LoginConfig {
        &self.config
    }

    async fn metadata(&self) -> Result<Metadata, LoginError> {
        if let Some(m) = self.metadata.read().await.as_ref() {
            return Ok(m.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let metadata: Metadata = self.get_json(&url, "discovery").await?;
        // OpenID Connect Discovery §4.3: the issuer must be the one asked.
        if metadata.issuer.trim_end_matches('/') != self.config.issuer {
            return Err(LoginError::Upstream(format!(
                "discovery names issuer {:?}, not the configured {:?}",
                metadata.issuer, self.config.issuer
            )));
        }
        // A discovery document that sends the code, the client secret or
        // the key lookup elsewhere is not believed.
        for (name, endpoint) in [
            ("authorization_endpoint", &metadata.authorization_endpoint),
            ("token_endpoint", &metadata.token_endpoint),
            ("jwks_uri", &metadata.jwks_uri),
        ] {
            self.check_endpoint(name, endpoint)?;
        }
        *self.metadata.write().await = Some(metadata.clone());
        Ok(metadata)
    }

    /// An endpoint must be on the issuer's origin, and https unless the
    /// configuration allows http for development.
    fn check_endpoint(&self, name: &str, endpoint: &str) -> Result<(), LoginError> {
        let issuer =
            url::Url::parse(&self.config.issuer).map_err(|e| upstream_error("issuer", e))?;
        let url = url::Url::parse(endpoint).map_err(|e| upstream_error(name, e))?;
        let secure = url.scheme() == "https" || self.config.allow_insecure_http;
        if !secure || url.origin() != issuer.origin() {
            return Err(LoginError::Upstream(format!(
                "discovery's {name} is not on the issuer's origin over https"
            )));
        }
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, LoginError> {
        let reply = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| upstream_error(what, e))?;
        let body = read_limited(reply, what).await?;
        serde_json::from_slice(&body).map_err(|e| upstream_error(what, e))
    }

    /// Where to send the browser.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> Result<String, LoginError> {
        let metadata = self.metadata().await?;
        let mut url = url::Url::parse(&metadata.authorization_endpoint)
            .map_err(|e| upstream_error("authorization_endpoint", e))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the code and returns the validated ID token's claims.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, LoginError> {
        let metadata = self.metadata().await?;
        // RFC 6749 §2.3.1: id and secret are form-encoded inside Basic.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let reply = self
            .http
            .post(&metadata.token_endpoint)
            .basic_auth(
                encode(&self.config.client_id),
                Some(encode(self.config.client_secret.expose())),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| upstream_error("token request", e))?;
        let status = reply.status();
        let body = read_limited(reply, "token reply").await?;
        if !status.is_success() {
            let body: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(LoginError::Upstream(format!(
                "token endpoint answered {status}: {body}"
            )));
        }
        let reply: TokenReply =
            serde_json::from_slice(&body).map_err(|e| upstream_error("token reply", e))?;
        let claims = self.validate(&reply.id_token).await?;
        let nonce_ok = claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
        if !nonce_ok {
            return Err(LoginError::InvalidIdToken("nonce does not match".into()));
        }
        Ok(claims)
    }

    async fn validate(&self, id_token: &str) -> Result<Map<String, Value>, LoginError> {
        let invalid = |e: &dyn std::fmt::Display| LoginError::InvalidIdToken(e.to_string());
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| invalid(&e))?;
        // Only the provider's public keys may sign: never `none` or HMAC.
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(LoginError::InvalidIdToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer, &format!("{}/", self.config.issuer)]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY;
        let data = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .map_err(|e| invalid(&e))?;
        Ok(data.claims)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, LoginError> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let stale = {
            let cached = self.keys.read().await;
            if let Some(jwk) = cached.as_ref().and_then(|(set, _)| find(set)) {
                return DecodingKey::from_jwk(&jwk)
                    .map_err(|e| LoginError::InvalidIdToken(e.to_string()));
            }
            cached
                .as_ref()
                .is_none_or(|(_, fetched)| fetched.elapsed() >= JWKS_REFRESH)
        };
        if !stale {
            return Err(LoginError::InvalidIdToken(
                "signed by an unknown key".into(),
            ));
        }
        let metadata = self.metadata().await?;
        let set: JwkSet = self.get_json(&metadata.jwks_uri, "JWKS").await?;
        let jwk = find(&set);
        *self.keys.write().await = Some((set, Instant::now()));
        let jwk =
            jwk.ok_or_else(|| LoginError::InvalidIdToken("signed by an unknown key".into()))?;
        DecodingKey::from_jwk(&jwk).map_err(|e| LoginError::InvalidIdToken(e.to_string()))
    }
}
