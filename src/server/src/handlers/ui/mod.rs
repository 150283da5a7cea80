//! The pages people use, served by the companion: who they are, their
//! tokens, history. Rendered on the server from the askama templates in
//! `src/server/templates/` (escaped by default), styled by one stylesheet
//! and given one small script (the copy button), both served from here, so
//! the Content-Security-Policy allows no inline script or style at all.
//!
//! Every page is a session page: without a valid session cookie a browser
//! is sent to sign in, and back. Every write is a form post that must come
//! from this site and carry the session's CSRF token.

pub(super) mod assets;
pub(super) mod history;
pub(super) mod home;
pub(super) mod tokens;
mod view;

use askama::Template;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::session::{browser_session, from_this_site};
use super::AppState;
use crate::model::TokenData;
use crate::services::actor::holds_admin;
use crate::services::{Actor, TokenError};

pub use home::{method_not_allowed, not_found};

/// Where the token pages live; `/` leads there.
pub const TOKENS_PATH: &str = "/auth/tokens";

/// Where `/logout` sends a browser unless configured otherwise.
pub const SIGNED_OUT_PATH: &str = "/signed-out";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route(SIGNED_OUT_PATH, get(home::signed_out))
        .route(TOKENS_PATH, get(tokens::list))
        .route(
            "/auth/tokens/new",
            get(tokens::new_form).post(tokens::create),
        )
        .route("/auth/tokens/service", post(tokens::create_service))
        .route(
            "/auth/tokens/sign-out-others",
            post(tokens::sign_out_others),
        )
        .route("/auth/tokens/history", get(history::search))
        .route("/auth/tokens/{key}", get(tokens::show))
        .route(
            "/auth/tokens/{key}/revoke",
            get(tokens::confirm_revoke).post(tokens::revoke),
        )
        .route(assets::STYLESHEET, get(assets::stylesheet))
        .route(assets::SCRIPT, get(assets::script))
}

/// The person signed in: their session, and its CSRF token for the forms.
pub struct Viewer {
    pub session: TokenData,
    pub csrf: String,
    /// Whether the session holds `admin:token`, decided once.
    pub admin: bool,
}

impl Viewer {
    pub fn actor(&self) -> Actor {
        Actor::Token(Box::new(self.session.clone()))
    }

    /// The bar every page shows.
    pub fn nav(&self) -> view::Nav {
        view::Nav {
            username: Some(self.session.username.clone()),
            admin: self.admin,
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    /// A browser without a session is sent to sign in, returning here.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(cookie) = state.session.as_deref() else {
            return Err(home::sign_in_unavailable());
        };
        match browser_session(state, &parts.headers).await? {
            Some(session) => Ok(Viewer {
                csrf: cookie.csrf.token_for(session.token.key()),
                admin: holds_admin(&session.scopes),
                session,
            }),
            None => {
                let here = OriginalUri::from_request_parts(parts, state)
                    .await
                    .map(|uri| uri.0.to_string())
                    .unwrap_or_else(|_| TOKENS_PATH.to_owned());
                Err(sign_in(state, &here))
            }
        }
    }
}

/// 303 to `/login`, returning to `here` (a path on this site). Where no
/// identity provider is configured, a page says so.
fn sign_in(state: &AppState, here: &str) -> Response {
    if state.login.is_none() {
        return home::sign_in_unavailable();
    }
    see_other(&view::login_link(here))
}

pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, location.to_owned()),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// Whether a form post may act for `viewer`: it came from a page of this
/// site and carries the session's CSRF token. A cross-site form post has
/// the cookie (SameSite=Lax lets top-level GETs through, and a sibling
/// site on the cookie's domain is same-site) but never the token.
/// `None` when it may; otherwise the refusal to answer with.
pub fn write_refused(
    state: &AppState,
    headers: &HeaderMap,
    viewer: &Viewer,
    csrf: &str,
) -> Option<Response> {
    let Some(cookie) = state.session.as_deref() else {
        return Some(home::sign_in_unavailable());
    };
    if from_this_site(state, headers)
        && cookie
            .csrf
            .verify(viewer.session.token.key(), csrf.as_bytes())
    {
        return None;
    }
    Some(refused(
        Some(viewer.nav()),
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was not sent from this site's own page, or the page was \
         from an earlier sign-in. Go back, reload the page and try again.",
    ))
}

/// A page for a refusal or an error: title and one paragraph.
pub fn refused(nav: Option<view::Nav>, status: StatusCode, title: &str, text: &str) -> Response {
    render(
        status,
        &view::MessagePage {
            nav: nav.unwrap_or_default(),
            title,
            text,
            link: None,
        },
    )
}

/// A service refusal as a page; storage trouble is a 503.
pub fn token_error(viewer: &Viewer, e: TokenError) -> Response {
    let (status, title) = match &e {
        TokenError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        TokenError::NotFound => (StatusCode::NOT_FOUND, "No such token"),
        TokenError::Storage(cause) => {
            tracing::warn!(error = %cause, "token page failed: storage unavailable");
            return refused(
                Some(viewer.nav()),
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again soon",
                "Token storage is unavailable.",
            );
        }
        TokenError::Random(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        _ => (StatusCode::BAD_REQUEST, "Cannot do that"),
    };
    refused(Some(viewer.nav()), status, title, &e.to_string())
}

/// The security headers of every page: no script or style but this
/// site's files, no framing, never cached (pages show secrets and CSRF
/// tokens), no referrer beyond this site.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn render(status: StatusCode, page: &impl Template) -> Response {
    let html = match page.render() {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page did not render.",
            )
                .into_response();
        }
    };
    (
        status,
        [
            (CACHE_CONTROL, "no-store"),
            (CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (X_FRAME_OPTIONS, "DENY"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (REFERRER_POLICY, "same-origin"),
        ],
        Html(html),
    )
        .into_response()
}
