//! The pages' stylesheet and script, compiled in, so the policy can allow
//! this site's files and nothing inline.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;

pub const STYLESHEET: &str = "/auth/static/portcullis.css";
pub const SCRIPT: &str = "/auth/static/portcullis.js";

const CSS: &str = include_str!("../../../assets/portcullis.css");
const JS: &str = include_str!("../../../assets/portcullis.js");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            // Short: a new release's pages must not get an old script.
            (CACHE_CONTROL, "public, max-age=300"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

#[utoipa::path(get, path = "/auth/static/portcullis.css", tag = "pages", responses((status = 200, body = String, content_type = "text/css; charset=utf-8", description = "The pages' stylesheet")))]
pub async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CSS)
}

#[utoipa::path(get, path = "/auth/static/portcullis.js", tag = "pages", responses((status = 200, body = String, content_type = "text/javascript; charset=utf-8", description = "The pages' script")))]
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JS)
}
