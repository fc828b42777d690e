//! Node groups: `GET /node_groups`, `GET|PUT|DELETE /node_groups/{id}`.
//!
//! A group is a named rule: an explicit node list, or every node in the
//! inventory. "All Nodes" (`00000000-0000-4000-8000-000000000000`) is built
//! in: it always exists, resolves to the whole inventory, and cannot be
//! changed or deleted.

use crate::errors::OrchError;
use crate::inventory::{self, validate_name};
use baton_sdk::kv::Bucket;
use baton_sdk::{Request, Response, time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const GROUPS: &str = "node-groups";
/// The built-in group holding every node in the inventory.
pub const ALL_NODES: &str = "00000000-0000-4000-8000-000000000000";
/// Most nodes an explicit rule may list.
pub const MAX_GROUP_NODES: usize = 10_000;

/// Which nodes a group holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Every node in the inventory.
    All,
    /// These nodes.
    Nodes(Vec<String>),
}

/// A stored group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its id (a UUID).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Which nodes it holds.
    pub rule: Rule,
    /// When it was last written.
    pub timestamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    name: String,
    #[serde(default)]
    description: String,
    rule: Value,
}

type Reply = Result<Response, OrchError>;

fn all_nodes_group() -> Group {
    Group {
        id: ALL_NODES.into(),
        name: "All Nodes".into(),
        description: "Every node in the inventory (built in).".into(),
        rule: Rule::All,
        timestamp: time::rfc3339(0),
    }
}

/// Checks a group id: a lower-case UUID.
pub fn validate_id(id: &str) -> Result<(), OrchError> {
    let groups: Vec<&str> = id.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(OrchError::validation(format!(
            "invalid node group id `{id}`: expected a lower-case UUID such as {ALL_NODES}"
        ))
        .details(json!({ "field": "id", "value": id })))
    }
}

fn load(id: &str) -> Result<Option<Group>, OrchError> {
    if id == ALL_NODES {
        return Ok(Some(all_nodes_group()));
    }
    Ok(Bucket::open(GROUPS).get_json(id)?)
}

/// The nodes of group `id`, sorted; `None` when there is no such group.
pub fn resolve(id: &str) -> Result<Option<Vec<String>>, OrchError> {
    let Some(group) = load(id)? else {
        return Ok(None);
    };
    Ok(Some(match group.rule {
        Rule::All => inventory::all_nodes()?
            .into_iter()
            .map(|n| n.name)
            .collect(),
        Rule::Nodes(mut nodes) => {
            nodes.sort();
            nodes
        }
    }))
}

fn to_json(group: &Group) -> Result<Value, OrchError> {
    let nodes = resolve(&group.id)?.unwrap_or_default();
    let rule = match &group.rule {
        Rule::All => json!("all"),
        Rule::Nodes(n) => json!({ "nodes": n }),
    };
    Ok(json!({
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "rule": rule,
        "nodes": nodes,
        "timestamp": group.timestamp,
    }))
}

/// The 404 for a group id nobody created.
pub fn unknown_group(id: &str) -> OrchError {
    OrchError::new(
        404,
        "unknown-node-group",
        format!("no node group with id `{id}`"),
    )
    .details(json!({ "node_group": id }))
}

fn id_param(req: &Request) -> Result<String, OrchError> {
    let id = req.param("id").unwrap_or_default().to_string();
    validate_id(&id)?;
    Ok(id)
}

/// `GET /node_groups`: "All Nodes" first, then the others by id.
pub fn list(_req: &Request) -> Reply {
    let mut items = vec![to_json(&all_nodes_group())?];
    for (_, g) in Bucket::open(GROUPS).scan_all_json::<Group>("")? {
        items.push(to_json(&g)?);
    }
    Ok(Response::json(200, &json!({ "items": items })))
}

/// `GET /node_groups/{id}`.
pub fn get(req: &Request) -> Reply {
    let id = id_param(req)?;
    match load(&id)? {
        Some(g) => Ok(Response::json(200, &to_json(&g)?)),
        None => Err(unknown_group(&id)),
    }
}

fn parse_rule(rule: &Value) -> Result<Rule, OrchError> {
    let bad = || {
        OrchError::validation(
            "`rule` must be \"all\" or {\"nodes\": [\"<node>\", ...]}".to_string(),
        )
        .details(json!({ "field": "rule" }))
    };
    match rule {
        Value::String(s) if s == "all" => Ok(Rule::All),
        Value::Object(m) if m.len() == 1 && m.contains_key("nodes") => {
            let list = m["nodes"].as_array().ok_or_else(bad)?;
            if list.len() > MAX_GROUP_NODES {
                return Err(OrchError::validation(format!(
                    "`rule.nodes` lists {} nodes; at most {MAX_GROUP_NODES} are allowed",
                    list.len()
                ))
                .details(json!({ "field": "rule.nodes" })));
            }
            let mut nodes = Vec::with_capacity(list.len());
            for v in list {
                let name = v.as_str().ok_or_else(bad)?;
                validate_name(name)?;
                nodes.push(name.to_string());
            }
            nodes.sort();
            nodes.dedup();
            Ok(Rule::Nodes(nodes))
        }
        _ => Err(bad()),
    }
}

fn built_in(id: &str) -> OrchError {
    OrchError::new(
        403,
        "not-permitted",
        "the All Nodes group is built in; it cannot be changed or deleted",
    )
    .details(json!({ "node_group": id }))
}

/// A `PUT /node_groups/{id}` body: the group's name, description and rule.
pub(crate) fn read_put(req: &Request) -> Result<(String, String, Rule), OrchError> {
    let body: PutBody = req.json()?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(OrchError::validation("`name` must be 1 to 255 characters")
            .details(json!({ "field": "name" })));
    }
    if let Some(why) = baton_sdk::http::display_name_problem(name) {
        return Err(
            OrchError::validation(format!("`name` {why}")).details(json!({ "field": "name" }))
        );
    }
    Ok((name.to_string(), body.description, parse_rule(&body.rule)?))
}

/// `PUT /node_groups/{id}`: create (201) or replace (200) a group.
pub fn put(req: &Request) -> Reply {
    let id = id_param(req)?;
    if id == ALL_NODES {
        return Err(built_in(&id));
    }
    let (name, description, rule) = read_put(req)?;
    let group = Group {
        id: id.clone(),
        name,
        description,
        rule,
        timestamp: time::now_rfc3339(),
    };
    let bucket = Bucket::open(GROUPS);
    let existed = bucket.get(&id)?.is_some();
    bucket.set_json(&id, &group)?;
    Ok(Response::json(
        if existed { 200 } else { 201 },
        &to_json(&group)?,
    ))
}

/// `DELETE /node_groups/{id}`: 204, or 404 when unknown.
pub fn delete(req: &Request) -> Reply {
    let id = id_param(req)?;
    if id == ALL_NODES {
        return Err(built_in(&id));
    }
    if Bucket::open(GROUPS).delete(&id)? {
        Ok(Response::new(204))
    } else {
        Err(unknown_group(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lower_case_uuids() {
        assert!(validate_id(ALL_NODES).is_ok());
        assert!(validate_id("3f2c1a9e-0b1d-4c6e-9f00-1234567890ab").is_ok());
        assert!(validate_id("3F2C1A9E-0B1D-4C6E-9F00-1234567890AB").is_err());
        assert!(validate_id("web").is_err());
        assert!(validate_id("3f2c1a9e-0b1d-4c6e-9f00-1234567890a").is_err());
    }

    #[test]
    fn rules_are_all_or_a_valid_node_list() {
        assert_eq!(parse_rule(&json!("all")).unwrap(), Rule::All);
        assert_eq!(
            parse_rule(&json!({"nodes": ["b", "a", "b"]})).unwrap(),
            Rule::Nodes(vec!["a".into(), "b".into()])
        );
        assert!(parse_rule(&json!({"nodes": "a"})).is_err());
        assert!(parse_rule(&json!({"nodes": ["Bad Name"]})).is_err());
        assert!(parse_rule(&json!({"query": []})).is_err());
        assert!(parse_rule(&json!(7)).is_err());
    }
}
