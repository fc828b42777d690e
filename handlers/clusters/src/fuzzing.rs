//! Entry points for the fuzz targets of `fuzz/` (built natively, where a
//! host call would be an `unreachable!` stub): each runs one of the API's
//! request readers as its route does, up to the route's first host call,
//! and checks what the reader promises. A refusal must be a 4xx
//! `{"error": ...}`; anything else is a bug.

use crate::body;
use crate::clusters;
use crate::commands;
use crate::errors::ApiError;
use crate::hosts;
use crate::ops::{self, Op};
use crate::resources::{MANAGER, NETWORK};
use baton_sdk::{Request, Response};

/// How many readers [`run`] chooses from (by the input's first byte).
pub const READERS: u8 = 9;

/// Runs the reader the first byte of `data` picks on the rest of it: its
/// first line is the path parameter(s) (`name`, then ` ` and `ip`), the
/// remainder the body.
pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (line, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let line = String::from_utf8_lossy(line);
    let (name, ip) = line.split_once(' ').unwrap_or((&line, ""));
    let mut req = Request::new("PUT", "/").with_body(body.to_vec());
    req.params.insert("name".into(), name.into());
    req.params.insert("ip".into(), ip.into());
    let text = String::from_utf8_lossy(rest);
    match pick % READERS {
        0 => refused_or(clusters::read_put(&req), |(n, network, manager, _)| {
            assert!(body::name("name", &n).is_ok());
            assert!(body::name("network", &network).is_ok());
            assert!(manager.is_none_or(|m| body::name("manager", &m).is_ok()));
        }),
        1 => refused_or(clusters::read_members(&req), |(_, old, new)| {
            for a in old.iter().chain(&new) {
                // Canonical: checking again gives the same text.
                assert_eq!(body::address("a", a).as_ref(), Ok(a));
            }
            assert!(new.iter().enumerate().all(|(i, a)| !new[..i].contains(a)));
        }),
        2 => {
            let address = body::address("ip", ip).unwrap_or_else(|_| "192.0.2.1".into());
            refused_or(hosts::read_register(&req, &address), |(creds, cluster)| {
                assert!(body::remote_user(&creds.remote_user).is_ok());
                assert!(!creds.ssh_priv_key.is_empty());
                assert!(cluster.is_none_or(|c| body::name("cluster", &c).is_ok()));
            })
        }
        3 => {
            for op in [Op::Deploy, Op::Upgrade, Op::Restart] {
                refused_or(ops::read_start(&req, op), |(_, version)| {
                    assert_eq!(version.is_some(), op == Op::Deploy);
                });
            }
        }
        4 => {
            for kind in [&NETWORK, &MANAGER] {
                refused_or(kind.read_put(&req), |r| {
                    assert!(kind.types.contains(&r.kind.as_str()));
                });
            }
        }
        5 => path_values(&text),
        6 => {
            if let Ok(facts) = commands::parse_facts(&text) {
                assert!(facts.cpus >= 0 && facts.memory >= 0 && facts.space >= 0);
                assert!(!facts.os.is_empty());
            }
        }
        7 => placeholders(name, body),
        _ => refused_or(body::caller_address(&text), |a| {
            assert!(a.parse::<std::net::IpAddr>().is_ok())
        }),
    }
}

/// A refusal must be a 4xx in Commissaire's shape; `ok` checks a success.
fn refused_or<T>(result: Result<T, ApiError>, ok: impl FnOnce(T)) {
    match result {
        Ok(v) => ok(v),
        Err(e) => {
            let status = e.status;
            let resp = Response::from(e);
            assert!((400..500).contains(&status), "a reader answered {status}");
            assert!(resp.body_json()["error"].is_string());
        }
    }
}

/// Names, addresses, versions and users as the routes take them.
fn path_values(text: &str) {
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    refused_or(body::name("name", text), |n| assert!(plain(&n)));
    refused_or(body::version(text), |v| assert!(plain(&v)));
    refused_or(body::remote_user(text), |u| {
        assert!(plain(&u) && !u.starts_with('-'))
    });
    refused_or(body::address("address", text), |a| {
        assert_eq!(body::address("address", &a).as_ref(), Ok(&a))
    });
}

/// A configured argv with checked values: each value stays one argument.
fn placeholders(argv_json: &str, value: &[u8]) {
    let value = String::from_utf8_lossy(value);
    let Ok(version) = body::version(&value) else {
        return;
    };
    let vars: commands::Vars = vec![("version", version), ("address", "192.0.2.1".into())];
    if let Ok(argv) = commands::argv("cmd", Some(argv_json.to_string()), &vars) {
        let given: Vec<String> = serde_json::from_str(argv_json).expect("argv parsed it");
        assert_eq!(argv.len(), given.len(), "a value split an argument");
        assert!(!argv[0].is_empty());
    }
}
