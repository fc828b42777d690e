//! The manifest a cluster's jobs hand to the provision and teardown
//! commands (on stdin): a template from the handler's config, or the
//! built-in `Pgcluster` resource, with `{{key}}` placeholders filled in.

/// The built-in template: a PGO v4 `Pgcluster` custom resource.
pub const DEFAULT_TEMPLATE: &str = r#"apiVersion: crunchydata.com/v1
kind: Pgcluster
metadata:
  name: {{name}}
  namespace: {{namespace}}
  labels:
    crunchy-pgha-scope: {{name}}
    name: {{name}}
    pg-cluster: {{name}}
    pgo-version: {{pgo_version}}
  annotations:
    current-primary: {{name}}
spec:
  name: {{name}}
  clustername: {{name}}
  namespace: {{namespace}}
  ccpimage: {{image}}
  ccpimagetag: {{image_tag}}
  database: {{database}}
  user: {{user}}
  port: "5432"
  replicas: "{{replicas}}"
  pgbouncer:
    replicas: {{pgbouncer_replicas}}
  exporter: {{metrics}}
  PrimaryStorage:
    name: {{name}}
    accessmode: ReadWriteOnce
    size: {{pvc_size}}
    storagetype: dynamic
  userlabels:
    pgo-version: {{pgo_version}}
"#;

/// The placeholders a template may use.
pub const KEYS: &[&str] = &[
    "name",
    "namespace",
    "pgo_version",
    "image",
    "image_tag",
    "database",
    "user",
    "replicas",
    "pgbouncer_replicas",
    "metrics",
    "pvc_size",
];

/// `template` with every `{{key}}` replaced by its value; an unknown or
/// unclosed placeholder is an error naming it.
pub fn render(template: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            format!(
                "unclosed `{{{{` in the manifest template near `{}`",
                snippet(after)
            )
        })?;
        let key = after[..end].trim();
        let value = values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                format!(
                    "the manifest template uses `{{{{{key}}}}}`; known placeholders: {}",
                    KEYS.join(", ")
                )
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn snippet(s: &str) -> &str {
    let end = s.char_indices().nth(20).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<(&'static str, String)> {
        KEYS.iter().map(|k| (*k, format!("<{k}>"))).collect()
    }

    #[test]
    fn the_default_template_uses_only_known_keys() {
        let out = render(DEFAULT_TEMPLATE, &values()).unwrap();
        assert!(out.contains("name: <name>\n  namespace: <namespace>"));
        assert!(!out.contains("{{"));
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_named() {
        let e = render("a {{ nope }} b", &values()).unwrap_err();
        assert!(e.contains("`{{nope}}`"), "{e}");
        let e = render("a {{name", &values()).unwrap_err();
        assert!(e.contains("unclosed"), "{e}");
        assert_eq!(render("{{ name }}-x", &values()).unwrap(), "<name>-x");
    }
}
