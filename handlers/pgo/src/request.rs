//! The request bodies of `/clusters`, `/showclusters` and `/clustersdelete`
//! (`CreateClusterRequest`, `ShowClusterRequest`, `DeleteClusterRequest` of
//! postgres-operator v4.7.4's `pkg/apiservermsgs/clustermsgs.go`), read and
//! checked before anything is stored. `ClientVersion` and `Namespace` are
//! checked first, by the endpoints (as the PGO API server does); every
//! other problem is a refusal naming the field.

use crate::body::Body;
use crate::selector::Selector;
use crate::status::PgoError;
use crate::validate;
use std::collections::BTreeMap;

/// Most replicas one request may ask for.
pub const MAX_REPLICAS: u32 = 32;
/// Most pgBouncer replicas one request may ask for.
pub const MAX_PGBOUNCER: u32 = 16;
/// The cluster name `pgo delete cluster --all` sends, meaning every cluster.
pub const ALL: &str = "all";

/// `POST /clusters` (its fields besides `ClientVersion` and `Namespace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// `Name`.
    pub name: String,
    /// `ReplicaCount`.
    pub replicas: u32,
    /// `CCPImage`, when given.
    pub image: Option<String>,
    /// `CCPImageTag`, when given.
    pub image_tag: Option<String>,
    /// `Database`, when given.
    pub database: Option<String>,
    /// `Username`, when given.
    pub user: Option<String>,
    /// `PVCSize`, when given.
    pub pvc_size: Option<String>,
    /// `PgBouncerReplicas`, or 1 with `PgbouncerFlag`, else 0.
    pub pgbouncer_replicas: u32,
    /// `MetricsFlag`.
    pub metrics: bool,
    /// `UserLabels`: labels the cluster carries (and selectors match).
    pub user_labels: BTreeMap<String, String>,
}

impl CreateRequest {
    /// Reads and checks a create body.
    pub fn from_body(b: &Body) -> Result<Self, PgoError> {
        let name = b.required_string("Name")?;
        if name == ALL {
            // The PGO API server's own words.
            return Err(PgoError::refused(
                "invalid cluster name 'all' is not allowed as a cluster name",
            ));
        }
        validate::cluster_name("Name", &name)?;
        if let Some(series) = b.count("Series", u32::MAX)?
            && series > 1
        {
            return Err(PgoError::refused(format!(
                "`Series` {series}: one request creates one cluster; send `Series` 1 (or leave it out) and create the others by name"
            )));
        }
        let optional = |field: &str, check: fn(&str, &str) -> Result<(), PgoError>| {
            let v = b.string(field)?.filter(|v| !v.is_empty());
            if let Some(v) = &v {
                check(field, v)?;
            }
            Ok::<_, PgoError>(v)
        };
        let image = optional("CCPImage", validate::image)?;
        let image_tag = optional("CCPImageTag", validate::image)?;
        let database = optional("Database", validate::identifier)?;
        let user = optional("Username", validate::identifier)?;
        let pvc_size = optional("PVCSize", validate::quantity)?;
        let replicas = b.count("ReplicaCount", MAX_REPLICAS)?.unwrap_or(0);
        let bouncer_flag = b.flag("PgbouncerFlag")?;
        let bouncers = b.count("PgBouncerReplicas", MAX_PGBOUNCER)?.unwrap_or(0);
        let pgbouncer_replicas = match (bouncer_flag, bouncers) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, n) => n,
        };
        let user_labels = b.string_map("UserLabels")?;
        for (k, v) in &user_labels {
            validate::label("UserLabels", k, v)?;
        }
        Ok(CreateRequest {
            name,
            replicas,
            image,
            image_tag,
            database,
            user,
            pvc_size,
            pgbouncer_replicas,
            metrics: b.flag("MetricsFlag")?,
            user_labels,
        })
    }
}

/// Which clusters a show or delete is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The cluster `Clustername`.
    One(String),
    /// Every cluster of the namespace (`AllFlag`, or the name `all`).
    All,
    /// The clusters whose labels match `Selector`.
    Matching(Selector),
}

/// `POST /showclusters` and `POST /clustersdelete` (besides `ClientVersion`
/// and `Namespace`). A `Selector` wins over the name, as in the PGO API
/// server; `AllFlag` or the name `all` (what `pgo delete cluster --all`
/// sends) select every cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The clusters selected.
    pub target: Target,
    /// `Ccpimagetag` (show only): only clusters with this image tag.
    pub image_tag: Option<String>,
    /// `DeleteData` (delete only; passed to the teardown command).
    pub delete_data: bool,
    /// `DeleteBackups` (delete only; passed to the teardown command).
    pub delete_backups: bool,
}

impl Selection {
    /// Reads and checks a show or delete body.
    pub fn from_body(b: &Body) -> Result<Self, PgoError> {
        let all = b.flag("AllFlag")?;
        let name = b.string("Clustername")?.filter(|n| !n.is_empty());
        let selector = b.string("Selector")?.filter(|s| !s.trim().is_empty());
        let target = match (selector, name) {
            (Some(s), _) => Target::Matching(Selector::parse(&s)?),
            (None, Some(n)) if n == ALL => Target::All,
            (None, _) if all => Target::All,
            (None, Some(n)) => {
                validate::cluster_name("Clustername", &n)?;
                Target::One(n)
            }
            (None, None) => {
                return Err(PgoError::refused(
                    "`Clustername` is required unless `AllFlag` is true or a `Selector` is given",
                ));
            }
        };
        Ok(Selection {
            target,
            image_tag: b.string("Ccpimagetag")?.filter(|t| !t.is_empty()),
            delete_data: b.flag("DeleteData")?,
            delete_backups: b.flag("DeleteBackups")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(text: &str) -> Result<CreateRequest, PgoError> {
        CreateRequest::from_body(&Body::parse(text.as_bytes()).unwrap())
    }

    fn select(text: &str) -> Result<Selection, PgoError> {
        Selection::from_body(&Body::parse(text.as_bytes()).unwrap())
    }

    #[test]
    fn the_documented_create_body_is_accepted() {
        let r = create(
            r#"{"ClientVersion":"4.7.4","Namespace":"pgouser1","Name":"mycluster","Series":1}"#,
        )
        .unwrap();
        assert_eq!(r.name, "mycluster");
        assert_eq!(r.replicas, 0);
        assert_eq!(r.image, None);
        assert!(r.user_labels.is_empty());
    }

    #[test]
    fn create_fields_are_checked_and_named() {
        let cases = [
            (r#"{"Namespace":"a"}"#, "`Name` is required"),
            (r#"{"Name":7}"#, "`Name` must be a string"),
            (r#"{"Name":"Bad_Name"}"#, "`Name` `Bad_Name`"),
            (r#"{"Name":"all"}"#, "'all' is not allowed"),
            (r#"{"Name":"b","Series":3}"#, "`Series` 3"),
            (r#"{"Name":"b","ReplicaCount":"2"}"#, "`ReplicaCount`"),
            (r#"{"Name":"b","ReplicaCount":-1}"#, "`ReplicaCount`"),
            (r#"{"Name":"b","PVCSize":"lots"}"#, "`PVCSize`"),
            (r#"{"Name":"b","UserLabels":{"a b":"c"}}"#, "`UserLabels`"),
        ];
        for (body, expected) in cases {
            let e = create(body).unwrap_err();
            assert_eq!(e.status, 200, "{body}");
            assert!(e.msg.contains(expected), "{body}: {}", e.msg);
        }
    }

    #[test]
    fn pgbouncer_flag_implies_one_replica() {
        let r = create(r#"{"Name":"b","PgbouncerFlag":true}"#).unwrap();
        assert_eq!(r.pgbouncer_replicas, 1);
        let r = create(r#"{"Name":"b","PgBouncerReplicas":3}"#).unwrap();
        assert_eq!(r.pgbouncer_replicas, 0);
    }

    #[test]
    fn selections_need_a_name_the_all_flag_or_a_selector() {
        let s = select(r#"{"Clustername":"c"}"#).unwrap();
        assert_eq!(s.target, Target::One("c".into()));
        let s = select(r#"{"AllFlag":true}"#).unwrap();
        assert_eq!(s.target, Target::All);
        // What `pgo delete cluster --all` sends.
        let s = select(r#"{"Clustername":"all","AllFlag":true,"Selector":""}"#).unwrap();
        assert_eq!(s.target, Target::All);
        // What `pgo show cluster --selector=env=research` sends (lower-case keys).
        let s = select(r#"{"clustername":"","selector":"env=research","allflag":false}"#).unwrap();
        assert!(matches!(s.target, Target::Matching(ref m) if m.as_str() == "env=research"));
        let e = select(r#"{"ClientVersion":"4.7.4","Namespace":"a"}"#).unwrap_err();
        assert!(
            e.msg.contains("`Clustername` is required unless `AllFlag`"),
            "{}",
            e.msg
        );
        let e = select(r#"{"AllFlag":1}"#).unwrap_err();
        assert!(
            e.msg.contains("`AllFlag` must be true or false"),
            "{}",
            e.msg
        );
    }
}
