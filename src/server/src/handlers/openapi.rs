//! The OpenAPI 3.1 document of both listeners, generated from the
//! handlers' `#[utoipa::path]` attributes and the types they read and
//! answer with; served at [`DOCUMENT_PATH`]. A test holds it to the
//! routers: every route in one, every operation in the other.

use std::collections::BTreeMap;

use axum::Json;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::error::ErrorBody;
use super::ui;
use super::{api, changes, health, ingress, login, openid, session};

pub const DOCUMENT_PATH: &str = "/auth/openapi.json";

/// Operations tagged so are served on the ingress listener, the others on
/// the public one (`/health` and `/ready` on both).
pub const INGRESS_TAG: &str = "ingress";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "The Portcullis companion. Operations tagged `ingress` are served on \
            the ingress listener (the proxy's network only), the others on the public one.",
        license(name = "MIT")
    ),
    paths(
        health::health,
        health::ready,
        health::metrics,
        ingress::ingress_auth,
        ingress::ext_authz,
        changes::changes,
        login::login,
        login::callback,
        login::cli_page,
        login::cli_approve,
        login::cli_start,
        login::cli_poll,
        session::logout,
        ui::home::home,
        ui::home::signed_out,
        ui::tokens::list,
        ui::tokens::new_form,
        ui::tokens::create,
        ui::tokens::create_service,
        ui::tokens::sign_out_others,
        ui::tokens::show,
        ui::tokens::confirm_revoke,
        ui::tokens::revoke,
        ui::history::search,
        ui::assets::stylesheet,
        ui::assets::script,
        openid::discovery,
        openid::jwks,
        openid::authorize,
        openid::token,
        openid::userinfo,
        openid::introspect,
        openid::revoke,
        document,
    ),
    nest((path = api::PREFIX, api = api::TokenApi)),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes, &Completed),
    tags(
        (name = "tokens", description = "The token API"),
        (name = "history", description = "Token change history"),
        (name = "oidc-clients", description = "OpenID Connect client registration"),
        (name = "openid", description = "The OpenID Connect provider"),
        (name = "login", description = "Logging in: browsers and the CLI"),
        (name = "pages", description = "The pages people use: who they are, their tokens, history"),
        (name = "ingress", description = "The checks and the change feed, on the ingress listener"),
        (name = "health", description = "Liveness, readiness, and this document"),
    )
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document_json() -> Document {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(get, path = DOCUMENT_PATH, tag = "health",
    responses((status = 200, body = Object, description = "The OpenAPI 3.1 document")))]
pub async fn document() -> Json<Document> {
    Json(document_json())
}

/// What the attributes leave implicit: a response's description (the
/// status's reason phrase), and an operation id of its own for each method
/// of an operation routed under several.
struct Completed;

impl Modify for Completed {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            let methods = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("trace", &mut item.trace),
            ];
            let present: Vec<_> = methods
                .into_iter()
                .filter_map(|(name, op)| op.as_mut().map(|op| (name, op)))
                .collect();
            let shared = present.len() > 1
                && present
                    .windows(2)
                    .all(|w| w[0].1.operation_id == w[1].1.operation_id);
            for (name, op) in present {
                if shared {
                    op.operation_id = op.operation_id.take().map(|id| format!("{id}_{name}"));
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        if response.description.is_empty() {
                            response.description = status
                                .parse::<u16>()
                                .ok()
                                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("Answer")
                                .to_owned();
                        }
                    }
                }
            }
        }
    }
}

/// `bearer`: a Portcullis token (`gt-…`). `basic`: at the checks, the
/// token as the user or the password; at the OpenID Connect token,
/// introspection and revocation endpoints, the client's id and secret.
/// `session`: the sealed session cookie of a browser that logged in.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("portcullis_session"))),
        );
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A failure answered with [`ErrorBody`] as JSON, or (`page`) also as an
/// HTML page for a person at a browser.
fn failure(description: &str, page: bool) -> RefOr<Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if page {
        response = response.content(HTML, ContentBuilder::new().schema(Some(string())).build());
    }
    response.into()
}

/// The same, with an RFC 6750 (or Basic) challenge.
fn challenged(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .header(
            "www-authenticate",
            HeaderBuilder::new()
                .schema(Some(string()))
                .description(Some("The challenge"))
                .build(),
        )
        .into()
}

fn html_page(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(HTML, ContentBuilder::new().schema(Some(string())).build())
        .into()
}

fn responses(list: Vec<(u16, RefOr<Response>)>) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter()
        .map(|(status, response)| (status.to_string(), response))
        .collect()
}

fn unavailable() -> RefOr<Response> {
    failure("A store did not answer, or not in time", false)
}

/// The token API's refusals, after the success.
pub struct ApiFailures;

impl IntoResponses for ApiFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (400, failure("Malformed request", false)),
            (401, challenged("No valid token")),
            (403, failure("Not allowed to this token", false)),
            (404, failure("No such user, token or route", false)),
            (503, unavailable()),
        ])
    }
}

/// A name already taken.
pub struct Conflict;

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![(409, failure("The name is taken", false))])
    }
}

/// The client registration API's refusals; 404 also where no OpenID
/// Connect provider is configured.
pub struct OidcApiFailures;

impl IntoResponses for OidcApiFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        ApiFailures::responses()
    }
}

/// A check's refusals.
pub struct CheckFailures;

impl IntoResponses for CheckFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (400, challenged("Malformed request or check query")),
            (401, challenged("No valid token")),
            (403, challenged("The token lacks a required scope")),
            (503, unavailable()),
        ])
    }
}

/// The OpenID Connect endpoints' refusals (RFC 6749 §5.2's shape).
pub struct OidcFailures;

impl IntoResponses for OidcFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (400, failure("Invalid request or grant", false)),
            (
                401,
                challenged("Client authentication failed, or no valid token"),
            ),
            (403, failure("Not allowed", false)),
            (
                404,
                failure("No OpenID Connect provider is configured", false),
            ),
            (
                429,
                failure("Too many failed client authentications", false),
            ),
            (503, unavailable()),
        ])
    }
}

/// The CLI login's refusals.
pub struct CliLoginFailures;

impl IntoResponses for CliLoginFailures {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (
                403,
                failure("The session that approved it has ended", false),
            ),
            (404, failure("No such pending login, or it expired", false)),
            (409, failure("Already approved", false)),
            (429, failure("Too many logins started", false)),
            (503, unavailable()),
        ])
    }
}

/// What a browser is shown: a page, or for a failure of the store or the
/// API underneath, the JSON error.
pub struct Pages;

impl IntoResponses for Pages {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (200, html_page("The page")),
            (400, failure("Malformed request", true)),
            (
                401,
                failure(
                    "Not logged in, and no identity provider to log in with",
                    true,
                ),
            ),
            (403, failure("Refused", true)),
            (404, failure("Not configured, or no such login", true)),
            (502, failure("The identity provider failed", true)),
            (503, failure("A store did not answer", true)),
        ])
    }
}

/// A token page: the page, or a browser with no session sent to sign in
/// (or, after a form, on to the next page); every refusal is a page too.
pub struct TokenPages;

impl IntoResponses for TokenPages {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![
            (200, html_page("The page")),
            (303, redirect("To sign in, or on after a form")),
            (400, html_page("The form or query cannot be used")),
            (403, html_page("Not allowed, or a form not from this site")),
            (404, html_page("No such token, or no sign-in configured")),
            (503, html_page("A store did not answer")),
        ])
    }
}

/// Sent elsewhere: to log in, to the identity provider, back to a client.
pub struct Redirect;

impl IntoResponses for Redirect {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![(302, redirect("Sent elsewhere"))])
    }
}

/// Sent on after a login or logout, with the cookie set or cleared.
pub struct SeeOther;

impl IntoResponses for SeeOther {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(vec![(
            303,
            redirect("Sent on, the session cookie set or cleared"),
        )])
    }
}

fn redirect(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .header(
            "location",
            HeaderBuilder::new().schema(Some(string())).build(),
        )
        .into()
}
