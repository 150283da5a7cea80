//! Finding the session cookie among a request's cookies, and the `Cookie`
//! header the upstream gets without it.

/// The value of cookie `name`, and the request's other cookies as one
/// `Cookie` header (`None` when none are left). `headers` are the values
/// of every `Cookie` header, as HTTP/2 may split them.
pub fn take<'a>(headers: &[&'a str], name: &str) -> (Option<&'a str>, Option<String>) {
    let mut found = None;
    let mut others = Vec::new();
    for pair in headers
        .iter()
        .flat_map(|h| h.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some((n, value)) if n.trim() == name => {
                found.get_or_insert(value.trim());
            }
            _ => others.push(pair),
        }
    }
    let rest = (!others.is_empty()).then(|| others.join("; "));
    (found, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_taken_and_the_others_kept() {
        let (value, rest) = take(
            &["a=1; portcullis_session=v1.xyz; b=2"],
            "portcullis_session",
        );
        assert_eq!(value, Some("v1.xyz"));
        assert_eq!(rest.as_deref(), Some("a=1; b=2"));
    }

    #[test]
    fn split_headers_and_a_lone_session_cookie() {
        let (value, rest) = take(&["a=1", "portcullis_session=v"], "portcullis_session");
        assert_eq!((value, rest.as_deref()), (Some("v"), Some("a=1")));
        let (value, rest) = take(&["portcullis_session=v"], "portcullis_session");
        assert_eq!((value, rest), (Some("v"), None));
    }

    #[test]
    fn other_cookies_alone_pass_untouched_and_similar_names_do_not_match() {
        let (value, rest) = take(&["portcullis_session_old=x; id=7"], "portcullis_session");
        assert_eq!(value, None);
        assert_eq!(rest.as_deref(), Some("portcullis_session_old=x; id=7"));
        assert_eq!(take(&[], "portcullis_session"), (None, None));
    }

    #[test]
    fn every_copy_of_the_session_cookie_is_removed_and_the_first_used() {
        let (value, rest) = take(
            &["portcullis_session=first; x=1; portcullis_session=second"],
            "portcullis_session",
        );
        assert_eq!(value, Some("first"));
        assert_eq!(rest.as_deref(), Some("x=1"));
    }
}
