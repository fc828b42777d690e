//! Requests and responses as plain Rust values.

use crate::bindings::baton::api::types as wit;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// The user name (or certificate subject).
    pub subject: String,
    /// The caller's roles.
    pub roles: Vec<String>,
    /// The namespaces the caller may act in; `*` means all.
    pub namespaces: Vec<String>,
}

impl Principal {
    /// Whether the caller may act in `namespace`.
    ///
    /// ```
    /// let p = baton_sdk::Principal { subject: "ann".into(), roles: vec![], namespaces: vec!["prod".into()] };
    /// assert!(p.in_namespace("prod"));
    /// assert!(!p.in_namespace("staging"));
    /// ```
    pub fn in_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

impl From<wit::Principal> for Principal {
    fn from(p: wit::Principal) -> Self {
        Principal {
            subject: p.subject,
            roles: p.roles,
            namespaces: p.namespaces,
        }
    }
}

impl From<&Principal> for wit::Principal {
    fn from(p: &Principal) -> Self {
        wit::Principal {
            subject: p.subject.clone(),
            roles: p.roles.clone(),
            namespaces: p.namespaces.clone(),
        }
    }
}

/// One HTTP request routed to this handler.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// The path below the mount, starting with `/`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The prefix this handler is mounted at.
    pub mount: String,
    /// `scheme://host:port` + mount: the base for absolute links.
    pub base_url: String,
    /// The client's `ip:port`.
    pub remote_addr: String,
    /// The host's id for this request.
    pub request_id: String,
    /// The authenticated caller, if any.
    pub principal: Option<Principal>,
    /// Path parameters filled in by the [`Router`](crate::Router).
    pub params: BTreeMap<String, String>,
}

/// Why `name` cannot be a display name (of a group, a batch…), if it
/// cannot: control characters (NUL included), bidirectional and other
/// invisible format characters (which make a name read as another), or a
/// `..` path segment. Spaces and any visible Unicode are fine.
///
/// ```
/// use baton_sdk::http::display_name_problem;
/// assert_eq!(display_name_problem("Web servers (prod)"), None);
/// assert!(display_name_problem("evil\u{202e}gpj.exe").is_some());
/// assert!(display_name_problem("a\0b").is_some());
/// assert!(display_name_problem("../etc").is_some());
/// ```
pub fn display_name_problem(name: &str) -> Option<&'static str> {
    let invisible = |c: char| {
        matches!(c,
            '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if name.chars().any(invisible) {
        Some("must not contain invisible or bidirectional format characters")
    } else if name.split(['/', '\\']).any(|seg| seg == "..") {
        Some("must not contain a `..` path segment")
    } else {
        None
    }
}

/// Longest string, in bytes, that an error reply built with [`clip`]
/// carries: a bad value is named, not echoed back whole.
pub const MAX_ECHO_BYTES: usize = 512;

/// `text` if it fits in [`MAX_ECHO_BYTES`]; otherwise its start (cut at a
/// character boundary) and how long it was.
///
/// ```
/// use baton_sdk::http::clip;
/// assert_eq!(clip("short"), "short");
/// let long = "x".repeat(900_000);
/// let c = clip(&long);
/// assert!(c.len() < 600 && c.ends_with("(900000 bytes)"));
/// ```
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_ECHO_BYTES {
        return text.into();
    }
    let mut end = MAX_ECHO_BYTES - 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len()).into()
}

/// `value` with every string in it (keys too) passed through [`clip`].
///
/// ```
/// let v = baton_sdk::http::clip_json(serde_json::json!({"value": "y".repeat(5000)}));
/// assert!(v["value"].as_str().unwrap().len() < 600);
/// ```
pub fn clip_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > MAX_ECHO_BYTES => Value::String(clip(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(clip_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clip(&k).into_owned(), clip_json(v)))
                .collect(),
        ),
        other => other,
    }
}

/// How the type of a JSON value reads in an error message about a field:
/// `null`, `a boolean`, `a number`, `a string`, `an array` or `an object`.
///
/// ```
/// use baton_sdk::http::json_type_name;
/// let v = serde_json::json!({"cpus": "four"});
/// assert_eq!(
///     format!("`cpus` must be a number, not {}", json_type_name(&v["cpus"])),
///     "`cpus` must be a number, not a string"
/// );
/// ```
pub fn json_type_name(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why a request body could not be read as the type asked for; it converts
/// into a 400 `{"error": "<message>"}`, so `req.json::<T>()?` is enough in a
/// route returning `Result<Response, Response>`.
///
/// ```
/// use baton_sdk::{Request, Response, Router};
/// #[derive(serde::Deserialize)]
/// struct Node { name: String }
/// let r = Router::new().post("/nodes", |req| {
///     let node: Node = req.json()?;
///     Ok::<_, Response>(Response::text(201, &node.name))
/// });
/// let resp = r.handle(Request::new("POST", "/nodes").with_body(r#"{"nam": "x"}"#));
/// assert_eq!(resp.status, 400);
/// assert!(resp.body_json()["error"].as_str().unwrap().contains("unknown field `nam`") ||
///         resp.body_json()["error"].as_str().unwrap().contains("missing field `name`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// One line naming the field at fault where serde can tell,
    /// e.g. ``missing field `environment` ``.
    pub message: String,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BodyError {}

impl From<BodyError> for Response {
    /// A 400 `{"error": "<message>"}`.
    fn from(e: BodyError) -> Self {
        Response::error(400, &e.message)
    }
}

impl Request {
    /// A request with the given method and path and nothing else; for tests.
    ///
    /// ```
    /// let req = baton_sdk::Request::new("GET", "/jobs/81");
    /// assert_eq!(req.method, "GET");
    /// assert_eq!(req.path, "/jobs/81");
    /// ```
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            ..Default::default()
        }
    }

    /// This request with `body` as its body; for tests.
    ///
    /// ```
    /// let resp = baton_sdk::Response::new(200).with_body("raw bytes");
    /// assert_eq!(resp.body, b"raw bytes");
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// This request with `query` as its query string; for tests.
    ///
    /// ```
    /// let req = baton_sdk::Request::new("GET", "/jobs").with_query("limit=10");
    /// assert_eq!(req.query_param("limit").as_deref(), Some("10"));
    /// ```
    pub fn with_query(mut self, query: &str) -> Self {
        self.query = query.to_string();
        self
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// let req = baton_sdk::Request {
    ///     headers: vec![("content-type".into(), "application/json".into())],
    ///     ..baton_sdk::Request::new("GET", "/")
    /// };
    /// assert_eq!(req.header("Content-Type"), Some("application/json"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The path parameter `name` captured by the router (`{name}` in the route).
    ///
    /// ```
    /// use baton_sdk::{Request, Response, Router};
    /// let resp = Router::new()
    ///     .get("/jobs/{name}", |req| Response::text(200, req.param("name").unwrap_or("")))
    ///     .handle(Request::new("GET", "/jobs/81"));
    /// assert_eq!(resp.body, b"81");
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The first value of query parameter `name`, percent-decoded.
    ///
    /// ```
    /// let req = baton_sdk::Request::new("GET", "/jobs").with_query("task=package%20install&limit=5");
    /// assert_eq!(req.query_param("task").as_deref(), Some("package install"));
    /// assert_eq!(req.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Every query parameter in order, percent-decoded (`+` is a space).
    ///
    /// ```
    /// let req = baton_sdk::Request::new("GET", "/").with_query("a=1&b=two+words");
    /// assert_eq!(req.query_pairs(), vec![("a".into(), "1".into()), ("b".into(), "two words".into())]);
    /// ```
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
                None => (percent_decode(pair, true), String::new()),
            })
            .collect()
    }

    /// The body decoded from JSON. On failure the error names the field at
    /// fault and turns into a 400 with `?` in a handler returning
    /// `Result<Response, Response>`.
    ///
    /// ```
    /// #[derive(serde::Deserialize, Debug)]
    /// struct Deploy { environment: String }
    ///
    /// let ok = baton_sdk::Request::new("POST", "/").with_body(r#"{"environment": "production"}"#);
    /// assert_eq!(ok.json::<Deploy>().unwrap().environment, "production");
    /// let bad = baton_sdk::Request::new("POST", "/").with_body(r#"{}"#);
    /// let err = bad.json::<Deploy>().unwrap_err();
    /// assert!(err.message.contains("missing field `environment`"));
    /// // In a route returning `Result<Response, Response>`, `req.json::<Deploy>()?` answers that 400.
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, BodyError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(BodyError {
                message: "request body is empty; expected a JSON document".into(),
            });
        }
        serde_json::from_slice(&self.body).map_err(|e| BodyError {
            message: describe_json_error(&e),
        })
    }
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("request body is not valid JSON: {e}"),
        Category::Data => format!("invalid request body: {e}"),
        Category::Io => format!("request body could not be read: {e}"),
    }
}

/// `s` with `%XX` escapes decoded (malformed ones kept verbatim) and, in a
/// query (`plus_is_space`), `+` read as a space.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    if !(s.contains('%') || plus_is_space && s.contains('+')) {
        return s.to_string();
    }
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    ///
    /// ```
    /// let resp = baton_sdk::Response::new(204);
    /// assert_eq!(resp.status, 204);
    /// assert!(resp.body.is_empty());
    /// ```
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `value` serialised as JSON, with `content-type: application/json`.
    ///
    /// ```
    /// let resp = baton_sdk::Response::json(202, &serde_json::json!({"job": {"name": "81"}}));
    /// assert_eq!(resp.header("content-type"), Some("application/json"));
    /// assert_eq!(resp.body_json()["job"]["name"], "81");
    /// ```
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Response::error(500, &format!("response is not serialisable: {e}")),
        }
    }

    /// `{"error": message}` with `status`: the plainest JSON error shape.
    ///
    /// ```
    /// let resp = baton_sdk::Response::error(404, "no such job");
    /// assert_eq!(resp.status, 404);
    /// assert_eq!(resp.body_json()["error"], "no such job");
    /// ```
    pub fn error(status: u16, message: &str) -> Self {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// Plain text with `content-type: text/plain`.
    ///
    /// ```
    /// let resp = baton_sdk::Response::text(200, "ok");
    /// assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
    /// assert_eq!(resp.body, b"ok");
    /// ```
    pub fn text(status: u16, text: &str) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// This response with an extra header.
    ///
    /// ```
    /// let resp = baton_sdk::Response::new(201).with_header("location", "/jobs/81");
    /// assert_eq!(resp.header("Location"), Some("/jobs/81"));
    /// ```
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// This response with `body` as its body.
    ///
    /// ```
    /// let resp = baton_sdk::Response::new(200).with_body("raw bytes");
    /// assert_eq!(resp.body, b"raw bytes");
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    ///
    /// ```
    /// let resp = baton_sdk::Response::new(200).with_header("x-total", "3");
    /// assert_eq!(resp.header("X-Total"), Some("3"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The body decoded from JSON; for tests.
    ///
    /// ```
    /// let resp = baton_sdk::Response::json(200, &serde_json::json!({"items": []}));
    /// assert_eq!(resp.body_json()["items"], serde_json::json!([]));
    /// ```
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Lets routes return `Result<Response, E>` for any error `E` that renders as a response.
impl<E: Into<Response>> From<Result<Response, E>> for Response {
    fn from(r: Result<Response, E>) -> Self {
        r.unwrap_or_else(Into::into)
    }
}

impl From<wit::Request> for Request {
    fn from(r: wit::Request) -> Self {
        Request {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
            mount: r.mount,
            base_url: r.base_url,
            remote_addr: r.remote_addr,
            request_id: r.request_id,
            principal: r.principal.map(Principal::from),
            params: BTreeMap::new(),
        }
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        wit::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// The first value of header `name` (any case) in `headers`.
pub(crate) fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Deploy {
        environment: String,
        concurrency: Option<u32>,
    }

    #[test]
    fn json_missing_field_is_named() {
        let err = Request::new("POST", "/")
            .with_body(r#"{"concurrency": 2}"#)
            .json::<Deploy>()
            .unwrap_err();
        assert!(err.message.contains("missing field `environment`"), "{err}");
    }

    #[test]
    fn json_wrong_type_is_named() {
        let err = Request::new("POST", "/")
            .with_body(r#"{"environment": 7}"#)
            .json::<Deploy>()
            .unwrap_err();
        assert!(err.message.contains("invalid type: integer `7`"), "{err}");
    }

    #[test]
    fn json_unknown_field_is_named() {
        let err = Request::new("POST", "/")
            .with_body(r#"{"environment": "x", "bogus": 1}"#)
            .json::<Deploy>()
            .unwrap_err();
        assert!(err.message.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn json_garbage_and_empty_bodies_are_400() {
        let garbage = Request::new("POST", "/").with_body("{not json");
        let resp: Response = garbage.json::<Deploy>().unwrap_err().into();
        assert_eq!(resp.status, 400);
        assert!(
            resp.body_json()["error"]
                .as_str()
                .unwrap()
                .contains("not valid JSON")
        );
        let empty = Request::new("POST", "/").json::<Deploy>().unwrap_err();
        assert!(empty.message.contains("empty"));
    }

    #[test]
    fn query_params_are_decoded() {
        let req =
            Request::new("GET", "/").with_query("task=package%3A%3Ainstall&x=a+b&flag&limit=5");
        assert_eq!(req.query_param("task").as_deref(), Some("package::install"));
        assert_eq!(req.query_param("x").as_deref(), Some("a b"));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("limit").as_deref(), Some("5"));
        assert_eq!(req.query_param("absent"), None);
    }

    #[test]
    fn malformed_percent_escapes_are_kept_verbatim() {
        let req = Request::new("GET", "/").with_query("a=%zz&b=%4&c=100%&d=%a\u{e9}");
        assert_eq!(req.query_param("a").as_deref(), Some("%zz"));
        assert_eq!(req.query_param("b").as_deref(), Some("%4"));
        assert_eq!(req.query_param("c").as_deref(), Some("100%"));
        assert_eq!(req.query_param("d").as_deref(), Some("%a\u{e9}"));
    }

    #[test]
    fn response_json_sets_content_type() {
        let r = Response::json(201, &serde_json::json!({"a": 1}));
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body_json()["a"], 1);
    }
}
