//! Who may call what: the per-route policies of `[[handler]]` tables and the
//! capabilities a handler is granted.

use serde::Deserialize;
use std::fmt;

/// What a route requires of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Anyone; no credentials are looked at.
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// An authenticated caller holding this permission (e.g. `jobs:write`).
    Permission(String),
}

impl Policy {
    /// Parses `public`, `authenticated` or a permission name.
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "public" => Ok(Policy::Public),
            "authenticated" => Ok(Policy::Authenticated),
            p if is_permission_name(p) => Ok(Policy::Permission(p.to_string())),
            p => Err(format!(
                "`{p}` is not a policy: expected `public`, `authenticated` or a permission such as `jobs:write`"
            )),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Public => f.write_str("public"),
            Policy::Authenticated => f.write_str("authenticated"),
            Policy::Permission(p) => f.write_str(p),
        }
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Policy::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is a usable permission name: lower-case letters, digits and
/// `:`, `-`, `_`, `.`, `*` (e.g. `jobs:write`, `hosts:*`, `*`).
pub fn is_permission_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '-' | '_' | '.' | '*')
        })
}

/// One `[[handler.route]]`: the policy of the requests whose path (below the
/// mount) matches `path` and whose method is in `methods` (all when absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A path pattern below the mount: literal segments, `{name}` for any one
    /// segment, and a final `*` for any rest (including none).
    pub path: String,
    /// Upper-case methods this rule applies to; absent = every method.
    pub methods: Option<Vec<String>>,
    /// What the matching requests require.
    pub policy: Policy,
}

impl RouteRule {
    /// Whether this rule covers `method` and `path`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(method)));
        method_ok && path_matches(&self.path, path)
    }

    /// A reason the pattern is unusable, if it is.
    pub fn check(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!("`{}` must start with `/`", self.path));
        }
        let segments: Vec<&str> = self.path.split('/').skip(1).collect();
        for (i, seg) in segments.iter().enumerate() {
            if *seg == "*" && i + 1 != segments.len() {
                return Err(format!("`{}`: `*` may only be the last segment", self.path));
            }
            if seg.contains(['{', '}']) && !(seg.starts_with('{') && seg.ends_with('}')) {
                return Err(format!(
                    "`{}`: a `{{param}}` must be a whole segment",
                    self.path
                ));
            }
        }
        for m in self.methods.iter().flatten() {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(format!("method `{m}` must be upper-case, e.g. `POST`"));
            }
        }
        Ok(())
    }
}

/// Whether `path` matches `pattern` (see [`RouteRule::path`]).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/').skip(1).filter(|s| !s.is_empty());
    let mut segs = path.split('/').skip(1).filter(|s| !s.is_empty());
    loop {
        match (pat.next(), segs.next()) {
            (Some("*"), _) => return true,
            (None, None) => return true,
            (Some(p), Some(s)) if p.starts_with('{') || p == s => continue,
            _ => return false,
        }
    }
}

/// A handler's access rules: the first matching route decides, else `policy`.
#[derive(Debug, Clone)]
pub struct AccessRules {
    /// The handler-wide default.
    pub policy: Policy,
    /// Route rules, first match wins.
    pub routes: Vec<RouteRule>,
}

impl AccessRules {
    /// The policy for `method` and `path` (below the mount).
    pub fn policy_for(&self, method: &str, path: &str) -> &Policy {
        self.routes
            .iter()
            .find(|r| r.matches(method, path))
            .map_or(&self.policy, |r| &r.policy)
    }
}

/// `[handler.capabilities]`: what a handler may do beyond its own kv namespace.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// May verify passwords and issue, refresh and revoke tokens (login endpoints).
    pub issue_tokens: bool,
    /// Programs its jobs may `exec`: bare names (looked up on the server's
    /// `PATH`) or absolute paths. Empty: no `exec` at all.
    pub exec: Vec<String>,
    /// Where its outbound HTTP may go (`wasi:http/outgoing-handler`):
    /// `scheme://host[:port][/path-prefix]`, a leading `*.` in the host
    /// for any name below it (see [`super::outbound`]). Empty: nowhere.
    pub http: Vec<String>,
    /// PEM certificates trusted for outbound HTTPS besides the system's
    /// roots (relative paths are the manifest folder's).
    pub http_ca_file: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, methods: Option<&[&str]>, policy: &str) -> RouteRule {
        RouteRule {
            path: path.into(),
            methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
            policy: Policy::parse(policy).unwrap(),
        }
    }

    #[test]
    fn patterns_match_segments_params_and_rest() {
        assert!(path_matches("/health", "/health"));
        assert!(path_matches("/health", "/health/"));
        assert!(!path_matches("/health", "/healthz"));
        assert!(path_matches("/jobs/{id}", "/jobs/81"));
        assert!(!path_matches("/jobs/{id}", "/jobs/81/nodes"));
        assert!(path_matches("/command/*", "/command/deploy"));
        assert!(path_matches("/command/*", "/command"));
        assert!(path_matches("/*", "/anything/at/all"));
        assert!(!path_matches("/command/*", "/commands"));
    }

    #[test]
    fn first_matching_route_wins_else_default() {
        let rules = AccessRules {
            policy: Policy::Authenticated,
            routes: vec![
                rule("/health", Some(&["GET"]), "public"),
                rule("/command/*", Some(&["POST"]), "jobs:write"),
                rule("/*", None, "admin"),
            ],
        };
        assert_eq!(rules.policy_for("GET", "/health"), &Policy::Public);
        assert_eq!(
            rules.policy_for("POST", "/health"),
            &Policy::parse("admin").unwrap()
        );
        assert_eq!(
            rules.policy_for("post", "/command/deploy"),
            &Policy::Permission("jobs:write".into())
        );
        let open = AccessRules {
            policy: Policy::Authenticated,
            routes: vec![],
        };
        assert_eq!(open.policy_for("GET", "/x"), &Policy::Authenticated);
    }

    #[test]
    fn bad_policies_and_patterns_are_explained() {
        assert!(
            Policy::parse("Jobs Write")
                .unwrap_err()
                .contains("not a policy")
        );
        assert!(
            rule("/a/*/b", None, "public")
                .check()
                .unwrap_err()
                .contains("last segment")
        );
        assert!(rule("a", None, "public").check().is_err());
        assert!(rule("/a/x{id}", None, "public").check().is_err());
        assert!(
            rule("/a", Some(&["get"]), "public")
                .check()
                .unwrap_err()
                .contains("upper-case")
        );
    }
}
