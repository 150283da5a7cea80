//! The path a rule is matched against. An upstream may read `:path` in
//! more ways than one (percent-decoding it, taking `\` for `/`, resolving
//! `..`, merging `//`), so rules are matched on the most normalised of
//! those readings, and a request whose raw path would pick another rule is
//! refused: no reading can reach a route under a weaker policy.

use std::borrow::Cow;

/// `:path` (query and fragment dropped) as the most forgiving upstream
/// reads it: every `%XX` decoded once, `\` taken for `/`, empty and `.`
/// segments dropped, `..` resolved (never above the root; a segment is a
/// dot segment if its part before a `;` is, as Tomcat reads `..;x`). Always
/// starts with `/`; keeps a trailing `/`.
pub fn normalise(raw: &[u8]) -> Cow<'_, [u8]> {
    let raw = without_query(raw);
    // Most paths are normal already: no copy for them.
    match is_normal(raw) {
        true => Cow::Borrowed(raw),
        false => Cow::Owned(rebuild(raw)),
    }
}

/// The normal form of `raw` (no query), built anew.
fn rebuild(raw: &[u8]) -> Vec<u8> {
    let decoded = percent_decode(raw);
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split(|b| *b == b'/' || *b == b'\\') {
        let bare = segment.split(|b| *b == b';').next().unwrap_or_default();
        trailing_slash = true;
        match bare {
            b"" if segment.is_empty() => {}
            b"." => {}
            b".." => {
                segments.pop();
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Whether `normalise` would give `path` (no query) back as it is: rooted,
/// nothing encoded, no `\`, no empty segment but a trailing one, no dot
/// segment.
fn is_normal(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    if path.iter().any(|b| matches!(b, b'%' | b'\\')) {
        return false;
    }
    let mut segments = rest.split(|b| *b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let bare = segment.split(|b| *b == b';').next().unwrap_or_default();
        let last = segments.peek().is_none();
        if matches!(bare, b"." | b"..") || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// `:path` up to its query or fragment, not decoded: what an upstream that
/// normalises nothing routes on.
pub fn without_query(raw: &[u8]) -> &[u8] {
    let end = raw
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(raw.len());
    &raw[..end]
}

/// Whether `path` is `prefix` or lies below it, segment by segment (as
/// Envoy's `path_separated_prefix`): a prefix `/admin` or `/admin/` holds
/// `/admin` and `/admin/x`, never `/administrator`.
pub fn under(path: &[u8], prefix: &[u8]) -> bool {
    let prefix = prefix.strip_suffix(b"/").unwrap_or(prefix);
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with(b"/"),
        None => false,
    }
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(hi), Some(lo)) = (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> String {
        String::from_utf8(normalise(raw.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn a_path_is_borrowed_only_when_it_is_already_normal() {
        // Every path of up to six bytes over the bytes that matter.
        let alphabet = b"/.;a%2\\";
        let mut paths: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = paths.clone();
        for _ in 0..6 {
            frontier = frontier
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |b| {
                        let mut next = p.clone();
                        next.push(*b);
                        next
                    })
                })
                .collect();
            paths.extend(frontier.iter().cloned());
        }
        // Borrowing is never wrong (it may copy a path it need not have,
        // `/%zz` say, which costs only time).
        for path in paths.iter().filter(|p| is_normal(p)) {
            assert_eq!(&rebuild(path), path, "{}", String::from_utf8_lossy(path));
        }
        for common in ["/", "/a", "/a/", "/api/v1/x;y=1", "/a/...b/.c"] {
            assert!(
                matches!(normalise(common.as_bytes()), Cow::Borrowed(_)),
                "{common}"
            );
        }
    }

    #[test]
    fn every_spelling_of_a_path_normalises_to_one() {
        for raw in [
            "/admin/x",
            "//admin/x",
            "/admin//x",
            "/./admin/x",
            "/public/../admin/x",
            "/public/%2e%2e/admin/x",
            "/public/%2E%2E/admin/x",
            "/public/.%2e/admin/x",
            "/admin%2Fx",
            "/admin%2fx",
            "/admin%5Cx",
            "/admin\\x",
            "/public/..%2Fadmin/x",
            "/public/..;/admin/x",
            "/%61dmin/x",
            "/../../admin/x",
            "/admin/x?y=1",
            "/admin/x#frag",
            "admin/x",
        ] {
            assert_eq!(n(raw), "/admin/x", "{raw}");
        }
    }

    #[test]
    fn trailing_slashes_and_the_root_are_kept() {
        assert_eq!(n("/admin/"), "/admin/");
        assert_eq!(n("/admin/x/.."), "/admin/");
        assert_eq!(n(""), "/");
        assert_eq!(n("/"), "/");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("?x"), "/");
    }

    #[test]
    fn what_is_not_an_escape_or_a_dot_segment_stays() {
        assert_eq!(n("/a%zz/%4"), "/a%zz/%4");
        assert_eq!(n("/a/...b/.c/x;y=1"), "/a/...b/.c/x;y=1");
        assert_eq!(&*normalise(b"/a/\xff"), b"/a/\xff");
        assert_eq!(&*normalise(b"/a/%ff"), b"/a/\xff");
    }

    #[test]
    fn prefixes_hold_whole_segments() {
        for prefix in ["/admin", "/admin/"] {
            assert!(under(b"/admin", prefix.as_bytes()), "{prefix}");
            assert!(under(b"/admin/", prefix.as_bytes()), "{prefix}");
            assert!(under(b"/admin/x", prefix.as_bytes()), "{prefix}");
            assert!(!under(b"/administrator", prefix.as_bytes()), "{prefix}");
            assert!(!under(b"/adm", prefix.as_bytes()), "{prefix}");
        }
        assert!(under(b"/", b"/"));
        assert!(under(b"/anything", b"/"));
    }

    #[test]
    fn the_query_and_fragment_end_the_raw_path() {
        assert_eq!(without_query(b"/a/b?c=/d#e"), b"/a/b");
        assert_eq!(without_query(b"/a#b?c"), b"/a");
    }
}
