//! One conformance suite for the job store on every backend: the same
//! cases run against sled in a temporary directory and against a private
//! PostgreSQL server (tests/support/postgres.rs), so that the job engine
//! finds the same semantics on both: atomic inserts, one change at a time
//! per job with events numbered without gaps, graphs and their completion
//! order, schedules whose tick spawns its job exactly once.

mod support;

use baton::jobs::{EventRecord, GraphRecord, GraphState, JobRecord, JobState, ScheduleRecord};
use baton::manifest::schedule::When;
use baton::store::{JobStore, PgStore, SledStore};
use std::sync::Arc;

/// A backend under test: it can be opened, dropped and opened again.
trait Backend: Send + Sync {
    fn open(&self) -> impl std::future::Future<Output = Arc<dyn JobStore>> + Send;
}

struct Sled(tempfile::TempDir);

impl Backend for Sled {
    async fn open(&self) -> Arc<dyn JobStore> {
        Arc::new(SledStore::open(self.0.path()).unwrap().job_store().unwrap())
    }
}

struct Postgres(String);

impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn JobStore> {
        Arc::new(PgStore::connect(&self.0).await.unwrap().job_store(None))
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::Sled(tempfile::tempdir().unwrap())).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::Postgres(super::support::postgres::database())).await;
                }
            )*
        }
    };
}

conformance!(
    a_job_is_stored_with_its_queued_event_and_changes_append_numbered_events,
    concurrent_changes_to_one_job_keep_its_events_without_gaps,
    a_graph_is_stored_with_its_jobs_and_remembers_the_order_they_succeeded,
    scans_go_in_id_order_filter_and_page,
    a_tick_spawns_its_job_once_and_never_over_a_replaced_schedule,
    a_tick_removes_only_ended_jobs_outside_graphs_with_their_events,
    any_text_and_bytes_round_trip,
    committed_jobs_survive_reopening,
);

fn job(id: &str) -> JobRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "handler": "h", "kind": "tick", "state": "queued", "input": "",
        "output": null, "error": null, "attempts": 0, "max_attempts": 1,
        "timeout_ms": null, "labels": [], "depends_on": [], "graph": null,
        "progress": null, "created_at_ms": 1, "started_at_ms": null,
        "finished_at_ms": null, "not_before_ms": 0, "last_seq": 0,
        "cancel_requested": false, "live_process": null,
    }))
    .unwrap()
}

fn schedule(next: u64, created: u64) -> ScheduleRecord {
    ScheduleRecord {
        handler: "h".into(),
        name: "s".into(),
        timing: When::EveryMs(1000),
        kind: "tick".into(),
        input: Vec::new(),
        timeout_ms: None,
        max_attempts: 1,
        labels: Vec::new(),
        from_manifest: false,
        created_at_ms: created,
        next_at_ms: Some(next),
        last_at_ms: None,
        last_job: None,
        skipped: 0,
        keep_jobs: 100,
        recent: Vec::new(),
    }
}

async fn events(s: &dyn JobStore, id: &str, after: u64, limit: usize) -> Vec<EventRecord> {
    let job = s.get(id).await.unwrap().expect("the job exists");
    s.events(&job, after, limit).await.unwrap()
}

async fn kinds(s: &dyn JobStore, id: &str) -> Vec<String> {
    events(s, id, 0, 1000)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn set_state(s: &dyn JobStore, id: &str, state: JobState) -> JobRecord {
    s.update(id, &|j| {
        j.state = state;
        vec![(state.as_str().to_string(), "changed".into())]
    })
    .await
    .unwrap()
    .unwrap()
}

async fn a_job_is_stored_with_its_queued_event_and_changes_append_numbered_events(
    b: &impl Backend,
) {
    let s = b.open().await;
    s.insert(&[job("j1")], None).await.unwrap();
    let stored = s.get("j1").await.unwrap().unwrap();
    assert_eq!((stored.state, stored.last_seq), (JobState::Queued, 1));
    assert_eq!(kinds(&*s, "j1").await, ["queued"]);
    assert_eq!(events(&*s, "j1", 0, 10).await[0].message, "queued");
    let changed = s
        .update("j1", &|j| {
            j.state = JobState::Running;
            j.attempts += 1;
            vec![
                ("started".into(), "attempt 1".into()),
                ("stdout".into(), "hi".into()),
            ]
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.state, changed.attempts, changed.last_seq),
        (JobState::Running, 1, 3)
    );
    assert_eq!(s.get("j1").await.unwrap().unwrap(), changed);
    // A change without events changes the record only.
    s.update("j1", &|j| {
        j.attempts = 7;
        vec![]
    })
    .await
    .unwrap();
    assert_eq!(s.get("j1").await.unwrap().unwrap().last_seq, 3);
    let seqs = |evs: Vec<EventRecord>| evs.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(events(&*s, "j1", 0, 10).await), [1, 2, 3]);
    assert_eq!(seqs(events(&*s, "j1", 1, 1).await), [2]);
    assert_eq!(seqs(events(&*s, "j1", 3, 10).await), Vec::<u64>::new());
    assert_eq!(seqs(events(&*s, "j1", 99, 10).await), Vec::<u64>::new());
    // Events are bounded by the record the caller read.
    assert_eq!(seqs(s.events(&stored, 0, 10).await.unwrap()), [1]);
    // Unknown ids.
    assert!(s.get("nope").await.unwrap().is_none());
    assert!(
        s.update("nope", &|_| vec![("x".into(), "y".into())])
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.graph("nope").await.unwrap().is_none());
    assert!(s.update_graph("nope", &|_| {}).await.unwrap().is_none());
    s.commit().await.unwrap();
}

async fn concurrent_changes_to_one_job_keep_its_events_without_gaps(b: &impl Backend) {
    let s = b.open().await;
    s.insert(&[job("j")], None).await.unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    s.update("j", &|j| {
                        j.attempts += 1;
                        vec![("progress".into(), format!("{t}/{i}"))]
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let job = s.get("j").await.unwrap().unwrap();
    // Every change saw the one before it: none was lost.
    assert_eq!((job.last_seq, job.attempts), (401, 400));
    let seqs: Vec<u64> = events(&*s, "j", 0, 1000)
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=401).collect::<Vec<_>>());
}

async fn a_graph_is_stored_with_its_jobs_and_remembers_the_order_they_succeeded(b: &impl Backend) {
    let s = b.open().await;
    let in_graph = |id: &str| {
        let mut j = job(id);
        j.graph = Some("g".into());
        j
    };
    let graph = GraphRecord {
        id: "g".into(),
        handler: "h".into(),
        jobs: vec!["a".into(), "b".into(), "c".into()],
        parallel_limit: 2,
        rollback: true,
        state: GraphState::Running,
        completed: Vec::new(),
    };
    s.insert(&[in_graph("a"), in_graph("b"), in_graph("c")], Some(&graph))
        .await
        .unwrap();
    assert_eq!(s.graph("g").await.unwrap().unwrap(), graph);
    assert_eq!(s.graphs().await.unwrap(), vec![graph.clone()]);
    assert_eq!(
        events(&*s, "b", 0, 10).await[0].message,
        "queued in graph g"
    );
    assert!(s.completed("g").await.unwrap().is_empty());
    for id in ["b", "a"] {
        set_state(&*s, id, JobState::Running).await;
        set_state(&*s, id, JobState::Succeeded).await;
    }
    // A change that leaves a job succeeded does not list it again.
    s.update("b", &|_| vec![("note".into(), "still done".into())])
        .await
        .unwrap();
    set_state(&*s, "c", JobState::Failed).await;
    assert_eq!(s.completed("g").await.unwrap(), ["b", "a"]);
    let rolled = s
        .update_graph("g", &|g| g.state = GraphState::RollingBack)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rolled.state, GraphState::RollingBack);
    assert_eq!(
        s.graph("g").await.unwrap().unwrap().state,
        GraphState::RollingBack
    );
}

async fn scans_go_in_id_order_filter_and_page(b: &impl Backend) {
    let s = b.open().await;
    // More than one page of a backend that reads in pages, inserted out of order.
    let mut jobs: Vec<JobRecord> = (0..1200).map(|i| job(&format!("job-{i:05}"))).collect();
    jobs.reverse();
    for (i, j) in jobs.iter_mut().enumerate() {
        j.kind = if i % 3 == 0 {
            "keep".into()
        } else {
            "skip".into()
        };
    }
    s.insert(&jobs, None).await.unwrap();
    let all = s.scan(None, usize::MAX, &|_| true).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|j| j.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!((ids.len(), &ids), (1200, &sorted));
    let kept = s
        .scan(None, usize::MAX, &|j| j.kind == "keep")
        .await
        .unwrap();
    assert_eq!(kept.len(), 400);
    let first = s.scan(None, 150, &|j| j.kind == "keep").await.unwrap();
    assert_eq!(first, kept[..150]);
    let rest = s
        .scan(Some(&first[149].id), 1000, &|j| j.kind == "keep")
        .await
        .unwrap();
    assert_eq!(rest, kept[150..]);
    assert!(
        s.scan(Some("job-99999"), 10, &|_| true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.scan(None, 0, &|_| true).await.unwrap().is_empty());
}

async fn a_tick_spawns_its_job_once_and_never_over_a_replaced_schedule(b: &impl Backend) {
    let s = b.open().await;
    s.put_schedule(&schedule(1000, 0)).await.unwrap();
    // Two tickers race for the tick due at 1000: one wins.
    let racers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|id| {
            let s = s.clone();
            tokio::spawn(async move {
                s.fire(&schedule(2000, 0), 1000, Some(&job(id)), &[])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = Vec::new();
    for r in racers {
        won.push(r.await.unwrap());
    }
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let spawned: Vec<bool> = [s.get("a").await.unwrap(), s.get("b").await.unwrap()]
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(spawned, won);
    let winner = if won[0] { "a" } else { "b" };
    assert_eq!(kinds(&*s, winner).await, ["queued"]);
    assert_eq!(s.schedules().await.unwrap(), vec![schedule(2000, 0)]);
    // Replaced meanwhile (a new creation time): the old tick writes nothing.
    s.put_schedule(&schedule(2000, 5)).await.unwrap();
    assert!(
        !s.fire(&schedule(3000, 0), 2000, Some(&job("c")), &[])
            .await
            .unwrap()
    );
    assert!(s.get("c").await.unwrap().is_none());
    assert_eq!(s.schedules().await.unwrap(), vec![schedule(2000, 5)]);
    assert!(s.delete_schedule("h", "s").await.unwrap());
    assert!(!s.delete_schedule("h", "s").await.unwrap());
    assert!(!s.fire(&schedule(3000, 5), 2000, None, &[]).await.unwrap());
    assert!(s.schedules().await.unwrap().is_empty());
}

async fn a_tick_removes_only_ended_jobs_outside_graphs_with_their_events(b: &impl Backend) {
    let s = b.open().await;
    let mut in_graph = job("g");
    in_graph.graph = Some("graph".into());
    s.insert(&[job("done"), job("queued"), in_graph], None)
        .await
        .unwrap();
    for id in ["done", "g"] {
        set_state(&*s, id, JobState::Succeeded).await;
    }
    s.put_schedule(&schedule(1000, 0)).await.unwrap();
    let expired: Vec<String> = ["done", "queued", "g", "nope"].map(String::from).to_vec();
    assert!(
        s.fire(&schedule(2000, 0), 1000, Some(&job("new")), &expired)
            .await
            .unwrap()
    );
    assert!(s.get("done").await.unwrap().is_none());
    assert!(s.get("queued").await.unwrap().is_some());
    assert_eq!(kinds(&*s, "g").await, ["queued", "succeeded"]);
    assert!(s.get("new").await.unwrap().is_some());
    // Its events went with it: the id used again starts afresh.
    s.insert(&[job("done")], None).await.unwrap();
    let again = s.get("done").await.unwrap().unwrap();
    assert_eq!(again.last_seq, 1);
    let mut far = again.clone();
    far.last_seq = 10;
    assert_eq!(s.events(&far, 0, 10).await.unwrap().len(), 1);
}

async fn any_text_and_bytes_round_trip(b: &impl Backend) {
    let s = b.open().await;
    let mut j = job("odd");
    j.input = (0..=255u8).collect();
    j.labels = vec![("nul\0key".into(), "ünï\u{0}côdé".into())];
    s.insert(std::slice::from_ref(&j), None).await.unwrap();
    let line = "a line with a NUL \u{0} and \u{1F600} and a quote \" and a backslash \\";
    let changed = s
        .update("odd", &|j| {
            j.error = Some(line.into());
            j.output = Some(vec![0, 255, 0]);
            vec![("stdout".into(), line.into())]
        })
        .await
        .unwrap()
        .unwrap();
    let stored = s.get("odd").await.unwrap().unwrap();
    assert_eq!(stored, changed);
    assert_eq!(stored.input, j.input);
    assert_eq!(stored.labels, j.labels);
    assert_eq!(events(&*s, "odd", 1, 10).await[0].message, line);
}

async fn committed_jobs_survive_reopening(b: &impl Backend) {
    {
        let s = b.open().await;
        s.insert(&[job("kept")], None).await.unwrap();
        set_state(&*s, "kept", JobState::Running).await;
        s.put_schedule(&schedule(1000, 0)).await.unwrap();
        s.commit().await.unwrap();
    }
    let s = b.open().await;
    assert_eq!(
        s.get("kept").await.unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(kinds(&*s, "kept").await, ["queued", "running"]);
    assert_eq!(s.schedules().await.unwrap().len(), 1);
}

/// What only a store that replicas share does: limits across processes,
/// and work taken over from a replica whose lease ran out.
mod shared_postgres {
    use super::*;
    use baton::store::{RunLimits, Started};
    use std::time::Duration;

    async fn store(
        url: &str,
        replica: Option<&baton::store::postgres::Membership>,
    ) -> Arc<dyn JobStore> {
        Arc::new(PgStore::connect(url).await.unwrap().job_store(replica))
    }

    fn mark_running(j: &mut JobRecord) -> baton::store::NewEvents {
        if j.state != JobState::Queued {
            return vec![];
        }
        j.state = JobState::Running;
        vec![("started".into(), "attempt 1".into())]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_start_counts_the_jobs_every_process_runs() {
        let url = super::support::postgres::database();
        let (x, y) = (store(&url, None).await, store(&url, None).await);
        x.insert(&[job("j1"), job("j2"), job("j3")], None)
            .await
            .unwrap();
        let limits = RunLimits {
            handler: "h",
            handler_max: 1,
            global_max: 10,
        };
        assert!(
            matches!(x.start("j1", &mark_running, limits).await.unwrap(), Started::Changed(j) if j.state == JobState::Running)
        );
        // The other process sees the handler's one place taken.
        assert!(matches!(
            y.start("j2", &mark_running, limits).await.unwrap(),
            Started::AtLimit
        ));
        assert_eq!(y.get("j2").await.unwrap().unwrap().state, JobState::Queued);
        let global = RunLimits {
            handler: "h",
            handler_max: 10,
            global_max: 1,
        };
        assert!(matches!(
            y.start("j2", &mark_running, global).await.unwrap(),
            Started::AtLimit
        ));
        set_state(x.as_ref(), "j1", JobState::Succeeded).await;
        assert!(matches!(
            y.start("j2", &mark_running, limits).await.unwrap(),
            Started::Changed(_)
        ));
        assert!(matches!(
            y.start("nope", &mark_running, limits).await.unwrap(),
            Started::Missing
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_work_of_a_replica_whose_lease_ran_out_is_taken_over_once() {
        let url = super::support::postgres::database();
        let pg = PgStore::connect(&url).await.unwrap();
        let lease = Duration::from_millis(1000);
        let a = pg.join("replica-a", "test", lease).await.unwrap();
        let b = pg.join("replica-b", "test", lease).await.unwrap();
        let on_a = pg.job_store(Some(&a));
        let on_b = pg.job_store(Some(&b));
        assert!(on_a.adopt().await.unwrap().jobs.is_empty());
        assert!(on_b.adopt().await.unwrap().jobs.is_empty());
        on_a.insert(&[job("ja"), job("jb")], None).await.unwrap();
        let limits = RunLimits {
            handler: "h",
            handler_max: 10,
            global_max: 10,
        };
        on_a.start("ja", &mark_running, limits).await.unwrap();
        // A is alive: B takes nothing, however long it waits.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(on_b.adopt().await.unwrap().jobs.is_empty());
        // A stops renewing (it died): once its lease ran out, B takes its
        // queued and running jobs, once.
        drop((on_a, a));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let taken = on_b.adopt().await.unwrap();
        assert_eq!(taken.from, ["replica-a"]);
        let mut got: Vec<(String, JobState)> =
            taken.jobs.iter().map(|j| (j.id.clone(), j.state)).collect();
        got.sort_by(|l, r| l.0.cmp(&r.0));
        assert_eq!(
            got,
            [
                ("ja".to_string(), JobState::Running),
                ("jb".to_string(), JobState::Queued)
            ]
        );
        assert!(on_b.adopt().await.unwrap().jobs.is_empty());
        // The id of a live process cannot be joined twice.
        let again = pg.join("replica-b", "test", lease).await;
        assert!(again.is_err());
    }
}
