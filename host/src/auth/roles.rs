//! Roles map to permissions; a permission is granted by an exact name, by
//! `*`, or by a `prefix:*` wildcard (e.g. `jobs:*` grants `jobs:write`).

use std::collections::{BTreeMap, HashMap};

/// The effective role → permissions table of a server.
#[derive(Debug, Clone, Default)]
pub struct RoleTable {
    roles: HashMap<String, Vec<String>>,
}

impl RoleTable {
    /// A table from `[auth]`'s merged role map.
    pub fn new(table: BTreeMap<String, Vec<String>>) -> Self {
        RoleTable {
            roles: table.into_iter().collect(),
        }
    }

    /// Whether holding `roles` grants `permission`.
    pub fn grants(&self, roles: &[String], permission: &str) -> bool {
        roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flatten()
            .any(|held| permission_covers(held, permission))
    }

    /// Every role name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.roles.keys().cloned().collect();
        names.sort();
        names
    }

    /// Whether `role` is defined.
    pub fn knows(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }
}

/// Whether the held permission `held` covers `wanted`.
fn permission_covers(held: &str, wanted: &str) -> bool {
    if held == "*" || held == wanted {
        return true;
    }
    match held.strip_suffix('*') {
        Some(prefix) => prefix.ends_with(':') && wanted.starts_with(prefix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RoleTable {
        RoleTable::new(
            [
                ("admin".to_string(), vec!["*".to_string()]),
                (
                    "ops".to_string(),
                    vec!["jobs:*".to_string(), "hosts:read".to_string()],
                ),
            ]
            .into_iter()
            .collect(),
        )
    }

    #[test]
    fn exact_star_and_prefix_wildcards_grant() {
        let t = table();
        let ops = vec!["ops".to_string()];
        assert!(t.grants(&ops, "jobs:write"));
        assert!(t.grants(&ops, "hosts:read"));
        assert!(!t.grants(&ops, "hosts:creds"));
        assert!(!t.grants(&ops, "jobsx:write"));
        assert!(t.grants(&["admin".to_string()], "anything:at-all"));
        assert!(!t.grants(&["ghost".to_string()], "jobs:read"));
        assert!(!t.grants(&[], "jobs:read"));
    }
}
