//! The request bodies of `/clusters`, `/showclusters` and `/clustersdelete`,
//! read and checked before anything is stored (every problem is a 400
//! naming the field).

use crate::body::Body;
use crate::status::PgoError;
use crate::validate;

/// Most replicas one request may ask for.
pub const MAX_REPLICAS: u32 = 32;
/// Most pgBouncer replicas one request may ask for.
pub const MAX_PGBOUNCER: u32 = 16;

/// `POST /clusters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// `ClientVersion`.
    pub client_version: String,
    /// `Namespace`.
    pub namespace: String,
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
}

impl CreateRequest {
    /// Reads and checks a create body.
    pub fn from_body(b: &Body) -> Result<Self, PgoError> {
        let client_version = b.required_string("ClientVersion")?;
        let namespace = b.required_string("Namespace")?;
        validate::namespace("Namespace", &namespace)?;
        let name = b.required_string("Name")?;
        validate::cluster_name("Name", &name)?;
        if let Some(series) = b.count("Series", u32::MAX)?
            && series > 1
        {
            return Err(PgoError::bad_request(format!(
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
        Ok(CreateRequest {
            client_version,
            namespace,
            name,
            replicas,
            image,
            image_tag,
            database,
            user,
            pvc_size,
            pgbouncer_replicas,
            metrics: b.flag("MetricsFlag")?,
        })
    }
}

/// `POST /showclusters` and `POST /clustersdelete`: one cluster by
/// `Clustername`, or every cluster of the namespace with `AllFlag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `ClientVersion`.
    pub client_version: String,
    /// `Namespace`.
    pub namespace: String,
    /// `Clustername`, unless `AllFlag` is set.
    pub name: Option<String>,
    /// `DeleteData` (delete only; passed to the teardown command).
    pub delete_data: bool,
    /// `DeleteBackups` (delete only; passed to the teardown command).
    pub delete_backups: bool,
}

impl Selection {
    /// Reads and checks a show or delete body.
    pub fn from_body(b: &Body) -> Result<Self, PgoError> {
        let client_version = b.required_string("ClientVersion")?;
        let namespace = b.required_string("Namespace")?;
        validate::namespace("Namespace", &namespace)?;
        let all = b.flag("AllFlag")?;
        let name = match (all, b.string("Clustername")?.filter(|n| !n.is_empty())) {
            (true, _) => None,
            (false, Some(n)) => {
                validate::cluster_name("Clustername", &n)?;
                Some(n)
            }
            (false, None) => {
                return Err(PgoError::bad_request(
                    "`Clustername` is required unless `AllFlag` is true",
                ));
            }
        };
        Ok(Selection {
            client_version,
            namespace,
            name,
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
        assert_eq!(r.namespace, "pgouser1");
        assert_eq!(r.replicas, 0);
        assert_eq!(r.image, None);
    }

    #[test]
    fn create_fields_are_checked_and_named() {
        let cases = [
            (
                r#"{"Namespace":"a","Name":"b"}"#,
                "`ClientVersion` is required",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Name":"b"}"#,
                "`Namespace` is required",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Namespace":"a"}"#,
                "`Name` is required",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Namespace":"a","Name":7}"#,
                "`Name` must be a string",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Namespace":"a","Name":"Bad_Name"}"#,
                "`Name` `Bad_Name`",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Namespace":"a","Name":"b","Series":3}"#,
                "`Series` 3",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Namespace":"a","Name":"b","ReplicaCount":"2"}"#,
                "`ReplicaCount`",
            ),
            (
                r#"{"ClientVersion":"4.7.4","Namespace":"a","Name":"b","PVCSize":"lots"}"#,
                "`PVCSize`",
            ),
        ];
        for (body, expected) in cases {
            let e = create(body).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert!(e.msg.contains(expected), "{body}: {}", e.msg);
        }
    }

    #[test]
    fn pgbouncer_flag_implies_one_replica() {
        let r = create(r#"{"ClientVersion":"x","Namespace":"a","Name":"b","PgbouncerFlag":true}"#)
            .unwrap();
        assert_eq!(r.pgbouncer_replicas, 1);
        let r = create(r#"{"ClientVersion":"x","Namespace":"a","Name":"b","PgBouncerReplicas":3}"#)
            .unwrap();
        assert_eq!(r.pgbouncer_replicas, 0);
    }

    #[test]
    fn selections_need_a_name_or_the_all_flag() {
        let s = select(r#"{"ClientVersion":"4.7.4","Namespace":"a","Clustername":"c"}"#).unwrap();
        assert_eq!(s.name.as_deref(), Some("c"));
        let s = select(r#"{"ClientVersion":"4.7.4","Namespace":"a","AllFlag":true}"#).unwrap();
        assert_eq!(s.name, None);
        let e = select(r#"{"ClientVersion":"4.7.4","Namespace":"a"}"#).unwrap_err();
        assert!(
            e.msg.contains("`Clustername` is required unless `AllFlag`"),
            "{}",
            e.msg
        );
        let e = select(r#"{"ClientVersion":"4.7.4","Namespace":"a","AllFlag":1}"#).unwrap_err();
        assert!(
            e.msg.contains("`AllFlag` must be true or false"),
            "{}",
            e.msg
        );
    }
}
