//! The pgo 4.7.4 client, as far as the conformance tests need it, read from
//! its own code (CrunchyData/postgres-operator, tag v4.7.4, commit
//! 64b54e39d26c1e0b183b7fdd5b106c572827f102):
//!
//! - the request bodies exactly as `json.Marshal` writes the structs of
//!   `pkg/apiservermsgs/clustermsgs.go` that `cmd/pgo/cmd/cluster.go` fills
//!   (field order, JSON tags, the CLI's flag defaults);
//! - the request on the wire as `cmd/pgo/api/*.go` builds it with Go's
//!   `net/http` (`http.NewRequestWithContext`, `Content-Type`,
//!   `SetBasicAuth`; the pgo `http.Transport` of `cmd/pgo/cmd/auth.go` has
//!   its own `TLSClientConfig`, so HTTP/1.1 without ALPN, and a client
//!   certificate always);
//! - how the replies are read: `api.StatusCheck` (`cmd/pgo/api/common.go`)
//!   before any body, then `json.Decoder.Decode` into the reply struct
//!   (keys matched case-insensitively, a wrong JSON type is an error), then
//!   what `cmd/pgo/cmd/{version,cluster}.go` print and their exit codes.
#![allow(dead_code)]

use serde_json::Value;

/// What `pgo` sends as `ClientVersion` (`msgs.PGO_VERSION`).
pub const PGO_VERSION: &str = "4.7.4";

/// A Go type, as `encoding/json` decodes into it.
#[derive(Debug)]
pub enum Go {
    /// `string`.
    Str,
    /// `bool`.
    Bool,
    /// Any integer type.
    Int,
    /// `metav1.Time`: an RFC 3339 string.
    Time,
    /// A struct: (JSON name, type) of each field.
    Struct(&'static [(&'static str, Go)]),
    /// `[]T`.
    Slice(&'static Go),
    /// `map[string]T`.
    Map(&'static Go),
    /// A struct type defined elsewhere (a static may not hold another by value).
    Ref(&'static Go),
    /// A field the tests do not model (`interface{}`-like).
    Any,
}

use Go::*;

/// `Status` (`pkg/apiservermsgs/common.go`).
pub const STATUS: &[(&str, Go)] = &[("Code", Str), ("Msg", Str)];

/// `VersionResponse` (`versionmsgs.go`): `Version` and the embedded, untagged `Status`.
pub static VERSION_RESPONSE: Go = Struct(&[("Version", Str), ("Code", Str), ("Msg", Str)]);

/// `CreateClusterDetailUser`.
static CREATE_USER: Go = Struct(&[("Password", Str), ("Username", Str)]);

/// `CreateClusterResponse`: `Result` tagged `result`, `Status` tagged `status`.
pub static CREATE_RESPONSE: Go = Struct(&[
    (
        "result",
        Struct(&[
            ("Database", Str),
            ("Name", Str),
            ("Users", Slice(&CREATE_USER)),
            ("WorkflowID", Str),
        ]),
    ),
    ("status", Struct(STATUS)),
]);

static STR: Go = Str;
static ANY: Go = Any;

/// `PgStorageSpec` (`pkg/apis/crunchydata.com/v1/common.go`).
const STORAGE: &[(&str, Go)] = &[
    ("name", Str),
    ("storageclass", Str),
    ("accessmode", Str),
    ("size", Str),
    ("storagetype", Str),
    ("supplementalgroups", Str),
    ("matchLabels", Str),
];

/// `Pgcluster` (`pkg/apis/crunchydata.com/v1/cluster.go`), the fields Baton sends and
/// the ones `pgo show cluster` reads.
static PGCLUSTER: Go = Struct(&[
    ("kind", Str),
    ("apiVersion", Str),
    (
        "metadata",
        Struct(&[
            ("name", Str),
            ("namespace", Str),
            ("creationTimestamp", Time),
            ("labels", Map(&STR)),
            ("annotations", Map(&STR)),
        ]),
    ),
    (
        "spec",
        Struct(&[
            ("name", Str),
            ("clustername", Str),
            ("policies", Str),
            ("ccpimage", Str),
            ("ccpimagetag", Str),
            ("ccpimageprefix", Str),
            ("port", Str),
            ("exporter", Bool),
            ("PrimaryStorage", Struct(STORAGE)),
            ("resources", Map(&ANY)),
            ("limits", Map(&ANY)),
            (
                "pgBouncer",
                Struct(&[
                    ("replicas", Int),
                    ("resources", Map(&ANY)),
                    ("limits", Map(&ANY)),
                    ("serviceType", Str),
                    ("tlsSecret", Str),
                ]),
            ),
            ("user", Str),
            ("database", Str),
            ("replicas", Str),
            ("status", Str),
            ("userlabels", Map(&STR)),
            ("standby", Bool),
            ("shutdown", Bool),
        ]),
    ),
    ("status", Struct(&[("state", Str), ("message", Str)])),
]);

static DEPLOYMENT: Go = Struct(&[("Name", Str), ("PolicyLabels", Slice(&STR))]);
static PVC: Go = Struct(&[("Capacity", Str), ("Name", Str)]);
static POD: Go = Struct(&[
    ("Name", Str),
    ("Phase", Str),
    ("NodeName", Str),
    ("PVC", Slice(&PVC)),
    ("ReadyStatus", Str),
    ("Ready", Bool),
    ("Primary", Bool),
    ("Type", Str),
]);
static SERVICE: Go = Struct(&[
    ("Name", Str),
    ("Data", Str),
    ("ClusterIP", Str),
    ("ClusterPorts", Slice(&STR)),
    ("ExternalIP", Str),
    ("ClusterName", Str),
    ("Pgbouncer", Bool),
    ("BackrestRepo", Bool),
    ("PGAdmin", Bool),
]);
static REPLICA: Go = Struct(&[("Name", Str)]);

/// `ShowClusterDetail`.
pub static SHOW_DETAIL: Go = Struct(&[
    ("cluster", Ref(&PGCLUSTER)),
    ("Deployments", Slice(&DEPLOYMENT)),
    ("Pods", Slice(&POD)),
    ("Services", Slice(&SERVICE)),
    ("Replicas", Slice(&REPLICA)),
    ("Standby", Bool),
]);

/// `ShowClusterResponse`: `Results` and the embedded, untagged `Status`.
pub static SHOW_RESPONSE: Go = Struct(&[
    ("Results", Slice(&SHOW_DETAIL)),
    ("Code", Str),
    ("Msg", Str),
]);

/// `DeleteClusterResponse`.
pub static DELETE_RESPONSE: Go = Struct(&[("Results", Slice(&STR)), ("Code", Str), ("Msg", Str)]);

/// What `json.Decoder.Decode` into `t` says about `v`: `Err` where Go
/// returns an error (a JSON type the field cannot hold). Keys match fields
/// exactly or else case-insensitively; unknown keys are ignored; `null`
/// leaves any field at its zero value.
pub fn decode(v: &Value, t: &Go, at: &str) -> Result<(), String> {
    let wrong = |want: &str| {
        Err(format!(
            "json: cannot unmarshal {v} into {at} of type {want}"
        ))
    };
    match (t, v) {
        (_, Value::Null) | (Any, _) => Ok(()),
        (Ref(t), _) => decode(v, t, at),
        (Str, Value::String(_)) | (Bool, Value::Bool(_)) => Ok(()),
        (Int, Value::Number(n)) if n.is_i64() => Ok(()),
        (Time, Value::String(s)) => {
            let ok = s.len() >= 20
                && s.as_bytes()[4] == b'-'
                && s.as_bytes()[10] == b'T'
                && (s.ends_with('Z') || s[19..].contains(['+', '-']));
            if ok {
                Ok(())
            } else {
                wrong("metav1.Time (RFC 3339)")
            }
        }
        (Struct(fields), Value::Object(m)) => {
            for (k, val) in m {
                let field = fields
                    .iter()
                    .find(|(n, _)| n == k)
                    .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)));
                if let Some((name, ft)) = field {
                    decode(val, ft, &format!("{at}.{name}"))?;
                }
            }
            Ok(())
        }
        (Slice(e), Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| decode(x, e, &format!("{at}[{i}]"))),
        (Map(e), Value::Object(m)) => m
            .iter()
            .try_for_each(|(k, x)| decode(x, e, &format!("{at}[{k:?}]"))),
        (Str, _) => wrong("string"),
        (Bool, _) => wrong("bool"),
        (Int, _) => wrong("int"),
        (Time, _) => wrong("metav1.Time"),
        (Struct(_), _) => wrong("struct"),
        (Slice(_), _) => wrong("slice"),
        (Map(_), _) => wrong("map"),
    }
}

/// The top-level JSON names of a struct type.
pub fn names(t: &Go) -> Vec<&'static str> {
    match t {
        Struct(fields) => fields.iter().map(|(n, _)| *n).collect(),
        Ref(t) => names(t),
        _ => vec![],
    }
}

/// What `api.StatusCheck` returns for an HTTP status: `None` for 200, else
/// the error `pgo` prints after `Error: ` (it never reads that body).
pub fn status_check(status: u16, method: &str, path: &str) -> Option<String> {
    match status {
        200 => None,
        401 => Some(format!("Authentication Failed: {status}\n")),
        405 => Some(format!(
            "Method {method} for URL {path} is not allowed in the current Operator install: {status}"
        )),
        _ => Some(format!("Invalid Status Code: {status}\n")),
    }
}

/// What a `pgo` command did: what it printed and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Standard output.
    pub stdout: String,
    /// Exit code.
    pub code: i32,
}

fn run(stdout: String, code: i32) -> Run {
    Run { stdout, code }
}

/// Status check and decode into `t`, as each `cmd/pgo/api` call does; on
/// failure the `Run` of the calling command: `prefix`, then `error` (how
/// that command prints it: `fmt.Println("Error: " + err.Error())` or
/// `fmt.Println("Error: ", err)`, which puts two spaces) and the error, exit 2.
fn call(
    reply: (u16, &[u8]),
    t: &Go,
    (method, path): (&str, &str),
    prefix: &str,
    error: &str,
) -> Result<Value, Run> {
    let fail = |e: String| run(format!("{prefix}{error}{e}\n"), 2);
    if let Some(e) = status_check(reply.0, method, path) {
        return Err(fail(e));
    }
    let v: Value = serde_json::from_slice(reply.1).map_err(|e| fail(e.to_string()))?;
    decode(&v, t, "response").map_err(fail)?;
    Ok(v)
}

/// A string field as Go reads it (exact key, else case-insensitive; zero value "").
pub fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let m = match v.as_object() {
        Some(m) => m,
        None => return &Value::Null,
    };
    m.get(name)
        .or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, x)| x)
        })
        .unwrap_or(&Value::Null)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// `pgo version` (`cmd/pgo/cmd/version.go`).
pub fn pgo_version(reply: (u16, &[u8]), path: &str) -> Run {
    let head = format!("pgo client version {PGO_VERSION}\n");
    let v = match call(reply, &VERSION_RESPONSE, ("GET", path), &head, "Error: ") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if s(field(&v, "Code")) != "ok" {
        return run(format!("{head}Error: {}\n", s(field(&v, "Msg"))), 1);
    }
    run(
        format!("{head}pgo-apiserver version {}\n", s(field(&v, "Version"))),
        0,
    )
}

/// `pgo create cluster` (`createCluster` in `cmd/pgo/cmd/cluster.go`).
pub fn pgo_create(reply: (u16, &[u8]), path: &str) -> Run {
    let v = match call(reply, &CREATE_RESPONSE, ("POST", path), "", "Error:  ") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = field(&v, "status");
    if s(field(status, "Code")) == "error" {
        return run(format!("Error: {}\n", s(field(status, "Msg"))), 2);
    }
    let r = field(&v, "result");
    let mut out = format!(
        "created cluster: {}\nworkflow id: {}\ndatabase name: {}\nusers:\n",
        s(field(r, "Name")),
        s(field(r, "WorkflowID")),
        s(field(r, "Database"))
    );
    for u in field(r, "Users").as_array().into_iter().flatten() {
        out += &format!(
            "\tusername: {} password: {}\n",
            s(field(u, "Username")),
            s(field(u, "Password"))
        );
    }
    run(out, 0)
}

/// `pgo show cluster` (`showCluster` / `printCluster`, the lines this tests read).
pub fn pgo_show(reply: (u16, &[u8]), path: &str) -> Run {
    let v = match call(reply, &SHOW_RESPONSE, ("POST", path), "", "Error:  ") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if s(field(&v, "Code")) != "ok" {
        return run(format!("Error: {}\n", s(field(&v, "Msg"))), 2);
    }
    let results = field(&v, "Results").as_array().cloned().unwrap_or_default();
    if results.is_empty() {
        return run("No clusters found.\n".into(), 0);
    }
    let mut out = String::new();
    for d in &results {
        let spec = field(field(d, "cluster"), "spec");
        out += &format!(
            "\ncluster : {} ({}:{})\n",
            s(field(spec, "name")),
            s(field(spec, "ccpimage")),
            s(field(spec, "ccpimagetag"))
        );
        let labels = field(field(field(d, "cluster"), "metadata"), "labels");
        let mut pairs: Vec<String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect();
        pairs.sort();
        out += &format!("\tlabels : {} \n", pairs.join(" "));
    }
    run(out, 0)
}

/// `pgo delete cluster` (`deleteCluster`): note that a refusal still exits 0.
pub fn pgo_delete(reply: (u16, &[u8]), path: &str) -> Run {
    let v = match call(reply, &DELETE_RESPONSE, ("POST", path), "", "Error: ") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if s(field(&v, "Code")) == "ok" {
        let mut out = String::new();
        for r in field(&v, "Results").as_array().into_iter().flatten() {
            out += s(r);
            out.push('\n');
        }
        run(out, 0)
    } else {
        run(format!("Error: {}\n", s(field(&v, "Msg"))), 0)
    }
}

/// `json.Marshal` of the `CreateClusterRequest` that `pgo create cluster
/// NAME -n NS [--label k=v]` fills in, with every other flag at its
/// default: all the struct's fields, in declaration order.
pub fn create_request(
    client_version: &str,
    ns: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> String {
    let labels: String = labels
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        concat!(
            r#"{{"Name":"{name}","Namespace":"{ns}","NodeAffinityType":0,"NodeLabel":"","PasswordLength":0,"#,
            r#""PasswordSuperuser":"","PasswordReplication":"","Password":"","SecretFrom":"","UserLabels":{{{labels}}},"#,
            r#""Tablespaces":[],"Policies":"","CCPImage":"","CCPImageTag":"","CCPImagePrefix":"","PGOImagePrefix":"","#,
            r#""ReplicaCount":0,"ServiceType":"","MetricsFlag":false,"ExporterCPULimit":"","ExporterCPURequest":"","#,
            r#""ExporterMemoryLimit":"","ExporterMemoryRequest":"","BadgerFlag":false,"AutofailFlag":true,"#,
            r#""ArchiveFlag":false,"BackrestStorageType":"","PgbouncerFlag":false,"PgBouncerReplicas":0,"#,
            r#""PgBouncerServiceType":"","PgBouncerTLSSecret":"","CustomConfig":"","StorageConfig":"","#,
            r#""WALStorageConfig":"","ReplicaStorageConfig":"","ClientVersion":"{cv}","PasswordType":"","#,
            r#""PodAntiAffinity":"","PodAntiAffinityPgBackRest":"","PodAntiAffinityPgBouncer":"","#,
            r#""SyncReplication":null,"BackrestConfig":"","BackrestGCSBucket":"","BackrestGCSEndpoint":"","#,
            r#""BackrestGCSKey":"","BackrestGCSKeyType":"service","BackrestS3Key":"","BackrestS3KeySecret":"","#,
            r#""BackrestS3Bucket":"","BackrestS3Region":"","BackrestS3Endpoint":"","BackrestS3URIStyle":"","#,
            r#""BackrestS3VerifyTLS":0,"Standby":false,"BackrestRepoPath":"","PVCSize":"","BackrestPVCSize":"","#,
            r#""WALPVCSize":"","Username":"","ShowSystemAccounts":false,"Database":"","TLSOnly":false,"#,
            r#""TLSSecret":"","CASecret":"","ReplicationTLSSecret":"","CPULimit":"","CPURequest":"","#,
            r#""MemoryLimit":"","MemoryRequest":"","PgBouncerCPULimit":"","PgBouncerCPURequest":"","#,
            r#""PgBouncerMemoryLimit":"","PgBouncerMemoryRequest":"","BackrestCPULimit":"","#,
            r#""BackrestCPURequest":"","BackrestMemoryLimit":"","BackrestMemoryRequest":"","#,
            r#""BackrestStorageConfig":"","BackrestS3CASecretName":"","#,
            r#""PGDataSource":{{"namespace":"","restoreFrom":"","restoreOpts":""}},"#,
            r#""annotations":{{"backrest":{{}},"global":{{}},"pgBouncer":{{}},"postgres":{{}}}},"tolerations":[]}}"#
        ),
        name = name,
        ns = ns,
        labels = labels,
        cv = client_version,
    )
}

/// `json.Marshal` of the `ShowClusterRequest` of `pgo show cluster`: its
/// JSON tags are lower-case. `--all` and `--selector` send an empty name.
pub fn show_request(
    client_version: &str,
    ns: &str,
    name: &str,
    selector: &str,
    all: bool,
) -> String {
    format!(
        r#"{{"clustername":"{name}","selector":"{selector}","ccpimagetag":"","clientversion":"{client_version}","namespace":"{ns}","allflag":{all}}}"#
    )
}

/// `json.Marshal` of the `DeleteClusterRequest` of `pgo delete cluster`
/// (no JSON tags: Go's field names). `--all` sends the name `all`;
/// `DeleteBackups`/`DeleteData` are true unless `--keep-backups`/`--keep-data`.
pub fn delete_request(client_version: &str, ns: &str, name: &str, all: bool) -> String {
    let name = if all { "all" } else { name };
    format!(
        r#"{{"Clustername":"{name}","Selector":"","ClientVersion":"{client_version}","Namespace":"{ns}","AllFlag":{all},"DeleteBackups":true,"DeleteData":true}}"#
    )
}

/// The bytes Go's `net/http` writes for a pgo request: request line,
/// `Host`, `User-Agent`, `Content-Length` (a body given as a
/// `bytes.Buffer`), the headers `cmd/pgo/api` sets (`Authorization` from
/// `SetBasicAuth`, `Content-Type`), and the transport's `Accept-Encoding`.
pub fn go_request(
    method: &str,
    host: &str,
    path: &str,
    basic: &str,
    body: Option<&str>,
) -> Vec<u8> {
    let mut r =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n");
    if let Some(b) = body {
        r += &format!("Content-Length: {}\r\n", b.len());
    }
    r += &format!(
        "Authorization: Basic {basic}\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n"
    );
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default().as_bytes());
    bytes
}
