//! The endpoints: `GET /version`, `POST /clusters`, `POST /showclusters`,
//! `POST /clustersdelete`. Each POST reads its body, then checks
//! `ClientVersion` against the server's, then that the caller may act in
//! the namespace (the PGO API server's order), then reads the rest and
//! does the work.

use crate::body::Body;
use crate::cluster::{self, Cluster, Spec, State};
use crate::provision::{self, JobInput};
use crate::request::{CreateRequest, Selection, Target};
use crate::settings;
use crate::status::{self, PgoError, Reply};
use crate::template;
use crate::validate;
use baton_sdk::jobs::{self, JobInfo};
use baton_sdk::{HostError, Request, Response, time};
use serde_json::{Value, json};

/// `GET /version`: `VersionResponse`.
pub fn version(_req: &Request) -> Response {
    status::version(&settings::server_version())
}

/// Refuses a `ClientVersion` other than the server's, naming both; the
/// message starts with the PGO API server's own words.
fn check_version(client: &str) -> Result<(), PgoError> {
    let server = settings::server_version();
    if client == server {
        return Ok(());
    }
    let given = if client.is_empty() {
        "the request has no ClientVersion".to_string()
    } else {
        format!("the request's ClientVersion is {client}")
    };
    Err(PgoError::refused(format!(
        "pgo client and server version mismatch: {given}, this server is {server}; send \"ClientVersion\": \"{server}\""
    )))
}

/// The caller's name if it may act in `namespace` (its user's namespaces, `*` = all).
fn check_namespace(req: &Request, namespace: &str) -> Result<String, PgoError> {
    let principal = req.principal.as_ref();
    let user = principal.map_or("anonymous", |p| p.subject.as_str());
    if principal.is_some_and(|p| p.in_namespace(namespace)) {
        Ok(user.to_string())
    } else {
        Err(PgoError::refused(format!(
            "user [{user}] is not allowed access to namespace [{namespace}]"
        )))
    }
}

/// A POST's body with its `ClientVersion` and `Namespace` checked.
struct Call {
    body: Body,
    namespace: String,
    user: String,
}

/// Reads the body and checks version, then namespace, as the PGO API
/// server does before anything else.
fn call(req: &Request) -> Result<Call, PgoError> {
    let body = Body::parse(&req.body)?;
    check_version(&body.string("ClientVersion")?.unwrap_or_default())?;
    let namespace = body.string("Namespace")?.unwrap_or_default();
    if namespace.is_empty() {
        // The PGO API server's own words.
        return Err(PgoError::refused(
            "empty namespace is not valid from pgo clients",
        ));
    }
    validate::namespace("Namespace", &namespace)?;
    let user = check_namespace(req, &namespace)?;
    Ok(Call {
        body,
        namespace,
        user,
    })
}

fn unknown(name: &str, namespace: &str) -> PgoError {
    PgoError::refused(format!("cluster {name} not found in namespace {namespace}"))
}

fn required_command(key: &str, what: &str) -> Result<(), PgoError> {
    match settings::command(key) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(PgoError::internal(format!(
            "this server cannot {what}: its [handler.config] has no `{key}`"
        ))),
        Err(e) => Err(PgoError::internal(e)),
    }
}

/// `POST /clusters`: stores the cluster as `creating` and queues the job
/// that provisions it; a name already used in the namespace is refused.
pub fn create(req: &Request) -> Reply {
    let Call {
        body,
        namespace,
        user,
    } = call(req)?;
    let r = CreateRequest::from_body(&body)?;
    required_command("provision_command", "create clusters")?;

    let version = settings::server_version();
    let spec = Spec {
        replicas: r.replicas,
        image: r
            .image
            .unwrap_or_else(|| settings::or_default("default_image", settings::DEFAULT_IMAGE)),
        image_tag: r.image_tag.unwrap_or_else(|| {
            settings::or_default("default_image_tag", settings::DEFAULT_IMAGE_TAG)
        }),
        database: r.database.unwrap_or_else(|| {
            settings::or_default("default_database", settings::DEFAULT_DATABASE)
        }),
        user: r
            .user
            .unwrap_or_else(|| settings::or_default("default_user", settings::DEFAULT_USER)),
        pvc_size: r.pvc_size.unwrap_or_else(|| {
            settings::or_default("default_pvc_size", settings::DEFAULT_PVC_SIZE)
        }),
        pgbouncer_replicas: r.pgbouncer_replicas,
        metrics: r.metrics,
    };
    let values = [
        ("name", r.name.clone()),
        ("namespace", namespace.clone()),
        ("pgo_version", version.clone()),
        ("image", spec.image.clone()),
        ("image_tag", spec.image_tag.clone()),
        ("database", spec.database.clone()),
        ("user", spec.user.clone()),
        ("replicas", spec.replicas.to_string()),
        ("pgbouncer_replicas", spec.pgbouncer_replicas.to_string()),
        ("metrics", spec.metrics.to_string()),
        ("pvc_size", spec.pvc_size.clone()),
    ];
    let template = settings::or_default("manifest_template", template::DEFAULT_TEMPLATE);
    let manifest = template::render(&template, &values).map_err(PgoError::internal)?;

    let now = time::now_rfc3339();
    let c = Cluster {
        name: r.name.clone(),
        namespace,
        state: State::Creating,
        message: "queued for provisioning".into(),
        workflow_id: String::new(),
        pgouser: user,
        pgo_version: version,
        created_at: now.clone(),
        updated_at: now,
        spec,
        manifest,
        user_labels: r.user_labels,
    };
    if !cluster::insert_new(&c)? {
        return Err(PgoError::refused(format!(
            "cluster {} already exists in namespace {}",
            c.name, c.namespace
        )));
    }
    let input = JobInput::new(&c.namespace, &c.name);
    let id = match jobs::spawn(&provision::spec(provision::PROVISION, &input)) {
        Ok(id) => id,
        Err(e) => {
            // Nothing will provision it: take the record back.
            let _ = cluster::remove_if(&c.namespace, &c.name, |c| c.workflow_id.is_empty());
            return Err(e.into());
        }
    };
    cluster::update(&c.namespace, &c.name, |c| {
        let unset = c.workflow_id.is_empty();
        if unset {
            c.workflow_id = id.clone();
        }
        unset
    })?;
    // `CreateClusterDetail`; Baton keeps no database passwords, so the
    // user's is empty (the Go struct allows that).
    Ok(status::created(json!({
        "Database": c.spec.database,
        "Name": c.name,
        "Users": [{ "Password": "", "Username": c.spec.user }],
        "WorkflowID": id,
    })))
}

/// The job a cluster's `workflow_id` names, if it still exists.
fn workflow(c: &Cluster) -> Result<Option<JobInfo>, HostError> {
    if c.workflow_id.is_empty() {
        return Ok(None);
    }
    jobs::get(&c.workflow_id)
}

/// The clusters of `ns` that `target` names: `Ok(Err(name))` when a named
/// one does not exist.
fn selected(ns: &str, target: &Target) -> Result<Result<Vec<Cluster>, String>, PgoError> {
    Ok(match target {
        Target::One(name) => match cluster::get(ns, name)? {
            Some(c) => Ok(vec![c]),
            None => Err(name.clone()),
        },
        Target::All => Ok(cluster::list(ns)?),
        Target::Matching(sel) => Ok(cluster::list(ns)?
            .into_iter()
            .filter(|c| sel.matches(&cluster::labels(c)))
            .collect()),
    })
}

/// `POST /showclusters`: `ShowClusterResponse`; one cluster by
/// `Clustername`, all with `AllFlag`, or those matching `Selector`,
/// optionally only those with `Ccpimagetag`.
pub fn show(req: &Request) -> Reply {
    let call = call(req)?;
    let s = Selection::from_body(&call.body)?;
    let ns = &call.namespace;
    let clusters = selected(ns, &s.target)?.map_err(|name| unknown(&name, ns))?;
    let mut results: Vec<Value> = Vec::with_capacity(clusters.len());
    for c in &clusters {
        if s.image_tag.as_ref().is_some_and(|t| *t != c.spec.image_tag) {
            continue;
        }
        results.push(cluster::detail(c, workflow(c)?.as_ref()));
    }
    Ok(status::results(results))
}

/// `POST /clustersdelete`: `DeleteClusterResponse`; marks each selected
/// cluster `deleting`, cancels its provisioning if that still runs, and
/// queues the teardown job, which removes the record when it succeeds.
pub fn delete(req: &Request) -> Reply {
    let call = call(req)?;
    let s = Selection::from_body(&call.body)?;
    required_command("teardown_command", "delete clusters")?;
    let ns = &call.namespace;
    let clusters = selected(ns, &s.target)?.map_err(|name| unknown(&name, ns))?;
    let names: Vec<String> = match &s.target {
        Target::One(name) => match clusters.first() {
            Some(c) if c.state == State::Deleting => {
                return Err(PgoError::refused(format!(
                    "cluster {name} in namespace {ns} is already being deleted (workflow {})",
                    c.workflow_id
                )));
            }
            _ => vec![name.clone()],
        },
        Target::All | Target::Matching(_) => {
            if clusters.is_empty() {
                let matching = match &s.target {
                    Target::Matching(sel) => format!(" matching `{}`", sel.as_str()),
                    _ => String::new(),
                };
                return Err(PgoError::refused(format!(
                    "no clusters found in namespace {ns}{matching}"
                )));
            }
            clusters
                .into_iter()
                .filter(|c| c.state != State::Deleting)
                .map(|c| c.name)
                .collect()
        }
    };
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        if start_teardown(ns, &name, &s)? {
            results.push(Value::String(format!("deleted {name}")));
        }
    }
    Ok(status::results(results))
}

/// Marks one cluster `deleting` and queues its teardown; false if it went
/// away or another request is already deleting it.
fn start_teardown(ns: &str, name: &str, s: &Selection) -> Result<bool, PgoError> {
    let mut previous = None;
    let marked = cluster::update(ns, name, |c| {
        if c.state == State::Deleting {
            previous = None;
            return false;
        }
        previous = Some((c.state, c.workflow_id.clone()));
        c.state = State::Deleting;
        c.message = "queued for teardown".into();
        true
    })?;
    let (Some(_), Some((was, old_id))) = (marked, previous) else {
        return Ok(false);
    };
    if was == State::Creating && !old_id.is_empty() {
        match jobs::cancel(&old_id) {
            Ok(()) | Err(HostError::Conflict | HostError::NotFound) => {}
            Err(e) => {
                baton_sdk::log::warn(&format!("cancelling workflow {old_id} of {ns}/{name}: {e}"))
            }
        }
    }
    let mut input = JobInput::new(ns, name);
    input.delete_data = s.delete_data;
    input.delete_backups = s.delete_backups;
    let id = match jobs::spawn(&provision::spec(provision::TEARDOWN, &input)) {
        Ok(id) => id,
        Err(e) => {
            cluster::update(ns, name, |c| {
                c.state = State::Failed;
                c.message = format!("the teardown could not be queued: {e}");
                true
            })?;
            return Err(e.into());
        }
    };
    cluster::update(ns, name, |c| {
        let ours = c.state == State::Deleting && c.workflow_id == old_id;
        if ours {
            c.workflow_id = id.clone();
        }
        ours
    })?;
    Ok(true)
}
