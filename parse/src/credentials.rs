//! The credential a request carries, read from its headers, and the
//! headers a guest is shown (Basic passwords redacted): pure functions of
//! the header map, so that they can be fuzzed.

use base64::Engine as _;
use http::HeaderMap;
use http::header;

/// A credential taken from a request.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A JWT from `X-Authentication` or `Authorization: Bearer`.
    Token(String),
    /// `Authorization: Basic`.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(..)"),
            Credential::Basic { user, .. } => write!(f, "Basic({user}, ..)"),
        }
    }
}

/// The credential a request carries: `X-Authentication: <token>`, then
/// `Authorization: Bearer <token>` or `Basic <base64(user:pass)>`.
/// `Ok(None)` when there is none; `Err` with the reason when it is garbage.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential>, String> {
    if let Some(v) = headers.get("x-authentication") {
        let token = v
            .to_str()
            .map_err(|_| "the X-Authentication header is not text".to_string())?
            .trim();
        if token.is_empty() {
            return Err("the X-Authentication header is empty".into());
        }
        return Ok(Some(Credential::Token(token.to_string())));
    }
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| "the Authorization header is not text".to_string())?
        .trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(Credential::Token(rest.to_string())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("the Basic credentials are not base64 of `user:password`")?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or("the Basic credentials are not base64 of `user:password`")?;
        return Ok(Some(Credential::Basic {
            user: user.to_string(),
            password: password.to_string(),
        }));
    }
    Err("the Authorization header must be `Bearer <token>` or `Basic <credentials>`".into())
}

/// Whether an `Authorization` value is of the Basic scheme, however it is
/// spaced: [`credential`] trims the value before it reads the scheme, so a
/// leading space (which HTTP/2 delivers as sent) still authenticates.
fn is_basic(value: &str) -> bool {
    let v = value.trim_start();
    v.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("basic"))
        && !v[5..].starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// The request headers as the guest sees them: Basic passwords are redacted.
pub fn guest_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let value = match v.to_str() {
                Ok(visible_ascii) => visible_ascii.to_string(),
                Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            };
            let redact = k == header::AUTHORIZATION && is_basic(&value);
            let value = if redact {
                "Basic [redacted]".to_string()
            } else {
                value
            };
            (k.as_str().to_string(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn every_header_form_is_read() {
        assert_eq!(
            credential(&headers(&[("x-authentication", b"abc")])).unwrap(),
            Some(Credential::Token("abc".into()))
        );
        assert_eq!(
            credential(&headers(&[("authorization", b"bearer xyz")])).unwrap(),
            Some(Credential::Token("xyz".into()))
        );
        assert_eq!(
            credential(&headers(&[("authorization", b"Basic YW5uOnB3OmQ=")])).unwrap(),
            Some(Credential::Basic {
                user: "ann".into(),
                password: "pw:d".into()
            })
        );
        assert_eq!(credential(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn garbage_is_explained() {
        for bad in [
            ("authorization", &b"Basic !!!"[..]),
            ("authorization", b"Basic bm9jb2xvbg=="),
            ("authorization", b"Digest x"),
            ("authorization", b"Bearer"),
            ("x-authentication", b"  "),
            ("x-authentication", b"\xff\xfe"),
        ] {
            assert!(credential(&headers(&[bad])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn basic_passwords_never_reach_the_guest_however_spaced() {
        // Found by the `credentials` fuzz target: a leading space
        // authenticated as Basic and reached the guest unredacted.
        for value in [
            &b" Basic YW5uOnB3"[..],
            b"\tbasic  YW5uOnB3",
            b"BASIC\tYW5uOnB3",
        ] {
            let h = headers(&[("authorization", value)]);
            let g = guest_headers(&h);
            assert_eq!(
                g,
                [("authorization".into(), "Basic [redacted]".into())],
                "{value:?}"
            );
        }
        assert!(matches!(
            credential(&headers(&[("authorization", b" Basic YW5uOnB3")])),
            Ok(Some(Credential::Basic { .. }))
        ));
        let bearer = guest_headers(&headers(&[("authorization", b"Bearer basic")]));
        assert_eq!(bearer[0].1, "Bearer basic");
    }

    #[test]
    fn basic_passwords_never_reach_the_guest() {
        let h = headers(&[("authorization", b"Basic YW5uOnB3"), ("x-a", b"1")]);
        let g = guest_headers(&h);
        assert!(g.contains(&("authorization".into(), "Basic [redacted]".into())));
        assert!(g.contains(&("x-a".into(), "1".into())));
    }
}
