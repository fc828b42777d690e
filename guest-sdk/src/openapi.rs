//! Serving a handler's OpenAPI document and checking it against its router.
//!
//! A handler keeps its document as a JSON file with paths relative to its
//! mount and no `servers`; [`serve`] fills `servers` in with the request's
//! base URL, so the same document is right wherever the handler is mounted
//! and behind whatever `public_url` the listener has. [`covers`] is for a
//! handler's own tests: every route is documented and every documented
//! operation is routed.

use crate::http::{Request, Response};
use crate::router::Router;
use std::collections::BTreeSet;

/// The HTTP methods an OpenAPI path item can hold operations for.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `document` (OpenAPI JSON) as a 200 reply, with `servers` set to the
/// request's base URL. A document that is not a JSON object is the
/// handler's bug and answers 500 saying so.
///
/// ```
/// use baton_sdk::{Request, openapi};
/// let mut req = Request::new("GET", "/openapi.json");
/// req.base_url = "https://127.0.0.1:8143/api/v0".into();
/// let resp = openapi::serve(&req, r#"{"openapi": "3.1.0", "paths": {}}"#);
/// assert_eq!(resp.status, 200);
/// assert_eq!(resp.body_json()["servers"][0]["url"], "https://127.0.0.1:8143/api/v0");
/// ```
pub fn serve(req: &Request, document: &str) -> Response {
    let mut doc: serde_json::Value = match serde_json::from_str(document) {
        Ok(doc @ serde_json::Value::Object(_)) => doc,
        Ok(_) => return Response::error(500, "the handler's OpenAPI document is not an object"),
        Err(e) => {
            return Response::error(
                500,
                &format!("the handler's OpenAPI document is not JSON: {e}"),
            );
        }
    };
    doc["servers"] = serde_json::json!([{ "url": req.base_url }]);
    Response::json(200, &doc)
}

/// Checks a handler's document against its router: the document's
/// operations and the router's routes are the same set of `(method, path)`
/// (a router's `{*rest}` is the document's `{rest}`, and a router's `GET`
/// also answers `HEAD`, which the document need not list); the document
/// is OpenAPI 3.1.0 and leaves `servers` to [`serve`]. The error names
/// every problem found.
///
/// ```
/// use baton_sdk::{Response, Router, openapi};
/// let router = Router::new().get("/jobs/{name}", |_| Response::new(200));
/// let doc = r#"{"openapi": "3.1.0", "paths": {"/jobs/{name}": {"get": {}}}}"#;
/// assert!(openapi::covers(doc, &router).is_ok());
/// let err = openapi::covers(r#"{"paths": {}}"#, &router).unwrap_err();
/// assert!(err.contains("GET /jobs/{name}"), "{err}");
/// ```
pub fn covers(document: &str, router: &Router) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(document).map_err(|e| format!("the document is not JSON: {e}"))?;
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_object())
        .ok_or("the document has no `paths` object")?;
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = router
        .routes()
        .into_iter()
        .map(|(method, pattern)| (method, pattern.replace("{*", "{")))
        .collect();
    let undocumented: Vec<String> = routed
        .difference(&documented)
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let unrouted: Vec<String> = documented
        .difference(&routed)
        .filter(|(m, p)| !(m == "HEAD" && routed.contains(&("GET".to_string(), p.clone()))))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let mut problems = Vec::new();
    if !undocumented.is_empty() || !unrouted.is_empty() {
        problems.push(format!(
            "routes missing from the document: [{}]; documented operations with no route: [{}]",
            undocumented.join(", "),
            unrouted.join(", ")
        ));
    }
    if doc["openapi"] != "3.1.0" {
        problems.push(format!("`openapi` is {}, not \"3.1.0\"", doc["openapi"]));
    }
    if doc.get("servers").is_some() {
        problems.push("the document sets `servers`, which `serve` fills in".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
