//! Spawns and runs jobs so that the tests can watch the engine: exec,
//! ordered steps with start/end counters in kv, rollbacks, retries.

use baton_sdk::jobs::{self, Command, JobFilter, JobInfo, JobSpec, ScheduleInfo, ScheduleSpec, ScheduleTiming};
use baton_sdk::kv::Bucket;
use baton_sdk::{HostError, Handler, Job, Request, Response, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

struct Jobber;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Spec {
    kind: String,
    input: Value,
    attempts: u32,
    timeout_ms: Option<u64>,
    node: Option<String>,
    after: Vec<String>,
    labels: BTreeMap<String, String>,
}

impl Spec {
    fn to_job(&self) -> JobSpec {
        let mut s = JobSpec::new(&self.kind, self.input.to_string().into_bytes()).attempts(self.attempts);
        if let Some(t) = self.timeout_ms {
            s = s.timeout_ms(t);
        }
        if let Some(n) = &self.node {
            s = s.label("node", n);
        }
        for (k, v) in &self.labels {
            s = s.label(k, v);
        }
        for a in &self.after {
            s = s.after(a);
        }
        s
    }
}

#[derive(Deserialize)]
struct Graph {
    specs: Vec<Spec>,
    parallel: u32,
    rollback: bool,
}

fn view(j: &JobInfo) -> Value {
    json!({
        "id": j.id, "kind": j.kind, "state": j.state.as_str(), "attempts": j.attempts,
        "error": j.error, "graph": j.graph, "depends_on": j.depends_on,
        "output": j.output.as_ref().map(|o| String::from_utf8_lossy(o).into_owned()),
        "progress": j.progress.as_ref().map(|p| json!({"message": p.message, "done": p.done, "total": p.total})),
    })
}

/// A schedule as JSON (tests/schedules.rs).
fn schedule_view(s: &ScheduleInfo) -> Value {
    let (cron, every_ms) = match &s.timing {
        ScheduleTiming::Cron(c) => (Some(c.clone()), None),
        ScheduleTiming::EveryMs(ms) => (None, Some(*ms)),
    };
    json!({
        "name": s.name, "cron": cron, "every_ms": every_ms, "kind": s.job.kind,
        "input": String::from_utf8_lossy(&s.job.input), "from_manifest": s.from_manifest,
        "next_at_ms": s.next_at_ms, "last_at_ms": s.last_at_ms, "last_job": s.last_job,
        "skipped": s.skipped,
    })
}

#[derive(Deserialize)]
struct NewSchedule {
    cron: Option<String>,
    every_ms: Option<u64>,
    job: Spec,
}

fn host(e: HostError) -> Response {
    let status = match e {
        HostError::NotFound => 404,
        HostError::Conflict => 409,
        HostError::Invalid(_) => 400,
        HostError::Denied(_) => 403,
        _ => 500,
    };
    Response::error(status, &e.to_string())
}

fn counter() -> u64 {
    Bucket::open("order").increment("counter", 1).unwrap_or(0) as u64
}

fn run_step(job: &Job, input: &Value) -> Result<Vec<u8>, String> {
    let name = input["name"].as_str().unwrap_or("?").to_string();
    let order = Bucket::open("order");
    if job.rollback {
        let n = order.increment("rollback-counter", 1).map_err(|e| e.to_string())?;
        order.set(&format!("rollback:{n:04}"), name.as_bytes()).map_err(|e| e.to_string())?;
        return Ok(Vec::new());
    }
    let start = counter();
    order.set(&format!("start:{name}"), start.to_string().as_bytes()).map_err(|e| e.to_string())?;
    jobs::progress(&format!("step {name}"), 1, 2);
    if let Some(secs) = input["sleep"].as_str() {
        jobs::exec(&Command::new("sleep", &[secs])).map_err(|e| e.to_string())?;
    }
    if input["fail"].as_bool() == Some(true) {
        return Err(format!("step {name} fails on purpose"));
    }
    let end = counter();
    order.set(&format!("end:{name}"), end.to_string().as_bytes()).map_err(|e| e.to_string())?;
    Ok(name.into_bytes())
}

/// One outbound GET, as JSON: status, body and `location`, or the error's kind and text.
fn fetch(url: &str) -> Value {
    use baton_sdk::outbound::{self, OutboundError, OutboundRequest};
    match outbound::send(&OutboundRequest::get(url)) {
        Ok(r) => json!({
            "status": r.status,
            "body": String::from_utf8_lossy(&r.body),
            "location": r.header("location"),
        }),
        Err(e) => {
            let kind = match e {
                OutboundError::BadUrl(_) => "bad-url",
                OutboundError::Denied(_) => "denied",
                OutboundError::Timeout(_) => "timeout",
                OutboundError::TooLarge(_) => "too-large",
                OutboundError::Failed(_) => "failed",
            };
            json!({"error": {"kind": kind, "message": e.to_string()}})
        }
    }
}

fn run_exec(input: &Value) -> Result<Vec<u8>, String> {
    let args: Vec<&str> = input["args"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let mut cmd = Command::new(input["program"].as_str().unwrap_or(""), &args);
    if let Some(env) = input["env"].as_object() {
        for (k, v) in env {
            cmd = cmd.env(k, v.as_str().unwrap_or(""));
        }
    }
    cmd.timeout_ms = input["timeout_ms"].as_u64();
    let out = jobs::exec(&cmd).map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.exit_code != Some(0) {
        return Err(format!("exit code {:?}: {}", out.exit_code, stderr.trim()));
    }
    Ok(json!({"stdout": stdout, "stderr": stderr, "timed_out": out.timed_out, "truncated": out.truncated}).to_string().into_bytes())
}

impl Handler for Jobber {
    fn handle(req: Request) -> Response {
        Router::new()
            .post("/spawn", |req| {
                let spec: Spec = req.json()?;
                let id = jobs::spawn(&spec.to_job()).map_err(host)?;
                Ok::<_, Response>(Response::json(202, &json!({"id": id})))
            })
            .post("/traced", |req| {
                // A kv write and a spawn, replying with the `traceparent` this
                // guest was shown (tests/telemetry.rs).
                let spec: Spec = req.json()?;
                Bucket::open("traced").set("last", spec.kind.as_bytes()).map_err(host)?;
                let id = jobs::spawn(&spec.to_job()).map_err(host)?;
                Ok::<_, Response>(Response::json(202, &json!({"id": id, "traceparent": req.header("traceparent")})))
            })
            .post("/graph", |req| {
                let g: Graph = req.json()?;
                let specs: Vec<JobSpec> = g.specs.iter().map(Spec::to_job).collect();
                let ids = jobs::spawn_graph(&specs, g.parallel, g.rollback).map_err(host)?;
                Ok::<_, Response>(Response::json(202, &json!({"ids": ids})))
            })
            .get("/jobs", |req| {
                let filter = JobFilter {
                    kind: req.query_param("kind"),
                    limit: req.query_param("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
                    start_after: req.query_param("start_after"),
                    ..JobFilter::default()
                };
                let list = jobs::list(&filter).map_err(host)?;
                Ok::<_, Response>(Response::json(200, &list.iter().map(view).collect::<Vec<_>>()))
            })
            .get("/jobs/{id}", |req| match jobs::get(req.param("id").unwrap_or("")) {
                Ok(Some(j)) => Response::json(200, &view(&j)),
                Ok(None) => Response::error(404, "no such job"),
                Err(e) => host(e),
            })
            .post("/jobs/{id}/cancel", |req| match jobs::cancel(req.param("id").unwrap_or("")) {
                Ok(()) => Response::new(204),
                Err(e) => host(e),
            })
            .get("/jobs/{id}/events", |req| {
                let after = req.query_param("after").and_then(|a| a.parse().ok()).unwrap_or(0);
                let evs = jobs::events(req.param("id").unwrap_or(""), after, 1000).map_err(host)?;
                let evs: Vec<Value> = evs.iter().map(|e| json!({"seq": e.seq, "kind": e.kind, "message": e.message})).collect();
                Ok::<_, Response>(Response::json(200, &evs))
            })
            .post("/fetch", |req| {
                // Outbound HTTP (tests/outbound.rs): `times` requests to `url`;
                // the first result, and the last as `then`.
                let body: Value = req.json()?;
                let url = body["url"].as_str().unwrap_or("");
                let times = body["times"].as_u64().unwrap_or(1).max(1);
                let mut result = fetch(url);
                for _ in 1..times {
                    result["then"] = fetch(url);
                }
                Ok::<_, Response>(Response::json(200, &result))
            })
            .put("/schedules/{name}", |req| {
                let body: NewSchedule = req.json()?;
                let name = req.param("name").unwrap_or("");
                let job = body.job.to_job();
                let spec = match (body.cron, body.every_ms) {
                    (Some(c), _) => ScheduleSpec::cron(name, &c, job),
                    (None, Some(ms)) => ScheduleSpec::every(name, ms, job),
                    (None, None) => return Err(Response::error(400, "cron or every_ms")),
                };
                let info = jobs::schedule(&spec).map_err(host)?;
                Ok::<_, Response>(Response::json(200, &schedule_view(&info)))
            })
            .delete("/schedules/{name}", |req| {
                let removed = jobs::unschedule(req.param("name").unwrap_or("")).map_err(host)?;
                Ok::<_, Response>(Response::json(200, &json!({"removed": removed})))
            })
            .get("/schedules", |_| {
                let all = jobs::schedules().map_err(host)?;
                Ok::<_, Response>(Response::json(200, &all.iter().map(schedule_view).collect::<Vec<_>>()))
            })
            .get("/secret/{name}", |req| {
                // tests/secrets.rs: the secret as the guest reads it.
                let value = baton_sdk::secrets::get_string(req.param("name").unwrap_or(""));
                Response::json(200, &json!({ "value": value }))
            })
            .get("/ticks", |_| {
                let all = Bucket::open("ticks").scan("", None, 1000).map_err(host)?;
                let map: BTreeMap<String, String> = all.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
                Ok::<_, Response>(Response::json(200, &map))
            })
            .get("/order", |_| {
                let all = Bucket::open("order").scan("", None, 1000).map_err(host)?;
                let map: BTreeMap<String, String> = all.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
                Ok::<_, Response>(Response::json(200, &map))
            })
            .handle(req)
    }

    fn run_job(job: Job) -> Result<Vec<u8>, String> {
        let input: Value = serde_json::from_slice(&job.input).unwrap_or(Value::Null);
        match job.kind.as_str() {
            "quick" => Ok(job.input.clone()),
            "tick" => {
                // tests/schedules.rs: each run of a scheduled job, counted.
                let n = Bucket::open("ticks").increment(job.labels.iter().find(|(k, _)| k == "schedule").map_or("none", |(_, v)| v), 1).map_err(|e| e.to_string())?;
                if let Some(secs) = input["sleep"].as_str() {
                    jobs::exec(&Command::new("sleep", &[secs])).map_err(|e| e.to_string())?;
                }
                Ok(n.to_string().into_bytes())
            }
            "step" => run_step(&job, &input),
            "exec" => run_exec(&input),
            "fetch" => {
                let got = fetch(input["url"].as_str().unwrap_or(""));
                match got.get("error") {
                    Some(e) => Err(e.to_string()),
                    None => Ok(got.to_string().into_bytes()),
                }
            }
            "flaky" if job.attempt == 1 => Err("the first attempt fails".into()),
            "flaky" => Ok(format!("attempt {}", job.attempt).into_bytes()),
            "trap" => panic!("deliberate trap in a job"),
            other => Err(format!("unknown kind {other}")),
        }
    }
}

baton_sdk::export!(Jobber);
