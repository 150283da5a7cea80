//! A person's tokens: the list by kind, making one (the secret shown
//! once), a token's page, revoking with its children named, signing out
//! every other device; for administrators, anyone's tokens and service
//! tokens for `bot-` users.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portcullis_core::{Scope, TokenKey, TokenType};

use super::view::{self, HistoryRow, Nav, TokenRow};
use super::{refused, render, see_other, token_error, write_refused, Viewer, TOKENS_PATH};
use crate::handlers::client_ip::ClientIp;
use crate::handlers::openapi::TokenPages;
use crate::handlers::AppState;
use crate::model::{HistoryFilter, TokenInfo};
use crate::services::{AdminTokenRequest, TokenError, UserInfo, MAX_NAME_LEN};

const DAY: u64 = 24 * 3600;

/// The lifetimes a new token can be given: (form value, label, days).
/// `None` days: never expires.
const EXPIRY_PRESETS: [(&str, &str, Option<u64>); 5] = [
    ("7", "7 days", Some(7)),
    ("30", "30 days", Some(30)),
    ("90", "90 days", Some(90)),
    ("365", "1 year", Some(365)),
    ("never", "Never", None),
];
const DEFAULT_PRESET: &str = "30";

/// A form's fields as sent; a field may repeat (one `scope` per box
/// ticked).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, or "".
    fn one(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The fields of a form post that may act: from this site with the
/// session's CSRF token, and text throughout. A browser sends a page's form
/// as UTF-8; bytes that are not (read as U+FFFD) would be saved changed,
/// so they are refused instead.
fn posted(
    state: &AppState,
    headers: &HeaderMap,
    viewer: &Viewer,
    body: &[u8],
) -> Result<Fields, Box<Response>> {
    let fields = Fields::parse(body);
    if let Some(refusal) = write_refused(state, headers, viewer, fields.one("csrf")) {
        return Err(Box::new(refusal));
    }
    if fields
        .0
        .iter()
        .any(|(n, v)| n.contains('\u{FFFD}') || v.contains('\u{FFFD}'))
    {
        return Err(Box::new(refused(
            Some(viewer.nav()),
            StatusCode::BAD_REQUEST,
            "Cannot read that form",
            "The form held bytes that are not text.",
        )));
    }
    Ok(fields)
}

/// Whose tokens a page is about: `?user=` (an administrator's choice) or
/// the viewer's own.
fn owner(query: &RawQuery, viewer: &Viewer) -> String {
    form_urlencoded::parse(query.0.as_deref().unwrap_or("").as_bytes())
        .find(|(n, _)| n == "user")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| viewer.session.username.clone())
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokenList {
    nav: Nav,
    csrf: String,
    owner: String,
    own: bool,
    user_tokens: Vec<TokenRow>,
    sessions: Vec<TokenRow>,
    delegated: Vec<TokenRow>,
    oidc: Vec<TokenRow>,
    service: Vec<TokenRow>,
    others_signed_in: bool,
    history_href: String,
    /// For administrators: the service-token form.
    scopes: Vec<ScopeChoice>,
    presets: Vec<Preset>,
}

#[utoipa::path(get, path = "/auth/tokens", tag = "pages", params(("user" = Option<String>, Query, description = "Whose tokens (administrators)")), security(("session" = [])), responses(TokenPages))]
pub async fn list(State(state): State<AppState>, viewer: Viewer, query: RawQuery) -> Response {
    let owner = owner(&query, &viewer);
    let tokens = match state
        .tokens
        .list_tokens(&viewer.actor(), Some(&owner))
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => return token_error(&viewer, e),
    };
    let me = &viewer.session.username;
    let suffix = view::owner_query(&owner, me);
    let current = viewer.session.token.key().as_str();
    let rows = |types: &[TokenType]| -> Vec<TokenRow> {
        tokens
            .iter()
            .filter(|t| types.contains(&t.token_type))
            .map(|t| TokenRow::of(t, &suffix, current))
            .collect()
    };
    let sessions = rows(&[TokenType::Session]);
    let page = TokenList {
        nav: viewer.nav(),
        csrf: viewer.csrf.clone(),
        own: owner == *me,
        others_signed_in: owner == *me && sessions.iter().any(|s| !s.current),
        user_tokens: rows(&[TokenType::User]),
        sessions,
        delegated: rows(&[TokenType::Internal, TokenType::Notebook]),
        oidc: rows(&[TokenType::Oidc]),
        service: rows(&[TokenType::Service]),
        history_href: format!(
            "/auth/tokens/history?username={}",
            form_urlencoded::byte_serialize(owner.as_bytes()).collect::<String>()
        ),
        scopes: match viewer.admin {
            true => choices(&state, None, &[]),
            false => Vec::new(),
        },
        presets: presets(DEFAULT_PRESET),
        owner,
    };
    render(StatusCode::OK, &page)
}

/// A scope box on a form.
struct ScopeChoice {
    name: String,
    description: String,
    checked: bool,
}

/// The scopes to offer: those `held` (every known scope when `None`),
/// with their descriptions.
fn choices(state: &AppState, held: Option<&[Scope]>, checked: &[&str]) -> Vec<ScopeChoice> {
    state
        .tokens
        .known_scopes()
        .iter()
        .filter(|(scope, _)| held.is_none_or(|h| h.contains(scope)))
        .map(|(scope, description)| ScopeChoice {
            name: scope.to_string(),
            description: description.clone(),
            checked: checked.contains(&scope.as_str()),
        })
        .collect()
}

struct Preset {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn presets(selected: &str) -> Vec<Preset> {
    EXPIRY_PRESETS
        .iter()
        .map(|(value, label, _)| Preset {
            value,
            label,
            selected: *value == selected,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "new_token.html")]
struct NewToken {
    nav: Nav,
    csrf: String,
    name: String,
    max_name: usize,
    scopes: Vec<ScopeChoice>,
    presets: Vec<Preset>,
    error: Option<String>,
}

fn new_token_page(
    state: &AppState,
    viewer: &Viewer,
    fields: Option<&Fields>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let checked = fields.map(|f| f.all("scope")).unwrap_or_default();
    let preset = fields
        .map(|f| f.one("expires"))
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_PRESET);
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = NewToken {
        nav: viewer.nav(),
        csrf: viewer.csrf.clone(),
        // What was typed, kept; never more than a name may be, so a huge
        // field is not sent back.
        name: fields
            .map(|f| f.one("name").chars().take(MAX_NAME_LEN).collect())
            .unwrap_or_default(),
        max_name: MAX_NAME_LEN,
        scopes: choices(state, Some(&viewer.session.scopes), &checked),
        presets: presets(preset),
        error,
    };
    render(status, &page)
}

#[utoipa::path(get, path = "/auth/tokens/new", tag = "pages", security(("session" = [])), responses(TokenPages))]
pub async fn new_form(State(state): State<AppState>, viewer: Viewer) -> Response {
    new_token_page(&state, &viewer, None, None)
}

/// The expiry a preset means, from now; `Err` for a value no form offers.
fn expiry(state: &AppState, preset: &str) -> Result<Option<u64>, String> {
    EXPIRY_PRESETS
        .iter()
        .find(|(value, _, _)| *value == preset)
        .map(|(_, _, days)| days.map(|d| state.tokens.now().saturating_add(d * DAY)))
        .ok_or_else(|| "Choose when the token expires.".to_owned())
}

fn parse_scopes(fields: &Fields) -> Result<Vec<Scope>, String> {
    fields
        .all("scope")
        .into_iter()
        .map(|s| s.parse().map_err(|_| format!("{s:?} is not a scope.")))
        .collect()
}

/// A refusal that is no fault of the form (not allowed, storage down), so
/// a page of its own rather than the form again.
fn is_page_error(e: &TokenError) -> bool {
    matches!(
        e,
        TokenError::PermissionDenied(_) | TokenError::Storage(_) | TokenError::Random(_)
    )
}

#[derive(Template)]
#[template(path = "created.html")]
struct Created {
    nav: Nav,
    name: String,
    owner: String,
    secret: String,
    href: String,
}

/// The new token's secret, on this page only: it is not stored anywhere
/// it could be shown again, and the page is never cached.
fn created(viewer: &Viewer, owner: &str, name: &str, token: &portcullis_core::Token) -> Response {
    let suffix = view::owner_query(owner, &viewer.session.username);
    render(
        StatusCode::CREATED,
        &Created {
            nav: viewer.nav(),
            name: name.to_owned(),
            owner: owner.to_owned(),
            secret: token.expose(),
            href: format!("/auth/tokens/{}{suffix}", token.key().as_str()),
        },
    )
}

#[utoipa::path(post, path = "/auth/tokens/new", tag = "pages", request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf, name, scope (repeated), expires"), security(("session" = [])), responses((status = 201, body = String, content_type = "text/html; charset=utf-8", description = "The new token, shown once"), (status = 409, body = String, content_type = "text/html; charset=utf-8", description = "The name is taken: the form again"), TokenPages))]
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match posted(&state, &headers, &viewer, &body) {
        Ok(fields) => fields,
        Err(refusal) => return *refusal,
    };
    let bad = |message: String| {
        new_token_page(
            &state,
            &viewer,
            Some(&fields),
            Some((StatusCode::BAD_REQUEST, message)),
        )
    };
    let name = fields.one("name").trim().to_owned();
    if name.is_empty() {
        return bad("Give the token a name.".to_owned());
    }
    let scopes = match parse_scopes(&fields) {
        Ok(scopes) => scopes,
        Err(message) => return bad(message),
    };
    let expires = match expiry(&state, fields.one("expires")) {
        Ok(expires) => expires,
        Err(message) => return bad(message),
    };
    let me = viewer.session.username.clone();
    match state
        .tokens
        .create_user_token(
            &viewer.actor(),
            &me,
            name.clone(),
            scopes,
            Some(expires),
            ip,
        )
        .await
    {
        Ok(token) => created(&viewer, &me, &name, &token),
        // Said beside the field, with what was typed kept.
        Err(e @ TokenError::DuplicateName { .. }) => new_token_page(
            &state,
            &viewer,
            Some(&fields),
            Some((StatusCode::CONFLICT, e.to_string())),
        ),
        Err(e) if is_page_error(&e) => token_error(&viewer, e),
        Err(e) => bad(e.to_string()),
    }
}

/// An administrator makes a service token for a `bot-` user.
#[utoipa::path(post, path = "/auth/tokens/service", tag = "pages", request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf, username, scope (repeated), expires"), security(("session" = [])), responses((status = 201, body = String, content_type = "text/html; charset=utf-8", description = "The new token, shown once"), TokenPages))]
pub async fn create_service(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match posted(&state, &headers, &viewer, &body) {
        Ok(fields) => fields,
        Err(refusal) => return *refusal,
    };
    let bad = |message: &str| {
        refused(
            Some(viewer.nav()),
            StatusCode::BAD_REQUEST,
            "Cannot make that service token",
            message,
        )
    };
    let username = fields.one("username").trim().to_owned();
    let (scopes, expires) = match (parse_scopes(&fields), expiry(&state, fields.one("expires"))) {
        (Ok(scopes), Ok(expires)) => (scopes, expires),
        (Err(message), _) | (_, Err(message)) => return bad(&message),
    };
    let request = AdminTokenRequest {
        user: UserInfo {
            username: username.clone(),
            ..UserInfo::default()
        },
        token_type: TokenType::Service,
        token_name: None,
        scopes,
        expires,
    };
    match state
        .tokens
        .create_token_from_admin_request(request, &viewer.actor(), ip)
        .await
    {
        Ok(token) => created(&viewer, &username, "service token", &token),
        Err(e) if is_page_error(&e) => token_error(&viewer, e),
        Err(e) => bad(&e.to_string()),
    }
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    nav: Nav,
    token: TokenRow,
    owner: String,
    parent: Option<(String, String)>,
    children: Vec<TokenRow>,
    history: Vec<HistoryRow>,
}

/// `owner`'s token whose key is `key` (text from the path: one that
/// cannot be a key names no token), and every token of theirs below it
/// (children, their children, …), from one listing the viewer may see.
async fn token_and_descendants(
    state: &AppState,
    viewer: &Viewer,
    owner: &str,
    key: &str,
) -> Result<(TokenInfo, Vec<TokenInfo>), TokenError> {
    let key: TokenKey = key.parse().map_err(|_| TokenError::NotFound)?;
    let all = state
        .tokens
        .list_tokens(&viewer.actor(), Some(owner))
        .await?;
    let info = all
        .iter()
        .find(|t| t.token == key)
        .cloned()
        .ok_or(TokenError::NotFound)?;
    let mut below: Vec<TokenInfo> = Vec::new();
    let mut frontier = vec![key];
    while let Some(parent) = frontier.pop() {
        for child in all.iter().filter(|t| t.parent.as_ref() == Some(&parent)) {
            if !below.iter().any(|b| b.token == child.token) {
                frontier.push(child.token.clone());
                below.push(child.clone());
            }
        }
    }
    Ok((info, below))
}

#[utoipa::path(get, path = "/auth/tokens/{key}", tag = "pages", params(("key" = String, Path), ("user" = Option<String>, Query, description = "Whose token (administrators)")), security(("session" = [])), responses(TokenPages))]
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    query: RawQuery,
) -> Response {
    let owner = owner(&query, &viewer);
    let (info, below) = match token_and_descendants(&state, &viewer, &owner, &key).await {
        Ok(found) => found,
        Err(e) => return token_error(&viewer, e),
    };
    let filter = HistoryFilter {
        username: Some(owner.clone()),
        token: Some(info.token.clone()),
        ..HistoryFilter::default()
    };
    let history = match state
        .tokens
        .get_change_history(&viewer.actor(), filter, None, Some(100))
        .await
    {
        Ok(page) => page.entries,
        Err(e) => return token_error(&viewer, e),
    };
    let me = &viewer.session.username;
    let suffix = view::owner_query(&owner, me);
    let current = viewer.session.token.key().as_str();
    let page = TokenPage {
        nav: viewer.nav(),
        parent: info.parent.as_ref().map(|p| {
            (
                format!("/auth/tokens/{}{suffix}", p.as_str()),
                p.as_str().to_owned(),
            )
        }),
        children: below
            .iter()
            .filter(|t| t.parent.as_ref() == Some(&info.token))
            .map(|t| TokenRow::of(t, &suffix, current))
            .collect(),
        history: history.iter().map(|e| HistoryRow::of(e, me)).collect(),
        token: TokenRow::of(&info, &suffix, current),
        owner,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "revoke.html")]
struct ConfirmRevoke {
    nav: Nav,
    csrf: String,
    token: TokenRow,
    going_too: Vec<TokenRow>,
    action: String,
    back: String,
}

#[utoipa::path(get, path = "/auth/tokens/{key}/revoke", tag = "pages", params(("key" = String, Path), ("user" = Option<String>, Query)), security(("session" = [])), responses(TokenPages))]
pub async fn confirm_revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(key): Path<String>,
    query: RawQuery,
) -> Response {
    let owner = owner(&query, &viewer);
    let (info, below) = match token_and_descendants(&state, &viewer, &owner, &key).await {
        Ok(found) => found,
        Err(e) => return token_error(&viewer, e),
    };
    let suffix = view::owner_query(&owner, &viewer.session.username);
    let current = viewer.session.token.key().as_str();
    let token = TokenRow::of(&info, &suffix, current);
    let page = ConfirmRevoke {
        nav: viewer.nav(),
        csrf: viewer.csrf.clone(),
        action: token.revoke_href.clone(),
        back: token.href.clone(),
        going_too: below
            .iter()
            .map(|t| TokenRow::of(t, &suffix, current))
            .collect(),
        token,
    };
    render(StatusCode::OK, &page)
}

#[utoipa::path(post, path = "/auth/tokens/{key}/revoke", tag = "pages", params(("key" = String, Path), ("user" = Option<String>, Query)), request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf"), security(("session" = [])), responses(TokenPages))]
pub async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientIp(ip): ClientIp,
    Path(key): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = posted(&state, &headers, &viewer, &body) {
        return *refusal;
    }
    let owner = owner(&query, &viewer);
    let Ok(key) = key.parse::<TokenKey>() else {
        return token_error(&viewer, TokenError::NotFound);
    };
    match state
        .tokens
        .delete_token(&key, &viewer.actor(), &owner, ip)
        .await
    {
        // Revoking the session this page is seen with signs this browser
        // out: the start page says so.
        Ok(true) if key == *viewer.session.token.key() => see_other(super::SIGNED_OUT_PATH),
        Ok(true) => see_other(&format!(
            "{TOKENS_PATH}{}",
            view::owner_query(&owner, &viewer.session.username)
        )),
        Ok(false) => token_error(&viewer, TokenError::NotFound),
        Err(e) => token_error(&viewer, e),
    }
}

/// Revokes every session of the viewer's but this one.
#[utoipa::path(post, path = "/auth/tokens/sign-out-others", tag = "pages", request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf"), security(("session" = [])), responses(TokenPages))]
pub async fn sign_out_others(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = posted(&state, &headers, &viewer, &body) {
        return *refusal;
    }
    let actor = viewer.actor();
    let me = viewer.session.username.clone();
    let tokens = match state.tokens.list_tokens(&actor, Some(&me)).await {
        Ok(tokens) => tokens,
        Err(e) => return token_error(&viewer, e),
    };
    for other in tokens
        .iter()
        .filter(|t| t.token_type == TokenType::Session && t.token != *viewer.session.token.key())
    {
        // One already gone (expired, or revoked meanwhile) is no error.
        if let Err(e) = state
            .tokens
            .delete_token(&other.token, &actor, &me, ip)
            .await
        {
            return token_error(&viewer, e);
        }
    }
    see_other(TOKENS_PATH)
}
