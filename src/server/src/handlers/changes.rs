//! `GET /ingress/changes?since=<cursor>`: the keys of tokens revoked,
//! expired or edited since the cursor, which the filter polls to evict what
//! it has cached. Keys are public; no secret is ever in the feed.

use axum::extract::{RawQuery, State};
use axum::Json;

use super::error::{ApiError, ErrorBody};
use super::AppState;
use portcullis_core::check::{Changes, CHANGES_PATH};

/// The feed of tokens whose cached answers must go. On the ingress
/// listener.
#[utoipa::path(get, path = CHANGES_PATH, tag = "ingress",
    params(("since" = Option<i64>, Query, minimum = 0, description = "A cursor this feed gave; none: from now")),
    responses((status = 200, body = Changes),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Changes>, ApiError> {
    let since = parse_since(query.as_deref().unwrap_or(""))?;
    Ok(Json(state.tokens.token_changes(since).await?))
}

fn parse_since(query: &str) -> Result<Option<i64>, ApiError> {
    let mut since = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "since" if since.is_none() => {
                let cursor = value.parse::<i64>().ok().filter(|c| *c >= 0);
                since = Some(cursor.ok_or_else(|| {
                    ApiError::InvalidRequest("`since` must be a cursor this endpoint gave".into())
                })?);
            }
            "since" => {
                return Err(ApiError::InvalidRequest(
                    "`since` given more than once".into(),
                ))
            }
            other => {
                return Err(ApiError::InvalidRequest(format!(
                    "unknown query parameter {other:?}"
                )))
            }
        }
    }
    Ok(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_one_non_negative_cursor() {
        assert_eq!(parse_since("").unwrap(), None);
        assert_eq!(parse_since("since=42").unwrap(), Some(42));
        for bad in ["since=-1", "since=x", "since=1&since=2", "after=3"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
