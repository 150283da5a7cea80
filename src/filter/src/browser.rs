//! Sending a browser to log in: a refused browser on a route that asks for
//! it gets a 302 to the login page, with where it was going in `rd`.

/// True when the client takes HTML, as a browser navigating does.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .map(|part| part.split(';').next().unwrap_or("").trim())
            .any(|media| media.eq_ignore_ascii_case("text/html"))
    })
}

/// The login URL with the original request's URL in `rd`.
pub fn login_location(login_url: &str, scheme: &str, authority: &str, path: &str) -> String {
    let original = format!("{scheme}://{authority}{path}");
    let rd: String = form_urlencoded::byte_serialize(original.as_bytes()).collect();
    let separator = if login_url.contains('?') { '&' } else { '?' };
    format!("{login_url}{separator}rd={rd}")
}

/// A login URL is absolute (http or https) or a path on the same host.
pub fn is_valid_login_url(url: &str) -> bool {
    // `//host/…` would be another host: a local path starts with one `/`.
    let local = url.starts_with('/') && !url.starts_with("//");
    let shape = local || url.starts_with("https://") || url.starts_with("http://");
    shape && !url.contains('#') && url.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_by_accept() {
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )));
        assert!(wants_html(Some("TEXT/HTML; q=0.9")));
        assert!(!wants_html(Some("application/json")));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(None));
    }

    #[test]
    fn the_original_url_rides_in_rd_escaped() {
        assert_eq!(
            login_location("https://login.example.org/login", "https", "app.example.org", "/a/b?x=1&y=2"),
            "https://login.example.org/login?rd=https%3A%2F%2Fapp.example.org%2Fa%2Fb%3Fx%3D1%26y%3D2"
        );
        assert_eq!(
            login_location("/login?client=web", "http", "h:8080", "/"),
            "/login?client=web&rd=http%3A%2F%2Fh%3A8080%2F"
        );
    }

    #[test]
    fn login_urls_are_absolute_or_local_paths() {
        for good in [
            "/login",
            "https://a.example/login?x=1",
            "http://127.0.0.1:8300/login",
        ] {
            assert!(is_valid_login_url(good), "{good}");
        }
        for bad in [
            "login",
            "javascript:alert(1)",
            "https://a/b c",
            "//evil.example/login",
            "https://a/#f",
        ] {
            assert!(!is_valid_login_url(bad), "{bad}");
        }
    }
}
