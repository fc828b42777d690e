//! Request bodies and path values, checked field by field so that every 400
//! names the field at fault and what was expected.

use crate::errors::ApiError;
use baton_sdk::Request;
use baton_sdk::http::json_type_name;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Longest resource name (a DNS name's limit).
const MAX_NAME: usize = 253;

/// A JSON object body whose fields are read one by one.
#[derive(Debug)]
pub struct Body {
    obj: Map<String, Value>,
}

impl Body {
    /// The request's body as a JSON object. An empty body is `{}` (clients
    /// send none, or `{}`, with DELETE and the PUTs that start work). Fields
    /// outside `allowed` are refused, naming them.
    pub fn parse(req: &Request, allowed: &[&str]) -> Result<Body, ApiError> {
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body { obj: Map::new() });
        }
        let value: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad(format!("request body is not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(ApiError::bad(format!(
                "request body must be a JSON object, not {}",
                json_type_name(&value)
            )));
        };
        if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::field(
                unknown,
                format!(
                    "unknown field `{unknown}`; expected {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        }
        Ok(Body { obj })
    }

    /// Whether `field` is present (and not null).
    pub fn has(&self, field: &str) -> bool {
        self.obj.get(field).is_some_and(|v| !v.is_null())
    }

    /// The string `field`, if present; null counts as absent.
    pub fn opt_str(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(ApiError::field(
                field,
                format!(
                    "field `{field}` must be a string, not {}",
                    json_type_name(v)
                ),
            )),
        }
    }

    /// The string `field`; missing is an error.
    pub fn str(&self, field: &str) -> Result<String, ApiError> {
        self.opt_str(field)?
            .ok_or_else(|| ApiError::field(field, format!("missing field `{field}` (a string)")))
    }

    /// The list of strings `field`; missing is an error.
    pub fn str_list(&self, field: &str) -> Result<Vec<String>, ApiError> {
        let wrong = |what: String| ApiError::field(field, what);
        match self.obj.get(field) {
            None | Some(Value::Null) => Err(wrong(format!(
                "missing field `{field}` (a list of strings)"
            ))),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(wrong(format!(
                        "field `{field}` must hold strings; item {i} is {}",
                        json_type_name(v)
                    ))),
                })
                .collect(),
            Some(v) => Err(wrong(format!(
                "field `{field}` must be a list of strings, not {}",
                json_type_name(v)
            ))),
        }
    }

    /// The object `field`, `{}` when absent.
    pub fn object(&self, field: &str) -> Result<Map<String, Value>, ApiError> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(o)) => Ok(o.clone()),
            Some(v) => Err(ApiError::field(
                field,
                format!(
                    "field `{field}` must be an object, not {}",
                    json_type_name(v)
                ),
            )),
        }
    }
}

/// Checks a cluster, network or container manager name: 1-253 of
/// `A-Z a-z 0-9 . _ -`.
pub fn name(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(ApiError::field(
            field,
            format!("invalid {field} `{value}`: use 1-{MAX_NAME} letters, digits, `.`, `_` or `-`"),
        ))
    }
}

/// Checks a host address (an IPv4 or IPv6 address) and returns its canonical form.
pub fn address(field: &str, value: &str) -> Result<String, ApiError> {
    value
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| {
            ApiError::field(
                field,
                format!("invalid {field} `{value}`: expected an IPv4 or IPv6 address"),
            )
        })
}

/// The path parameter `param`, checked as a name.
pub fn name_param(req: &Request, param: &str) -> Result<String, ApiError> {
    name(param, req.param(param).unwrap_or_default())
}

/// The path parameter `ip`, checked as an address.
pub fn address_param(req: &Request) -> Result<String, ApiError> {
    address("address", req.param("ip").unwrap_or_default())
}

/// The caller's IP from `remote_addr` (`ip:port`, `[v6]:port`).
pub fn caller_address(remote_addr: &str) -> Result<String, ApiError> {
    let ip = match remote_addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip(),
        Err(_) => remote_addr.parse::<IpAddr>().map_err(|_| {
            ApiError::bad(format!(
                "the caller's address `{remote_addr}` is not an IP address; use PUT /host/{{address}}"
            ))
        })?,
    };
    Ok(ip.to_canonical().to_string())
}

/// Checks a version string for deploys: 1-128 of `A-Z a-z 0-9 . _ - + : ~`.
pub fn version(value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+:~".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(ApiError::field(
            "version",
            format!(
                "invalid version `{value}`: use 1-128 letters, digits, `.`, `_`, `-`, `+`, `:` or `~`"
            ),
        ))
    }
}

/// Checks a remote user name (a POSIX login name).
pub fn remote_user(value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 32
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(ApiError::field(
            "remote_user",
            format!(
                "invalid remote_user `{value}`: use 1-32 letters, digits, `.`, `_` or `-`, not starting with `-`"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Request {
        Request::new("PUT", "/").with_body(json)
    }

    #[test]
    fn wrong_types_name_the_field() {
        let b = Body::parse(
            &body(r#"{"network": 5, "old": ["a", 1]}"#),
            &["network", "old"],
        )
        .unwrap();
        let e = b.str("network").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("network"));
        assert!(
            e.message.contains("must be a string, not a number"),
            "{}",
            e.message
        );
        let e = b.str_list("old").unwrap_err();
        assert!(e.message.contains("item 1 is a number"), "{}", e.message);
        assert_eq!(b.str_list("new").unwrap_err().field.as_deref(), Some("new"));
    }

    #[test]
    fn garbage_non_objects_and_unknown_fields_are_400() {
        assert!(
            Body::parse(&body("{nope"), &[])
                .unwrap_err()
                .message
                .contains("not valid JSON")
        );
        assert!(
            Body::parse(&body("[1]"), &[])
                .unwrap_err()
                .message
                .contains("not an array")
        );
        let e = Body::parse(&body(r#"{"netwrok": "x"}"#), &["network"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("netwrok"));
        assert!(Body::parse(&body("  "), &[]).is_ok());
    }

    #[test]
    fn addresses_names_and_versions() {
        assert_eq!(address("address", "10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(address("address", "::1").unwrap(), "::1");
        assert!(address("address", "10.0.0.1; rm -rf /").is_err());
        assert!(name("name", "a b").is_err());
        assert_eq!(caller_address("127.0.0.1:5555").unwrap(), "127.0.0.1");
        assert_eq!(caller_address("[::ffff:10.1.2.3]:80").unwrap(), "10.1.2.3");
        assert!(version("7.2.6").is_ok());
        assert!(version("$(reboot)").is_err());
        assert!(remote_user("-oProxyCommand").is_err());
    }
}
