//! The PGO handler: a Crunchy PostgreSQL Operator (v4) style API server at
//! `/pgo` (specs/pgo.md), so that the curl calls of the PGO documentation
//! work against `PGO_APISERVER_URL=https://host:8143/pgo`.
//!
//! Clusters are records in kv; creating and deleting one queues a job that
//! runs the commands of the handler's config (`kubectl apply -f -` of the
//! rendered manifest in production) and records its progress on the cluster.

mod api;
mod body;
mod cluster;
mod document;
/// Entry points for the fuzz targets of `fuzz/` (pure readers, no host calls).
pub mod fuzzing;
mod provision;
mod request;
mod selector;
mod settings;
mod status;
mod template;
mod validate;

use baton_sdk::{Handler, Job, Request, Response, Router, openapi};
use status::{PgoError, Shape};

struct Pgo;

impl Handler for Pgo {
    fn handle(req: Request) -> Response {
        Router::serve(router, req)
    }

    fn run_job(job: Job) -> Result<Vec<u8>, String> {
        provision::run(job)
    }
}

baton_sdk::export!(Pgo);

/// The API's OpenAPI 3.1 document (`GET /openapi.json`; `servers` is filled
/// in when it is served, and the configured `server_version` put in, see
/// [`document`]).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route of the API, each error in its endpoint's reply struct; 404
/// and 405 as a bare `Status` (`{"Code", "Msg"}`).
pub fn router() -> Router {
    Router::new()
        .get("/openapi.json", |req| {
            openapi::serve(req, &document::for_version(&settings::server_version()))
        })
        .get("/version", api::version)
        .post("/clusters", |r| {
            api::create(r).unwrap_or_else(|e| e.reply(Shape::Create))
        })
        .post("/showclusters", |r| {
            api::show(r).unwrap_or_else(|e| e.reply(Shape::Results))
        })
        .post("/clustersdelete", |r| {
            api::delete(r).unwrap_or_else(|e| e.reply(Shape::Results))
        })
        .not_found(|req| {
            PgoError {
                status: 404,
                msg: format!("no such endpoint: {} {}", req.method, req.path),
            }
            .into()
        })
        .method_not_allowed(|req, allowed| {
            PgoError {
                status: 405,
                msg: format!(
                    "{} is not allowed on {}; use {}",
                    req.method,
                    req.path,
                    allowed.join(", ")
                ),
            }
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_covers_every_route() {
        // Also: OpenAPI 3.1.0, with `servers` left to `serve`.
        openapi::covers(OPENAPI, &router()).unwrap();
    }

    #[test]
    fn unknown_routes_and_methods_reply_with_a_bare_status() {
        let resp = router().handle(Request::new("GET", "/nope"));
        assert_eq!(resp.status, 404);
        assert_eq!(resp.body_json()["Code"], "error");
        let resp = router().handle(Request::new("GET", "/clusters"));
        assert_eq!(resp.status, 405);
        assert!(resp.body_json()["Msg"].as_str().unwrap().contains("POST"));
    }

    #[test]
    fn unreadable_bodies_are_refused_in_the_endpoints_shape_before_any_host_call() {
        // Checked before the version (a host call), so this runs natively.
        for (path, body, field) in [
            ("/clusters", "{not json", "not valid JSON"),
            (
                "/clusters",
                r#"{"ClientVersion": 4, "Namespace": "a", "Name": "b"}"#,
                "`ClientVersion`",
            ),
            ("/showclusters", "[1]", "must be a JSON object"),
            ("/clustersdelete", "", "empty"),
        ] {
            let resp = router().handle(Request::new("POST", path).with_body(body));
            assert_eq!(resp.status, 200, "{path} {body}");
            let b = resp.body_json();
            let (code, msg) = if path == "/clusters" {
                (&b["status"]["Code"], &b["status"]["Msg"])
            } else {
                assert_eq!(b["Results"], serde_json::json!([]));
                (&b["Code"], &b["Msg"])
            };
            assert_eq!(code, "error");
            assert!(
                msg.as_str().unwrap().contains(field),
                "{path} {body}: {msg}"
            );
        }
    }
}
