//! Networks (`/networks`, `/network/{name}`) and container managers
//! (`/containermanagers`, `/containermanager/{name}`): a name, a type from
//! a fixed list, and options. Neither can be deleted while a cluster uses it.

use crate::body::{self, Body};
use crate::errors::{ApiError, Reply};
use crate::store::{self, Change, Cluster, Resource};
use baton_sdk::{Request, Response};
use serde_json::json;

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
        store::get::<Resource>(self.bucket, name)?
            .ok_or_else(|| ApiError::not_found(format!("no {} named `{name}`", self.noun)))
    }

    /// `GET` on the collection: the names.
    pub fn list(&self, _req: &Request) -> Reply {
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
        let record = Resource {
            name: name.clone(),
            kind,
            options: b.object("options")?,
        };
        let existed = store::update::<Resource, bool>(self.bucket, &name, |cur| {
            Ok((Change::Put(record.clone()), cur.is_some()))
        })?;
        Ok(Response::json(if existed { 200 } else { 201 }, &record))
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
