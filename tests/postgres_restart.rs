//! PostgreSQL stopped and started again under load (its own test process,
//! since every test of a process shares the private server): requests that
//! need the database get 503 in their API's error shape meanwhile, never a
//! hang or a 500; service comes back by itself; no acknowledged write is
//! lost.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

#[test]
fn postgres_restarted_under_load_loses_no_acknowledged_write() {
    let url = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!("{}\n[storage]\nurl = \"{url}\"\n", manifest(ORCHESTRATOR));
    let server = Arc::new(Server::start(dir.path(), &manifest));
    // The admin's record is read (and kept) before the outage.
    assert_eq!(server.get_status("/orchestrator/v1/inventory"), 200);

    let stop = Arc::new(AtomicBool::new(false));
    // Each writer's acknowledged nodes, and every status seen.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let unavailable_bodies = Arc::new(Mutex::new(Vec::<Value>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (server, stop, acked, statuses, bodies) = (
                server.clone(),
                stop.clone(),
                acked.clone(),
                statuses.clone(),
                unavailable_bodies.clone(),
            );
            std::thread::spawn(move || {
                let c = server
                    .client_builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let token = server.admin_token();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("w{w}-{i:05}.example.com");
                    i += 1;
                    let resp = c
                        .put(server.url(&format!("/orchestrator/v1/inventory/nodes/{name}")))
                        .header("x-authentication", &token)
                        .json(&json!({"facts": {"writer": w}}))
                        .send();
                    let Ok(resp) = resp else { continue };
                    let status = resp.status().as_u16();
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                    if resp.status().is_success() {
                        acked.lock().unwrap().push(name);
                    } else if status == 503 {
                        bodies
                            .lock()
                            .unwrap()
                            .push(resp.json().unwrap_or(Value::Null));
                    }
                }
            })
        })
        .collect();
    let acked_now = || acked.lock().unwrap().len();
    poll("100 acknowledged writes", || {
        if acked_now() >= 100 {
            Ok(())
        } else {
            Err(acked_now().to_string())
        }
    });
    let pg = support::postgres::server();
    pg.stop_for_a_while();
    // Longer than a request waits for a connection (3 s): requests meanwhile
    // get their 503.
    std::thread::sleep(Duration::from_secs(5));
    pg.start_again();
    let after_restart = acked_now();
    poll("writes acknowledged again after the restart", || {
        if acked_now() >= after_restart + 100 {
            Ok(())
        } else {
            Err(format!("{} since the restart", acked_now() - after_restart))
        }
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    // Only successes and 503s: no 500, no other failure.
    for status in statuses.keys() {
        assert!(
            matches!(status, 200 | 201 | 503),
            "status {status} during the outage: {statuses:?}\n{}",
            server.log()
        );
    }
    assert!(
        statuses.contains_key(&503),
        "no request saw the outage: {statuses:?}"
    );
    for body in unavailable_bodies.lock().unwrap().iter() {
        assert_eq!(
            body["kind"], "puppetlabs.orchestrator/service-unavailable",
            "{body}"
        );
    }
    // Every acknowledged write is there.
    let c = server.client();
    for name in acked.lock().unwrap().iter() {
        let resp = c
            .get(server.url(&format!("/orchestrator/v1/inventory/nodes/{name}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "acknowledged node {name} is gone");
    }
    assert_eq!(server.get_json("/admin/v1/readyz")["status"], "ready");
}
