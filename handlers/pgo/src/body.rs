//! Request bodies, read the way the PGO API server (Go's `encoding/json`)
//! reads them, so that every documented curl body works: keys match
//! case-insensitively (`Clustername`, `clustername`, `ClusterName`), unknown
//! keys are ignored (`"Series": 1` from older docs). Unlike the reference
//! server, which ignores what it cannot decode, a body that is not a JSON
//! object or a known key with the wrong type is refused (`Code: "error"`,
//! HTTP 200 like every refusal, see [`crate::status`]) with the key named.

use crate::status::PgoError;
use baton_sdk::http::json_type_name;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A parsed JSON object body.
#[derive(Debug, Clone)]
pub struct Body {
    fields: Map<String, Value>,
}

impl Body {
    /// Parses `bytes` as a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Body, PgoError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(PgoError::refused(
                "the request body is empty; send a JSON object with at least `ClientVersion` and `Namespace`",
            ));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| PgoError::refused(format!("the request body is not valid JSON: {e}")))?;
        match value {
            Value::Object(fields) => Ok(Body { fields }),
            other => Err(PgoError::refused(format!(
                "the request body must be a JSON object, not {}",
                json_type_name(&other)
            ))),
        }
    }

    /// The value of `name`: an exact key first, else one equal ignoring case.
    fn find(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).or_else(|| {
            self.fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    /// An optional string; `null` counts as absent.
    pub fn string(&self, name: &str) -> Result<Option<String>, PgoError> {
        match self.find(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// A string that must be present and not empty.
    pub fn required_string(&self, name: &str) -> Result<String, PgoError> {
        match self.string(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(PgoError::refused(format!("`{name}` is required"))),
        }
    }

    /// An optional boolean (absent = false).
    pub fn flag(&self, name: &str) -> Result<bool, PgoError> {
        match self.find(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong_type(name, "true or false", other)),
        }
    }

    /// An optional whole number between 0 and `max`.
    pub fn count(&self, name: &str, max: u32) -> Result<Option<u32>, PgoError> {
        match self.find(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v <= u64::from(max) => Ok(Some(v as u32)),
                _ => Err(PgoError::refused(format!(
                    "`{name}` must be a whole number from 0 to {max}, not {n}"
                ))),
            },
            Some(other) => Err(wrong_type(name, "a whole number", other)),
        }
    }
}

impl Body {
    /// An optional object of strings (Go's `map[string]string`); `null` and
    /// absent are empty.
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, PgoError> {
        match self.find(name) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(wrong_type(&format!("{name}.{k}"), "a string", other)),
                })
                .collect(),
            Some(other) => Err(wrong_type(name, "an object of strings", other)),
        }
    }
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> PgoError {
    PgoError::refused(format!(
        "`{name}` must be {expected}, not {}",
        json_type_name(got)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Body {
        Body::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn keys_match_ignoring_case_and_unknown_keys_are_ignored() {
        let b = body(r#"{"clustername": "a", "SERIES": 1, "Other": {}}"#);
        assert_eq!(b.string("Clustername").unwrap().as_deref(), Some("a"));
        let b = body(r#"{"ClusterName": "x", "Clustername": "exact"}"#);
        assert_eq!(b.string("Clustername").unwrap().as_deref(), Some("exact"));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let b = body(r#"{"ClientVersion": 4.7, "AllFlag": "yes", "ReplicaCount": -1}"#);
        let e = b.string("ClientVersion").unwrap_err();
        assert_eq!(e.status, 200);
        assert_eq!(e.msg, "`ClientVersion` must be a string, not a number");
        assert!(b.flag("AllFlag").unwrap_err().msg.contains("`AllFlag`"));
        assert!(
            b.count("ReplicaCount", 9)
                .unwrap_err()
                .msg
                .contains("`ReplicaCount`")
        );
    }

    #[test]
    fn required_strings_must_be_present_and_not_empty() {
        let b = body(r#"{"Name": ""}"#);
        assert_eq!(
            b.required_string("Name").unwrap_err().msg,
            "`Name` is required"
        );
        assert_eq!(
            b.required_string("Namespace").unwrap_err().msg,
            "`Namespace` is required"
        );
    }

    #[test]
    fn garbage_empty_and_non_objects_are_refused() {
        for bad in ["", "  ", "{nope", "[1,2]", "\"text\"", "null"] {
            let e = Body::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status, 200, "{bad:?}");
        }
        assert!(Body::parse(b"[]").unwrap_err().msg.contains("an array"));
    }

    #[test]
    fn string_maps_are_objects_of_strings() {
        let b = body(r#"{"UserLabels": {"env": "research"}, "Bad": {"n": 1}, "Worse": []}"#);
        assert_eq!(b.string_map("userlabels").unwrap()["env"], "research");
        assert!(b.string_map("Missing").unwrap().is_empty());
        assert!(b.string_map("Bad").unwrap_err().msg.contains("`Bad.n`"));
        assert!(b.string_map("Worse").unwrap_err().msg.contains("`Worse`"));
    }
}
