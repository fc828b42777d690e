//! The PGO reply shapes, field for field the structs of `pkg/apiservermsgs`
//! in CrunchyData/postgres-operator v4.7.4.
//!
//! Those structs embed `Status` without a JSON tag, so `Code` ("ok" |
//! "error") and `Msg` are top-level fields beside the payload:
//! `{"Version", "Code", "Msg"}`, `{"Results", "Code", "Msg"}`. Only
//! `CreateClusterResponse` tags them: `{"result": {...}, "status": {"Code",
//! "Msg"}}`.
//!
//! Like the PGO API server, once a request is authenticated (the host does
//! that, before any Wasm runs) every endpoint answers HTTP 200 and says in
//! `Code`/`Msg` whether it worked: a version mismatch, a namespace the user
//! may not use, an unknown or duplicate cluster, a body that cannot be read,
//! a storage failure. The `pgo` CLI turns any status but 200 into `Invalid
//! Status Code: N` without reading the body, so a 200 is what lets it print
//! `Error: <Msg>`. Only paths that are not endpoints are 404 / 405, and a
//! database that cannot be reached right now is 503 (same body): not a
//! refusal but an outage that retrying mends, which load balancers and
//! retrying clients must see; `pgo` prints `Invalid Status Code: 503`.

use baton_sdk::{HostError, Response};
use serde_json::{Value, json};

/// What a route returns: a reply, or an error to put in the route's shape.
pub type Reply = Result<Response, PgoError>;

/// `Code` of a successful reply.
pub const OK: &str = "ok";
/// `Code` of a refusal.
pub const ERROR: &str = "error";

/// Which reply struct an endpoint answers with (its error replies too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `Status` alone: `{"Code", "Msg"}` (paths that are not endpoints).
    Status,
    /// `CreateClusterResponse`: `{"result": CreateClusterDetail, "status": Status}`.
    Create,
    /// `ShowClusterResponse` / `DeleteClusterResponse`: `{"Results": [...], "Code", "Msg"}`.
    Results,
}

/// An error reply: `Code: "error"` and `Msg`, with an HTTP status (200 for
/// everything an endpoint refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgoError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, naming the field, cluster, namespace or version at fault.
    pub msg: String,
}

impl PgoError {
    /// A refusal (HTTP 200 with `Code: "error"`, like the PGO API server).
    pub fn refused(msg: impl Into<String>) -> Self {
        PgoError {
            status: 200,
            msg: msg.into(),
        }
    }

    /// A failure of the server itself; the PGO API server reports those as
    /// refusals too (HTTP 200), so that `pgo` shows the message.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::refused(msg)
    }

    /// The reply in `shape`.
    pub fn reply(self, shape: Shape) -> Response {
        let msg = baton_sdk::http::clip(&self.msg);
        Response::json(self.status, &body(shape, ERROR, &msg, None))
    }
}

impl From<PgoError> for Response {
    fn from(e: PgoError) -> Self {
        e.reply(Shape::Status)
    }
}

impl From<HostError> for PgoError {
    fn from(e: HostError) -> Self {
        if let HostError::Unavailable(m) = &e {
            // Not a refusal: the same request works once the database is
            // back, and a 503 tells clients and load balancers so.
            baton_sdk::log::warn(&format!("host call unavailable: {m}"));
            return PgoError {
                status: 503,
                msg: format!(
                    "the server's database cannot be reached right now; retry shortly: {m}"
                ),
            };
        }
        baton_sdk::log::error(&format!("host call failed: {e}"));
        PgoError::internal(format!("the server could not complete the request: {e}"))
    }
}

/// The body of `shape` with `code`, `msg` and (for a success) its payload:
/// the `CreateClusterDetail` or the `Results` array. An error's payload is
/// the struct's zero value, as the Go server sends it.
fn body(shape: Shape, code: &str, msg: &str, payload: Option<Value>) -> Value {
    match shape {
        Shape::Status => json!({ "Code": code, "Msg": msg }),
        Shape::Create => json!({
            "result": payload.unwrap_or_else(|| json!({
                "Database": "", "Name": "", "Users": null, "WorkflowID": "",
            })),
            "status": { "Code": code, "Msg": msg },
        }),
        Shape::Results => json!({
            "Results": payload.unwrap_or_else(|| json!([])),
            "Code": code,
            "Msg": msg,
        }),
    }
}

/// `VersionResponse`: `{"Version", "Code": "ok", "Msg": "apiserver version"}`
/// (the message the v4.7.4 server sends).
pub fn version(version: &str) -> Response {
    Response::json(
        200,
        &json!({ "Version": version, "Code": OK, "Msg": "apiserver version" }),
    )
}

/// A successful `CreateClusterResponse` with its `CreateClusterDetail`.
pub fn created(detail: Value) -> Response {
    Response::json(200, &body(Shape::Create, OK, "", Some(detail)))
}

/// A successful `ShowClusterResponse` or `DeleteClusterResponse`.
pub fn results(results: Vec<Value>) -> Response {
    Response::json(
        200,
        &body(Shape::Results, OK, "", Some(Value::Array(results))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_msg_are_top_level_except_in_create() {
        let resp = PgoError::refused("no such cluster").reply(Shape::Results);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.body_json(),
            json!({ "Results": [], "Code": "error", "Msg": "no such cluster" })
        );
        let resp = PgoError::refused("taken").reply(Shape::Create);
        assert_eq!(
            resp.body_json(),
            json!({
                "result": { "Database": "", "Name": "", "Users": null, "WorkflowID": "" },
                "status": { "Code": "error", "Msg": "taken" },
            })
        );
        let resp: Response = PgoError {
            status: 404,
            msg: "nope".into(),
        }
        .into();
        assert_eq!(resp.status, 404);
        assert_eq!(resp.body_json(), json!({ "Code": "error", "Msg": "nope" }));
        assert_eq!(PgoError::internal("disk").status, 200);
    }

    #[test]
    fn successes_carry_their_payload() {
        assert_eq!(
            version("4.7.4").body_json(),
            json!({ "Version": "4.7.4", "Code": "ok", "Msg": "apiserver version" })
        );
        assert_eq!(
            results(vec![json!("deleted a")]).body_json(),
            json!({ "Results": ["deleted a"], "Code": "ok", "Msg": "" })
        );
        let b = created(json!({ "Name": "a" })).body_json();
        assert_eq!(b["status"], json!({ "Code": "ok", "Msg": "" }));
        assert_eq!(b["result"]["Name"], "a");
    }
}
