//! The records this handler keeps, their buckets, and read-modify-write
//! with compare-and-swap (jobs and requests update the same records).

use crate::errors::ApiError;
use baton_sdk::HostError;
use baton_sdk::kv::Bucket;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Clusters by name.
pub const CLUSTERS: &str = "clusters";
/// Networks by name.
pub const NETWORKS: &str = "networks";
/// Container managers by name.
pub const MANAGERS: &str = "containermanagers";
/// Hosts by address.
pub const HOSTS: &str = "hosts";
/// Host credentials by address: kept apart so that no host listing can
/// leak them; only `/host/{ip}/creds` and the host's jobs read them.
pub const CREDS: &str = "creds";
/// Deploy, upgrade and restart status by `cluster/op`.
pub const OPS: &str = "ops";

/// Commissaire's "never checked" time (`datetime.min`).
pub const NEVER: &str = "0001-01-01T00:00:00";

/// A cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cluster {
    /// Its name.
    pub name: String,
    /// The network its hosts join.
    pub network: String,
    /// The container manager its hosts run, if any.
    pub container_manager: Option<String>,
    /// Member host addresses, in the order they were added.
    pub hosts: Vec<String>,
}

/// A network or a container manager: a name, a type from an enum, options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    /// Its name.
    pub name: String,
    /// One of the kind's types.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free-form options.
    pub options: Map<String, Value>,
}

/// A host as the API shows it (never its credentials).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    /// Its IP address.
    pub address: String,
    /// investigating, bootstrapping, active, inactive, disassociated, failed.
    pub status: String,
    /// Operating system (from the investigation).
    pub os: String,
    /// CPU count; -1 until investigated.
    pub cpus: i64,
    /// Memory in kB; -1 until investigated.
    pub memory: i64,
    /// Free space on `/` in kB; -1 until investigated.
    pub space: i64,
    /// When it was last investigated (ISO 8601).
    pub last_check: String,
    /// Where the host came from (Commissaire's cloud source; empty here).
    pub source: String,
    /// The job that investigates and bootstraps it (its events say why it failed).
    pub job: Option<String>,
}

impl Host {
    /// Records what an investigation found, checked at `at`.
    pub fn found(&mut self, facts: &crate::commands::Facts, at: &str) {
        self.os = facts.os.clone();
        self.cpus = facts.cpus;
        self.memory = facts.memory;
        self.space = facts.space;
        self.last_check = at.to_string();
    }
}

/// A host's SSH credentials.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Creds {
    /// The private key, base64 as given.
    pub ssh_priv_key: String,
    /// The user to log in as.
    pub remote_user: String,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Creds(remote_user: {}, key: [redacted])",
            self.remote_user
        )
    }
}

/// The record at `key` of `bucket`.
pub fn get<T: DeserializeOwned>(bucket: &str, key: &str) -> Result<Option<T>, HostError> {
    Bucket::open(bucket).get_json(key)
}

/// Every record of `bucket`, in key order.
pub fn all<T: DeserializeOwned>(bucket: &str) -> Result<Vec<T>, HostError> {
    Ok(Bucket::open(bucket)
        .scan_all_json::<T>("")?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Every key of `bucket`.
pub fn keys(bucket: &str) -> Result<Vec<String>, HostError> {
    Ok(Bucket::open(bucket)
        .scan_all_json::<Value>("")?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// What an update does with the record it read.
pub enum Change<T> {
    /// Write this.
    Put(T),
    /// Delete the record.
    Delete,
    /// Leave it as it is.
    Keep,
}

/// Reads `key`, lets `f` decide, and writes the decision only if nobody
/// changed the record meanwhile (else reads again). `f` may refuse with an
/// error, which is returned as is. Returns what `f` returned alongside.
pub fn update<T, R>(
    bucket: &str,
    key: &str,
    mut f: impl FnMut(Option<T>) -> Result<(Change<T>, R), ApiError>,
) -> Result<R, ApiError>
where
    T: Serialize + DeserializeOwned,
{
    let b = Bucket::open(bucket);
    for _ in 0..1000 {
        let raw = b.get(key)?;
        let current = match &raw {
            Some(bytes) => Some(serde_json::from_slice::<T>(bytes).map_err(|e| {
                ApiError::new(500, format!("stored {bucket}/{key} does not decode: {e}"))
            })?),
            None => None,
        };
        let (change, out) = f(current)?;
        let new = match change {
            Change::Keep => return Ok(out),
            Change::Delete => None,
            Change::Put(v) => Some(
                serde_json::to_vec(&v)
                    .map_err(|e| ApiError::new(500, format!("encoding {bucket}/{key}: {e}")))?,
            ),
        };
        if b.compare_and_swap(key, raw.as_deref(), new.as_deref())? {
            return Ok(out);
        }
    }
    Err(ApiError::new(
        503,
        format!("{bucket}/{key} changed too often to update; try again"),
    ))
}
