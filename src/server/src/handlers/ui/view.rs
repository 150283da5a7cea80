//! What the templates show, shaped once: times, token rows, the bar at the
//! top. Pure: no request, no store.

use std::time::{Duration, UNIX_EPOCH};

use askama::Template;
use portcullis_core::{Scope, TokenType};

use crate::model::{HistoryEntry, TokenInfo};

/// The bar at the top of every page.
#[derive(Default)]
pub struct Nav {
    pub username: Option<String>,
    pub admin: bool,
}

/// A page with a title, one paragraph and perhaps a link onward.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub nav: Nav,
    pub title: &'a str,
    pub text: &'a str,
    /// (href, text).
    pub link: Option<(&'a str, &'a str)>,
}

/// `/login`, returning to `here`.
pub fn login_link(here: &str) -> String {
    let rd: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    format!("/login?rd={rd}")
}

/// A time as people read it: `2026-12-05 14:06 UTC`.
pub fn when(seconds: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(seconds);
    let text = humantime::format_rfc3339_seconds(time).to_string();
    // 2026-12-05T14:06:33Z
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(minute)) => format!("{day} {minute} UTC"),
        _ => text,
    }
}

pub fn when_or(seconds: Option<u64>, otherwise: &str) -> String {
    seconds.map_or_else(|| otherwise.to_owned(), when)
}

pub fn scope_list(scopes: &[Scope]) -> String {
    match scopes.is_empty() {
        true => "none".to_owned(),
        false => scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// What a token type is called on the pages.
pub fn type_label(token_type: TokenType) -> &'static str {
    match token_type {
        TokenType::Session => "signed-in device",
        TokenType::User => "user token",
        TokenType::Notebook => "notebook token",
        TokenType::Internal => "delegated token",
        TokenType::Service => "service token",
        TokenType::Oidc => "OpenID Connect token",
    }
}

/// `?user=NAME` when an administrator is looking at someone else's tokens.
pub fn owner_query(owner: &str, viewer: &str) -> String {
    match owner == viewer {
        true => String::new(),
        false => {
            let user: String = form_urlencoded::byte_serialize(owner.as_bytes()).collect();
            format!("?user={user}")
        }
    }
}

/// One token as a row of a table.
pub struct TokenRow {
    pub key: String,
    pub name: String,
    pub kind: &'static str,
    pub scopes: String,
    pub service: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub href: String,
    pub revoke_href: String,
    /// The session this page is seen with.
    pub current: bool,
}

impl TokenRow {
    pub fn of(info: &TokenInfo, owner_query: &str, current_key: &str) -> Self {
        let key = info.token.as_str().to_owned();
        Self {
            href: format!("/auth/tokens/{key}{owner_query}"),
            revoke_href: format!("/auth/tokens/{key}/revoke{owner_query}"),
            current: key == current_key,
            name: info.token_name.clone().unwrap_or_default(),
            kind: type_label(info.token_type),
            scopes: scope_list(&info.scopes),
            service: info.service.clone().unwrap_or_default(),
            created: when(info.created),
            last_used: when_or(info.last_used, "never"),
            expires: when_or(info.expires, "never"),
            key,
        }
    }
}

/// One history entry as a row, with what an edit changed in words.
pub struct HistoryRow {
    pub time: String,
    pub action: &'static str,
    pub key: String,
    pub href: String,
    pub username: String,
    pub kind: &'static str,
    pub name: String,
    pub scopes: String,
    pub expires: String,
    pub changed: String,
    pub actor: String,
    pub address: String,
}

impl HistoryRow {
    pub fn of(entry: &HistoryEntry, viewer: &str) -> Self {
        let key = entry.token.as_str().to_owned();
        let mut changed = Vec::new();
        if let Some(old) = &entry.old_token_name {
            changed.push(format!("name was {old}"));
        }
        if let Some(old) = &entry.old_scopes {
            changed.push(format!("scopes were {}", scope_list(old)));
        }
        if let Some(old) = entry.old_expires {
            changed.push(format!("expiry was {}", when(old)));
        }
        Self {
            time: when(entry.event_time),
            action: entry.action.as_str(),
            href: format!("/auth/tokens/{key}{}", owner_query(&entry.username, viewer)),
            key,
            username: entry.username.clone(),
            kind: type_label(entry.token_type),
            name: entry.token_name.clone().unwrap_or_default(),
            scopes: scope_list(&entry.scopes),
            expires: when_or(entry.expires, "never"),
            changed: changed.join("; "),
            actor: entry
                .actor
                .clone()
                .unwrap_or_else(|| "Portcullis".to_owned()),
            address: entry.ip_address.map(|a| a.to_string()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_minutes() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_900_000_000), "2030-03-17 17:46 UTC");
        assert_eq!(when_or(None, "never"), "never");
    }

    #[test]
    fn the_return_address_is_escaped_into_the_login_link() {
        assert_eq!(
            login_link("/auth/tokens?user=a&b=c"),
            "/login?rd=%2Fauth%2Ftokens%3Fuser%3Da%26b%3Dc"
        );
        assert_eq!(owner_query("bob", "bob"), "");
        assert_eq!(owner_query("b&b", "root"), "?user=b%26b");
    }
}
