//! The token format `gt-<key>.<secret>` (Gafaelfawr's, so its tokens stay
//! valid here): each part is 16 random bytes as 22 characters of unpadded
//! URL-safe base64. The key names the token in storage and logs; the secret
//! proves possession and is never printed.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub const TOKEN_PREFIX: &str = "gt-";
/// Bytes of randomness in each of the key and the secret.
pub const PART_BYTES: usize = 16;
/// Characters of unpadded base64 for [`PART_BYTES`] bytes.
pub const PART_CHARS: usize = 22;
const TOKEN_CHARS: usize = TOKEN_PREFIX.len() + PART_CHARS + 1 + PART_CHARS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenParseError {
    #[error("token does not start with `{TOKEN_PREFIX}`")]
    MissingPrefix,
    #[error("token must be {TOKEN_CHARS} characters long")]
    WrongLength,
    #[error("token has no `.` between key and secret")]
    MissingSeparator,
    #[error("token {0} is not 22 characters of URL-safe base64")]
    BadEncoding(&'static str),
}

/// The public half of a token: safe to log, store in the clear and show.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    // 16 bytes in 22 characters: the last one carries 2 bits and 4 zeros.
    schema(value_type = String, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", example = "DGO1OnPohl0r3C7wqhzRgQ")
)]
pub struct TokenKey(String);

impl TryFrom<String> for TokenKey {
    type Error = TokenParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        decode_part(&s, "key")?;
        Ok(Self(s))
    }
}

impl From<TokenKey> for String {
    fn from(key: TokenKey) -> String {
        key.0
    }
}

impl TokenKey {
    pub fn from_bytes(bytes: [u8; PART_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TokenKey {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_part(s, "key")?;
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({})", self.0)
    }
}

/// The private half of a token. Compared only in constant time; `Debug` and
/// `Display` print a redaction so no log line can carry it.
#[derive(Clone)]
pub struct TokenSecret([u8; PART_BYTES]);

impl TokenSecret {
    pub fn from_bytes(bytes: [u8; PART_BYTES]) -> Self {
        Self(bytes)
    }

    /// The secret in its token encoding, for sealed storage only.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Constant-time equality, so a timing probe learns nothing of the secret.
    pub fn matches(&self, other: &TokenSecret) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl FromStr for TokenSecret {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_part(s, "secret").map(Self)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl fmt::Display for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A whole token. `Display` shows only the key; [`Token::expose`] gives the
/// bearer string, to be handed to its owner and to nobody else.
#[derive(Clone)]
pub struct Token {
    key: TokenKey,
    secret: TokenSecret,
}

impl Token {
    /// A token from 32 bytes of randomness the caller drew (this crate draws
    /// none, so that it needs no I/O).
    pub fn from_random(key: [u8; PART_BYTES], secret: [u8; PART_BYTES]) -> Self {
        Self {
            key: TokenKey::from_bytes(key),
            secret: TokenSecret::from_bytes(secret),
        }
    }

    pub fn from_parts(key: TokenKey, secret: TokenSecret) -> Self {
        Self { key, secret }
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }

    /// The full bearer string `gt-<key>.<secret>`.
    pub fn expose(&self) -> String {
        format!("{TOKEN_PREFIX}{}.{}", self.key, self.secret.expose())
    }
}

impl FromStr for Token {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenParseError::MissingPrefix)?;
        if s.len() != TOKEN_CHARS {
            return Err(TokenParseError::WrongLength);
        }
        // Length is checked, so a non-ASCII string cannot reach a split inside
        // a character: `get` returns None instead of panicking.
        let (key, dot_secret) = (rest.get(..PART_CHARS), rest.get(PART_CHARS..));
        let (Some(key), Some(dot_secret)) = (key, dot_secret) else {
            return Err(TokenParseError::BadEncoding("key"));
        };
        let secret = dot_secret
            .strip_prefix('.')
            .ok_or(TokenParseError::MissingSeparator)?;
        Ok(Self {
            key: key.parse()?,
            secret: secret.parse()?,
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}.<redacted>", self.key)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({self})")
    }
}

/// Decodes one 22-character part. The engine refuses padding and non-zero
/// trailing bits, so each 16-byte value has exactly one accepted spelling.
fn decode_part(s: &str, part: &'static str) -> Result<[u8; PART_BYTES], TokenParseError> {
    if s.len() != PART_CHARS {
        return Err(TokenParseError::BadEncoding(part));
    }
    let mut out = [0u8; PART_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(s, &mut out) {
        Ok(PART_BYTES) => Ok(out),
        _ => Err(TokenParseError::BadEncoding(part)),
    }
}

/// The kinds of token, after Gafaelfawr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenType {
    Session,
    User,
    Notebook,
    Internal,
    Service,
    Oidc,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Session => "session",
            TokenType::User => "user",
            TokenType::Notebook => "notebook",
            TokenType::Internal => "internal",
            TokenType::Service => "service",
            TokenType::Oidc => "oidc",
        }
    }
}

impl std::str::FromStr for TokenType {
    type Err = UnknownTokenType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use TokenType::*;
        [Session, User, Notebook, Internal, Service, Oidc]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTokenType(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token type")]
pub struct UnknownTokenType(pub String);

/// A group the token's user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Token {
        Token::from_random([1; 16], [2; 16])
    }

    #[test]
    fn expose_then_parse_round_trips() {
        let token = sample();
        let text = token.expose();
        assert_eq!(text.len(), 48);
        assert!(text.starts_with("gt-"));
        let parsed: Token = text.parse().unwrap();
        assert_eq!(parsed.key(), token.key());
        assert!(parsed.secret().matches(token.secret()));
    }

    #[test]
    fn accepts_a_gafaelfawr_token() {
        // Shape of a token minted by Gafaelfawr: 16 bytes each, URL-safe.
        let text = "gt-Mx3ZsLg8ndKC-x_nqwmVoQ.dB1A3bvLtK3sO-0l0w9JkA";
        let token: Token = text.parse().unwrap();
        assert_eq!(token.key().as_str(), "Mx3ZsLg8ndKC-x_nqwmVoQ");
        assert_eq!(token.expose(), text);
    }

    #[test]
    fn refuses_each_kind_of_malformed_token() {
        let good = sample().expose();
        let cases: Vec<(String, TokenParseError)> = vec![
            (
                good.replacen("gt-", "xx-", 1),
                TokenParseError::MissingPrefix,
            ),
            (format!("{good}A"), TokenParseError::WrongLength),
            (good[..47].to_string(), TokenParseError::WrongLength),
            (
                good.replacen('.', "A", 1),
                TokenParseError::MissingSeparator,
            ),
            (
                format!("gt-{}.{}", "+".repeat(22), "A".repeat(22)),
                TokenParseError::BadEncoding("key"),
            ),
            (
                format!("gt-{}.{}", "A".repeat(22), "/".repeat(22)),
                TokenParseError::BadEncoding("secret"),
            ),
            // Last character carries bits beyond the 16 bytes: not canonical.
            (
                format!("gt-{}.{}", "A".repeat(22), "AAAAAAAAAAAAAAAAAAAAAB"),
                TokenParseError::BadEncoding("secret"),
            ),
            ("".to_string(), TokenParseError::MissingPrefix),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Token>().err(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn non_ascii_of_the_right_byte_length_is_refused_without_panic() {
        let text = format!("gt-{}.{}", "é".repeat(11), "A".repeat(22));
        assert_eq!(text.len(), 48);
        assert!(text.parse::<Token>().is_err());
        let text = format!("gt-{}é{}", "A".repeat(21), "A".repeat(22));
        assert!(text.parse::<Token>().is_err());
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let token = sample();
        let secret = token.secret().expose();
        for shown in [
            format!("{token}"),
            format!("{token:?}"),
            format!("{:?}", token.secret()),
            format!("{}", token.secret()),
        ] {
            assert!(!shown.contains(&secret), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        assert!(format!("{token}").contains(token.key().as_str()));
    }

    #[test]
    fn secrets_match_only_themselves() {
        let a = TokenSecret::from_bytes([7; 16]);
        assert!(a.matches(&TokenSecret::from_bytes([7; 16])));
        let mut other = [7; 16];
        other[15] = 8;
        assert!(!a.matches(&TokenSecret::from_bytes(other)));
    }

    #[test]
    fn token_types_parse_from_their_names_only() {
        for t in [TokenType::Session, TokenType::Oidc, TokenType::Internal] {
            assert_eq!(t.as_str().parse(), Ok(t));
        }
        assert!("admin".parse::<TokenType>().is_err());
    }
}
