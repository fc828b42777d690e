//! Entry points for the fuzz targets of `fuzz/` (built natively, where a
//! host call would be an `unreachable!` stub): each runs one of the API's
//! body readers as its endpoint does, up to the first host call, and checks
//! what the reader promises: a refusal is an HTTP 200 with `Code: "error"`
//! (as pgo reads it), and every value that reaches the rendered manifest is
//! a plain YAML scalar that cannot add a line or a key.

use crate::body::Body;
use crate::request::{CreateRequest, Selection, Target};
use crate::selector::Selector;
use crate::settings;
use crate::status::{PgoError, Shape};
use crate::template::{self, DEFAULT_TEMPLATE};
use crate::validate;
use std::collections::BTreeMap;

/// One of the [`validate`] checks.
type Check = fn(&str, &str) -> Result<(), PgoError>;

/// How many readers [`run`] chooses from (by the input's first byte).
pub const READERS: u8 = 6;

/// Runs the reader the first byte of `data` picks on the rest of it.
pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match pick % READERS {
        0 => refused_or(Body::parse(rest), create),
        1 => refused_or(Body::parse(rest), |b| {
            refused_or(Selection::from_body(&b), |s| {
                if let Target::Matching(sel) = &s.target {
                    let labels = b.string_map("UserLabels").unwrap_or_default();
                    let _ = sel.matches(&labels);
                }
            })
        }),
        2 => refused_or(Selector::parse(&text), |s| {
            assert_eq!(Selector::parse(s.as_str()).as_ref(), Ok(&s));
            let labels: BTreeMap<String, String> = text
                .split(',')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let _ = s.matches(&labels);
        }),
        3 => {
            let checks: [Check; 5] = [
                validate::namespace,
                validate::cluster_name,
                validate::image,
                validate::identifier,
                validate::quantity,
            ];
            for check in checks {
                refused_or(check("f", &text), |()| plain_scalar(&text));
            }
            let (k, v) = text.split_once('=').unwrap_or((&text, ""));
            refused_or(validate::label("f", k, v), |()| {
                plain_scalar(k);
                assert!(v.is_empty() || v.bytes().all(|b| b.is_ascii_graphic()));
            });
        }
        4 => {
            let _ = settings::parse_command("k", &text);
            if let Ok(env) = settings::parse_env(&text) {
                assert!(env.iter().all(|(k, _)| !k.is_empty() && !k.contains('=')));
            }
        }
        _ => {
            let values = [("name", "x".to_string())];
            if let Ok(out) = template::render(&text, &values) {
                assert!(!out.contains("{{name}}"));
            }
        }
    }
}

/// A refusal is `Code: "error"` with HTTP 200 in every shape; `ok` checks a success.
fn refused_or<T>(result: Result<T, PgoError>, ok: impl FnOnce(T)) {
    match result {
        Ok(v) => ok(v),
        Err(e) => {
            for shape in [Shape::Status, Shape::Create, Shape::Results] {
                let resp = e.clone().reply(shape);
                assert_eq!(resp.status, 200);
                let body = resp.body_json();
                let code = match shape {
                    Shape::Create => &body["status"]["Code"],
                    _ => &body["Code"],
                };
                assert_eq!(code, "error", "{body}");
            }
        }
    }
}

/// A value placed unquoted in YAML: one line, no indicator, no comment.
fn plain_scalar(v: &str) {
    assert!(
        v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b)),
        "{v:?}"
    );
    assert!(
        !v.contains(": ") && !v.starts_with(['-', ':', '/', '@']),
        "{v:?}"
    );
}

/// A create body as the endpoint reads it, then the manifest it renders.
fn create(b: Body) {
    let namespace = b.string("Namespace").ok().flatten().unwrap_or_default();
    if validate::namespace("Namespace", &namespace).is_err() {
        return;
    }
    refused_or(CreateRequest::from_body(&b), |r| {
        assert!(!r.name.contains('/') && !namespace.contains('/'));
        let given = [&r.image, &r.image_tag, &r.database, &r.user, &r.pvc_size];
        for v in given.into_iter().flatten() {
            plain_scalar(v);
        }
        for (k, v) in &r.user_labels {
            plain_scalar(k);
            plain_scalar(v);
        }
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
        let values = [
            ("name", r.name.clone()),
            ("namespace", namespace.clone()),
            ("pgo_version", settings::DEFAULT_VERSION.to_string()),
            ("image", or(&r.image, settings::DEFAULT_IMAGE)),
            ("image_tag", or(&r.image_tag, settings::DEFAULT_IMAGE_TAG)),
            ("database", or(&r.database, settings::DEFAULT_DATABASE)),
            ("user", or(&r.user, settings::DEFAULT_USER)),
            ("replicas", r.replicas.to_string()),
            ("pgbouncer_replicas", r.pgbouncer_replicas.to_string()),
            ("metrics", r.metrics.to_string()),
            ("pvc_size", or(&r.pvc_size, settings::DEFAULT_PVC_SIZE)),
        ];
        let manifest = template::render(DEFAULT_TEMPLATE, &values).expect("the default renders");
        assert_eq!(manifest.lines().count(), DEFAULT_TEMPLATE.lines().count());
    });
}
