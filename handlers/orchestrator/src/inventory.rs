//! The node inventory: `GET /inventory`, `POST /inventory`,
//! `GET|PUT|DELETE /inventory/nodes/{name}` and `GET /inventory/{name}`.

use crate::errors::OrchError;
use baton_sdk::kv::Bucket;
use baton_sdk::{Request, Response, time};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const NODES: &str = "nodes";
/// Longest node name accepted (a DNS name's limit).
const MAX_NAME: usize = 253;

/// A node the orchestrator knows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// The node's certname.
    pub name: String,
    /// Whether the node is reachable for runs; inventory nodes are.
    pub connected: bool,
    /// How the node is reached.
    pub broker: String,
    /// When the node was added or last updated (RFC 3339).
    pub timestamp: String,
    /// Facts given when the node was registered.
    #[serde(default)]
    pub facts: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    #[serde(default)]
    facts: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    nodes: Vec<String>,
}

type Reply = Result<Response, OrchError>;

/// Checks a certname: lower-case letters, digits, `.`, `-`, `_`.
pub fn validate_name(name: &str) -> Result<(), OrchError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(OrchError::validation(format!(
            "invalid node name `{name}`: use 1-{MAX_NAME} lower-case letters, digits, `.`, `-` or `_`"
        ))
        .details(json!({ "field": "name", "value": name })))
    }
}

fn name_param(req: &Request) -> Result<String, OrchError> {
    let name = req.param("name").unwrap_or_default().to_string();
    validate_name(&name)?;
    Ok(name)
}

/// Every node in the inventory, sorted by name.
pub fn all_nodes() -> Result<Vec<Node>, OrchError> {
    Ok(Bucket::open(NODES)
        .scan_all_json::<Node>("")?
        .into_iter()
        .map(|(_, n)| n)
        .collect())
}

/// `GET /inventory`.
pub fn list(_req: &Request) -> Reply {
    Ok(Response::json(200, &json!({ "items": all_nodes()? })))
}

/// `POST /inventory` with `{"nodes": [...]}`: the named nodes, unknown ones
/// reported as not connected (the Puppet orchestrator's behaviour).
pub fn query(req: &Request) -> Reply {
    let nodes = read_query(req)?;
    let bucket = Bucket::open(NODES);
    let mut items = Vec::with_capacity(nodes.len());
    for name in &nodes {
        items.push(match bucket.get_json::<Node>(name)? {
            Some(node) => json!(node),
            None => json!({ "name": name, "connected": false }),
        });
    }
    Ok(Response::json(200, &json!({ "items": items })))
}

/// The node names of a `POST /inventory` body, each checked.
pub(crate) fn read_query(req: &Request) -> Result<Vec<String>, OrchError> {
    let body: QueryBody = req.json()?;
    for name in &body.nodes {
        validate_name(name)?;
    }
    Ok(body.nodes)
}

/// A `PUT /inventory/nodes/{name}` body: the node's facts.
pub(crate) fn read_put(req: &Request) -> Result<Map<String, Value>, OrchError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    // An object, as the API documents: serde would take `[]` for a
    // struct whose fields all have defaults.
    let value: serde_json::Value = req.json()?;
    if !value.is_object() {
        return Err(OrchError::validation(format!(
            "the body must be a JSON object such as {{\"facts\": {{}}}}, not {}",
            baton_sdk::http::json_type_name(&value)
        ))
        .details(json!({ "field": "body" })));
    }
    let body: PutBody = serde_json::from_value(value).map_err(|e| {
        OrchError::validation(format!("the body is not a node: {e}"))
            .details(json!({ "field": "body" }))
    })?;
    Ok(body.facts)
}

/// `GET /inventory/nodes/{name}`.
pub fn get(req: &Request) -> Reply {
    let name = name_param(req)?;
    match Bucket::open(NODES).get_json::<Node>(&name)? {
        Some(node) => Ok(Response::json(200, &node)),
        None => Err(unknown_node(&name)),
    }
}

/// `GET /inventory/{name}`: the node's connection status, known or not.
pub fn status(req: &Request) -> Reply {
    let name = name_param(req)?;
    Ok(match Bucket::open(NODES).get_json::<Node>(&name)? {
        Some(node) => Response::json(200, &node),
        None => Response::json(200, &json!({ "name": name, "connected": false })),
    })
}

/// `PUT /inventory/nodes/{name}`: add or replace a node; 201 when new.
pub fn put(req: &Request) -> Reply {
    let name = name_param(req)?;
    let facts = read_put(req)?;
    let bucket = Bucket::open(NODES);
    let existed = bucket.get(&name)?.is_some();
    let node = Node {
        name: name.clone(),
        connected: true,
        broker: "baton".into(),
        timestamp: time::now_rfc3339(),
        facts,
    };
    bucket.set_json(&name, &node)?;
    Ok(Response::json(if existed { 200 } else { 201 }, &node))
}

/// `DELETE /inventory/nodes/{name}`: 204, or 404 when unknown.
pub fn delete(req: &Request) -> Reply {
    let name = name_param(req)?;
    if Bucket::open(NODES).delete(&name)? {
        Ok(Response::new(204))
    } else {
        Err(unknown_node(&name))
    }
}

fn unknown_node(name: &str) -> OrchError {
    OrchError::new(
        404,
        "unknown-node",
        format!("no node named `{name}` in the inventory"),
    )
    .details(json!({ "name": name }))
}
