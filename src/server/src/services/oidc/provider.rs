//! The provider's endpoints as service calls, free of HTTP.

use portcullis_core::secret::Secret;
use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Header};
use portcullis_core::{Token, TokenType};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::authorize;
use super::redeem;
use super::{sha256, Client, OidcClients, OidcError, CODE_LIFETIME, SUPPORTED_SCOPES};
use crate::config::ProviderConfig;
use crate::model::{AuthorizationCode, OidcGrant, TokenData};
use crate::random;
use crate::services::{Clock, TokenService};
use crate::storage::{OidcStore, Redemption};

/// Paths of the provider's endpoints, under the public URL.
pub const AUTHORIZE_PATH: &str = "/auth/openid/login";
pub const TOKEN_PATH: &str = "/auth/openid/token";
pub const USERINFO_PATH: &str = "/auth/openid/userinfo";
pub const INTROSPECT_PATH: &str = "/auth/openid/introspect";
pub const REVOKE_PATH: &str = "/auth/openid/revoke";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// An authorization request's parameters, as sent.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// The client or its redirect URI is not registered: never redirect.
    ErrorPage(String),
    /// Back to the client with an RFC 6749 §4.1.2.1 error.
    RedirectError {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
    /// The browser has no session: log in, then come back.
    LoginRequired,
    /// Back to the client with a code.
    Code {
        redirect_uri: String,
        code: Secret,
        state: Option<String>,
    },
}

/// A token request's form fields; the client's credentials are taken
/// from the Authorization header or the form by the handler.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<Secret>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<Secret>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    #[schema(value_type = String)]
    pub access_token: Secret,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: u64,
    #[schema(value_type = String)]
    pub id_token: Secret,
    pub scope: String,
}

/// RFC 7662's answer; inactive answers carry nothing else.
#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    /// For an active token, RFC 7662's other members.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub details: Option<Map<String, Value>>,
}

pub struct OidcProvider {
    issuer: String,
    config: ProviderConfig,
    clients: Arc<OidcClients>,
    store: Arc<dyn OidcStore>,
    tokens: Arc<TokenService>,
    clock: Arc<dyn Clock>,
}

impl OidcProvider {
    pub fn new(
        issuer: String,
        config: ProviderConfig,
        clients: Arc<OidcClients>,
        store: Arc<dyn OidcStore>,
        tokens: Arc<TokenService>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            issuer,
            config,
            clients,
            store,
            tokens,
            clock,
        }
    }

    pub fn clients(&self) -> &Arc<OidcClients> {
        &self.clients
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The discovery document (OpenID Connect Discovery 1.0 §3).
    pub fn discovery(&self) -> Value {
        let url = |path: &str| format!("{}{path}", self.issuer);
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": url(AUTHORIZE_PATH),
            "token_endpoint": url(TOKEN_PATH),
            "userinfo_endpoint": url(USERINFO_PATH),
            "jwks_uri": url(JWKS_PATH),
            "introspection_endpoint": url(INTROSPECT_PATH),
            "revocation_endpoint": url(REVOKE_PATH),
            "scopes_supported": SUPPORTED_SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                "name", "preferred_username", "email"
            ],
            "authorization_response_iss_parameter_supported": true,
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        })
    }

    /// The published keys: the active one, and each retired one until
    /// every ID token it signed has expired.
    pub fn jwks(&self) -> JwkSet {
        let now = self.clock.now();
        let lifetime = self.config.id_token_lifetime;
        JwkSet {
            keys: self
                .config
                .keys
                .iter()
                .filter(|k| k.retired.is_none_or(|r| r.saturating_add(lifetime) > now))
                .map(|k| k.public.clone())
                .collect(),
        }
    }

    /// Handles `/auth/openid/login`: the request is judged by
    /// [`authorize::judge`] (pure); a good one from a logged-in browser
    /// gets a code.
    pub async fn authorize(
        &self,
        request: AuthorizeRequest,
        session: Option<&TokenData>,
    ) -> Result<AuthorizeOutcome, OidcError> {
        let client = match request.client_id.as_deref() {
            Some(id) => self.clients.identify(id).await?,
            None => None,
        };
        let granted = match authorize::judge(request, client.as_ref(), session.is_some()) {
            Ok(granted) => granted,
            Err(outcome) => return Ok(outcome),
        };
        // `judge` passes only with a session.
        let Some(session) = session else {
            return Ok(AuthorizeOutcome::LoginRequired);
        };
        let code = random::url_safe_string()?;
        let now = self.clock.now();
        self.store
            .add_code(&AuthorizationCode {
                code_sha256: sha256(code.as_bytes()),
                client_id: granted.client_id,
                redirect_uri: granted.redirect_uri.clone(),
                session: session.token.key().clone(),
                scopes: granted.scopes,
                nonce: granted.nonce,
                code_challenge: granted.code_challenge,
                auth_time: session.created,
                expires: now + CODE_LIFETIME,
            })
            .await?;
        Ok(AuthorizeOutcome::Code {
            redirect_uri: granted.redirect_uri,
            code: code.into(),
            state: granted.state,
        })
    }

    /// Handles `/auth/openid/token` for an authenticated client.
    pub async fn redeem(
        &self,
        client: &Client,
        request: TokenRequest,
        ip: Option<IpAddr>,
    ) -> Result<TokenResponse, OidcError> {
        let code = redeem::presented_code(&request)?;
        let code = match self.store.redeem_code(&sha256(code.as_bytes())).await? {
            Redemption::First(code) => code,
            Redemption::Unknown => return Err(OidcError::InvalidGrant("unknown or expired code")),
            Redemption::Replayed { issued } => {
                // RFC 6749 §4.1.2: a code used twice may be stolen; what
                // it gave out the first time is withdrawn.
                if let Some(key) = issued {
                    tracing::warn!(client = %client.client_id, "authorization code replayed; revoking what it issued");
                    self.tokens.revoke_by_key(&key, "<oidc-replay>", ip).await?;
                }
                return Err(OidcError::InvalidGrant("code already used"));
            }
        };
        let now = self.clock.now();
        redeem::check(&code, client, &request, now)?;
        let session =
            self.tokens
                .get_data_by_key(&code.session)
                .await?
                .ok_or(OidcError::InvalidGrant(
                    "the session behind this code has ended",
                ))?;
        let access = self
            .tokens
            .create_oidc_token(&session, self.config.access_token_lifetime, ip)
            .await?;
        let recorded = self
            .store
            .record_grant(
                &code.code_sha256,
                &OidcGrant {
                    token: access.key().clone(),
                    client_id: client.client_id.clone(),
                    scopes: code.scopes.clone(),
                    auth_time: code.auth_time,
                },
            )
            .await?;
        if !recorded {
            self.tokens
                .revoke_by_key(access.key(), "<oidc-replay>", ip)
                .await?;
            return Err(OidcError::InvalidGrant("code already used"));
        }
        let expires_in = (now.saturating_add(self.config.access_token_lifetime))
            .min(session.expires.unwrap_or(u64::MAX))
            .saturating_sub(now);
        let id_token = self.id_token(&session, &code, &access, now)?;
        Ok(TokenResponse {
            access_token: access.expose().into(),
            token_type: "Bearer",
            expires_in,
            id_token: id_token.into(),
            scope: code.scopes.join(" "),
        })
    }

    fn id_token(
        &self,
        session: &TokenData,
        code: &AuthorizationCode,
        access: &Token,
        now: u64,
    ) -> Result<String, OidcError> {
        let key = self
            .config
            .keys
            .iter()
            .find(|k| k.kid == self.config.active_key)
            .ok_or_else(|| OidcError::Signing("the active key is missing".into()))?;
        let exp = (now + self.config.id_token_lifetime).min(session.expires.unwrap_or(u64::MAX));
        // OpenID Connect Core §3.1.3.6: the left half of the SHA-256 of
        // the access token.
        let at_hash = URL_SAFE_NO_PAD.encode(&sha256(access.expose().as_bytes())[..16]);
        let mut claims = json!({
            "iss": self.issuer,
            "sub": session.username,
            "aud": code.client_id,
            "azp": code.client_id,
            "exp": exp,
            "iat": now,
            "auth_time": code.auth_time,
            "at_hash": at_hash,
        });
        if let Some(nonce) = &code.nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Value::Object(map) = &mut claims {
            map.extend(scope_claims(session, &code.scopes));
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| OidcError::Signing(e.to_string()))
    }

    /// The live `oidc` token a caller presents, with its grant.
    async fn access_grant(&self, token: &str) -> Result<Option<(TokenData, OidcGrant)>, OidcError> {
        let Ok(token) = token.parse::<Token>() else {
            return Ok(None);
        };
        let Some(data) = self.tokens.get_data(&token).await? else {
            return Ok(None);
        };
        if data.token_type != TokenType::Oidc {
            return Ok(None);
        }
        Ok(self.store.get_grant(token.key()).await?.map(|g| (data, g)))
    }

    /// Handles `/auth/openid/userinfo` for a bearer token.
    pub async fn userinfo(&self, token: &str) -> Result<Map<String, Value>, OidcError> {
        let (data, grant) = self
            .access_grant(token)
            .await?
            .ok_or(OidcError::InvalidToken("the access token is not valid"))?;
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(data.username));
        claims.extend(scope_claims(&data, &grant.scopes));
        Ok(claims)
    }

    /// RFC 7662: active only for a live access token issued to `client`.
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Introspection, OidcError> {
        let inactive = Introspection {
            active: false,
            details: None,
        };
        let Some((data, grant)) = self.access_grant(token).await? else {
            return Ok(inactive);
        };
        if grant.client_id != client.client_id {
            return Ok(inactive);
        }
        let mut details = Map::new();
        details.insert("scope".into(), json!(grant.scopes.join(" ")));
        details.insert("client_id".into(), json!(grant.client_id));
        details.insert("username".into(), json!(data.username));
        details.insert("token_type".into(), json!("Bearer"));
        details.insert("sub".into(), json!(data.username));
        details.insert("aud".into(), json!(grant.client_id));
        details.insert("iss".into(), json!(self.issuer));
        details.insert("iat".into(), json!(data.created));
        if let Some(exp) = data.expires {
            details.insert("exp".into(), json!(exp));
        }
        Ok(Introspection {
            active: true,
            details: Some(details),
        })
    }

    /// RFC 7009: revokes an access token issued to `client`. Unknown or
    /// already revoked tokens are no error (§2.2).
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), OidcError> {
        let Some((data, grant)) = self.access_grant(token).await? else {
            return Ok(());
        };
        if grant.client_id != client.client_id {
            return Err(OidcError::UnauthorizedClient(
                "this token was not issued to this client",
            ));
        }
        self.tokens
            .revoke_by_key(
                data.token.key(),
                &format!("<oidc:{}>", client.client_id),
                ip,
            )
            .await?;
        Ok(())
    }

    /// Removes expired codes; how many.
    pub async fn delete_expired_codes(&self) -> Result<u64, OidcError> {
        Ok(self.store.delete_expired_codes(self.clock.now()).await?)
    }
}

/// The claims each granted scope releases.
fn scope_claims(data: &TokenData, scopes: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    if scopes.iter().any(|s| s == "profile") {
        claims.insert("preferred_username".into(), json!(data.username));
        if let Some(name) = &data.name {
            claims.insert("name".into(), json!(name));
        }
    }
    if scopes.iter().any(|s| s == "email") {
        if let Some(email) = &data.email {
            claims.insert("email".into(), json!(email));
        }
    }
    claims
}
