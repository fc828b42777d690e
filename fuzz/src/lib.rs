//! The bodies of the fuzz targets in `fuzz_targets/`, one `pub fn` each, so
//! that a crash input can be replayed by calling the same function.
//!
//! Each target feeds untrusted bytes to one reader and checks what the reader
//! promises beyond "no panic": refusals in the API's own error shape, values
//! that survive a second check unchanged, secrets that never reach a guest.

use base64::Engine as _;
use baton_parse::credentials::{Credential, credential, guest_headers};
use baton_parse::limits::{ComponentLimits, LimitError};
use baton_parse::manifest::{self, Manifest};
use baton_parse::tokens::{TokenError, TokenKeys, TokenKind, now_secs};
use baton_sdk::{Request, Response, Router};
use http::{HeaderMap, HeaderValue};
use std::path::Path;
use std::sync::OnceLock;

/// `baton.toml` text: a manifest either parses into one whose every handler
/// mount and limit passes the checks the admin API applies, or is refused
/// naming the file.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Manifest::parse(&text, "fuzz.toml", Path::new("/nonexistent")) {
        Ok(m) => {
            assert!(!m.listeners.is_empty());
            for h in &m.handlers {
                assert!(manifest::check_limits(&m.limits_for(h)).is_ok(), "{h:?}");
                if !h.mount.starts_with("/admin") {
                    assert!(manifest::check_mount(&h.mount).is_ok(), "{:?}", h.mount);
                }
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml: "), "{e}"),
    }
}

/// Component bytes through the `[components]` pre-check, under the default
/// limits and under tight ones: what passes tight limits passes the
/// defaults, and bytes the defaults find invalid are never accepted.
pub fn component(data: &[u8]) {
    let tight = ComponentLimits {
        max_bytes: 4096,
        max_nesting: 2,
        max_functions: 8,
        max_types: 8,
        max_imports: 4,
        max_exports: 4,
        max_function_bytes: 64,
    };
    let default = ComponentLimits::default().check(data);
    let small = tight.check(data);
    if small.is_ok() {
        assert_eq!(default, Ok(()), "passed tight limits, not the defaults");
    }
    if let Err(LimitError::Invalid(_)) = default {
        assert!(small.is_err());
    }
    if let Err(e) = small.and(default) {
        assert!(!e.to_string().is_empty());
    }
}

/// The HS256 secret of the fuzzing server's keys.
const SECRET: &[u8; 32] = b"baton-fuzz-secret-0123456789abcd";

/// Token keys as `baton serve` loads them, from a data directory holding
/// [`SECRET`], with the default `[auth]`.
fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("baton-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        std::fs::write(dir.join(baton_parse::tokens::SECRET_FILE), b64).expect("the secret");
        let m = Manifest::parse(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n",
            "fuzz.toml",
            &dir,
        )
        .expect("a minimal manifest");
        let keys = TokenKeys::load(&m, &dir, false).expect("the keys");
        let _ = std::fs::remove_dir_all(&dir);
        keys
    })
}

/// A token string through verification. The first byte picks the form: the
/// bytes as the whole token, or as a header and claims (split at the first
/// newline) signed with the server's own secret, so that the claims reach
/// the JSON reader and the checks after the signature.
pub fn token(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let keys = keys();
    let token = match pick % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        form => {
            let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) if form == 2 => (&rest[..i], &rest[i + 1..]),
                _ => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
            };
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let message = format!("{}.{}", b64.encode(header), b64.encode(claims));
            let key = jsonwebtoken::EncodingKey::from_secret(SECRET);
            let sig = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::HS256,
            )
            .expect("HMAC signs anything");
            format!("{message}.{sig}")
        }
    };
    for kind in [TokenKind::Access, TokenKind::Refresh] {
        match keys.decode(&token, kind) {
            Ok(c) => {
                assert_eq!(c.typ, kind);
                assert_eq!((c.iss.as_str(), c.aud.as_str()), ("baton", "baton"));
                assert!(c.exp.saturating_add(60) > now_secs(), "expired: {c:?}");
            }
            Err(TokenError::WrongKind(k)) => assert_ne!(k, kind),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

/// `X-Authentication` and `Authorization` values (the first byte says which
/// are present; the rest is split at the first newline). Whatever the
/// credential read, a Basic password never reaches the guest's headers.
pub fn credentials(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for (present, name, value) in [
        (pick & 1 != 0, "x-authentication", a),
        (pick & 2 != 0 || pick & 1 == 0, "authorization", b),
    ] {
        // What hyper delivers: a value it could parse.
        if let (true, Ok(v)) = (present, HeaderValue::from_bytes(value)) {
            headers.append(name, v);
        }
    }
    let cred = credential(&headers);
    let shown = guest_headers(&headers);
    assert_eq!(shown.len(), headers.len());
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, rest) = authorization
        .trim()
        .split_once(' ')
        .unwrap_or((authorization, ""));
    let basic = scheme.eq_ignore_ascii_case("basic") && !rest.trim().is_empty();
    if basic || matches!(cred, Ok(Some(Credential::Basic { .. }))) {
        for (k, v) in &shown {
            if k == "authorization" {
                assert_eq!(
                    v, "Basic [redacted]",
                    "a Basic credential reached the guest"
                );
            }
        }
    }
    if let Ok(Some(Credential::Token(t))) = &cred {
        assert!(!t.is_empty() && t.trim() == t);
    }
}

/// Route patterns like the shipped handlers' and one from the input.
fn router(extra: &str) -> Router {
    let ok = |req: &Request| Response::json(200, &req.params);
    Router::new()
        .get("/", ok)
        .get("/jobs", ok)
        .post("/jobs", ok)
        .get("/jobs/{name}", ok)
        .get("/jobs/{name}/nodes", ok)
        .put("/cluster/{name}/hosts/{ip}", ok)
        .delete("/inventory/nodes/{name}", ok)
        .get("/files/{*rest}", ok)
        .route("PATCH", extra, ok)
}

/// A method, a route pattern and a path (lines of the input) through the
/// SDK's router: every request is answered by a route (200), 404 or a 405
/// naming the allowed methods; a captured segment is never empty.
pub fn sdk_router(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let method = lines.next().unwrap_or_default();
    let pattern = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let resp = router(pattern).handle(Request::new(method, path));
    match resp.status {
        200 => {
            let params = resp.body_json();
            let params = params.as_object().expect("the params");
            for (k, v) in params {
                let v = v.as_str().expect("a string");
                assert!(k == "rest" || !v.is_empty() || pattern.contains(&format!("{{*{k}}}")));
            }
        }
        404 => {}
        405 => assert!(resp.header("allow").is_some_and(|a| !a.is_empty())),
        s => panic!("the router answered {s}"),
    }
}

/// `%XX` for every byte outside the unreserved set: what a client sends.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A query string and a body through the SDK's readers: pairs a client
/// encodes come back exactly, a raw query never panics, a body reads as
/// JSON or is refused with a 400; display names and clipped echoes keep
/// their promises.
pub fn sdk_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let raw = Request::new("GET", "/").with_query(&text);
    let pairs = raw.query_pairs();
    assert!(pairs.len() <= text.split('&').count());
    for (k, _) in &pairs {
        assert!(raw.query_param(k).is_some());
    }
    // Round trip: the input's lines as keys and values, encoded.
    let given: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let query: Vec<String> = given
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let back = Request::new("GET", "/")
        .with_query(&query.join("&"))
        .query_pairs();
    let expected: Vec<(String, String)> = given
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(back, expected);

    let req = Request::new("POST", "/").with_body(data.to_vec());
    if let Err(e) = req.json::<serde_json::Value>() {
        assert_eq!(Response::from(e).status, 400);
    }
    let clipped = baton_sdk::http::clip(&text);
    assert!(clipped.len() <= text.len().max(baton_sdk::http::MAX_ECHO_BYTES));
    if baton_sdk::http::display_name_problem(&text).is_none() {
        assert!(!text.chars().any(char::is_control));
        assert!(!text.split(['/', '\\']).any(|s| s == ".."));
    }
}

/// The orchestrator's body and query readers ([`orchestrator::fuzzing`]).
pub fn orchestrator(data: &[u8]) {
    orchestrator::fuzzing::run(data)
}

/// The clusters API's request readers ([`clusters::fuzzing`]).
pub fn clusters(data: &[u8]) {
    clusters::fuzzing::run(data)
}

/// The provisioning API's request readers ([`provisioning::fuzzing`]).
pub fn provisioning(data: &[u8]) {
    provisioning::fuzzing::run(data)
}

/// The PGO API's body readers ([`pgo::fuzzing`]).
pub fn pgo(data: &[u8]) {
    pgo::fuzzing::run(data)
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for replaying inputs without instrumentation.
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("component", component),
    ("token", token),
    ("credentials", credentials),
    ("sdk_router", sdk_router),
    ("sdk_query", sdk_query),
    ("orchestrator", orchestrator),
    ("clusters", clusters),
    ("provisioning", provisioning),
    ("pgo", pgo),
];

#[cfg(test)]
mod tests {
    /// Every committed corpus and regression input, through its target's
    /// body without instrumentation (`cargo test --manifest-path
    /// fuzz/Cargo.toml` from the repository root, where fuzz/.cargo/config.toml
    /// does not apply), so that a crash can be debugged as a plain test.
    #[test]
    fn committed_inputs_replay_natively() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut replayed = 0;
        for (name, target) in super::TARGETS {
            for kind in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(dir.join(kind).join(name)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    eprintln!("{name}: {}", path.display());
                    target(&std::fs::read(&path).unwrap());
                    replayed += 1;
                }
            }
        }
        assert!(replayed >= super::TARGETS.len());
    }
}
