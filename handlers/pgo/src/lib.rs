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
mod provision;
mod request;
mod settings;
mod status;
mod template;
mod validate;

use baton_sdk::{Handler, Job, Request, Response, Router};
use status::PgoError;

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

/// Every route of the API; 404 and 405 in the PGO shape.
pub fn router() -> Router {
    Router::new()
        .get("/version", api::version)
        .post("/clusters", api::create)
        .post("/showclusters", api::show)
        .post("/clustersdelete", api::delete)
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
    fn unknown_routes_and_methods_reply_in_the_pgo_shape() {
        let resp = router().handle(Request::new("GET", "/nope"));
        assert_eq!(resp.status, 404);
        assert_eq!(resp.body_json()["Status"]["Code"], "error");
        let resp = router().handle(Request::new("GET", "/clusters"));
        assert_eq!(resp.status, 405);
        assert!(
            resp.body_json()["Status"]["Msg"]
                .as_str()
                .unwrap()
                .contains("POST")
        );
    }

    #[test]
    fn malformed_bodies_are_400_before_any_host_call() {
        for (path, body, field) in [
            ("/clusters", "{not json", "not valid JSON"),
            (
                "/clusters",
                r#"{"ClientVersion": 4, "Namespace": "a", "Name": "b"}"#,
                "`ClientVersion`",
            ),
            (
                "/showclusters",
                r#"{"ClientVersion": "4.7.4", "Namespace": "a"}"#,
                "`Clustername`",
            ),
            (
                "/clustersdelete",
                r#"{"ClientVersion": "4.7.4", "Namespace": ["a"], "AllFlag": true}"#,
                "`Namespace`",
            ),
            ("/clustersdelete", "", "empty"),
        ] {
            let resp = router().handle(Request::new("POST", path).with_body(body));
            assert_eq!(resp.status, 400, "{path} {body}");
            let msg = resp.body_json()["Status"]["Msg"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(msg.contains(field), "{path} {body}: {msg}");
        }
    }
}
