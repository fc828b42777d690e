//! Checks on the values that end up in a rendered manifest, in job
//! environments and in storage keys. Everything accepted here is safe to
//! place unquoted in YAML and cannot contain `/` (the key separator).

use crate::status::PgoError;

/// Longest Kubernetes name label.
const MAX_LABEL: usize = 63;

/// A namespace: a DNS-1123 label (`pgouser1`).
pub fn namespace(field: &str, value: &str) -> Result<(), PgoError> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(PgoError::refused(format!(
            "`{field}` `{value}` is not a valid namespace: use 1-{MAX_LABEL} lower-case letters, digits or `-`, starting and ending with a letter or digit"
        )))
    }
}

/// A cluster name: a DNS-1035 label (`mycluster`), as PGO requires.
pub fn cluster_name(field: &str, value: &str) -> Result<(), PgoError> {
    if is_dns_label(value) && value.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(PgoError::refused(format!(
            "`{field}` `{value}` is not a valid cluster name: use 1-{MAX_LABEL} lower-case letters, digits or `-`, starting with a letter and ending with a letter or digit"
        )))
    }
}

/// A container image name or tag: letters, digits and `.`, `_`, `-`, `/`, `:`, `@`.
pub fn image(field: &str, value: &str) -> Result<(), PgoError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(PgoError::refused(format!(
            "`{field}` `{value}` is not a valid image reference: use letters, digits, `.`, `_`, `-`, `/`, `:` or `@`"
        )))
    }
}

/// A PostgreSQL identifier for a database or user name.
pub fn identifier(field: &str, value: &str) -> Result<(), PgoError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_LABEL
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PgoError::refused(format!(
            "`{field}` `{value}` is not a valid name: use 1-{MAX_LABEL} lower-case letters, digits or `_`, not starting with a digit"
        )))
    }
}

/// A Kubernetes storage quantity such as `5Gi` or `500M`.
pub fn quantity(field: &str, value: &str) -> Result<(), PgoError> {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let ok = digits_end > 0 && value.len() <= 32 && SUFFIXES.contains(&&value[digits_end..]);
    if ok {
        Ok(())
    } else {
        Err(PgoError::refused(format!(
            "`{field}` `{value}` is not a storage size: use a whole number with an optional unit such as `5Gi` or `500M`"
        )))
    }
}

/// A Kubernetes label (`UserLabels`): the key an optional DNS prefix and
/// `/` before a name, the value a name or empty; names are at most 63
/// letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit.
pub fn label(field: &str, key: &str, value: &str) -> Result<(), PgoError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label));
    if !prefix_ok || !is_label_name(name) {
        return Err(PgoError::refused(format!(
            "`{field}` key `{key}` is not a valid label key: use at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit, optionally after a DNS prefix and `/`"
        )));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(PgoError::refused(format!(
            "`{field}` value `{value}` of `{key}` is not a valid label value: use at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kubernetes_rules() {
        assert!(cluster_name("Name", "mycluster").is_ok());
        assert!(cluster_name("Name", "my-cluster-2").is_ok());
        for bad in ["", "2fast", "My", "a_b", "a/b", "a-", &"a".repeat(64)] {
            let e = cluster_name("Name", bad).unwrap_err();
            assert_eq!(e.status, 200);
            assert!(e.msg.starts_with("`Name`"), "{}", e.msg);
        }
        assert!(namespace("Namespace", "pgouser1").is_ok());
        assert!(namespace("Namespace", "1ns").is_ok());
        assert!(namespace("Namespace", "ns/x").is_err());
    }

    #[test]
    fn manifest_values_are_plain() {
        assert!(image("CCPImage", "registry.example.com/crunchy-postgres-ha").is_ok());
        assert!(image("CCPImageTag", "centos8-13.4-4.7.4").is_ok());
        assert!(image("CCPImage", "x: y").is_err());
        assert!(image("CCPImage", "-x").is_err());
        assert!(identifier("Database", "userdb").is_ok());
        assert!(identifier("Username", "Robert'); DROP").is_err());
        assert!(quantity("PVCSize", "5Gi").is_ok());
        assert!(quantity("PVCSize", "100").is_ok());
        assert!(quantity("PVCSize", "5 Gi").is_err());
        assert!(quantity("PVCSize", "Gi").is_err());
    }

    #[test]
    fn labels_follow_the_kubernetes_rules() {
        assert!(label("UserLabels", "env", "research").is_ok());
        assert!(label("UserLabels", "example.com/team", "db_1.a").is_ok());
        assert!(label("UserLabels", "env", "").is_ok());
        for (k, v) in [
            ("", "x"),
            ("a b", "x"),
            ("-a", "x"),
            ("/a", "x"),
            ("env", "x: y"),
            ("env", "-x"),
        ] {
            assert!(label("UserLabels", k, v).is_err(), "{k}={v}");
        }
    }
}
