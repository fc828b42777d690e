//! Per-request cost of the Wasm path for a trivial component, next to a
//! native axum handler measured in the same run: the full host path through
//! the listener's service (route, token check, instantiate, lift/lower,
//! `handle`, response), fresh and warm instances, instantiation alone, and
//! kv get/set host calls.
//!
//! `cargo bench -p baton --bench request_path`

#[path = "../../tests/support/mod.rs"]
mod support;

use axum::body::Body;
use baton::app::App;
use baton::auth::tokens::TokenKind;
use baton::host_calls::jobs::JobsState;
use baton::runtime::bindings::types;
use baton::runtime::registry::HandlerSlot;
use baton::server::listen::ConnInfo;
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
        "[[handler]]\nname = \"faulty\"\nwasm = \"{w}\"\nmount = \"/faulty\"\n\n\
         [[handler]]\nname = \"warm\"\nwasm = \"{w}\"\nmount = \"/warm\"\n\
         [handler.warm_instances]\nmax_requests = 1000000\n",
        w = wasm.display()
    )));
    let slot = app.registry.get("faulty").unwrap();
    let version = slot.current();
    let token = rt
        .block_on(app.auth.issue("admin", TokenKind::Access, 3600))
        .expect("a token for the bench");
    let conn = ConnInfo::new("127.0.0.1:40000".parse().unwrap(), None);
    let service = support::listener_service(&app);

    let mut group = c.benchmark_group("request_path");
    for (name, path) in [
        ("full_host_path_fresh_instance", "/faulty/ok"),
        ("full_host_path_warm_instance", "/warm/ok"),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let resp = service.call(support::http_get(path, &token), &conn).await;
                assert_eq!(resp.status(), 200);
            })
        });
    }
    let native_full = axum::Router::new().route(
        "/faulty/ok",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"success": true, "data": "ok", "error": null}))
        }),
    );
    group.bench_function("native_axum_handler_json", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = native_full
                .clone()
                .oneshot(support::http_get("/faulty/ok", &token))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        })
    });
    group.bench_function("instantiate_only", |b| {
        b.to_async(&rt).iter(|| async {
            app.runtime
                .instantiate_and_drop(&slot, &version, jobs(&app, &slot))
                .await
                .unwrap();
        })
    });
    let warm_slot = app.registry.get("warm").unwrap();
    let warm_version = warm_slot.current();
    let req = request("/ok");
    group.bench_function("warm_instance_handle (later calls)", |b| {
        b.to_async(&rt).iter(|| async {
            let out = app
                .runtime
                .handle(&warm_slot, &warm_version, &req, jobs(&app, &warm_slot))
                .await
                .unwrap();
            assert_eq!(out.response.status, 200);
        })
    });
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
    let mut kv_put = request("/kv/bench");
    kv_put.method = "PUT".into();
    kv_put.body = b"value".to_vec();
    group.bench_function("wasm_fresh_instance_kv_set", |b| {
        b.to_async(&rt).iter(|| async {
            let out = app
                .runtime
                .handle(&slot, &version, &kv_put, jobs(&app, &slot))
                .await
                .unwrap();
            assert_eq!(out.response.status, 204);
        })
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
