//! Per-request cost of a fresh Wasm instance + `handle` for a trivial
//! component, next to a native axum handler measured in the same run.
//!
//! `cargo bench -p baton --bench request_path`

#[path = "../../tests/support/mod.rs"]
mod support;

use axum::body::Body;
use baton::app::App;
use baton::host_calls::jobs::JobsState;
use baton::runtime::bindings::types;
use baton::runtime::registry::HandlerSlot;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

fn request(path: &str) -> types::Request {
    types::Request {
        method: "GET".into(),
        path: path.into(),
        query: String::new(),
        headers: vec![("accept".into(), "application/json".into())],
        body: Vec::new(),
        mount: "/faulty".into(),
        base_url: "http://127.0.0.1/faulty".into(),
        remote_addr: "127.0.0.1:1".into(),
        request_id: "bench".into(),
        principal: None,
    }
}

/// The jobs host-call state a request instance gets.
fn jobs(app: &App, slot: &HandlerSlot) -> JobsState {
    JobsState::for_request(app.jobs.clone(), slot.name.clone())
}

fn bench(c: &mut Criterion) {
    let wasm = support::test_components().join("faulty.wasm");
    let (rt, _dir, app) = support::app_in_process(&support::manifest(&format!(
        "[[handler]]\nname = \"faulty\"\nwasm = \"{}\"\nmount = \"/faulty\"\n",
        wasm.display()
    )));
    let slot = app.registry.get("faulty").unwrap();
    let version = slot.current();

    let mut group = c.benchmark_group("request_path");
    let req = request("/ok");
    group.bench_function("wasm_fresh_instance_handle", |b| {
        b.to_async(&rt).iter(|| async {
            let out = app
                .runtime
                .handle(&slot, &version, &req, jobs(&app, &slot))
                .await
                .unwrap();
            assert_eq!(out.response.status, 200);
        })
    });
    let kv_req = request("/kv/bench");
    rt.block_on(async {
        let mut put = request("/kv/bench");
        put.method = "PUT".into();
        put.body = b"value".to_vec();
        app.runtime
            .handle(&slot, &version, &put, jobs(&app, &slot))
            .await
            .unwrap();
    });
    group.bench_function("wasm_fresh_instance_kv_get", |b| {
        b.to_async(&rt).iter(|| async {
            let out = app
                .runtime
                .handle(&slot, &version, &kv_req, jobs(&app, &slot))
                .await
                .unwrap();
            assert_eq!(out.response.status, 200);
        })
    });
    let native = axum::Router::new().route("/faulty/ok", axum::routing::get(|| async { "ok" }));
    group.bench_function("native_axum_handler", |b| {
        b.to_async(&rt).iter(|| async {
            let req = axum::http::Request::get("/faulty/ok")
                .body(Body::empty())
                .unwrap();
            let resp = native.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), 200);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
