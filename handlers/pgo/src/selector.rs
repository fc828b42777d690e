//! Label selectors (`Selector` of show and delete, `pgo show cluster
//! --selector=env=research`): the equality-based Kubernetes form, comma
//! separated requirements that must all hold: `key=value`, `key==value`,
//! `key!=value`, `key` (present), `!key` (absent).

use crate::status::PgoError;
use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses `text`; a requirement with an empty key (or anything else
    /// that is not of the forms above) is refused, naming the selector.
    pub fn parse(text: &str) -> Result<Selector, PgoError> {
        let bad = |why: &str| {
            PgoError::refused(format!(
                "`Selector` `{text}` is not a label selector: {why}; use `key=value`, `key!=value`, `key` or `!key`, separated by commas"
            ))
        };
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::Absent(k.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            let key = match &req {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k) => k,
            };
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!".contains(c)) {
                return Err(bad(&format!("`{part}` has no valid key")));
            }
            requirements.push(req);
        }
        Ok(Selector {
            text: text.to_string(),
            requirements,
        })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }

    /// The selector as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> BTreeMap<String, String> {
        [("name", "db1"), ("env", "research"), ("pgouser", "ann")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_requirement_must_hold() {
        let l = labels();
        for yes in [
            "name=db1",
            "name==db1",
            "env=research,pgouser=ann",
            "env",
            "!team",
            "env!=prod",
            " name = db1 ",
        ] {
            assert!(Selector::parse(yes).unwrap().matches(&l), "{yes}");
        }
        for no in [
            "name=db2",
            "env=research,pgouser=bob",
            "team",
            "!env",
            "env!=research",
        ] {
            assert!(!Selector::parse(no).unwrap().matches(&l), "{no}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused_naming_them() {
        for bad in ["=x", "a,,b", "!", "a b=c"] {
            let e = Selector::parse(bad).unwrap_err();
            assert_eq!(e.status, 200);
            assert!(e.msg.contains(&format!("`{bad}`")), "{}", e.msg);
        }
    }
}
