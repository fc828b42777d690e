//! Job engine throughput and overhead for trivial jobs (`run-job` returns its
//! input at once), next to calling `run-job` directly in the same run.
//!
//! `cargo bench -p baton --bench jobs`

#[path = "../../tests/support/mod.rs"]
mod support;

use baton::host_calls::jobs::{JobRun, JobsState};
use baton::jobs::{JobState, NewJob};
use baton::runtime::bindings::types::JobContext;
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs spawned at once in the first throughput bench.
const BATCH: u64 = 100;

fn quick() -> NewJob {
    NewJob {
        kind: "quick".into(),
        input: b"{}".to_vec(),
        ..NewJob::default()
    }
}

fn bench(c: &mut Criterion) {
    let wasm = support::test_components().join("jobber.wasm");
    let (rt, _dir, app) = support::app_in_process(&support::manifest(&format!(
        "[jobs]\nmax_running = 64\n[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\n\
         [handler.limits]\nmax_running_jobs = 64\n",
        wasm.display()
    )));
    let slot = app.registry.get("jobber").unwrap();
    let version = slot.current();

    let mut g = c.benchmark_group("jobs");
    g.bench_function("baseline: run-job called directly (fresh instance)", |b| {
        b.to_async(&rt).iter(|| async {
            let cancel = Arc::new(baton::jobs::CancelFlag::default());
            let state = JobsState::for_job(
                app.jobs.clone(),
                slot.name.clone(),
                JobRun {
                    id: "bench".into(),
                    cancel: cancel.clone(),
                    allow: Arc::new(Vec::new()),
                    deadline: Instant::now() + Duration::from_secs(10),
                },
            );
            let ctx = JobContext {
                id: "bench".into(),
                kind: "quick".into(),
                input: b"{}".to_vec(),
                attempt: 1,
                rollback: false,
                labels: Vec::new(),
            };
            let out = app
                .runtime
                .run_job(&slot, &version, ctx, state, Duration::from_secs(10), cancel)
                .await
                .unwrap();
            assert!(out.is_ok());
        })
    });
    g.bench_function("engine: spawn → succeeded, one job at a time", |b| {
        b.to_async(&rt).iter(|| async {
            let id = app.jobs.spawn("jobber", quick()).await.unwrap();
            let j = app.jobs.wait(&id).await.unwrap();
            assert_eq!(j.state, JobState::Succeeded);
        })
    });
    g.sample_size(10);
    for in_flight in [BATCH, 1000] {
        g.bench_function(
            format!("engine: {in_flight} spawned at once → all succeeded (time per job)"),
            |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let app = app.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = Instant::now();
                            // Concurrent spawns, as from concurrent requests:
                            // their writes share flushes.
                            let tasks: Vec<_> = (0..in_flight)
                                .map(|_| {
                                    let app = app.clone();
                                    tokio::spawn(async move {
                                        let id = app.jobs.spawn("jobber", quick()).await.unwrap();
                                        let waited = tokio::time::timeout(
                                            Duration::from_secs(30),
                                            app.jobs.wait(&id),
                                        )
                                        .await;
                                        if waited.is_err() {
                                            panic!(
                                                "job {id} never finished: {:?}",
                                                app.jobs.get(&id, None).await
                                            );
                                        }
                                    })
                                })
                                .collect();
                            for t in tasks {
                                t.await.unwrap();
                            }
                            total += start.elapsed() / in_flight as u32;
                        }
                        total
                    }
                })
            },
        );
    }
    g.finish();
    let baton::store::Floor::Sled(sled) = &app.floor else {
        panic!("the bench runs on sled");
    };
    let (commits, flushes) = sled.commit_counts();
    println!(
        "group commit over the whole run: {commits} commits shared {flushes} flushes ({:.1} per flush)",
        commits as f64 / flushes.max(1) as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
