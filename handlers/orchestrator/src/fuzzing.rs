//! Entry points for the fuzz targets of `fuzz/` (built natively, where a
//! host call would be an `unreachable!` stub): each runs one of the API's
//! body or query readers as its route does, up to the route's first host
//! call, and checks what the reader promises. A refusal must be a 4xx in the
//! orchestrator's error shape; anything else is a bug.

use crate::command::{self, resolve_scope};
use crate::errors::OrchError;
use crate::groups::{self, MAX_GROUP_NODES, Rule};
use crate::inventory::{self, validate_name};
use crate::options::{self, REDACTED};
use crate::query::{Paging, parse_rfc3339, timestamp};
use baton_sdk::{Request, Response};

/// How many readers [`run`] chooses from (by the input's first byte).
pub const READERS: u8 = 9;

/// Runs the reader the first byte of `data` picks on the rest of it.
pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let post = || Request::new("POST", "/").with_body(rest.to_vec());
    match pick % READERS {
        0 => deploy(rest),
        1 => task(rest),
        2 => refused_or(command::read_stop(rest), |(name, _, _)| assert!(name > 0)),
        3 => refused_or(inventory::read_query(&post()), |nodes| {
            nodes.iter().for_each(|n| assert!(validate_name(n).is_ok()))
        }),
        4 => refused_or(inventory::read_put(&post()), |_| {}),
        5 => refused_or(groups::read_put(&post()), |(name, _, rule)| {
            assert!(!name.is_empty() && name == name.trim());
            if let Rule::Nodes(nodes) = rule {
                assert!(nodes.len() <= MAX_GROUP_NODES);
                sorted_valid_names(&nodes);
            }
        }),
        6 => job_list_query(&text),
        7 => path_values(&text),
        _ => timestamps(rest, &text),
    }
}

/// A refusal must be a 4xx in the orchestrator's shape; `ok` checks a success.
fn refused_or<T>(result: Result<T, OrchError>, ok: impl FnOnce(T)) {
    match result {
        Ok(v) => ok(v),
        Err(e) => check_refusal(e),
    }
}

fn check_refusal(e: OrchError) {
    let text = e.to_string();
    let resp = Response::from(e);
    assert!(
        (400..500).contains(&resp.status),
        "a reader answered {}: {text}",
        resp.status
    );
    let body = resp.body_json();
    let kind = body["kind"].as_str().unwrap_or_default();
    assert!(kind.starts_with("puppetlabs.orchestrator/"), "{body}");
    assert!(body["msg"].is_string(), "{body}");
}

fn sorted_valid_names(nodes: &[String]) {
    assert!(nodes.windows(2).all(|w| w[0] < w[1]), "{nodes:?}");
    for n in nodes {
        assert!(validate_name(n).is_ok(), "{n:?}");
    }
}

/// The nodes of a scope that names them (a group is read from the store).
fn scope_nodes(scope: &command::Scope) -> Option<Result<Vec<String>, OrchError>> {
    (!scope.reads_store()).then(|| resolve_scope(scope))
}

fn deploy(body: &[u8]) {
    refused_or(command::read_deploy(body), |b| {
        if let Some(nodes) = scope_nodes(&b.scope) {
            refused_or(nodes, |nodes| {
                assert!(!nodes.is_empty() && nodes.len() <= MAX_GROUP_NODES);
                sorted_valid_names(&nodes);
            });
        }
        assert!(command::validate_environment(&b.environment).is_ok());
        command::to_options(&b).expect("a deploy body is its own options");
    });
}

fn task(body: &[u8]) {
    refused_or(command::read_task(body), |mut b| {
        let Some(nodes) = scope_nodes(&b.scope) else {
            return;
        };
        let nodes = match nodes {
            Ok(n) => n,
            Err(e) => return check_refusal(e),
        };
        sorted_valid_names(&nodes);
        if let Some(targets) = b.targets.as_mut() {
            match options::check_targets(targets, &nodes) {
                Ok(by_node) => {
                    assert!(by_node.keys().all(|n| nodes.binary_search(n).is_ok()));
                    for t in targets.iter() {
                        for key in ["password", "sudo-password", "private-key-content"] {
                            if let Some(v) = t.rest.get(key) {
                                assert_eq!(v, REDACTED, "target secret `{key}` kept");
                            }
                        }
                    }
                }
                Err(e) => return check_refusal(e),
            }
        }
        command::to_options(&b).expect("a task body is its own options");
    });
}

fn job_list_query(query: &str) {
    let req = Request::new("GET", "/jobs").with_query(query);
    let fields = ["name", "owner", "timestamp", "environment", "state"];
    refused_or(Paging::from_request(&req, &fields), |p| {
        assert!(fields.contains(&p.order_by.as_str()));
        let (page, total) = p.page((0..50).collect::<Vec<u32>>());
        assert!(total == 50 && page.len() <= p.limit.unwrap_or(usize::MAX));
    });
    for field in ["min_finish_timestamp", "max_finish_timestamp"] {
        refused_or(timestamp(&req, field), |_| {});
    }
}

/// Node names, group ids and job names as the routes take them from paths.
fn path_values(text: &str) {
    refused_or(validate_name(text), |()| {
        assert!(text.bytes().all(|b| b.is_ascii_graphic()) && text.len() <= 253)
    });
    refused_or(groups::validate_id(text), |()| assert_eq!(text.len(), 36));
    refused_or(command::parse_job_name(text), |n| assert!(n > 0));
    refused_or(command::validate_task(text), |()| {});
}

/// RFC 3339 both ways: what the SDK prints parses back to the same instant,
/// and what parses is printed as a timestamp that parses to it again.
fn timestamps(bytes: &[u8], text: &str) {
    // The SDK prints instants from 1970 on; earlier ones parse (as negative
    // milliseconds) but are never printed.
    if let Some(ms) = parse_rfc3339(text).filter(|ms| *ms >= 0) {
        let printed = baton_sdk::time::rfc3339(ms as u64);
        assert_eq!(parse_rfc3339(&printed), Some(ms), "{text:?} → {printed}");
    }
    if let Some(b) = bytes.get(..8) {
        // Up to the end of year 9999, which four digits can print.
        let ms = u64::from_le_bytes(b.try_into().expect("8 bytes")) % 253_402_300_800_000;
        let printed = baton_sdk::time::rfc3339(ms);
        assert_eq!(parse_rfc3339(&printed), Some(ms as i64), "{printed}");
    }
}
