//! Fuzz targets for every parser of outside bytes in Portcullis, and one
//! stateful target for the filter's request flow. Each target is a plain
//! function that panics when an oracle fails: cargo-fuzz runs them under
//! libFuzzer (`fuzz_targets/`, `./build.sh fuzz`), and a stable
//! `cargo test` replays every committed corpus file through the same
//! functions (`tests/corpus.rs`), so CI keeps the regressions without a
//! fuzzing engine.

pub mod core;
pub mod filter;
pub mod flow;
pub mod server;

/// The session key the targets seal and open cookies with (and look for
/// in error messages that must not show it).
pub const SESSION_KEY: [u8; 32] = *b"portcullis-fuzz-session-key-0001";
/// The same key as the filter's configuration spells it.
pub const SESSION_KEY_BASE64: &str = "cG9ydGN1bGxpcy1mdXp6LXNlc3Npb24ta2V5LTAwMDE=";

/// A fuzz target: panics when one of its oracles fails.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/` file and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("token", core::token),
    ("authorization", core::authorization),
    ("cookie_header", core::cookie_header),
    ("session_cookie", core::session_cookie),
    ("check_query", core::check_query),
    ("ext_authz_check", server::ext_authz_check),
    ("filter_config", filter::filter_config),
    ("route_policy", filter::route_policy),
    ("request_path", filter::request_path),
    ("callout_answer", filter::callout_answer),
    ("feed_page", filter::feed_page),
    ("oidc_authorize", server::oidc_authorize),
    ("oidc_token", server::oidc_token),
    ("history_cursor", server::history_cursor),
    ("companion_config", server::companion_config),
    ("flow", flow::flow),
];

/// The input as text, for parsers that take text only (their callers
/// refuse anything else first).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
