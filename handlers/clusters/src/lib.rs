//! The clusters handler: a Commissaire-style cluster and host API at
//! `/api/v0` (specs/clusters.md). Clusters group hosts; hosts are
//! investigated and bootstrapped by a job when added; deploy, upgrade and
//! restart run as job graphs over a cluster's hosts. The commands those jobs
//! run come from `[handler.config]` (see [`commands`]). A scheduled job
//! re-checks hosts ([`watch`]).

mod body;
mod bootstrap;
mod clusters;
mod commands;
mod errors;
/// Entry points for the fuzz targets of `fuzz/` (pure readers, no host calls).
pub mod fuzzing;
mod hosts;
mod ops;
mod resources;
mod store;
mod watch;

use baton_sdk::{Handler, Job, Request, Response, Router, openapi};
use errors::ApiError;
use ops::Op;
use resources::{MANAGER, NETWORK};

struct Clusters;

impl Handler for Clusters {
    fn handle(req: Request) -> Response {
        Router::serve(router, req)
    }

    fn run_job(job: Job) -> Result<Vec<u8>, String> {
        match job.kind.as_str() {
            bootstrap::KIND => bootstrap::run(&job),
            ops::KIND => ops::run(&job),
            watch::KIND => watch::run(&job),
            other => Err(format!("unknown job kind `{other}`")),
        }
    }
}

baton_sdk::export!(Clusters);

/// The API's OpenAPI 3.1 document (`GET /openapi.json`; `servers` is filled
/// in when it is served).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route of the API, with 404/405 in Commissaire's error shape.
pub fn router() -> Router {
    let mut r = Router::new()
        .get("/openapi.json", |req| openapi::serve(req, OPENAPI))
        .get("/clusters", clusters::list)
        .get("/cluster/{name}", clusters::show)
        .put("/cluster/{name}", clusters::put)
        .delete("/cluster/{name}", clusters::delete)
        .get("/cluster/{name}/hosts", clusters::members)
        .put("/cluster/{name}/hosts", clusters::replace_members)
        .get("/cluster/{name}/hosts/{ip}", clusters::is_member)
        .put("/cluster/{name}/hosts/{ip}", clusters::put_member)
        .delete("/cluster/{name}/hosts/{ip}", clusters::delete_member);
    for op in [Op::Deploy, Op::Upgrade, Op::Restart] {
        let path = format!("/cluster/{{name}}/{}", op.name());
        r = r
            .get(&path, move |req| ops::show(req, op))
            .put(&path, move |req| ops::start(req, op));
    }
    r.get("/containermanagers", |req| MANAGER.list(req))
        .get("/containermanager/{name}", |req| MANAGER.show(req))
        .put("/containermanager/{name}", |req| MANAGER.put(req))
        .delete("/containermanager/{name}", |req| MANAGER.delete(req))
        .get("/networks", |req| NETWORK.list(req))
        .get("/network/{name}", |req| NETWORK.show(req))
        .put("/network/{name}", |req| NETWORK.put(req))
        .delete("/network/{name}", |req| NETWORK.delete(req))
        .get("/hosts", hosts::list)
        .put("/host", hosts::put_self)
        .get("/host/{ip}", hosts::show)
        .put("/host/{ip}", hosts::put)
        .delete("/host/{ip}", hosts::delete)
        .get("/host/{ip}/creds", hosts::creds)
        .get("/host/{ip}/status", hosts::status)
        .not_found(|req| {
            ApiError::not_found(format!("no such endpoint: {} {}", req.method, req.path)).into()
        })
        .method_not_allowed(|req, allowed| {
            ApiError::new(
                405,
                format!(
                    "{} is not allowed on {}; use {}",
                    req.method,
                    req.path,
                    allowed.join(", ")
                ),
            )
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str, body: &str) -> Response {
        router().handle(Request::new(method, path).with_body(body))
    }

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
    fn unknown_routes_and_methods_use_the_commissaire_shape() {
        let resp = call("GET", "/nope", "");
        assert_eq!(resp.status, 404);
        assert!(
            resp.body_json()["error"]
                .as_str()
                .unwrap()
                .contains("/nope")
        );
        let resp = call("POST", "/clusters", "");
        assert_eq!(resp.status, 405);
        assert!(resp.body_json()["error"].is_string());
    }

    // These fail validation before any host call, so they run natively.
    #[test]
    fn bad_paths_and_bodies_are_400_naming_the_field() {
        let resp = call("GET", "/cluster/bad%20name", "");
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body_json()["field"], "name");
        let resp = call("PUT", "/host/not-an-ip", "{}");
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body_json()["field"], "address");
        let resp = call("PUT", "/network/n1", r#"{"type": "calico"}"#);
        assert_eq!(resp.status, 400);
        let body = resp.body_json();
        assert_eq!(body["field"], "type");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("flannel_server, flannel_etcd")
        );
        let resp = call("PUT", "/containermanager/c1", r#"{"type": 7}"#);
        assert_eq!(resp.body_json()["field"], "type");
        let resp = call("PUT", "/cluster/c1", r#"{"network": ["x"]}"#);
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body_json()["field"], "network");
        let resp = call(
            "PUT",
            "/cluster/c1/hosts",
            r#"{"old": [], "new": ["10.0.0.1", 5]}"#,
        );
        assert_eq!(resp.body_json()["field"], "new");
        let resp = call("PUT", "/cluster/c1/deploy", r#"{"version": 726}"#);
        assert_eq!(resp.body_json()["field"], "version");
        let resp = call("PUT", "/host/10.0.0.1", r#"{"ssh_priv_key": "%%%"}"#);
        assert_eq!(resp.body_json()["field"], "ssh_priv_key");
        let resp = call(
            "PUT",
            "/host/10.0.0.1",
            r#"{"ssh_priv_key": "a2V5", "remote_user": false}"#,
        );
        assert_eq!(resp.body_json()["field"], "remote_user");
    }
}
