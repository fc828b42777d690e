//! The cluster record kept in kv (bucket `clusters`, key `namespace/name`),
//! its changes (compare-and-swap, so that requests and jobs never overwrite
//! each other), and its `ShowClusterDetail` view.

use baton_sdk::HostError;
use baton_sdk::jobs::{JobInfo, JobState};
use baton_sdk::kv::Bucket;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const BUCKET: &str = "clusters";
/// Attempts of one read-modify-write before giving up.
const CAS_ATTEMPTS: usize = 64;

/// Where a cluster is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The provision job is queued or running.
    Creating,
    /// Provisioned (and, with a `ready_command`, reported ready).
    Ready,
    /// The teardown job is queued or running; the record goes when it succeeds.
    Deleting,
    /// The last provision or teardown failed; `message` says why.
    Failed,
}

impl State {
    /// The lower-case name used in replies.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::Ready => "ready",
            State::Deleting => "deleting",
            State::Failed => "failed",
        }
    }
}

/// What the cluster was asked to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Replicas besides the primary.
    pub replicas: u32,
    /// Container image of the PostgreSQL instances.
    pub image: String,
    /// Its tag.
    pub image_tag: String,
    /// The database created at start.
    pub database: String,
    /// The user created at start.
    pub user: String,
    /// Size of the primary's volume.
    pub pvc_size: String,
    /// pgBouncer replicas (0 = none).
    pub pgbouncer_replicas: u32,
    /// Whether the metrics exporter runs.
    pub metrics: bool,
}

/// One cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The cluster's name, unique in its namespace.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Where it is in its life.
    pub state: State,
    /// The last step or failure, for people.
    pub message: String,
    /// The job id of the current (or last) provision or teardown.
    pub workflow_id: String,
    /// The user who created it.
    pub pgouser: String,
    /// The server version it was created with.
    pub pgo_version: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// What it was asked to be.
    pub spec: Spec,
    /// The manifest rendered at creation, given to the provision and teardown commands.
    pub manifest: String,
    /// `UserLabels` of the create request.
    #[serde(default)]
    pub user_labels: BTreeMap<String, String>,
}

/// The cluster's labels, as a `Pgcluster` carries them: the user's, then
/// the ones PGO sets (`name`, `pg-cluster`, `pgo-version`, `pgouser`,
/// `workflowid`), which win.
pub fn labels(c: &Cluster) -> BTreeMap<String, String> {
    let mut labels = c.user_labels.clone();
    for (k, v) in [
        ("name", &c.name),
        ("pg-cluster", &c.name),
        ("pgo-version", &c.pgo_version),
        ("pgouser", &c.pgouser),
        ("workflowid", &c.workflow_id),
    ] {
        labels.insert(k.to_string(), v.clone());
    }
    labels
}

/// The storage key of `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn decode(key: &str, bytes: &[u8]) -> Result<Cluster, HostError> {
    serde_json::from_slice(bytes).map_err(|e| HostError::Decode(format!("{BUCKET}/{key}: {e}")))
}

fn encode(c: &Cluster) -> Result<Vec<u8>, HostError> {
    serde_json::to_vec(c).map_err(|e| HostError::Internal(format!("encoding {}: {e}", c.name)))
}

/// The cluster `name` in `namespace`.
pub fn get(namespace: &str, name: &str) -> Result<Option<Cluster>, HostError> {
    let key = key(namespace, name);
    match Bucket::open(BUCKET).get(&key)? {
        Some(bytes) => decode(&key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Every cluster of `namespace`, by name.
pub fn list(namespace: &str) -> Result<Vec<Cluster>, HostError> {
    Ok(Bucket::open(BUCKET)
        .scan_all_json::<Cluster>(&format!("{namespace}/"))?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// Stores `c` unless a cluster of that name exists; returns whether it was stored.
pub fn insert_new(c: &Cluster) -> Result<bool, HostError> {
    Bucket::open(BUCKET).compare_and_swap(&key(&c.namespace, &c.name), None, Some(&encode(c)?))
}

/// Applies `change` to the stored cluster and writes it back unless another
/// writer came first (then reads and tries again). `change` returns whether
/// it changed anything. `Ok(None)` when the cluster does not exist.
pub fn update(
    namespace: &str,
    name: &str,
    mut change: impl FnMut(&mut Cluster) -> bool,
) -> Result<Option<Cluster>, HostError> {
    let bucket = Bucket::open(BUCKET);
    let key = key(namespace, name);
    for _ in 0..CAS_ATTEMPTS {
        let Some(old) = bucket.get(&key)? else {
            return Ok(None);
        };
        let mut c = decode(&key, &old)?;
        if !change(&mut c) {
            return Ok(Some(c));
        }
        c.updated_at = baton_sdk::time::now_rfc3339();
        if bucket.compare_and_swap(&key, Some(&old), Some(&encode(&c)?))? {
            return Ok(Some(c));
        }
    }
    Err(HostError::Conflict)
}

/// Deletes the cluster if `remove` says yes about its current value;
/// returns whether it was deleted.
pub fn remove_if(
    namespace: &str,
    name: &str,
    remove: impl Fn(&Cluster) -> bool,
) -> Result<bool, HostError> {
    let bucket = Bucket::open(BUCKET);
    let key = key(namespace, name);
    for _ in 0..CAS_ATTEMPTS {
        let Some(old) = bucket.get(&key)? else {
            return Ok(false);
        };
        if !remove(&decode(&key, &old)?) {
            return Ok(false);
        }
        if bucket.compare_and_swap(&key, Some(&old), None)? {
            return Ok(true);
        }
    }
    Err(HostError::Conflict)
}

/// The state to show: a cluster whose job ended without succeeding (a
/// crash, a cancel, a timeout) is `failed` even if the job could not say so.
pub fn effective(c: &Cluster, job: Option<&JobInfo>) -> (State, String) {
    match (c.state, job) {
        (State::Creating | State::Deleting, Some(j))
            if j.state.is_final() && j.state != JobState::Succeeded =>
        {
            (
                State::Failed,
                format!(
                    "workflow {} ended {}: {}",
                    j.id,
                    j.state.as_str(),
                    j.error.clone().unwrap_or_else(|| "no reason given".into())
                ),
            )
        }
        (State::Creating | State::Deleting, None) if !c.workflow_id.is_empty() => (
            State::Failed,
            format!("workflow {} no longer exists", c.workflow_id),
        ),
        _ => (c.state, c.message.clone()),
    }
}

/// The `ShowClusterDetail` of `c` (`pkg/apiservermsgs/clustermsgs.go`):
/// the `Pgcluster` resource under `cluster` (that struct's JSON tag),
/// `Deployments`, `Pods`, `Services`, `Replicas`, `Standby`, each with the
/// JSON type the Go struct declares, and Baton's `Workflow`: the job that
/// provisions or tears it down (Go clients ignore the extra field).
pub fn detail(c: &Cluster, job: Option<&JobInfo>) -> Value {
    let (state, message) = effective(c, job);
    let workflow = job.map(|j| {
        json!({
            "ID": j.id,
            "State": j.state.as_str(),
            "Kind": j.kind,
            "Progress": j.progress.as_ref().map(|p| json!({
                "Message": p.message, "Done": p.done, "Total": p.total,
            })),
            "Error": j.error,
        })
    });
    json!({
        "cluster": {
            "apiVersion": "crunchydata.com/v1",
            "kind": "Pgcluster",
            "metadata": {
                "name": c.name,
                "namespace": c.namespace,
                "creationTimestamp": c.created_at,
                "labels": labels(c),
            },
            "spec": {
                "name": c.name,
                "clustername": c.name,
                "ccpimage": c.spec.image,
                "ccpimagetag": c.spec.image_tag,
                "database": c.spec.database,
                "user": c.spec.user,
                "port": "5432",
                "replicas": c.spec.replicas.to_string(),
                "PrimaryStorage": { "size": c.spec.pvc_size },
                "pgBouncer": { "replicas": c.spec.pgbouncer_replicas },
                "exporter": c.spec.metrics,
                "userlabels": c.user_labels,
                "standby": false,
            },
            "status": { "state": state.as_str(), "message": message },
        },
        "Deployments": [],
        "Pods": [],
        "Services": [],
        "Replicas": [],
        "Standby": false,
        "Workflow": workflow,
    })
}
