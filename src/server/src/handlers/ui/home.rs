//! The landing page, the signed-out page, and the HTML bodies of the
//! public listener's 404 and 405 (JSON under the API and the checks).

use askama::Template;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::view::{self, MessagePage, Nav};
use super::{render, AppState};
use crate::handlers::error::ApiError;
use crate::handlers::openapi::TokenPages;
use crate::handlers::session::browser_session;
use crate::services::actor::holds_admin;

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    nav: Nav,
    /// Who is signed in; `None`: nobody.
    who: Option<Who>,
    sign_in: Option<String>,
}

struct Who {
    username: String,
    name: String,
    email: String,
    groups: String,
    expires: String,
    /// (scope, description).
    scopes: Vec<(String, String)>,
}

/// `GET /`: who you are and where to go, or a way to sign in.
#[utoipa::path(get, path = "/", tag = "pages", security((), ("session" = [])), responses(TokenPages))]
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match browser_session(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let page = match session {
        Some(data) => {
            let known = state.tokens.known_scopes();
            let nav = Nav {
                username: Some(data.username.clone()),
                admin: holds_admin(&data.scopes),
            };
            Home {
                nav,
                sign_in: None,
                who: Some(Who {
                    scopes: data
                        .scopes
                        .iter()
                        .map(|s| {
                            let description = known.get(s).cloned().unwrap_or_default();
                            (s.to_string(), description)
                        })
                        .collect(),
                    username: data.username,
                    name: data.name.unwrap_or_default(),
                    email: data.email.unwrap_or_default(),
                    groups: data
                        .groups
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    expires: view::when_or(data.expires, "never"),
                }),
            }
        }
        None => Home {
            nav: Nav::default(),
            who: None,
            sign_in: state
                .login
                .is_some()
                .then(|| view::login_link(super::TOKENS_PATH)),
        },
    };
    render(StatusCode::OK, &page)
}

/// Where `/logout` lands by default.
#[utoipa::path(get, path = "/signed-out", tag = "pages", responses((status = 200, body = String, content_type = "text/html; charset=utf-8", description = "The page")))]
pub async fn signed_out(State(state): State<AppState>) -> Response {
    let sign_in = view::login_link("/");
    let link = state
        .login
        .is_some()
        .then_some((sign_in.as_str(), "Sign in again"));
    render(
        StatusCode::OK,
        &MessagePage {
            nav: Nav::default(),
            title: "Signed out",
            text: "You are signed out of this browser, and the tokens its session \
                   made for services have been revoked.",
            link,
        },
    )
}

pub fn sign_in_unavailable() -> Response {
    render(
        StatusCode::NOT_FOUND,
        &MessagePage {
            nav: Nav::default(),
            title: "Sign-in is not configured",
            text: "This Portcullis has no identity provider to sign in with, \
                   so it has no pages for people.",
            link: None,
        },
    )
}

/// Under the API and the checks, a client reads JSON.
fn is_machine_path(path: &str) -> bool {
    path.starts_with("/auth/api/") || path.starts_with("/ingress/") || path == "/auth/api"
}

pub async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    if is_machine_path(uri.path()) {
        return ApiError::NotFound.into_response();
    }
    render(
        StatusCode::NOT_FOUND,
        &MessagePage {
            nav: Nav::default(),
            title: "Page not found",
            text: "There is no page at this address.",
            link: Some(("/", "Go to the start page")),
        },
    )
}

pub async fn method_not_allowed(OriginalUri(uri): OriginalUri) -> Response {
    if is_machine_path(uri.path()) {
        return ApiError::MethodNotAllowed.into_response();
    }
    render(
        StatusCode::METHOD_NOT_ALLOWED,
        &MessagePage {
            nav: Nav::default(),
            title: "Not allowed here",
            text: "This address does not take that kind of request.",
            link: Some(("/", "Go to the start page")),
        },
    )
}
