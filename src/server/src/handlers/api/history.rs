//! Token change history: everyone's (administrators), one user's, one
//! token's. Pages newest first, with `Link` headers carrying opaque cursors.

use std::net::IpAddr;

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::header::LINK;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipnet::IpNet;
use portcullis_core::{TokenKey, TokenType};

use super::{path_key, ApiError, ApiPath, Caller};
use crate::handlers::openapi::ApiFailures;
use crate::handlers::AppState;
use crate::model::{HistoryCursor, HistoryEntry, HistoryFilter, HistoryPage};
use crate::services::Actor;

/// A parsed history query: what to match and which page.
#[derive(Debug, Default)]
pub struct HistoryQuery {
    pub filter: HistoryFilter,
    pub cursor: Option<HistoryCursor>,
    pub limit: Option<u32>,
}

/// The query [`parse_query`] reads, as the OpenAPI document describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the document, never built.
pub struct HistoryParams {
    /// Changes at or after, Unix seconds.
    since: Option<u64>,
    /// Changes at or before, Unix seconds.
    until: Option<u64>,
    /// The token's owner (not with a path that names one).
    username: Option<String>,
    /// Who made the change.
    actor: Option<String>,
    /// The token's key (not with a path that names one).
    key: Option<TokenKey>,
    token_type: Option<TokenType>,
    /// An address, or a CIDR block holding it.
    #[param(example = "192.0.2.0/24")]
    ip_address: Option<String>,
    /// From a `Link` header of an earlier page.
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Parses `since`, `until` (Unix seconds), `username`, `actor`, `key`,
/// `token_type`, `ip_address` (an address or a CIDR block), `cursor` and
/// `limit`. Unknown or repeated parameters are refused, not ignored.
pub fn parse_query(query: &str) -> Result<HistoryQuery, ApiError> {
    let mut parsed = HistoryQuery::default();
    let mut seen = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if seen.contains(&name) {
            return Err(bad(&name, "is given more than once"));
        }
        let f = &mut parsed.filter;
        match name.as_ref() {
            "since" => f.since = Some(unix_seconds(&name, &value)?),
            "until" => f.until = Some(unix_seconds(&name, &value)?),
            "username" => f.username = Some(value.to_string()),
            "actor" => f.actor = Some(value.to_string()),
            "key" => {
                f.key = Some(
                    value
                        .parse()
                        .map_err(|_| bad(&name, "is not a token key"))?,
                )
            }
            "token_type" => {
                f.token_type = Some(
                    value
                        .parse()
                        .map_err(|_| bad(&name, "is not a token type"))?,
                )
            }
            "ip_address" => {
                f.ip_or_cidr = Some(
                    ip_or_cidr(&value)
                        .ok_or_else(|| bad(&name, "is not an IP address or CIDR block"))?,
                )
            }
            "cursor" => {
                parsed.cursor =
                    Some(HistoryCursor::decode(&value).map_err(|e| bad(&name, &e.to_string()))?)
            }
            "limit" => {
                let limit = value.parse().ok().filter(|l| (1..=1000).contains(l));
                parsed.limit = Some(limit.ok_or_else(|| bad(&name, "must be 1 to 1000"))?);
            }
            other => {
                return Err(ApiError::InvalidRequest(format!(
                    "unknown query parameter {other:?}"
                )))
            }
        }
        seen.push(name);
    }
    Ok(parsed)
}

/// A time in Unix seconds, as the stores keep it: past `i64::MAX` it is no
/// time, and would be taken as the end of time.
fn unix_seconds(name: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| i64::try_from(*s).is_ok())
        .ok_or_else(|| bad(name, "must be Unix seconds"))
}

fn bad(name: &str, reason: &str) -> ApiError {
    ApiError::InvalidRequest(format!("query parameter {name:?} {reason}"))
}

pub fn ip_or_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The entries as JSON, with `Link` headers to the next and previous pages.
fn page_response(page: HistoryPage, uri: &OriginalUri) -> Response {
    let base = uri.path();
    let kept: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(name, _)| name != "cursor")
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let link = |cursor: HistoryCursor, rel: &str| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(&kept);
        query.append_pair("cursor", &cursor.encode());
        format!("<{base}?{}>; rel=\"{rel}\"", query.finish())
    };
    let links: Vec<String> = [
        page.next.map(|c| link(c, "next")),
        page.previous.map(|c| link(c, "prev")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut response = Json(page.entries).into_response();
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        if !links.is_empty() {
            response.headers_mut().insert(LINK, value);
        }
    }
    response
}

async fn history(
    state: &AppState,
    actor: &Actor,
    query: HistoryQuery,
    uri: &OriginalUri,
) -> Result<Response, ApiError> {
    let page = state
        .tokens
        .get_change_history(actor, query.filter, query.cursor, query.limit)
        .await?;
    Ok(page_response(page, uri))
}

/// Everyone's token changes, newest first (administrators).
#[utoipa::path(get, path = "/history/token-changes", operation_id = "history_of_everyone", tag = "history",
    params(HistoryParams),
    security(("bearer" = []), ("session" = [])),
        responses((status = 200, body = [HistoryEntry],
            headers(("link" = String, description = "RFC 8288 links to the `next` and `prev` pages"))),
            ApiFailures))]
pub async fn of_everyone(
    State(state): State<AppState>,
    Caller(actor): Caller,
    uri: OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(query.as_deref().unwrap_or(""))?;
    if !actor.is_admin() {
        return Err(crate::services::TokenError::PermissionDenied(
            "only administrators may see everyone's history",
        )
        .into());
    }
    history(&state, &actor, query, &uri).await
}

/// One user's token changes, newest first.
#[utoipa::path(get, path = "/users/{username}/token-change-history", operation_id = "history_of_user", tag = "history",
    params(("username" = String, Path), HistoryParams),
    security(("bearer" = []), ("session" = [])),
        responses((status = 200, body = [HistoryEntry],
            headers(("link" = String, description = "RFC 8288 links to the `next` and `prev` pages"))),
            ApiFailures))]
pub async fn of_user(
    State(state): State<AppState>,
    Caller(actor): Caller,
    uri: OriginalUri,
    ApiPath(username): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut query = parse_query(query.as_deref().unwrap_or(""))?;
    if query.filter.username.is_some() {
        return Err(bad("username", "is given by the path"));
    }
    query.filter.username = Some(username);
    history(&state, &actor, query, &uri).await
}

/// One token's changes, newest first.
#[utoipa::path(get, path = "/users/{username}/tokens/{key}/change-history", operation_id = "history_of_token", tag = "history",
    params(("username" = String, Path), ("key" = TokenKey, Path), HistoryParams),
    security(("bearer" = []), ("session" = [])),
        responses((status = 200, body = [HistoryEntry],
            headers(("link" = String, description = "RFC 8288 links to the `next` and `prev` pages"))),
            ApiFailures))]
pub async fn of_token(
    State(state): State<AppState>,
    Caller(actor): Caller,
    uri: OriginalUri,
    ApiPath((username, key)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut query = parse_query(query.as_deref().unwrap_or(""))?;
    if query.filter.username.is_some() || query.filter.key.is_some() {
        return Err(bad("username and key", "are given by the path"));
    }
    query.filter.username = Some(username);
    query.filter.token = Some(path_key(&key)?);
    history(&state, &actor, query, &uri).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_parses() {
        let key = "AAAAAAAAAAAAAAAAAAAAAA";
        let q = parse_query(&format!(
            "since=10&until=20&username=alice&actor=bob&key={key}&token_type=user&ip_address=10.0.0.0%2F8&limit=5"
        ))
        .unwrap();
        assert_eq!(q.filter.since, Some(10));
        assert_eq!(q.filter.until, Some(20));
        assert_eq!(q.filter.username.as_deref(), Some("alice"));
        assert_eq!(q.filter.actor.as_deref(), Some("bob"));
        assert_eq!(q.filter.key.as_ref().map(|k| k.as_str()), Some(key));
        assert_eq!(q.filter.ip_or_cidr, Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(q.limit, Some(5));
        let single = parse_query("ip_address=192.0.2.1").unwrap();
        assert_eq!(
            single.filter.ip_or_cidr,
            Some("192.0.2.1/32".parse().unwrap())
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, says) in [
            ("since=yesterday", "\"since\" must be Unix seconds"),
            (
                "until=9223372036854775808",
                "\"until\" must be Unix seconds",
            ),
            ("since=-1", "\"since\" must be Unix seconds"),
            ("token_type=admin", "\"token_type\" is not a token type"),
            (
                "ip_address=10.0.0.300",
                "\"ip_address\" is not an IP address",
            ),
            ("limit=0", "\"limit\" must be 1 to 1000"),
            ("cursor=zzz", "\"cursor\" cursor is not one"),
            ("user=alice", "unknown query parameter \"user\""),
            ("actor=a&actor=b", "\"actor\" is given more than once"),
        ] {
            let e = parse_query(query).unwrap_err().to_string();
            assert!(e.contains(says), "{query}: {e}");
        }
    }
}
