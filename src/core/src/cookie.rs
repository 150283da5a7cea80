//! Finding the session cookie among a request's cookies, and the `Cookie`
//! header the upstream gets without it.
//!
//! This works on bytes, not text: a cookie another application on the
//! domain set with a byte that is not UTF-8 must not hide the session
//! cookie beside it. Pairs are split on `;` alone, whatever quotes they
//! hold, so no quoting can join the session cookie to a neighbour: every
//! parser an upstream might use splits at least there.

/// A request's cookies, split around one cookie name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken<'a> {
    /// Every value the cookie had, in the order sent (browsers send the
    /// cookie with the most specific path first), without any surrounding
    /// double quotes.
    pub values: Vec<&'a [u8]>,
    /// The other cookies as one `Cookie` header value, byte for byte as
    /// they came; `None` when none are left.
    pub rest: Option<Vec<u8>>,
}

/// Splits `headers`, the values of every `Cookie` header (HTTP/1.1 clients
/// may send several), around cookie `name`. A name matches after the
/// whitespace and double quotes around it are removed, so no spacing or
/// quoting slips the cookie past.
pub fn take<'a>(headers: &[&'a [u8]], name: &str) -> Taken<'a> {
    let mut taken = Taken::default();
    let mut others: Vec<&[u8]> = Vec::new();
    for pair in headers
        .iter()
        .flat_map(|h| h.split(|b| *b == b';'))
        .map(|p| trim(p, is_space))
        .filter(|p| !p.is_empty())
    {
        let (pair_name, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], Some(&pair[at + 1..])),
            None => (pair, None),
        };
        match value {
            Some(value) if trim(pair_name, |b| is_space(b) || b == b'"') == name.as_bytes() => {
                taken.values.push(unquote(trim(value, is_space)));
            }
            _ => others.push(pair),
        }
    }
    taken.rest = (!others.is_empty()).then(|| others.join(&b"; "[..]));
    taken
}

/// Whitespace around a pair, as the parsers upstreams use skip it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

fn trim(bytes: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|b| !strip(*b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !strip(*b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// RFC 6265 allows a cookie value in double quotes.
fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "portcullis_session";

    fn values<'a>(taken: &Taken<'a>) -> Vec<&'a [u8]> {
        taken.values.clone()
    }

    #[test]
    fn the_session_cookie_is_taken_and_the_others_kept() {
        let taken = take(&[b"a=1; portcullis_session=v1.xyz; b=2"], NAME);
        assert_eq!(values(&taken), vec![&b"v1.xyz"[..]]);
        assert_eq!(taken.rest.as_deref(), Some(&b"a=1; b=2"[..]));
    }

    #[test]
    fn split_headers_and_a_lone_session_cookie() {
        let taken = take(&[b"a=1", b"portcullis_session=v"], NAME);
        assert_eq!(values(&taken), vec![&b"v"[..]]);
        assert_eq!(taken.rest.as_deref(), Some(&b"a=1"[..]));
        let taken = take(&[b"portcullis_session=v"], NAME);
        assert_eq!((values(&taken), taken.rest), (vec![&b"v"[..]], None));
    }

    #[test]
    fn other_cookies_alone_pass_untouched_and_similar_names_do_not_match() {
        let taken = take(
            &[b"portcullis_session_old=x; id=7; portcullis_session"],
            NAME,
        );
        assert!(taken.values.is_empty());
        assert_eq!(
            taken.rest.as_deref(),
            Some(&b"portcullis_session_old=x; id=7; portcullis_session"[..])
        );
        assert_eq!(take(&[], NAME), Taken::default());
    }

    #[test]
    fn every_copy_of_the_session_cookie_is_removed_in_the_order_sent() {
        let taken = take(
            &[
                b"portcullis_session=first; x=1",
                b"portcullis_session=second",
            ],
            NAME,
        );
        assert_eq!(values(&taken), vec![&b"first"[..], &b"second"[..]]);
        assert_eq!(taken.rest.as_deref(), Some(&b"x=1"[..]));
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_hide_the_session_cookie() {
        let taken = take(&[b"evil=\xff\xfe; portcullis_session=v; ok=\xc3"], NAME);
        assert_eq!(values(&taken), vec![&b"v"[..]]);
        assert_eq!(taken.rest.as_deref(), Some(&b"evil=\xff\xfe; ok=\xc3"[..]));
    }

    #[test]
    fn no_spacing_or_quoting_slips_the_session_cookie_past() {
        for header in [
            &b"portcullis_session =v"[..],
            b" \tportcullis_session= v ;a=1",
            b"portcullis_session=\"v\"",
            b"\"portcullis_session\"=v",
            b"a=\"x; portcullis_session=v; b=y\"",
            b";;portcullis_session=v;;",
            b"a=1;portcullis_session=v",
        ] {
            let taken = take(&[header], NAME);
            assert_eq!(
                values(&taken),
                vec![&b"v"[..]],
                "{:?}",
                String::from_utf8_lossy(header)
            );
            let rest = taken.rest.unwrap_or_default();
            assert!(
                !rest.windows(NAME.len()).any(|w| w == NAME.as_bytes()),
                "{:?} left {:?}",
                String::from_utf8_lossy(header),
                String::from_utf8_lossy(&rest)
            );
        }
    }
}
