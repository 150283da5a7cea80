//! History search: since, until, key, address (and, for administrators,
//! whose), newest first, a page at a time.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::view::{HistoryRow, Nav};
use super::{refused, render, token_error, Viewer};
use crate::handlers::api::history::ip_or_cidr;
use crate::handlers::openapi::TokenPages;
use crate::handlers::AppState;
use crate::model::{HistoryCursor, HistoryFilter};

/// Entries per page.
const PAGE: u32 = 25;

#[derive(Template)]
#[template(path = "history.html")]
struct HistorySearch {
    nav: Nav,
    since: String,
    until: String,
    key: String,
    address: String,
    username: String,
    /// Administrators may search everyone's history.
    admin: bool,
    rows: Vec<HistoryRow>,
    newer: Option<String>,
    older: Option<String>,
}

/// `2026-12-05T14:06` (what a `datetime-local` field sends), in UTC.
fn parse_time(text: &str) -> Option<u64> {
    let text = match text.len() {
        16 => format!("{text}:00Z"),
        _ => format!("{text}Z"),
    };
    humantime::parse_rfc3339(&text)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[utoipa::path(get, path = "/auth/tokens/history", tag = "pages", params(("since" = Option<String>, Query), ("until" = Option<String>, Query), ("key" = Option<String>, Query), ("address" = Option<String>, Query), ("username" = Option<String>, Query), ("cursor" = Option<String>, Query)), security(("session" = [])), responses(TokenPages))]
pub async fn search(State(state): State<AppState>, viewer: Viewer, query: RawQuery) -> Response {
    let raw = query.0.unwrap_or_default();
    let field = |name: &str| {
        form_urlencoded::parse(raw.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (since, until, key, address, cursor) = (
        field("since"),
        field("until"),
        field("key"),
        field("address"),
        field("cursor"),
    );
    let admin = viewer.admin;
    // A person sees their own history; an administrator anyone's, or with
    // no name given, everyone's.
    let username = match (admin, field("username")) {
        (true, name) => name,
        (false, _) => viewer.session.username.clone(),
    };
    let bad = |what: &str| {
        refused(
            Some(viewer.nav()),
            StatusCode::BAD_REQUEST,
            "Cannot search for that",
            what,
        )
    };
    let mut filter = HistoryFilter {
        username: (!username.is_empty()).then(|| username.clone()),
        ..HistoryFilter::default()
    };
    for (text, slot, what) in [
        (&since, &mut filter.since, "“Since” is not a date and time."),
        (&until, &mut filter.until, "“Until” is not a date and time."),
    ] {
        if !text.is_empty() {
            match parse_time(text) {
                Some(time) => *slot = Some(time),
                None => return bad(what),
            }
        }
    }
    if !key.is_empty() {
        match key.parse() {
            Ok(key) => filter.key = Some(key),
            Err(_) => return bad("That is not a token key (22 characters)."),
        }
    }
    if !address.is_empty() {
        match ip_or_cidr(&address) {
            Some(net) => filter.ip_or_cidr = Some(net),
            None => return bad("That is not an IP address or CIDR block."),
        }
    }
    let cursor = match cursor.as_str() {
        "" => None,
        text => match HistoryCursor::decode(text) {
            Ok(cursor) => Some(cursor),
            Err(_) => return bad("That page of history does not exist."),
        },
    };
    let page = match state
        .tokens
        .get_change_history(&viewer.actor(), filter, cursor, Some(PAGE))
        .await
    {
        Ok(page) => page,
        Err(e) => return token_error(&viewer, e),
    };
    // The links keep the search and change only the cursor.
    let link = |cursor: HistoryCursor| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("since", &since),
            ("until", &until),
            ("key", &key),
            ("address", &address),
            ("username", &username),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.append_pair("cursor", &cursor.encode());
        format!("/auth/tokens/history?{}", query.finish())
    };
    let me = viewer.session.username.clone();
    let page = HistorySearch {
        nav: viewer.nav(),
        rows: page
            .entries
            .iter()
            .map(|e| HistoryRow::of(e, &me))
            .collect(),
        newer: page.previous.map(link),
        older: page.next.map(link),
        since,
        until,
        key,
        address,
        username,
        admin,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datetime_field_is_read_as_utc() {
        assert_eq!(parse_time("1970-01-01T00:01"), Some(60));
        assert_eq!(parse_time("1970-01-01T00:01:30"), Some(90));
        assert_eq!(parse_time("yesterday"), None);
    }
}
