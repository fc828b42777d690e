//! Clusters (`/clusters`, `/cluster/{name}`) and their membership
//! (`/cluster/{name}/hosts`, `/cluster/{name}/hosts/{ip}`).

use crate::body::{self, Body};
use crate::errors::{ApiError, Reply};
use crate::hosts;
use crate::resources::{DEFAULT_NETWORK, MANAGER, NETWORK};
use crate::store::{self, Change, Cluster};
use baton_sdk::{Request, Response};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The cluster named `name`, or a 404 naming it.
pub fn get(name: &str) -> Result<Cluster, ApiError> {
    store::get::<Cluster>(store::CLUSTERS, name)?
        .ok_or_else(|| ApiError::not_found(format!("no cluster named `{name}`")))
}

/// The cluster record as the API shows it, with host counts from the
/// members' current statuses: `ok` when every member is active (or there
/// are none), `failed` when none is, else `degraded`.
pub fn view(c: &Cluster) -> Result<Value, ApiError> {
    let mut available = 0;
    for address in &c.hosts {
        if hosts::current(address)?.is_some_and(|h| h.status == "active") {
            available += 1;
        }
    }
    let total = c.hosts.len();
    let status = if available == total {
        "ok"
    } else if available == 0 {
        "failed"
    } else {
        "degraded"
    };
    Ok(json!({
        "name": c.name,
        "status": status,
        "network": c.network,
        "container_manager": c.container_manager,
        "hosts": { "total": total, "available": available, "unavailable": total - available },
    }))
}

/// `GET /clusters`: the names.
pub fn list(_req: &Request) -> Reply {
    Ok(Response::json(200, &store::keys(store::CLUSTERS)?))
}

/// `GET /cluster/{name}`.
pub fn show(req: &Request) -> Reply {
    let name = body::name_param(req, "name")?;
    Ok(Response::json(200, &view(&get(&name)?)?))
}

/// A `PUT /cluster/{name}` request, read and checked: the name, the network
/// asked for, the container manager, and whether the old `type` was given.
pub(crate) fn read_put(req: &Request) -> Result<(String, String, Option<String>, bool), ApiError> {
    let name = body::name_param(req, "name")?;
    let b = Body::parse(req, &["name", "network", "container_manager", "type"])?;
    if let Some(given) = b.opt_str("name")?
        && given != name
    {
        return Err(ApiError::field(
            "name",
            format!("field `name` is `{given}` but the path names `{name}`"),
        ));
    }
    let asked = match b.opt_str("network")? {
        Some(n) if !n.is_empty() => body::name("network", &n)?,
        _ => DEFAULT_NETWORK.to_string(),
    };
    let manager = match b.opt_str("container_manager")? {
        Some(m) if !m.is_empty() => Some(body::name("container_manager", &m)?),
        _ => None,
    };
    Ok((name, asked, manager, b.has("type")))
}

/// `PUT /cluster/{name}` with `{"network"?: ..., "container_manager"?: ...}`:
/// 201 when created, 200 when the same cluster exists, 409 when a different
/// one does or the container manager is unknown. A network that does not
/// exist (or none) falls back to `default`, as in commissaire-http's
/// `create_cluster`; so `commctl cluster create NAME` works on a fresh
/// server. A `type` field (API before 0.1.0) is accepted and ignored with a
/// warning; an empty `container_manager` (commctl's default) means none.
pub fn put(req: &Request) -> Reply {
    let (name, asked, manager, old_type) = read_put(req)?;
    if old_type {
        baton_sdk::log::warn(&format!(
            "cluster `{name}`: ignoring the `type` field (removed in API 0.1.0; use `container_manager`)"
        ));
    }
    let network = match NETWORK.get(&asked) {
        Ok(_) => asked,
        Err(e) if e.status == 404 && asked != DEFAULT_NETWORK => {
            baton_sdk::log::warn(&format!(
                "cluster `{name}`: network `{asked}` does not exist; using `{DEFAULT_NETWORK}`"
            ));
            NETWORK.get(DEFAULT_NETWORK).map_err(|_| {
                ApiError::conflict(format!(
                    "network `{asked}` does not exist, nor does `{DEFAULT_NETWORK}`; create one with PUT /network/{asked}"
                ))
            })?;
            DEFAULT_NETWORK.to_string()
        }
        Err(e) if e.status == 404 => {
            return Err(ApiError::conflict(format!(
                "network `{asked}` does not exist; create it with PUT /network/{asked}"
            )));
        }
        Err(e) => return Err(e),
    };
    if let Some(m) = &manager {
        MANAGER.get(m).map_err(|_| {
            ApiError::conflict(format!(
                "container manager `{m}` does not exist; create it with PUT /containermanager/{m}"
            ))
        })?;
    }
    let cluster = store::update::<Cluster, (Cluster, u16)>(
        store::CLUSTERS,
        &name,
        |cur| match cur {
            None => {
                let c = Cluster {
                    name: name.clone(),
                    network: network.clone(),
                    container_manager: manager.clone(),
                    hosts: Vec::new(),
                };
                Ok((Change::Put(c.clone()), (c, 201)))
            }
            Some(c) if c.network == network && c.container_manager == manager => {
                Ok((Change::Keep, (c, 200)))
            }
            Some(c) => Err(ApiError::conflict(format!(
                "cluster `{name}` already exists with network `{}` and container manager `{}`; delete it first to change them",
                c.network,
                c.container_manager.as_deref().unwrap_or("none")
            ))),
        },
    )?;
    Ok(Response::json(cluster.1, &view(&cluster.0)?))
}

/// `DELETE /cluster/{name}`: 200, 404 when absent, 409 while it has hosts.
pub fn delete(req: &Request) -> Reply {
    let name = body::name_param(req, "name")?;
    Body::parse(req, &[])?;
    store::update::<Cluster, ()>(store::CLUSTERS, &name, |cur| match cur {
        None => Err(ApiError::not_found(format!("no cluster named `{name}`"))),
        Some(c) if !c.hosts.is_empty() => Err(ApiError::conflict(format!(
            "cluster `{name}` still has hosts: {}; remove them first",
            c.hosts.join(", ")
        ))),
        Some(_) => Ok((Change::Delete, ())),
    })?;
    for op in ["deploy", "upgrade", "restart"] {
        baton_sdk::kv::Bucket::open(store::OPS).delete(&format!("{name}/{op}"))?;
    }
    Ok(Response::json(200, &json!({})))
}

/// `GET /cluster/{name}/hosts`: the member addresses.
pub fn members(req: &Request) -> Reply {
    let name = body::name_param(req, "name")?;
    Ok(Response::json(200, &get(&name)?.hosts))
}

/// A `PUT /cluster/{name}/hosts` request: the name, `old` as a set and
/// `new` in order without repeats, every address canonical.
pub(crate) fn read_members(
    req: &Request,
) -> Result<(String, BTreeSet<String>, Vec<String>), ApiError> {
    let name = body::name_param(req, "name")?;
    let b = Body::parse(req, &["old", "new"])?;
    let check = |field: &str| -> Result<Vec<String>, ApiError> {
        b.str_list(field)?
            .iter()
            .map(|a| body::address(field, a))
            .collect()
    };
    let old: BTreeSet<String> = check("old")?.into_iter().collect();
    let mut new = Vec::new();
    for a in check("new")? {
        if !new.contains(&a) {
            new.push(a);
        }
    }
    Ok((name, old, new))
}

/// `PUT /cluster/{name}/hosts` with `{"old": [...], "new": [...]}`: replaces
/// the members if `old` is the current list (as a set), else 409.
pub fn replace_members(req: &Request) -> Reply {
    let (name, old, new) = read_members(req)?;
    let hosts = store::update::<Cluster, Vec<String>>(store::CLUSTERS, &name, |cur| {
        let mut c = cur.ok_or_else(|| ApiError::not_found(format!("no cluster named `{name}`")))?;
        let current: BTreeSet<String> = c.hosts.iter().cloned().collect();
        if current != old {
            return Err(ApiError::conflict(format!(
                "`old` does not match cluster `{name}`'s hosts, which are now: [{}]",
                c.hosts.join(", ")
            )));
        }
        c.hosts = new.clone();
        Ok((Change::Put(c), new.clone()))
    })?;
    Ok(Response::json(200, &hosts))
}

/// `GET /cluster/{name}/hosts/{ip}`: 200 when a member, else 404.
pub fn is_member(req: &Request) -> Reply {
    let name = body::name_param(req, "name")?;
    let address = body::address_param(req)?;
    if get(&name)?.hosts.contains(&address) {
        // commissaire-http's check_cluster_member: the host in a list.
        Ok(Response::json(200, &json!([address])))
    } else {
        Err(ApiError::not_found(format!(
            "host {address} is not in cluster `{name}`"
        )))
    }
}

/// Adds `address` to cluster `name` (no change when already a member).
pub fn add_member(name: &str, address: &str) -> Result<(), ApiError> {
    store::update::<Cluster, ()>(store::CLUSTERS, name, |cur| {
        let mut c = cur.ok_or_else(|| ApiError::conflict(format!("no cluster named `{name}`")))?;
        if c.hosts.iter().any(|h| h == address) {
            return Ok((Change::Keep, ()));
        }
        c.hosts.push(address.to_string());
        Ok((Change::Put(c), ()))
    })
}

/// `PUT /cluster/{name}/hosts/{ip}`: adds a member; answers `["IP"]`, the
/// host joined, as commissaire-http's `add_cluster_member` does (commctl's
/// `host join` prints it).
pub fn put_member(req: &Request) -> Reply {
    let name = body::name_param(req, "name")?;
    let address = body::address_param(req)?;
    Body::parse(req, &[])?;
    get(&name)?;
    add_member(&name, &address)?;
    Ok(Response::json(200, &json!([address])))
}

/// `DELETE /cluster/{name}/hosts/{ip}`: removes a member; `[]` whether or
/// not it was one (commissaire-http's `delete_cluster_member`), 404 when the
/// cluster does not exist.
pub fn delete_member(req: &Request) -> Reply {
    let name = body::name_param(req, "name")?;
    let address = body::address_param(req)?;
    Body::parse(req, &[])?;
    store::update::<Cluster, ()>(store::CLUSTERS, &name, |cur| {
        let mut c = cur.ok_or_else(|| ApiError::not_found(format!("no cluster named `{name}`")))?;
        let before = c.hosts.len();
        c.hosts.retain(|h| h != &address);
        if c.hosts.len() == before {
            return Ok((Change::Keep, ()));
        }
        Ok((Change::Put(c), ()))
    })?;
    Ok(Response::json(200, &json!([])))
}

/// The cluster `address` belongs to, if any (the first by name).
pub fn of_host(address: &str) -> Result<Option<Cluster>, ApiError> {
    Ok(store::all::<Cluster>(store::CLUSTERS)?
        .into_iter()
        .find(|c| c.hosts.iter().any(|h| h == address)))
}
