//! Entry points for the fuzz targets of `fuzz/` (built natively, where a
//! host call would be an `unreachable!` stub): each runs one of the API's
//! request readers as its route does, up to the route's first host call,
//! and checks what the reader promises: a refusal is a 4xx in the envelope
//! shape, and every value a request puts on the CLI's command line is one
//! argument that cannot read as a flag.

use crate::batch::plan::{self, BatchRequest, MAX_PARALLEL, MAX_TASKS};
use crate::cli::{Invocation, TaskSpec};
use crate::envelope::{ApiError, body};
use crate::login::{self, Login, Logout, Refresh};
use crate::tasks;
use crate::workflows;
use baton_sdk::{Request, Response};

/// How many readers [`run`] chooses from (by the input's first byte).
pub const READERS: u8 = 9;

/// Runs the reader the first byte of `data` picks on the rest of it.
pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match pick % READERS {
        0 => refused_or(body::<Login>(rest), |_| {}),
        1 => refused_or(body::<Refresh>(rest), |_| {}),
        2 => refused_or(body::<Logout>(rest), |_| {}),
        3 => refused_or(workflows::servers_task(rest), |t| safe_task(&t)),
        4 => refused_or(workflows::taskserv_task(rest), |t| safe_task(&t)),
        5 => refused_or(workflows::cluster_task(rest), |t| safe_task(&t)),
        6 => batch(rest),
        7 => {
            let req = Request::new("GET", "/tasks").with_query(&text);
            refused_or(tasks::list_query(&req), |(_, limit, _)| {
                assert!((1..=1000).contains(&limit))
            });
            refused_or(tasks::parse_uuid("id", &text), |id| {
                assert_eq!(tasks::parse_uuid("id", &id).as_ref(), Ok(&id));
                assert_eq!(id.len(), 36);
            });
            if let Some(s) = tasks::parse_status(&text) {
                assert!(tasks::status_name(s).eq_ignore_ascii_case(&text));
            }
        }
        _ => {
            let (name, value) = text.split_once(':').unwrap_or(("authorization", &text));
            let req = Request {
                headers: vec![(name.to_ascii_lowercase(), value.to_string())],
                ..Request::new("POST", "/auth/logout")
            };
            if let Some(token) = login::bearer(&req) {
                assert_eq!(token, token.trim());
            }
        }
    }
}

/// A refusal must be a 4xx envelope; `ok` checks a success.
fn refused_or<T>(result: Result<T, ApiError>, ok: impl FnOnce(T)) {
    match result {
        Ok(v) => ok(v),
        Err(e) => {
            let status = e.status;
            let resp = Response::from(e);
            assert!((400..500).contains(&status), "a reader answered {status}");
            let body = resp.body_json();
            assert_eq!(body["success"], false, "{body}");
            assert!(body["error"].is_string(), "{body}");
        }
    }
}

fn batch(bytes: &[u8]) {
    refused_or(body::<BatchRequest>(bytes), |r| {
        refused_or(plan::plan(&r), |p| {
            assert!(p.tasks.len() <= MAX_TASKS);
            assert!((1..=MAX_PARALLEL).contains(&p.parallel_limit));
            for (i, (op, task, deps)) in p.tasks.iter().enumerate() {
                assert!(*op < p.ops.len());
                assert!(deps.iter().all(|d| *d < p.tasks.len() && *d != i));
                safe_task(task);
            }
        })
    });
}

/// Every argument a task passes is a flag the handler writes or a
/// value that cannot be read as one (no leading `-`, no control character).
fn safe_task(t: &TaskSpec) {
    safe_invocation(&t.run);
    if let Some(r) = &t.rollback {
        safe_invocation(r);
    }
}

/// The flags the handler writes itself.
const FLAGS: [&str; 9] = [
    "--check",
    "--infra",
    "--plan",
    "--provider",
    "--server",
    "--settings",
    "--wait",
    "--yes",
    "--zone",
];

fn safe_invocation(inv: &Invocation) {
    for arg in inv.command.iter().chain(&inv.args) {
        let flag = FLAGS.contains(&arg.as_str());
        assert!(
            flag || !arg.starts_with('-') && !arg.trim().is_empty(),
            "argument {arg:?} of {inv:?}"
        );
        assert!(!arg.chars().any(char::is_control), "argument {arg:?}");
    }
}
