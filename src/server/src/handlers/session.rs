//! The browser session: finding it in the cookie, and `GET /logout`, which
//! ends it and clears the cookie. Cookie attributes are written here, and
//! only here.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::cookie;
use portcullis_core::session::SessionSeal;
use portcullis_core::{Token, TokenType};

use crate::model::TokenData;
use crate::services::login::StateSeal;

use super::client_ip::ClientIp;
use super::csrf::CsrfKey;
use super::error::{ApiError, ErrorBody};
use super::openapi::SeeOther;
use super::page;
use super::AppState;

/// The session cookie as this companion sets it.
pub struct SessionCookie {
    pub name: String,
    pub seal: SessionSeal,
    pub domain: Option<String>,
    pub secure: bool,
    pub logout_url: String,
    /// Max-Age of a new session cookie: the session token's lifetime.
    pub lifetime: u64,
    /// Seals the login-state cookie, with the same key bound to another
    /// purpose.
    pub state_seal: StateSeal,
    /// Signs the session's CSRF token, with a key derived from the same.
    pub csrf: CsrfKey,
}

/// The cookie that carries a login's state from `/login` to the callback.
pub const LOGIN_STATE_COOKIE: &str = "portcullis_login";

impl SessionCookie {
    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure unless
    /// configured for plain-http development, on the configured domain.
    /// `max_age` 0 clears the cookie.
    pub fn set_cookie(&self, value: &str, max_age: u64) -> String {
        self.set_named(&self.name, value, max_age)
    }

    /// The same attributes for another of the companion's cookies.
    pub fn set_named(&self, name: &str, value: &str, max_age: u64) -> String {
        let mut header =
            format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
        if let Some(domain) = &self.domain {
            header.push_str(&format!("; Domain={domain}"));
        }
        if self.secure {
            header.push_str("; Secure");
        }
        header
    }
}

/// Every `Cookie` header's value, as bytes (HTTP/1.1 clients may send
/// several).
fn request_cookies(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect()
}

/// The first value of cookie `name` in a request that `open` accepts: a
/// stale copy sent before a fresh one (or a neighbour's bytes that are not
/// UTF-8) does not hide it.
pub fn open_cookie<T>(
    headers: &HeaderMap,
    name: &str,
    open: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    cookie::take(&request_cookies(headers), name)
        .values
        .into_iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(open)
}

/// A request's cookies with the session cookie taken out.
pub struct TakenSession {
    /// The token of the first copy that opened with the companion's key.
    pub token: Option<Token>,
    /// The other cookies as one `Cookie` value, byte for byte; `None` when
    /// no other cookie is left.
    pub rest: Option<Vec<u8>>,
}

/// The session cookie split from the request's other cookies, when the
/// request sent any cookie and a session cookie is configured. Every copy
/// is taken out, whether or not it opens, as the filter does.
pub fn take_session(state: &AppState, headers: &HeaderMap) -> Option<TakenSession> {
    let session = state.session.as_deref()?;
    let cookies = request_cookies(headers);
    if cookies.is_empty() {
        return None;
    }
    let taken = cookie::take(&cookies, &session.name);
    let token = taken
        .values
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| session.seal.open(v));
    Some(TakenSession {
        token,
        rest: taken.rest,
    })
}

/// The browser's valid session, if its cookie holds one. A storage
/// failure is answered (503) rather than taken for no session.
pub async fn browser_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<TokenData>, Response> {
    let Some(session) = state.session.as_deref() else {
        return Ok(None);
    };
    let Some(token) = open_cookie(headers, &session.name, |v| session.seal.open(v)) else {
        return Ok(None);
    };
    match state.tokens.get_data(&token).await {
        Ok(data) => Ok(data.filter(|d| d.token_type == TokenType::Session)),
        Err(e) => Err(ApiError::from(crate::services::TokenError::from(e)).into_response()),
    }
}

/// Whether a browser's request came from a page of this site (or from
/// no page: a typed address, a bookmark). `Sec-Fetch-Site` must be
/// `same-origin` or `none`, where the browser sends it; `same-site` is not
/// enough, since another application on the cookie's domain is same-site.
/// Any `Origin` must be the public URL's.
pub fn from_this_site(state: &AppState, headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let origin = headers.get(ORIGIN).map(|v| v.as_bytes());
    fetch_site.is_none_or(|s| s == b"same-origin" || s == b"none")
        && origin.is_none_or(|o| o == state.public_origin.as_bytes())
}

/// Revokes the session in the cookie (and so its children), clears the
/// cookie and sends the browser to the configured page. Without a valid
/// session it still clears the cookie: logging out twice is no error. A
/// request another site made the browser send is refused, so no page can
/// log a user out.
#[utoipa::path(get, path = "/logout", tag = "login",
    security((), ("session" = [])),
    responses(SeeOther,
        (status = 403, body = String, content_type = "text/html; charset=utf-8", description = "Not from this site"),
        (status = 404, body = ErrorBody, description = "No session cookie is configured"),
        (status = 503, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let Some(session) = state.session.as_deref() else {
        return ApiError::NotFound.into_response();
    };
    if !from_this_site(&state, &headers) {
        return page::message(
            StatusCode::FORBIDDEN,
            "Cannot log out",
            "The request to log out did not come from this site.",
        );
    }
    if let Some(token) = open_cookie(&headers, &session.name, |v| session.seal.open(v)) {
        // If the revocation fails, say so rather than pretend it happened.
        if let Err(e) = state.tokens.logout(&token, ip).await {
            return ApiError::from(e).into_response();
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, session.logout_url.clone()),
            (SET_COOKIE, session.set_cookie("", 0)),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(domain: Option<&str>, secure: bool) -> SessionCookie {
        SessionCookie {
            name: "portcullis_session".into(),
            seal: SessionSeal::new(&[1; 32]),
            domain: domain.map(str::to_owned),
            secure,
            logout_url: "/".into(),
            lifetime: 60,
            state_seal: StateSeal::new(&[1; 32]),
            csrf: CsrfKey::new(&[1; 32]),
        }
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_unless_told_otherwise() {
        assert_eq!(
            cookie(None, true).set_cookie("v", 60),
            "portcullis_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie(Some("example.org"), false).set_cookie("", 0),
            "portcullis_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Domain=example.org"
        );
    }
}
