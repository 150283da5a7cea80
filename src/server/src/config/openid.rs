//! The two OpenID Connect sections: `[login]`, where Portcullis is a relying
//! party of an upstream identity provider, and `[oidc_server]`, where it is
//! a provider for downstream applications.

use std::collections::BTreeMap;
use std::fmt;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis_core::Scope;
use serde::Deserialize;
use url::Url;

use super::{invalid, ConfigError};
use crate::model::oidc::{ClientId, RedirectUri};

pub use portcullis_core::secret::Secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    /// The upstream provider's issuer; its discovery document is read from
    /// `<issuer>/.well-known/openid-configuration`.
    issuer: String,
    client_id: String,
    client_secret: String,
    /// Scopes asked of the upstream provider. Default: openid profile email.
    #[serde(default = "default_login_scopes")]
    scopes: Vec<String>,
    /// ID-token claim that holds the username. Default: preferred_username.
    #[serde(default = "default_username_claim")]
    username_claim: String,
    /// ID-token claim that holds the list of group names. Default: groups.
    #[serde(default = "default_groups_claim")]
    groups_claim: String,
    /// Hosts that `rd` may send the browser to after login, besides the
    /// companion's own. Default: none.
    #[serde(default)]
    allowed_redirect_hosts: Vec<String>,
    /// Group name → the scopes its members' sessions get.
    group_scopes: BTreeMap<String, Vec<String>>,
    /// Take the `email` claim even without `email_verified: true`.
    /// Default: false (an unverified address is dropped).
    #[serde(default)]
    trust_unverified_email: bool,
    /// Allow an http issuer and http endpoints, for development only.
    /// Default: false (https only).
    #[serde(default)]
    allow_insecure_http: bool,
}

fn default_login_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

/// Login through an upstream OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: String,
    /// Lower-case host names, the companion's own first.
    pub allowed_redirect_hosts: Vec<String>,
    pub group_scopes: BTreeMap<String, Vec<Scope>>,
    pub trust_unverified_email: bool,
    pub allow_insecure_http: bool,
}

impl RawLogin {
    pub(super) fn validate(
        self,
        public_url: &Url,
        known_scopes: &BTreeMap<Scope, String>,
    ) -> Result<LoginConfig, ConfigError> {
        let valid_issuer = Url::parse(&self.issuer).is_ok_and(|u| {
            (u.scheme() == "https" || (u.scheme() == "http" && self.allow_insecure_http))
                && u.has_host()
                && u.query().is_none()
        });
        if !valid_issuer {
            return Err(invalid(
                "login.issuer",
                "must be an https URL without a query (http only with allow_insecure_http)",
            ));
        }
        if self.client_id.is_empty() {
            return Err(invalid("login.client_id", "must not be empty"));
        }
        if self.client_secret.is_empty() {
            return Err(invalid("login.client_secret", "must not be empty"));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(invalid("login.scopes", "must include openid"));
        }
        let mut hosts = vec![public_url
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase()];
        for host in self.allowed_redirect_hosts {
            if host.is_empty() || host.contains(['/', ':', '@', ' ']) {
                return Err(invalid(
                    "login.allowed_redirect_hosts",
                    format!("{host:?} is not a host name"),
                ));
            }
            hosts.push(host.to_ascii_lowercase());
        }
        let mut group_scopes = BTreeMap::new();
        for (group, names) in self.group_scopes {
            let field = format!("login.group_scopes.{group}");
            let mut scopes = Vec::new();
            for name in names {
                let scope: Scope = name
                    .parse()
                    .ok()
                    .filter(|s| known_scopes.contains_key(s))
                    .ok_or_else(|| invalid(&field, format!("{name:?} is not a known scope")))?;
                scopes.push(scope);
            }
            group_scopes.insert(group, scopes);
        }
        Ok(LoginConfig {
            // Compared exactly with the provider's `iss`, as it is written.
            issuer: self.issuer.trim_end_matches('/').to_owned(),
            client_id: self.client_id,
            client_secret: Secret::new(self.client_secret),
            scopes: self.scopes,
            username_claim: self.username_claim,
            groups_claim: self.groups_claim,
            allowed_redirect_hosts: hosts,
            group_scopes,
            trust_unverified_email: self.trust_unverified_email,
            allow_insecure_http: self.allow_insecure_http,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    /// Lifetime of ID tokens, in seconds. Default: 3600.
    #[serde(default = "default_id_token_lifetime")]
    id_token_lifetime_seconds: u64,
    /// Lifetime of the access tokens relying parties get, in seconds,
    /// never past the session's end. Default: 3600.
    #[serde(default = "default_access_token_lifetime")]
    access_token_lifetime_seconds: u64,
    /// `kid` of the key that signs new ID tokens.
    active_key: String,
    keys: Vec<RawSigningKey>,
    #[serde(default)]
    clients: Vec<RawClient>,
}

fn default_id_token_lifetime() -> u64 {
    3600
}

fn default_access_token_lifetime() -> u64 {
    3600
}

/// Longest lifetime of an ID or access token: a year.
const MAX_TOKEN_LIFETIME: u64 = 365 * 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigningKey {
    kid: String,
    /// RSA private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    private_key: String,
    /// Unix time the key stopped signing; it stays published for one ID
    /// token lifetime after. Default: not retired.
    retired: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: String,
    /// SHA-256 of the client secret, in hex (`printf %s "$SECRET" |
    /// sha256sum`). Absent for a public client.
    secret_sha256: Option<String>,
    redirect_uris: Vec<String>,
    /// A public client has no secret and must use PKCE. Default: false.
    #[serde(default)]
    public: bool,
    name: Option<String>,
}

/// One RS256 signing key, checked at load.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub public: Jwk,
    pub retired: Option<u64>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

/// A client registered in the configuration file.
#[derive(Debug, Clone)]
pub struct ConfiguredClient {
    pub id: String,
    pub secret_sha256: Option<[u8; 32]>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub name: Option<String>,
}

/// Portcullis as an OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub id_token_lifetime: u64,
    pub access_token_lifetime: u64,
    pub active_key: String,
    pub keys: Vec<SigningKey>,
    pub clients: Vec<ConfiguredClient>,
}

impl RawProvider {
    pub(super) fn validate(self) -> Result<ProviderConfig, ConfigError> {
        for (field, value) in [
            ("id_token_lifetime_seconds", self.id_token_lifetime_seconds),
            (
                "access_token_lifetime_seconds",
                self.access_token_lifetime_seconds,
            ),
        ] {
            if !(60..=MAX_TOKEN_LIFETIME).contains(&value) {
                return Err(invalid(
                    format!("oidc_server.{field}"),
                    format!("must be from 60 to {MAX_TOKEN_LIFETIME}"),
                ));
            }
        }
        let mut keys: Vec<SigningKey> = Vec::new();
        for (i, raw) in self.keys.into_iter().enumerate() {
            let field = format!("oidc_server.keys[{i}]");
            if raw.kid.is_empty() || keys.iter().any(|k| k.kid == raw.kid) {
                return Err(invalid(field, "kid must be non-empty and unique"));
            }
            keys.push(signing_key(raw).map_err(|reason| invalid(field, reason))?);
        }
        match keys.iter().find(|k| k.kid == self.active_key) {
            Some(active) if active.retired.is_none() => {}
            Some(_) => {
                return Err(invalid(
                    "oidc_server.active_key",
                    "the active key cannot be retired",
                ))
            }
            None => {
                return Err(invalid(
                    "oidc_server.active_key",
                    format!(
                        "{:?} is not the kid of one of oidc_server.keys",
                        self.active_key
                    ),
                ))
            }
        }
        let mut clients: Vec<ConfiguredClient> = Vec::new();
        for (i, raw) in self.clients.into_iter().enumerate() {
            let field = format!("oidc_server.clients[{i}]");
            raw.id.parse::<ClientId>().map_err(|r| invalid(&field, r))?;
            if clients.iter().any(|c| c.id == raw.id) {
                return Err(invalid(
                    field,
                    format!("client id {:?} is listed twice", raw.id),
                ));
            }
            for uri in &raw.redirect_uris {
                uri.parse::<RedirectUri>()
                    .map_err(|r| invalid(&field, format!("{uri:?}: {r}")))?;
            }
            if raw.redirect_uris.is_empty() {
                return Err(invalid(field, "needs at least one redirect_uri"));
            }
            let secret_sha256 = match (&raw.secret_sha256, raw.public) {
                (Some(_), true) => {
                    return Err(invalid(field, "a public client has no secret"));
                }
                (None, false) => {
                    return Err(invalid(field, "a confidential client needs secret_sha256"));
                }
                (None, true) => None,
                (Some(hex), false) => Some(
                    decode_hex32(hex)
                        .ok_or_else(|| invalid(&field, "secret_sha256 must be 64 hex digits"))?,
                ),
            };
            clients.push(ConfiguredClient {
                id: raw.id,
                secret_sha256,
                redirect_uris: raw.redirect_uris,
                public: raw.public,
                name: raw.name,
            });
        }
        Ok(ProviderConfig {
            id_token_lifetime: self.id_token_lifetime_seconds,
            access_token_lifetime: self.access_token_lifetime_seconds,
            active_key: self.active_key,
            keys,
            clients,
        })
    }
}

fn signing_key(raw: RawSigningKey) -> Result<SigningKey, String> {
    let encoding = EncodingKey::from_rsa_pem(raw.private_key.as_bytes())
        .map_err(|e| format!("private_key is not an RSA PKCS#8 PEM key: {e}"))?;
    let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
        .map_err(|e| format!("private_key is not usable for RS256: {e}"))?;
    public.common.key_id = Some(raw.kid.clone());
    public.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok(SigningKey {
        kid: raw.kid,
        encoding,
        public,
        retired: raw.retired,
    })
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A new 2048-bit RSA key as PKCS#8 PEM, for `config init` and key rotation.
pub fn generate_signing_key() -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine as _;

    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| format!("cannot generate an RSA key: {e}"))?;
    let der = pair
        .as_der()
        .map_err(|e| format!("cannot encode the RSA key: {e}"))?;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}
