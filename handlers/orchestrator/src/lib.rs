//! The orchestrator handler: a Puppet-orchestrator-style API at `/orchestrator/v1`
//! (specs/orchestrator.md): API metadata, the node inventory, node groups,
//! deploy/task/stop commands, and jobs with their nodes, events and reports.
//!
//! A deploy or task is one orchestrator job and one job-engine job per node
//! (a graph whose parallel limit is the request's `concurrency`); each node
//! run `exec`s the command configured in `[handler.config]`.

mod agent;
mod command;
mod errors;
/// Entry points for the fuzz targets of `fuzz/` (pure readers, no host calls).
pub mod fuzzing;
mod groups;
mod inventory;
mod jobs_api;
mod lifecycle;
mod model;
mod options;
mod query;
mod run;
mod store;
mod tally;

use baton_sdk::{Handler, Job, Request, Response, Router, openapi};
use errors::OrchError;
use serde_json::json;

struct Orchestrator;

impl Handler for Orchestrator {
    fn handle(req: Request) -> Response {
        Router::serve(router, req)
    }

    fn run_job(job: Job) -> Result<Vec<u8>, String> {
        match job.kind.as_str() {
            run::NODE_RUN => run::run_node(&job),
            other => Err(format!("the orchestrator runs no jobs of kind `{other}`")),
        }
    }
}

baton_sdk::export!(Orchestrator);

/// The API's OpenAPI 3.1 document (`GET /openapi.json`; `servers` is filled
/// in when it is served).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route of the API, with 404/405 in the orchestrator's error shape.
pub fn router() -> Router {
    Router::new()
        .get("/openapi.json", |req| openapi::serve(req, OPENAPI))
        .get("/", metadata)
        .get("/inventory", inventory::list)
        .post("/inventory", inventory::query)
        .get("/inventory/nodes/{name}", inventory::get)
        .put("/inventory/nodes/{name}", inventory::put)
        .delete("/inventory/nodes/{name}", inventory::delete)
        .get("/inventory/{name}", inventory::status)
        .get("/node_groups", groups::list)
        .get("/node_groups/{id}", groups::get)
        .put("/node_groups/{id}", groups::put)
        .delete("/node_groups/{id}", groups::delete)
        .post("/command/deploy", command::deploy)
        .post("/command/task", command::task)
        .post("/command/stop", command::stop)
        .get("/jobs", jobs_api::list)
        .get("/jobs/{name}", jobs_api::get)
        .get("/jobs/{name}/nodes", jobs_api::nodes)
        .get("/jobs/{name}/events", jobs_api::events)
        .get("/jobs/{name}/report", jobs_api::report)
        .not_found(|req| {
            OrchError::new(
                404,
                "not-found",
                format!("no such endpoint: {} {}", req.method, req.path),
            )
            .into()
        })
        .method_not_allowed(|req, allowed| {
            OrchError::new(
                405,
                "method-not-allowed",
                format!("{} is not allowed on {}", req.method, req.path),
            )
            .details(json!({ "allowed": allowed }))
            .into()
        })
}

/// `GET /`: what this API is and where its collections and commands live.
fn metadata(req: &Request) -> Response {
    let base = req.base_url.trim_end_matches('/');
    let link = |p: &str| json!({ "id": format!("{base}{p}") });
    Response::json(
        200,
        &json!({
            "info": {
                "title": "Baton orchestrator API",
                "description": "Run Puppet-style deploys and tasks over the nodes in the inventory as durable jobs.",
                "version": "v1",
                "server": "baton",
            },
            "collections": {
                "jobs": link("/jobs"),
                "inventory": link("/inventory"),
                "node_groups": link("/node_groups"),
            },
            "commands": {
                "deploy": link("/command/deploy"),
                "task": link("/command/task"),
                "stop": link("/command/stop"),
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_covers_every_route() {
        openapi::covers(OPENAPI, &router()).unwrap();
        let mut req = Request::new("GET", "/openapi.json");
        req.base_url = "https://localhost:8143/mount".into();
        let doc = router().handle(req).body_json();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["servers"][0]["url"], "https://localhost:8143/mount");
    }

    #[test]
    fn metadata_links_are_absolute() {
        let mut req = Request::new("GET", "/");
        req.base_url = "https://localhost:8143/orchestrator/v1".into();
        let body = router().handle(req).body_json();
        assert_eq!(
            body["commands"]["deploy"]["id"],
            "https://localhost:8143/orchestrator/v1/command/deploy"
        );
        assert_eq!(body["info"]["version"], "v1");
    }

    #[test]
    fn unknown_route_and_method_use_the_orchestrator_error_shape() {
        let resp = router().handle(Request::new("GET", "/nope"));
        assert_eq!(resp.status, 404);
        assert_eq!(
            resp.body_json()["kind"],
            "puppetlabs.orchestrator/not-found"
        );
        let resp = router().handle(Request::new("PATCH", "/inventory"));
        assert_eq!(resp.status, 405);
        assert_eq!(resp.body_json()["details"]["allowed"][0], "GET");
    }

    #[test]
    fn invalid_node_names_are_rejected_before_storage() {
        let resp = router().handle(Request::new("PUT", "/inventory/nodes/bad%20name"));
        assert_eq!(resp.status, 400);
        assert_eq!(
            resp.body_json()["kind"],
            "puppetlabs.orchestrator/validation-error"
        );
    }
}
