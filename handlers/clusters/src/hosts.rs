//! Hosts (`/hosts`, `/host/{ip}`, `/host`, `/host/{ip}/creds`,
//! `/host/{ip}/status`). Adding one stores its credentials apart from its
//! record and starts the job that investigates and bootstraps it.

use crate::body::{self, Body};
use crate::bootstrap;
use crate::clusters;
use crate::errors::{ApiError, Reply};
use crate::resources::MANAGER;
use crate::store::{self, Change, Creds, Host, NEVER};
use base64::Engine;
use baton_sdk::jobs::{self, JobState};
use baton_sdk::kv::{self, Bucket};
use baton_sdk::{Request, Response};
use serde_json::json;

/// Statuses a running job moves the host through.
const IN_PROGRESS: [&str; 2] = ["investigating", "bootstrapping"];

/// The host at `address` with its status made true: a host whose job ended
/// without finishing (cancelled, or the server stopped during its last
/// attempt) is `failed`, not left investigating forever.
pub fn current(address: &str) -> Result<Option<Host>, ApiError> {
    let Some(host) = store::get::<Host>(store::HOSTS, address)? else {
        return Ok(None);
    };
    if !IN_PROGRESS.contains(&host.status.as_str()) {
        return Ok(Some(host));
    }
    let ended = match &host.job {
        Some(id) => {
            jobs::get(id)?.is_none_or(|j| j.state.is_final() && j.state != JobState::Succeeded)
        }
        None => false,
    };
    if !ended {
        return Ok(Some(host));
    }
    let stale = host.status.clone();
    store::update::<Host, Option<Host>>(store::HOSTS, address, |cur| match cur {
        Some(mut h) if h.status == stale => {
            h.status = "failed".into();
            Ok((Change::Put(h.clone()), Some(h)))
        }
        other => Ok((Change::Keep, other)),
    })
}

fn get(address: &str) -> Result<Host, ApiError> {
    current(address)?.ok_or_else(|| ApiError::not_found(format!("no host with address {address}")))
}

/// `GET /hosts`: every host record.
pub fn list(_req: &Request) -> Reply {
    let mut out = Vec::new();
    for address in store::keys(store::HOSTS)? {
        if let Some(h) = current(&address)? {
            out.push(h);
        }
    }
    Ok(Response::json(200, &out))
}

/// `GET /host/{ip}`.
pub fn show(req: &Request) -> Reply {
    let address = body::address_param(req)?;
    Ok(Response::json(200, &get(&address)?))
}

/// `PUT /host/{ip}`.
pub fn put(req: &Request) -> Reply {
    let address = body::address_param(req)?;
    register(req, address)
}

/// `PUT /host`: the caller registers itself; the address is the one its
/// request came from.
pub fn put_self(req: &Request) -> Reply {
    let address = body::caller_address(&req.remote_addr)?;
    register(req, address)
}

/// A host registration's body for `address`, read and checked: the
/// credentials to keep and the cluster to join.
pub(crate) fn read_register(
    req: &Request,
    address: &str,
) -> Result<(Creds, Option<String>), ApiError> {
    let b = Body::parse(req, &["address", "ssh_priv_key", "remote_user", "cluster"])?;
    if let Some(given) = b.opt_str("address")?
        && body::address("address", &given)? != address
    {
        return Err(ApiError::field(
            "address",
            format!("field `address` is {given} but the host is {address}"),
        ));
    }
    let key = b.str("ssh_priv_key")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|e| {
            ApiError::field(
                "ssh_priv_key",
                format!("field `ssh_priv_key` is not base64: {e}"),
            )
        })?;
    if decoded.is_empty() {
        return Err(ApiError::field(
            "ssh_priv_key",
            "field `ssh_priv_key` is empty",
        ));
    }
    let remote_user =
        body::remote_user(&b.opt_str("remote_user")?.unwrap_or_else(|| "root".into()))?;
    let cluster = match b.opt_str("cluster")? {
        Some(c) if !c.is_empty() => Some(body::name("cluster", &c)?),
        _ => None,
    };
    let creds = Creds {
        ssh_priv_key: key.trim().to_string(),
        remote_user,
    };
    Ok((creds, cluster))
}

/// Creates the host (201, and its bootstrap job starts); the same
/// credentials again answer 200 with the host as it is; others 409.
fn register(req: &Request, address: String) -> Reply {
    let (creds, cluster) = read_register(req, &address)?;
    if let Some(c) = &cluster {
        clusters::get(c).map_err(|_| {
            ApiError::conflict(format!(
                "cluster `{c}` does not exist; create it with PUT /cluster/{c}"
            ))
        })?;
    }
    let host = Host {
        address: address.clone(),
        status: "investigating".into(),
        os: String::new(),
        cpus: -1,
        memory: -1,
        space: -1,
        last_check: NEVER.into(),
        source: String::new(),
        job: None,
    };
    let existing = store::update::<Host, Option<Host>>(store::HOSTS, &address, |cur| match cur {
        Some(h) => Ok((Change::Keep, Some(h))),
        None => Ok((Change::Put(host.clone()), None)),
    })?;
    if let Some(h) = existing {
        let same = store::get::<Creds>(store::CREDS, &address)?.is_some_and(|c| c == creds);
        let member = match &cluster {
            Some(c) => clusters::get(c)?.hosts.contains(&address),
            None => true,
        };
        if same && member {
            return Ok(Response::json(200, &current(&h.address)?.unwrap_or(h)));
        }
        return Err(ApiError::conflict(format!(
            "host {address} already exists with other credentials or cluster; DELETE /host/{address} first"
        )));
    }
    let started = (|| {
        Bucket::open(store::CREDS).set_json(&address, &creds)?;
        if let Some(c) = &cluster {
            clusters::add_member(c, &address)?;
        }
        let id = bootstrap::start(&address)?;
        store::update::<Host, Host>(store::HOSTS, &address, |cur| {
            let mut h = cur.unwrap_or_else(|| host.clone());
            h.job = Some(id.clone());
            Ok((Change::Put(h.clone()), h))
        })
    })();
    match started {
        Ok(host) => Ok(Response::json(201, &host)),
        Err(e) => {
            // Leave no half-registered host behind (e.g. its cluster was
            // deleted meanwhile); the caller may simply try again.
            let _ = kv::apply(vec![
                Bucket::open(store::HOSTS).write_delete(&address),
                Bucket::open(store::CREDS).write_delete(&address),
            ]);
            Err(e)
        }
    }
}

/// `DELETE /host/{ip}`: stops its job if it runs, forgets the host and its
/// credentials, and takes it out of its clusters.
pub fn delete(req: &Request) -> Reply {
    let address = body::address_param(req)?;
    Body::parse(req, &[])?;
    let host = store::get::<Host>(store::HOSTS, &address)?
        .ok_or_else(|| ApiError::not_found(format!("no host with address {address}")))?;
    if let Some(id) = &host.job {
        // Finished jobs answer `Conflict`; nothing to stop then.
        let _ = jobs::cancel(id);
    }
    kv::apply(vec![
        Bucket::open(store::HOSTS).write_delete(&address),
        Bucket::open(store::CREDS).write_delete(&address),
    ])?;
    for c in store::all::<store::Cluster>(store::CLUSTERS)? {
        if c.hosts.contains(&address) {
            store::update::<store::Cluster, ()>(store::CLUSTERS, &c.name, |cur| match cur {
                Some(mut c) => {
                    c.hosts.retain(|h| h != &address);
                    Ok((Change::Put(c), ()))
                }
                None => Ok((Change::Keep, ())),
            })?;
        }
    }
    Ok(Response::json(200, &json!({})))
}

/// `GET /host/{ip}/creds`: the private key and remote user (needs `hosts:creds`).
pub fn creds(req: &Request) -> Reply {
    let address = body::address_param(req)?;
    let creds = store::get::<Creds>(store::CREDS, &address)?
        .ok_or_else(|| ApiError::not_found(format!("no host with address {address}")))?;
    Ok(Response::json(
        200,
        &json!({ "ssh_priv_key": creds.ssh_priv_key, "remote_user": creds.remote_user }),
    ))
}

/// `GET /host/{ip}/status`: the host's last check and status; the
/// container manager of its cluster, when it has one, by name and type
/// (Baton does not query the container manager itself).
pub fn status(req: &Request) -> Reply {
    let address = body::address_param(req)?;
    let host = get(&address)?;
    let manager = match clusters::of_host(&address)?.and_then(|c| c.container_manager) {
        Some(m) => match MANAGER.get(&m) {
            Ok(r) => json!({ "name": r.name, "type": r.kind }),
            Err(_) => json!({}),
        },
        None => json!({}),
    };
    Ok(Response::json(
        200,
        &json!({
            "type": "host_only",
            "host": { "last_check": host.last_check, "status": host.status },
            "container_manager": manager,
        }),
    ))
}
