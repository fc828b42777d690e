//! The base of the absolute URLs replies carry: a listener's configured
//! `public_url`, or a request's `Host` only when it is a plain authority,
//! so that a client cannot put markup, paths or credentials into the links
//! the server hands out.

/// Whether `host` is a plain `host[:port]`: a DNS name or IPv4 address of
/// letters, digits, `-`, `.` and `_` (at most 253 bytes), or a bracketed
/// IPv6 address, with an optional port of 1-5 digits.
pub fn is_authority(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let v6_ok = !v6.is_empty()
            && v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !v6_ok {
            return false;
        }
        match after {
            "" => return true,
            a => match a.strip_prefix(':') {
                Some(p) => ("v6", p),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, p),
            None => (host, "0"),
        }
    };
    let port_ok = (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65_535);
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    port_ok && name_ok
}

/// Whether `url` can be a listener's `public_url`: `http://` or `https://`
/// and an authority (see [`is_authority`]), with at most a trailing `/`.
pub fn is_valid(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| is_authority(r.strip_suffix('/').unwrap_or(r)))
}

/// `public_url` without its trailing `/`, ready to be joined with a mount.
pub fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_authorities_pass_and_anything_else_does_not() {
        for ok in [
            "baton.example.com",
            "baton.example.com:8143",
            "127.0.0.1:8143",
            "[::1]:8143",
            "[::1]",
            "my_host",
        ] {
            assert!(is_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example/\"><script>",
            "user@host",
            "host:99999",
            "host:",
            "host:80:80",
            "a b",
            "[::1",
            "[zz]:1",
            "host\r\nX-Injected: 1",
        ] {
            assert!(!is_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn public_urls_are_a_scheme_and_an_authority() {
        assert!(is_valid("https://baton.example.com:8143"));
        assert!(is_valid("http://10.0.0.1/"));
        assert!(!is_valid("ftp://x"));
        assert!(!is_valid("https://x/orchestrator"));
        assert!(!is_valid("https://u:p@x"));
        assert_eq!(base("https://x/"), "https://x");
    }
}
