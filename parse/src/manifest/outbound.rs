//! `[handler.capabilities] http`: where a handler's outbound HTTP may go.
//!
//! A grant is `scheme://host[:port][/path-prefix]`: `http` or `https`; a
//! DNS name (a leading `*.` matches any name below it, not the name
//! itself), an IPv4 address or a bracketed IPv6 address; a port (default:
//! the scheme's); a path prefix, matched on whole segments. A request is
//! allowed when a grant allows its scheme, host, port and path; then each
//! address its name resolves to must be a public one, unless the grant names
//! that very address (so `https://*.example` never reaches 127.0.0.1 or
//! 10.0.0.5 through a DNS answer, but `http://127.0.0.1:8080` may).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of `http = [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// `https` or `http`.
    pub https: bool,
    host: HostPattern,
    /// The port; the scheme's when the grant names none.
    pub port: u16,
    /// `/` or a prefix starting with `/`.
    path_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// A DNS name, lower case, without a trailing dot.
    Name(String),
    /// `*.suffix`: any name ending in `.suffix`.
    Below(String),
    /// An address literal.
    Address(IpAddr),
}

/// Where an outbound request goes, as the host read it from the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Whether the scheme is `https` (only `http` and `https` exist here).
    pub https: bool,
    /// The host as given: a name, an IPv4 address or `[v6]`.
    pub host: &'a str,
    /// The port, the scheme's default when none was given.
    pub port: u16,
    /// The path, without the query.
    pub path: &'a str,
}

/// The port a url of this scheme means when it names none.
pub fn default_port(https: bool) -> u16 {
    if https { 443 } else { 80 }
}

impl HttpGrant {
    /// Reads one grant; on error, why it is not one.
    pub fn parse(text: &str) -> Result<HttpGrant, String> {
        let bad = |why: &str| format!("`{text}` is not an http grant: {why}");
        let (https, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("it must start with https:// or http://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad("credentials do not belong in a grant"));
        }
        if path.contains(['?', '#', '%', '\\']) || has_dot_segment(path) {
            return Err(bad(
                "the path prefix must be plain segments (no query, `%`, `.` or `..`)",
            ));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| bad("the host[:port] is not one"))?;
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            let suffix =
                normal_name(suffix).ok_or_else(|| bad("the name after `*.` is not a DNS name"))?;
            HostPattern::Below(suffix)
        } else if let Some(ip) = parse_address(host) {
            HostPattern::Address(ip)
        } else {
            HostPattern::Name(
                normal_name(host).ok_or_else(|| bad("the host is not a DNS name or an address"))?,
            )
        };
        Ok(HttpGrant {
            https,
            host,
            port: port.unwrap_or(default_port(https)),
            path_prefix: path.to_string(),
        })
    }

    /// Whether this grant allows `target`'s scheme, host, port and path.
    pub fn allows(&self, target: &Target<'_>) -> bool {
        if self.https != target.https || self.port != target.port {
            return false;
        }
        if has_dot_segment(target.path) || target.path.contains('\\') {
            return false;
        }
        let host_ok = match &self.host {
            HostPattern::Address(ip) => parse_address(target.host) == Some(*ip),
            HostPattern::Name(n) => normal_name(target.host).as_deref() == Some(n.as_str()),
            HostPattern::Below(suffix) => normal_name(target.host).is_some_and(|h| {
                h.len() > suffix.len() + 1
                    && h.ends_with(suffix.as_str())
                    && h[..h.len() - suffix.len()].ends_with('.')
            }),
        };
        host_ok && path_under(&self.path_prefix, target.path)
    }

    /// Whether a connection for a request this grant allowed may go to
    /// `ip`: any public address, and a non-public one only when the grant
    /// names it.
    pub fn may_connect(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.host == HostPattern::Address(canonical(ip))
    }
}

/// Whether `path` lies under `prefix` on a segment boundary.
fn path_under(prefix: &str, path: &str) -> bool {
    if prefix == "/" || path == prefix {
        return true;
    }
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether a path has a `.` or `..` segment, plain or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".." || seg.to_ascii_lowercase().contains("%2f")
    })
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (h, rest) = authority.split_at(end + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|p| *p != 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// A DNS name in lower case without its trailing dot, when it is one.
fn normal_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && parse_address(&name).is_none();
    ok.then_some(name)
}

/// An IPv4 address or a bracketed IPv6 address.
pub fn parse_address(host: &str) -> Option<IpAddr> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| canonical(IpAddr::V6(ip)));
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local, shared (CGNAT), unique-local, unspecified, documentation,
/// benchmarking, multicast or broadcast.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(https: bool, host: &'a str, port: u16, path: &'a str) -> Target<'a> {
        Target {
            https,
            host,
            port,
            path,
        }
    }

    #[test]
    fn grants_allow_their_scheme_host_port_and_path_prefix_only() {
        let g = HttpGrant::parse("https://puppetdb.example:8081").unwrap();
        assert!(g.allows(&target(true, "puppetdb.example", 8081, "/pdb/query/v4")));
        assert!(g.allows(&target(true, "PuppetDB.Example.", 8081, "/")));
        assert!(
            !g.allows(&target(false, "puppetdb.example", 8081, "/")),
            "scheme"
        );
        assert!(
            !g.allows(&target(true, "puppetdb.example", 443, "/")),
            "port"
        );
        assert!(
            !g.allows(&target(true, "evil.puppetdb.example", 8081, "/")),
            "host"
        );
        assert!(
            !g.allows(&target(true, "puppetdb.example.evil", 8081, "/")),
            "host"
        );

        let k = HttpGrant::parse("https://*.k8s.internal/api/").unwrap();
        assert_eq!(k.port, 443);
        assert!(k.allows(&target(true, "a.k8s.internal", 443, "/api/v1/pods")));
        assert!(k.allows(&target(true, "x.y.k8s.internal", 443, "/api/")));
        assert!(
            !k.allows(&target(true, "k8s.internal", 443, "/api/v1")),
            "the name itself"
        );
        assert!(
            !k.allows(&target(true, "ak8s.internal", 443, "/api/v1")),
            "a label boundary"
        );
        assert!(
            !k.allows(&target(true, "a.k8s.internal", 443, "/apis/v1")),
            "path"
        );
        assert!(
            !k.allows(&target(true, "a.k8s.internal", 443, "/api")),
            "path"
        );
        assert!(
            !k.allows(&target(true, "a.k8s.internal", 443, "/api/../secrets")),
            "dot segments"
        );
        assert!(
            !k.allows(&target(true, "a.k8s.internal", 443, "/api/%2e%2e/secrets")),
            "encoded dots"
        );
        assert!(
            !k.allows(&target(true, "a.k8s.internal", 443, "/api/x%2F..%2Fy")),
            "encoded slash"
        );

        let p = HttpGrant::parse("http://10.0.0.5:8080/v1").unwrap();
        assert!(p.allows(&target(false, "10.0.0.5", 8080, "/v1")));
        assert!(p.allows(&target(false, "10.0.0.5", 8080, "/v1/x")));
        assert!(!p.allows(&target(false, "10.0.0.5", 8080, "/v10")));

        let v6 = HttpGrant::parse("http://[::1]:9000").unwrap();
        assert!(v6.allows(&target(false, "[::1]", 9000, "/")));
        assert!(!v6.allows(&target(false, "[::2]", 9000, "/")));
    }

    #[test]
    fn non_public_addresses_are_reached_only_when_the_grant_names_them() {
        let name = HttpGrant::parse("https://*.example.com").unwrap();
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private}");
            assert!(!name.may_connect(ip), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public}");
            assert!(name.may_connect(ip), "{public}");
        }
        let local = HttpGrant::parse("http://127.0.0.1:8080").unwrap();
        assert!(local.may_connect("127.0.0.1".parse().unwrap()));
        assert!(local.may_connect("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!local.may_connect("127.0.0.2".parse().unwrap()));
        let localhost = HttpGrant::parse("http://localhost:8080").unwrap();
        assert!(
            !localhost.may_connect("127.0.0.1".parse().unwrap()),
            "a name is not an address"
        );
    }

    #[test]
    fn things_that_are_not_grants_are_refused_saying_why() {
        for bad in [
            "puppetdb.example",
            "ftp://x",
            "https://",
            "https://user:pw@x",
            "https://x:0",
            "https://x:65536",
            "https://x:8a",
            "https://*.",
            "https://a.*.b",
            "https://x/a/../b",
            "https://x/a?b",
            "https://x/%2e",
            "https://[::1",
            "https://-x",
        ] {
            let err = HttpGrant::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
