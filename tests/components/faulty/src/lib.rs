//! A handler that misbehaves on request, to prove the sandbox holds.

use baton_sdk::{Handler, Request, Response, Router, kv::Bucket};
use std::sync::atomic::{AtomicU32, Ordering};

struct Faulty;

impl Handler for Faulty {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/ok", |_| Response::text(200, "ok"))
            // How many requests this instance has served: always 1 with a
            // fresh instance per request, more with warm instances.
            .get("/count", |req| {
                static SERVED: AtomicU32 = AtomicU32::new(0);
                let n = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
                let caller = req.principal.as_ref().map(|p| p.subject.clone());
                Response::json(200, &serde_json::json!({ "count": n, "caller": caller }))
            })
            .get("/trap", |_| -> Response { panic!("deliberate trap for the test") })
            .get("/loop", |_| -> Response {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
            .get("/grow", |_| -> Response {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            })
            .get("/print", |req| {
                println!("guest says hello to {}", req.request_id);
                eprintln!("guest warns on stderr");
                Response::text(200, "printed")
            })
            .get("/config/{key}", |req| {
                let v = baton_sdk::config::get(req.param("key").unwrap_or_default());
                Response::json(200, &serde_json::json!({ "value": v }))
            })
            .put("/kv/{key}", |req| {
                Bucket::open("t").set(req.param("key").unwrap(), &req.body).unwrap();
                Response::new(204)
            })
            .get("/kv/{key}", |req| match Bucket::open("t").get(req.param("key").unwrap()) {
                Ok(Some(v)) => Response::new(200).with_body(v),
                Ok(None) => Response::new(404),
                Err(e) => Response::error(500, &e.to_string()),
            })
            .get("/jobs", |_| {
                match baton_sdk::jobs::exec(&baton_sdk::jobs::Command::new("true", &[])) {
                    Err(e) => Response::error(503, &e.to_string()),
                    Ok(_) => Response::new(200),
                }
            })
            .handle(req)
    }
}

baton_sdk::export!(Faulty);
