//! Networks (`/networks`, `/network/{name}`) and container managers
//! (`/containermanagers`, `/containermanager/{name}`): a name, a type from
//! a fixed list, and options. Neither can be deleted while a cluster uses it.
//!
//! A network named `default` (type `flannel_etcd`) exists from the start, as
//! Commissaire's setup creates it; it is written on first use, once, so that
//! deleting it later sticks.

use crate::body::{self, Body};
use crate::errors::{ApiError, Reply};
use crate::store::{self, Change, Cluster, Resource};
use baton_sdk::kv::Bucket;
use baton_sdk::{Request, Response};
use serde_json::{Map, json};

/// The network clusters use when none (or an unknown one) is named.
pub const DEFAULT_NETWORK: &str = "default";

/// Where the handler notes that [`DEFAULT_NETWORK`] was created.
const META: &str = "meta";
const SEEDED: &str = "default-network-seeded";

/// Creates the `default` network the first time the handler needs it
/// (Commissaire's `DEFAULT_CLUSTER_NETWORK_JSON`: `flannel_etcd`, no options).
pub fn ensure_default_network() -> Result<(), ApiError> {
    let meta = Bucket::open(META);
    if meta.get(SEEDED)?.is_some() {
        return Ok(());
    }
    let record = Resource {
        name: DEFAULT_NETWORK.into(),
        kind: "flannel_etcd".into(),
        options: Map::new(),
    };
    let bytes = serde_json::to_vec(&record)
        .map_err(|e| ApiError::new(500, format!("encoding the default network: {e}")))?;
    // Already there (another request seeded it first) is fine.
    Bucket::open(store::NETWORKS).compare_and_swap(
        DEFAULT_NETWORK,
        None,
        Some(bytes.as_slice()),
    )?;
    meta.set(SEEDED, b"1")?;
    Ok(())
}

/// One kind of resource.
pub struct Kind {
    /// Its bucket.
    pub bucket: &'static str,
    /// How messages name it.
    pub noun: &'static str,
    /// The types it may have.
    pub types: &'static [&'static str],
    /// Which clusters use `name`.
    uses: fn(&Cluster, &str) -> bool,
}

/// Networks.
pub const NETWORK: Kind = Kind {
    bucket: store::NETWORKS,
    noun: "network",
    types: &["flannel_server", "flannel_etcd"],
    uses: |c, name| c.network == name,
};

/// Container managers.
pub const MANAGER: Kind = Kind {
    bucket: store::MANAGERS,
    noun: "container manager",
    types: &["openshift", "kubernetes"],
    uses: |c, name| c.container_manager.as_deref() == Some(name),
};

impl Kind {
    /// The record named `name`, or a 404 naming it.
    pub fn get(&self, name: &str) -> Result<Resource, ApiError> {
        self.seed()?;
        store::get::<Resource>(self.bucket, name)?
            .ok_or_else(|| ApiError::not_found(format!("no {} named `{name}`", self.noun)))
    }

    /// Networks: makes sure the `default` one was created.
    fn seed(&self) -> Result<(), ApiError> {
        if self.bucket == store::NETWORKS {
            ensure_default_network()?;
        }
        Ok(())
    }

    /// `GET` on the collection: the names.
    pub fn list(&self, _req: &Request) -> Reply {
        self.seed()?;
        Ok(Response::json(200, &store::keys(self.bucket)?))
    }

    /// `GET` on one.
    pub fn show(&self, req: &Request) -> Reply {
        let name = body::name_param(req, "name")?;
        Ok(Response::json(200, &self.get(&name)?))
    }

    /// `PUT` on one: `{"type": ..., "options"?: {...}}`; 201 when new, 200
    /// when replaced.
    pub fn put(&self, req: &Request) -> Reply {
        let record = self.read_put(req)?;
        let name = record.name.clone();
        self.seed()?;
        let existed = store::update::<Resource, bool>(self.bucket, &name, |cur| {
            Ok((Change::Put(record.clone()), cur.is_some()))
        })?;
        Ok(Response::json(if existed { 200 } else { 201 }, &record))
    }

    /// A `PUT` request on one, read and checked: the record it writes.
    pub(crate) fn read_put(&self, req: &Request) -> Result<Resource, ApiError> {
        let name = body::name_param(req, "name")?;
        let b = Body::parse(req, &["name", "type", "options"])?;
        if let Some(given) = b.opt_str("name")?
            && given != name
        {
            return Err(ApiError::field(
                "name",
                format!("field `name` is `{given}` but the path names `{name}`"),
            ));
        }
        let kind = b.str("type")?;
        if !self.types.contains(&kind.as_str()) {
            return Err(ApiError::field(
                "type",
                format!(
                    "unknown {} type `{kind}`; expected one of: {}",
                    self.noun,
                    self.types.join(", ")
                ),
            ));
        }
        Ok(Resource {
            name,
            kind,
            options: b.object("options")?,
        })
    }

    /// `DELETE` on one: 200, 404 when absent, 409 naming the clusters using it.
    pub fn delete(&self, req: &Request) -> Reply {
        let name = body::name_param(req, "name")?;
        Body::parse(req, &[])?;
        self.get(&name)?;
        let users: Vec<String> = store::all::<Cluster>(store::CLUSTERS)?
            .into_iter()
            .filter(|c| (self.uses)(c, &name))
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "{} `{name}` is used by cluster(s): {}",
                self.noun,
                users.join(", ")
            )));
        }
        store::update::<Resource, ()>(self.bucket, &name, |_| Ok((Change::Delete, ())))?;
        Ok(Response::json(200, &json!({})))
    }
}
