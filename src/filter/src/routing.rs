//! Choosing a request's policy: the first rule whose match holds, else the
//! default. (A policy in the route's own metadata is found by the glue and
//! wins over both.)

use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;

use crate::invalid::ConfigError;
use crate::path;
use crate::policy::Policy;

/// What a rule may look at in a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// Envoy's route name (`xds.route_name`), when the route has one.
    pub route: Option<&'a str>,
    /// `:authority`, port and all.
    pub host: Option<&'a str>,
    /// `:path`, query and all, as it came (it need not be UTF-8).
    pub path: &'a [u8],
    pub method: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    route: Option<String>,
    host: Option<String>,
    /// The exact path, without the query.
    path: Option<String>,
    prefix: Option<String>,
    method: Option<String>,
}

/// Paths normalised as requests' are ([`path::normalise`]), so that a
/// rule written `/a/../b` or `/b/` means what a request for it means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Exact(Vec<u8>),
    /// Segment-aware: see [`path::under`].
    Prefix(Vec<u8>),
}

/// The conditions of a rule; all that are given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    route: Option<String>,
    /// Lower case, without a port.
    host: Option<String>,
    path: Option<PathMatch>,
    method: Option<String>,
}

impl RawMatch {
    pub fn validate(self, at: &str) -> Result<RouteMatch, ConfigError> {
        let error = |name: &str, reason: &str| ConfigError::new(&format!("{at}.{name}"), reason);
        let path = match (self.path, self.prefix) {
            (Some(_), Some(_)) => return Err(error("prefix", "cannot be given with path")),
            (Some(p), None) if p.starts_with('/') && !p.contains(['?', '#']) => {
                Some(PathMatch::Exact(path::normalise(p.as_bytes()).into_owned()))
            }
            (None, Some(p)) if p.starts_with('/') && !p.contains(['?', '#']) => Some(
                PathMatch::Prefix(path::normalise(p.as_bytes()).into_owned()),
            ),
            (Some(_), None) => return Err(error("path", "must start with / and hold no query")),
            (None, Some(_)) => return Err(error("prefix", "must start with / and hold no query")),
            (None, None) => None,
        };
        if let Some(method) = &self.method {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(error(
                    "method",
                    "must be an upper-case HTTP method such as GET",
                ));
            }
        }
        if self.route.as_deref() == Some("") || self.host.as_deref() == Some("") {
            return Err(error(
                if self.route.is_some() {
                    "route"
                } else {
                    "host"
                },
                "must not be empty",
            ));
        }
        let matcher = RouteMatch {
            route: self.route,
            host: self.host.map(|h| h.to_ascii_lowercase()),
            path,
            method: self.method,
        };
        if matcher == RouteMatch::default() {
            // It would match everything and hide every rule after it.
            return Err(ConfigError::new(at, "needs at least one of route, host, path, prefix, method; use `policy` for a default"));
        }
        Ok(matcher)
    }
}

impl RouteMatch {
    pub fn uses_route_name(&self) -> bool {
        self.route.is_some()
    }

    /// Whether the rule holds for `facts`, its path read as `path` (one
    /// reading of `facts.path`). Methods are compared ignoring case, as
    /// some servers read them.
    fn matches(&self, facts: &RequestFacts<'_>, path: &[u8]) -> bool {
        self.route.as_deref().is_none_or(|r| facts.route == Some(r))
            && self
                .host
                .as_deref()
                .is_none_or(|h| facts.host.is_some_and(|fh| host_matches(h, fh)))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(facts.method))
            && self.path.as_ref().is_none_or(|p| match p {
                PathMatch::Exact(exact) => path == exact.as_slice(),
                PathMatch::Prefix(prefix) => path::under(path, prefix),
            })
    }
}

/// `:authority` against a configured lower-case host, ignoring a port and
/// a trailing dot (`example.org.` is the same name).
fn host_matches(configured: &str, authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        // A bracketed IPv6 literal keeps its colons.
        Some((host, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case(configured.strip_suffix('.').unwrap_or(configured))
}

/// Most distinct route-metadata policies remembered per worker; past it the
/// memo starts afresh (routes are few; this only bounds a pathological
/// configuration).
const MAX_REMEMBERED_POLICIES: usize = 256;

/// Policies parsed from route metadata, by their JSON bytes, so each is
/// parsed once per worker however many requests use it. A policy that does
/// not parse is remembered with its error: the route fails closed.
#[derive(Debug, Default)]
pub struct MetadataPolicies {
    parsed: HashMap<Vec<u8>, Result<Rc<Policy>, ConfigError>>,
}

impl MetadataPolicies {
    pub fn get_or_parse(&mut self, json: &[u8]) -> Result<Rc<Policy>, ConfigError> {
        if let Some(known) = self.parsed.get(json) {
            return known.clone();
        }
        if self.parsed.len() >= MAX_REMEMBERED_POLICIES {
            self.parsed.clear();
        }
        let parsed = Policy::from_json(json).map(Rc::new);
        self.parsed.insert(json.to_vec(), parsed.clone());
        parsed
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub matcher: RouteMatch,
    pub policy: std::rc::Rc<Policy>,
}

/// A request whose path picks one rule as it came and another once
/// normalised: some upstream may read it either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request's path chooses different rules before and after normalisation")]
pub struct AmbiguousPath;

/// The policy of the first rule that matches the normalised path, else the
/// default; refused if the raw path would choose another rule.
pub fn select<'a>(
    rules: &'a [Rule],
    default: &'a std::rc::Rc<Policy>,
    facts: &RequestFacts<'_>,
) -> Result<&'a std::rc::Rc<Policy>, AmbiguousPath> {
    let first = |path: &[u8]| {
        rules
            .iter()
            .position(|rule| rule.matcher.matches(facts, path))
    };
    if rules.is_empty() {
        return Ok(default);
    }
    let raw = path::without_query(facts.path);
    let normal = path::normalise(facts.path);
    let chosen = first(&normal);
    // Most paths are already normal: one matching pass, and no copy.
    if raw != &*normal && first(raw) != chosen {
        return Err(AmbiguousPath);
    }
    Ok(chosen.map_or(default, |i| &rules[i].policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(json: &str) -> RouteMatch {
        serde_json::from_str::<RawMatch>(json)
            .unwrap()
            .validate("rules[0].match")
            .unwrap()
    }

    fn facts<'a>(
        route: Option<&'a str>,
        host: &'a str,
        path: &'a str,
        method: &'a str,
    ) -> RequestFacts<'a> {
        RequestFacts {
            route,
            host: Some(host),
            path: path.as_bytes(),
            method,
        }
    }

    impl RouteMatch {
        /// As [`select`] reads a request: on its normalised path.
        fn holds(&self, facts: &RequestFacts<'_>) -> bool {
            self.matches(facts, &path::normalise(facts.path))
        }
    }

    #[test]
    fn each_condition_matches_what_it_names() {
        let f = facts(
            Some("admin"),
            "Api.Example.org:8443",
            "/v1/items?x=1",
            "POST",
        );
        assert!(matcher(r#"{"route":"admin"}"#).holds(&f));
        assert!(!matcher(r#"{"route":"other"}"#).holds(&f));
        assert!(matcher(r#"{"host":"api.example.org"}"#).holds(&f));
        assert!(!matcher(r#"{"host":"example.org"}"#).holds(&f));
        assert!(
            matcher(r#"{"path":"/v1/items"}"#).holds(&f),
            "the query is not part of the path"
        );
        assert!(!matcher(r#"{"path":"/v1"}"#).holds(&f));
        assert!(matcher(r#"{"prefix":"/v1/"}"#).holds(&f));
        assert!(!matcher(r#"{"prefix":"/v2/"}"#).holds(&f));
        assert!(matcher(r#"{"method":"POST"}"#).holds(&f));
        assert!(!matcher(r#"{"method":"GET"}"#).holds(&f));
        assert!(matcher(r#"{"route":"admin","method":"POST","prefix":"/v1"}"#).holds(&f));
        assert!(
            !matcher(r#"{"route":"admin","method":"GET"}"#).holds(&f),
            "all must hold"
        );
        assert!(!matcher(r#"{"route":"admin"}"#).holds(&RequestFacts { route: None, ..f }));
    }

    #[test]
    fn rules_hold_whatever_spelling_the_path_arrives_in() {
        let policy = |json: &str| Rc::new(Policy::from_json(json.as_bytes()).unwrap());
        let default = policy(r#"{"scopes":["read:all"]}"#);
        let rules = vec![
            Rule {
                matcher: matcher(r#"{"prefix":"/admin"}"#),
                policy: policy(r#"{"scopes":["admin:token"]}"#),
            },
            Rule {
                matcher: matcher(r#"{"prefix":"/public/"}"#),
                policy: policy(r#"{"anonymous":true}"#),
            },
            Rule {
                matcher: matcher(r#"{"path":"/exact/./x/"}"#),
                policy: policy(r#"{"scopes":["exec:x"]}"#),
            },
        ];
        let chosen = |path: &str| -> Result<String, AmbiguousPath> {
            let f = facts(None, "h", path, "GET");
            select(&rules, &default, &f).map(|p| p.check_path.clone())
        };
        let admin = chosen("/admin/x").unwrap();
        let read = chosen("/x").unwrap();
        let public = chosen("/public/x").unwrap();
        assert_ne!(admin, read);
        // Already normal: chosen as is.
        assert_eq!(
            chosen("/admin").unwrap(),
            admin,
            "a prefix without its slash"
        );
        assert_eq!(
            chosen("/administrator").unwrap(),
            read,
            "segments, not bytes"
        );
        assert_eq!(chosen("/public").unwrap(), public);
        assert_eq!(chosen("/exact/x/").unwrap(), chosen("/exact/x/?q").unwrap());
        assert_eq!(chosen("/exact/x").unwrap(), read);
        // Another spelling of the same rule's paths: the same policy.
        assert_eq!(chosen("/admin/./x").unwrap(), admin);
        assert_eq!(chosen("/admin/y/../x").unwrap(), admin);
        // Spellings that would leave a rule, or enter one, as they came:
        // no policy is chosen at all.
        for path in [
            "//admin/x",
            "/public/../admin/x",
            "/public/%2e%2e/admin/x",
            "/public/..%2Fadmin",
            "/public/..%5cadmin",
            "/public\\..\\admin",
            "/public/..;/admin",
            "/%61dmin/x",
            "/admin/%2e%2e/public/x",
            "/admin/../public/x",
            "/public/../x",
            "/x/../public/y",
        ] {
            assert_eq!(chosen(path), Err(AmbiguousPath), "{path}");
        }
    }

    #[test]
    fn hosts_ignore_a_trailing_dot_and_methods_their_case() {
        let f = facts(None, "Api.Example.org.:443", "/", "post");
        assert!(matcher(r#"{"host":"api.example.org"}"#).holds(&f));
        assert!(matcher(r#"{"method":"POST"}"#).holds(&f));
    }

    #[test]
    fn metadata_policies_are_parsed_once_and_errors_remembered() {
        let mut memo = MetadataPolicies::default();
        let first = memo.get_or_parse(br#"{"scopes":["admin:token"]}"#).unwrap();
        let again = memo.get_or_parse(br#"{"scopes":["admin:token"]}"#).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        let bad = memo.get_or_parse(br#"{"scopes":"admin"}"#).unwrap_err();
        assert_eq!(bad.field, "scopes");
        assert_eq!(
            memo.get_or_parse(br#"{"scopes":"admin"}"#).unwrap_err(),
            bad
        );
        for i in 0..300 {
            let json = format!(r#"{{"delegate_to":"s{i}"}}"#);
            memo.get_or_parse(json.as_bytes()).unwrap();
        }
        assert!(memo.parsed.len() <= MAX_REMEMBERED_POLICIES);
    }

    #[test]
    fn hosts_ignore_ports_but_not_ipv6_colons() {
        assert!(host_matches("[::1]", "[::1]:8080"));
        assert!(host_matches("[::1]", "[::1]"));
        assert!(host_matches("example.org", "EXAMPLE.org"));
    }

    #[test]
    fn bad_matches_are_refused_with_their_field() {
        for (json, field) in [
            (r#"{}"#, "rules[0].match"),
            (r#"{"path":"/a","prefix":"/b"}"#, "rules[0].match.prefix"),
            (r#"{"path":"a"}"#, "rules[0].match.path"),
            (r#"{"path":"/a?b"}"#, "rules[0].match.path"),
            (r#"{"prefix":"a"}"#, "rules[0].match.prefix"),
            (r#"{"method":"get"}"#, "rules[0].match.method"),
            (r#"{"route":""}"#, "rules[0].match.route"),
        ] {
            let e = serde_json::from_str::<RawMatch>(json)
                .unwrap()
                .validate("rules[0].match")
                .unwrap_err();
            assert_eq!(e.field, field, "{json}");
        }
    }

    #[test]
    fn the_first_matching_rule_wins_else_the_default() {
        let policy = |json: &str| Rc::new(Policy::from_json(json.as_bytes()).unwrap());
        let default = policy("{}");
        let rules = vec![
            Rule {
                matcher: matcher(r#"{"prefix":"/public/"}"#),
                policy: policy(r#"{"anonymous":true}"#),
            },
            Rule {
                matcher: matcher(r#"{"prefix":"/"}"#),
                policy: policy(r#"{"scopes":["read:all"]}"#),
            },
        ];
        let public = facts(None, "h", "/public/x", "GET");
        assert!(select(&rules, &default, &public).unwrap().anonymous);
        assert_eq!(
            select(&rules, &default, &facts(None, "h", "/x", "GET"))
                .unwrap()
                .check
                .scopes
                .len(),
            1
        );
        assert!(Rc::ptr_eq(
            select(&[], &default, &public).unwrap(),
            &default
        ));
    }
}
