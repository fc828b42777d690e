//! The provisioning handler: a task / workflow / batch orchestrator API with
//! JWT login (specs/provisioning.md), mounted at `/` of its own listener.
//! Every reply is `{"success", "data", "error"}`.
//!
//! A task is one run of the provisioning CLI and is a job of the engine (the
//! task id is the job id); workflows spawn one task, batches spawn a job
//! graph (`spawn-graph`), whose rollback calls [`run_job`](Provisioning) with
//! `rollback = true` in reverse completion order.

mod batch;
mod cli;
mod envelope;
/// Entry points for the fuzz targets of `fuzz/` (pure readers, no host calls).
pub mod fuzzing;
mod login;
mod tasks;
mod workflows;

use baton_sdk::{Handler, Job, Request, Response, Router, openapi};
use envelope::{ApiError, ok};

struct Provisioning;

impl Handler for Provisioning {
    fn handle(req: Request) -> Response {
        Router::serve(router, req)
    }

    fn run_job(job: Job) -> Result<Vec<u8>, String> {
        match job.kind.as_str() {
            cli::TASK_KIND => cli::run_task(&job),
            other => Err(format!(
                "the provisioning handler has no job kind `{other}`"
            )),
        }
    }
}

baton_sdk::export!(Provisioning);

/// The API's OpenAPI 3.1 document (`GET /openapi.json`; `servers` is filled
/// in when it is served).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route of the API, with 404/405 in the envelope.
pub fn router() -> Router {
    Router::new()
        .get("/openapi.json", |req| openapi::serve(req, OPENAPI))
        .get("/health", |_| ok(200, "Orchestrator is healthy"))
        .post("/auth/login", login::login)
        .post("/auth/refresh", login::refresh)
        .post("/auth/logout", login::logout)
        .get("/tasks", tasks::list)
        .get("/tasks/{id}", tasks::get)
        .post("/workflows/servers/create", workflows::servers)
        .post("/workflows/taskserv/create", workflows::taskserv)
        .post("/workflows/cluster/create", workflows::cluster)
        .post("/batch/execute", batch::execute)
        .get("/batch/operations", batch::list)
        .get("/batch/operations/{id}", batch::get)
        .post("/batch/operations/{id}/cancel", batch::cancel)
        .not_found(|req| {
            ApiError::not_found(format!("no such endpoint: {} {}", req.method, req.path)).into()
        })
        .method_not_allowed(|req, allowed| {
            Response::from(ApiError::new(
                405,
                format!(
                    "{} is not allowed on {}; allowed: {}",
                    req.method,
                    req.path,
                    allowed.join(", ")
                ),
            ))
            .with_header("allow", &allowed.join(", "))
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
    fn health_is_an_envelope() {
        let b = router().handle(Request::new("GET", "/health")).body_json();
        assert_eq!(b["success"], true);
        assert_eq!(b["data"], "Orchestrator is healthy");
        assert_eq!(b["error"], serde_json::Value::Null);
    }

    #[test]
    fn unknown_routes_and_methods_are_envelopes() {
        let r = router().handle(Request::new("GET", "/nope"));
        assert_eq!(r.status, 404);
        assert_eq!(r.body_json()["success"], false);
        let r = router().handle(Request::new("DELETE", "/tasks"));
        assert_eq!(r.status, 405);
        assert!(r.body_json()["error"].as_str().unwrap().contains("GET"));
    }

    #[test]
    fn malformed_ids_are_400_before_storage() {
        for path in ["/tasks/not-a-uuid", "/batch/operations/42"] {
            let r = router().handle(Request::new("GET", path));
            assert_eq!(r.status, 400, "{path}");
            assert!(
                r.body_json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("not a UUID")
            );
        }
        let r = router().handle(Request::new("POST", "/batch/operations/x/cancel"));
        assert_eq!(r.status, 400);
    }

    #[test]
    fn bad_workflow_bodies_are_400_naming_the_field() {
        let r = router().handle(
            Request::new("POST", "/workflows/servers/create").with_body(r#"{"infra": true}"#),
        );
        assert_eq!(r.status, 400);
        assert!(r.body_json()["error"].as_str().unwrap().contains("infra"));
    }
}
