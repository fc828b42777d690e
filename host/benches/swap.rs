//! Time from upload to the first request served by the new version: cold
//! (never compiled: Cranelift runs) and warm (compiled code from the on-disk
//! cache), next to serving the same request with no swap in the same run.
//!
//! `cargo bench -p baton --bench swap`

#[path = "../../tests/support/mod.rs"]
mod support;

use baton::app::App;
use baton::host_calls::jobs::JobsState;
use baton::runtime::bindings::types;
use baton::runtime::versions::Source;
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn hello() -> types::Request {
    types::Request {
        method: "GET".into(),
        path: "/hello".into(),
        query: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        mount: "/greeter".into(),
        base_url: "http://127.0.0.1/greeter".into(),
        remote_addr: "127.0.0.1:1".into(),
        request_id: "bench".into(),
        principal: None,
    }
}

async fn serve(app: &Arc<App>) -> Vec<u8> {
    let slot = app.registry.get("greeter").unwrap();
    let version = slot.current();
    let jobs = JobsState::for_request(app.jobs.clone(), slot.name.clone());
    let out = app
        .runtime
        .handle(&slot, &version, &hello(), jobs)
        .await
        .unwrap();
    assert_eq!(out.response.status, 200);
    out.response.body
}

fn bench(c: &mut Criterion) {
    let wasm = support::test_components().join("greeter_v1.wasm");
    let v2 = std::fs::read(support::test_components().join("greeter_v2.wasm")).unwrap();
    let (rt, _dir, app) = support::app_in_process(&support::manifest(&format!(
        "[[handler]]\nname = \"greeter\"\nwasm = \"{}\"\nmount = \"/greeter\"\n",
        wasm.display()
    )));
    let v1 = std::fs::read(&wasm).unwrap();

    let mut g = c.benchmark_group("swap");
    g.bench_function("baseline: the request with no swap", |b| {
        b.to_async(&rt).iter(|| serve(&app))
    });
    // Warm: both versions compiled once, then alternated from the cache.
    rt.block_on(async {
        app.deploy("greeter", v2.clone(), Source::Admin)
            .await
            .unwrap();
        app.deploy("greeter", v1.clone(), Source::Admin)
            .await
            .unwrap();
    });
    let flip = AtomicU64::new(0);
    g.bench_function(
        "warm: upload of a cached version → first request served",
        |b| {
            b.to_async(&rt).iter(|| async {
                let next = if flip.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                    &v2
                } else {
                    &v1
                };
                app.deploy("greeter", next.clone(), Source::Admin)
                    .await
                    .unwrap();
                serve(&app).await
            })
        },
    );
    g.sample_size(10);
    let n = AtomicU64::new(0);
    g.bench_function(
        "cold: upload of a new version → first request served",
        |b| {
            b.to_async(&rt).iter(|| async {
                let bytes = support::with_custom_section(
                    &v2,
                    &format!("cold-{}", n.fetch_add(1, Ordering::Relaxed)),
                );
                app.deploy("greeter", bytes, Source::Admin).await.unwrap();
                serve(&app).await
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
