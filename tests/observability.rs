//! What an operator watches, against the real binary.
//!
//! `GET /admin/v1/metrics`, read with a Prometheus text parser
//! (`prometheus-parse`) as a scraper reads it: counters move by exactly what
//! each test sent (refusals before any Wasm ran included), histograms exist
//! per handler, job and swap counters follow real jobs and swaps, auth
//! failures follow bad credentials, and the endpoint's own access rules
//! (token with `metrics:read`, the `monitor` role, public mode). The logs:
//! JSON lines with `BATON_LOG_FORMAT=json`, written out at shutdown.

mod support;

use prometheus_parse::{Sample, Scrape, Value};
use serde_json::{Value as Json, json};
use support::*;

/// The metrics as the admin reads them.
fn scrape(server: &Server) -> Scrape {
    scrape_with(&server.client(), server)
}

fn scrape_with(client: &reqwest::blocking::Client, server: &Server) -> Scrape {
    let resp = client.get(server.url("/admin/v1/metrics")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.text().unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The sample of `name` whose labels include every pair of `labels`.
fn find<'s>(s: &'s Scrape, name: &str, labels: &[(&str, &str)]) -> Option<&'s Sample> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
}

/// The value of a counter or gauge (0 when the series does not exist yet).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match find(s, name, labels).map(|x| &x.value) {
        None => 0.0,
        Some(Value::Counter(v) | Value::Gauge(v)) => *v,
        Some(other) => panic!("{name} {labels:?} is not a counter or gauge: {other:?}"),
    }
}

/// How many observations the histogram `name` of `handler` holds (its `+Inf` bucket).
fn observations(s: &Scrape, name: &str, handler: &str) -> f64 {
    let sample = find(s, name, &[("handler", handler)])
        .unwrap_or_else(|| panic!("no histogram {name} for {handler}"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("{name} is not a histogram: {:?}", sample.value)
    };
    assert!(buckets.len() > 5, "{buckets:?}");
    buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .expect("a +Inf bucket")
        .count
}

/// How much each `(name, labels)` series moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(after, name, labels) - value(before, name, labels)
}

fn faulty_manifest(extra: &str) -> String {
    let wasm = test_components().join("faulty.wasm");
    manifest(&format!(
        "{extra}[[handler]]\nname = \"faulty\"\nwasm = \"{}\"\nmount = \"/faulty\"\npolicy = \"authenticated\"\n\
         [handler.limits]\nmax_body_bytes = 64\nrequest_timeout_ms = 300\nmemory_mib = 16\n",
        wasm.display()
    ))
}

const REQUESTS: &str = "baton_http_requests_total";

#[test]
fn request_counters_move_by_exactly_what_was_sent_refusals_included() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest(""));
    let (admin, anonymous) = (server.client(), server.anonymous());
    let before = scrape(&server);

    for _ in 0..3 {
        assert_eq!(
            admin.get(server.url("/faulty/ok")).send().unwrap().status(),
            200
        );
    }
    // Refused before any Wasm ran: no credentials, and a body over the limit.
    for _ in 0..2 {
        assert_eq!(
            anonymous
                .get(server.url("/faulty/ok"))
                .send()
                .unwrap()
                .status(),
            401
        );
    }
    let big = admin
        .put(server.url("/faulty/kv/a"))
        .body(vec![b'x'; 100])
        .send()
        .unwrap();
    assert_eq!(big.status(), 413);
    let put = admin
        .put(server.url("/faulty/kv/a"))
        .body("small")
        .send()
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text());
    assert_eq!(
        admin
            .get(server.url("/faulty/trap"))
            .send()
            .unwrap()
            .status(),
        500
    );
    assert_eq!(
        admin
            .get(server.url("/faulty/loop"))
            .send()
            .unwrap()
            .status(),
        504
    );
    assert_eq!(
        admin
            .get(server.url("/faulty/grow"))
            .send()
            .unwrap()
            .status(),
        500
    );
    assert_eq!(
        admin.get(server.url("/nowhere")).send().unwrap().status(),
        404
    );

    let after = scrape(&server);
    let req = |method, status| {
        [
            ("handler", "faulty"),
            ("method", method),
            ("status", status),
        ]
    };
    assert_eq!(moved(&before, &after, REQUESTS, &req("GET", "200")), 3.0);
    assert_eq!(moved(&before, &after, REQUESTS, &req("GET", "401")), 2.0);
    assert_eq!(moved(&before, &after, REQUESTS, &req("PUT", "413")), 1.0);
    assert_eq!(moved(&before, &after, REQUESTS, &req("GET", "500")), 2.0);
    assert_eq!(moved(&before, &after, REQUESTS, &req("GET", "504")), 1.0);
    let unrouted = [("handler", "(none)"), ("method", "GET"), ("status", "404")];
    assert_eq!(moved(&before, &after, REQUESTS, &unrouted), 1.0);
    // Every request of the handler is one observation of its histogram.
    let faulty_requests: f64 = after
        .samples
        .iter()
        .filter(|s| s.metric == REQUESTS && s.labels.get("handler") == Some("faulty"))
        .map(|s| match s.value {
            Value::Counter(v) => v,
            _ => panic!("{REQUESTS} is not a counter"),
        })
        .sum();
    assert_eq!(faulty_requests, 10.0);
    let duration = "baton_http_request_duration_seconds";
    assert_eq!(observations(&after, duration, "faulty"), 10.0);
    assert_eq!(observations(&after, duration, "(none)"), 1.0);
    assert!(observations(&after, duration, "admin") >= 1.0);

    // Wasm ran for the 3 + 1 + 3 requests past the auth step and the limit.
    let fresh = [("handler", "faulty"), ("mode", "fresh")];
    assert_eq!(
        moved(&before, &after, "baton_instantiations_total", &fresh),
        7.0
    );
    let failures = "baton_handler_failures_total";
    for kind in ["trap", "timeout", "memory"] {
        let labels = [("handler", "faulty"), ("kind", kind)];
        assert_eq!(moved(&before, &after, failures, &labels), 1.0, "{kind}");
    }
    let set = [("handler", "faulty"), ("op", "set")];
    assert_eq!(
        moved(&before, &after, "baton_kv_operations_total", &set),
        1.0
    );
    // The kv write was flushed before the reply.
    let flushes = find(&after, "baton_store_flush_duration_seconds_count", &[]);
    assert!(flushes.is_some(), "no store flush histogram");
}

#[test]
fn process_figures_and_build_info_are_exported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest(""));
    let s = scrape(&server);
    assert!(value(&s, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&s, "process_open_fds", &[]) >= 3.0);
    assert!(value(&s, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&s, "process_start_time_seconds", &[]) > 1.6e9);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&s, "baton_build_info", &[("version", version)]), 1.0);
    let handlers = server.get_json("/admin/v1/handlers");
    let current = handlers["handlers"][0]["current"]["version"]
        .as_str()
        .unwrap();
    let labels = [("handler", "faulty"), ("version", current)];
    assert_eq!(
        value(&s, "baton_handler_version_info", &labels),
        1.0,
        "{handlers}"
    );
}

#[test]
fn openmetrics_is_served_when_the_scraper_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest(""));
    let ok = server
        .client()
        .get(server.url("/faulty/ok"))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    // What Prometheus sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let resp = server
        .client()
        .get(server.url("/admin/v1/metrics"))
        .header("accept", accept)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = resp.text().unwrap();
    assert!(
        text.lines()
            .any(|l| l == "# TYPE baton_http_requests counter"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "# TYPE baton_build info"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("# EOF"));
}

#[test]
fn metrics_need_metrics_read_which_admin_and_monitor_have() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest(""));
    server.put_user(
        "mon",
        json!({"password": "monitor-password", "roles": ["monitor"]}),
    );
    server.put_user(
        "vera",
        json!({"password": "viewer-password", "roles": ["viewer"]}),
    );
    let url = server.url("/admin/v1/metrics");
    let status = |c: &reqwest::blocking::Client| c.get(&url).send().unwrap().status().as_u16();
    assert_eq!(status(&server.anonymous()), 401);
    assert_eq!(
        status(&server.client_with_token(&server.token("vera"))),
        403
    );
    let monitor = server.client_with_token(&server.token("mon"));
    let s = scrape_with(&monitor, &server);
    assert!(find(&s, REQUESTS, &[("handler", "admin")]).is_some());
    // The monitor role grants the metrics and nothing else.
    let users = monitor.get(server.url("/admin/v1/users")).send().unwrap();
    assert_eq!(users.status(), 403);
    let handler = monitor.get(server.url("/faulty/ok")).send().unwrap();
    assert_eq!(handler.status(), 200, "faulty's policy is `authenticated`");
}

#[test]
fn public_metrics_need_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest("[metrics]\npublic = true\n\n"));
    let s = scrape_with(&server.anonymous(), &server);
    assert!(find(&s, "baton_build_info", &[]).is_some());
}

#[test]
fn auth_failures_follow_bad_credentials_and_the_login_limiter() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &faulty_manifest("[auth]\nlogin_max_failures = 2\n\n"),
    );
    server.put_user(
        "vera",
        json!({"password": "viewer-password", "roles": ["viewer"]}),
    );
    let vera = server.client_with_token(&server.token("vera"));
    let before = scrape(&server);
    let ok = server.url("/faulty/ok");
    let anonymous = server.anonymous();
    let send = |r: reqwest::blocking::RequestBuilder| r.send().unwrap().status().as_u16();
    assert_eq!(send(anonymous.get(&ok)), 401);
    assert_eq!(
        send(anonymous.get(&ok).header("x-authentication", "not-a-token")),
        401
    );
    assert_eq!(
        send(anonymous.get(&ok).header("authorization", "Bearer x.y.z")),
        401
    );
    assert_eq!(
        send(anonymous.get(&ok).header("authorization", "Digest abc")),
        401
    );
    assert_eq!(send(vera.get(server.url("/admin/v1/users"))), 403);
    // Two wrong passwords lock the user; the third try is refused unchecked.
    for _ in 0..2 {
        assert_eq!(
            send(anonymous.get(&ok).basic_auth("vera", Some("wrong"))),
            401
        );
    }
    assert_eq!(
        send(anonymous.get(&ok).basic_auth("vera", Some("wrong"))),
        429
    );
    let after = scrape(&server);
    let failures = |reason| {
        moved(
            &before,
            &after,
            "baton_auth_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(failures("missing"), 1.0);
    assert_eq!(failures("invalid"), 4.0);
    assert_eq!(failures("malformed"), 1.0);
    assert_eq!(failures("forbidden"), 1.0);
    assert_eq!(failures("rate_limited"), 1.0);
    assert_eq!(
        moved(&before, &after, "baton_login_rate_limited_total", &[]),
        1.0
    );
}

fn jobber(server_dir: &std::path::Path) -> Server {
    let wasm = test_components().join("jobber.wasm");
    let m = manifest(&format!(
        "[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
         [handler.capabilities]\nexec = [\"sleep\"]\n",
        wasm.display()
    ));
    Server::start(server_dir, &m)
}

fn spawn(server: &Server, spec: Json) -> String {
    let resp = client()
        .post(server.url("/jobber/spawn"))
        .json(&spec)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Json = resp.json().unwrap();
    body["id"].as_str().unwrap().to_string()
}

fn wait_state(server: &Server, id: &str, want: &str) {
    poll(&format!("job {id} to be {want}"), || {
        let j: Json = client()
            .get(server.url(&format!("/jobber/jobs/{id}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if j["state"] == want {
            Ok(())
        } else {
            Err(j.to_string())
        }
    })
}

#[test]
fn job_metrics_follow_real_jobs_through_their_states() {
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path());
    let before = scrape(&server);
    let jobs =
        |s: &Scrape, state| value(s, "baton_jobs", &[("handler", "jobber"), ("state", state)]);
    assert_eq!(jobs(&before, "queued"), 0.0);
    assert_eq!(jobs(&before, "running"), 0.0);

    let quick = spawn(
        &server,
        json!({"kind": "quick", "input": "hi", "attempts": 1}),
    );
    wait_state(&server, &quick, "succeeded");
    let trap = spawn(&server, json!({"kind": "trap", "attempts": 1}));
    wait_state(&server, &trap, "failed");
    let slow = spawn(
        &server,
        json!({"kind": "exec", "input": {"program": "sleep", "args": ["60"]}, "attempts": 1}),
    );
    wait_state(&server, &slow, "running");
    let running = scrape(&server);
    assert_eq!(jobs(&running, "running"), 1.0);
    assert_eq!(jobs(&running, "queued"), 0.0);
    let cancel = client()
        .post(server.url(&format!("/jobber/jobs/{slow}/cancel")))
        .send()
        .unwrap();
    assert!(cancel.status().is_success());
    wait_state(&server, &slow, "cancelled");

    let after = scrape(&server);
    let finished = |state| {
        moved(
            &before,
            &after,
            "baton_jobs_finished_total",
            &[("handler", "jobber"), ("state", state)],
        )
    };
    assert_eq!(finished("succeeded"), 1.0);
    assert_eq!(finished("failed"), 1.0);
    assert_eq!(finished("cancelled"), 1.0);
    assert_eq!(jobs(&after, "running"), 0.0);
    assert_eq!(jobs(&after, "queued"), 0.0);
    assert_eq!(
        observations(&after, "baton_job_duration_seconds", "jobber"),
        3.0
    );
    let trap_failure = [("handler", "jobber"), ("kind", "trap")];
    assert_eq!(
        moved(
            &before,
            &after,
            "baton_handler_failures_total",
            &trap_failure
        ),
        1.0
    );
}

#[test]
fn unfinished_jobs_are_counted_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path());
    let slow = spawn(
        &server,
        json!({"kind": "exec", "input": {"program": "sleep", "args": ["60"]}, "attempts": 1}),
    );
    wait_state(&server, &slow, "running");
    server.kill9();
    let server = jobber(dir.path());
    // Recovered and started again: one running job, none counted twice.
    wait_state(&server, &slow, "running");
    let s = scrape(&server);
    let jobs = |state| value(&s, "baton_jobs", &[("handler", "jobber"), ("state", state)]);
    assert_eq!(jobs("running"), 1.0);
    assert_eq!(jobs("queued"), 0.0);
}

#[test]
fn swap_counters_and_the_version_series_follow_real_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = std::fs::read(test_components().join("greeter_v1.wasm")).unwrap();
    let v2 = std::fs::read(test_components().join("greeter_v2.wasm")).unwrap();
    let file = dir.path().join("greeter.wasm");
    std::fs::write(&file, &v1).unwrap();
    let m = manifest(&format!(
        "[[handler]]\nname = \"greeter\"\nwasm = \"{}\"\nmount = \"/greeter\"\npolicy = \"public\"\n",
        file.display()
    ));
    let server = Server::start(dir.path(), &m);
    let admin = server.client();
    let before = scrape(&server);
    let versions = |s: &Scrape| -> Vec<String> {
        s.samples
            .iter()
            .filter(|x| {
                x.metric == "baton_handler_version_info"
                    && x.labels.get("handler") == Some("greeter")
            })
            .map(|x| x.labels.get("version").unwrap().to_string())
            .collect()
    };
    let v1_sha = versions(&before);
    assert_eq!(v1_sha.len(), 1, "{v1_sha:?}");

    let put = |bytes: Vec<u8>| {
        admin
            .put(server.url("/admin/v1/handlers/greeter"))
            .body(bytes)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(put(v2), 200);
    assert_eq!(put(b"not a component".to_vec()), 422);
    let deployed = scrape(&server);
    let v2_sha = versions(&deployed);
    assert_eq!(v2_sha.len(), 1, "{v2_sha:?}");
    assert_ne!(v2_sha, v1_sha);
    let rollback = admin
        .post(server.url("/admin/v1/handlers/greeter/rollback"))
        .send()
        .unwrap();
    assert_eq!(rollback.status(), 200);

    let after = scrape(&server);
    let swaps = |result| {
        moved(
            &before,
            &after,
            "baton_swaps_total",
            &[("handler", "greeter"), ("result", result)],
        )
    };
    assert_eq!(swaps("deployed"), 1.0);
    assert_eq!(swaps("rejected"), 1.0);
    assert_eq!(swaps("rolled_back"), 1.0);
    assert_eq!(versions(&after), v1_sha);
}

/// `baton serve` on `manifest` in `dir` with extra environment.
fn start_with_env(dir: &std::path::Path, manifest: &str, env: &[(&str, &str)]) -> Server {
    let path = dir.join("baton.toml");
    std::fs::write(&path, manifest).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.arg("serve")
        .arg("--manifest")
        .arg(&path)
        .arg("--data")
        .arg(dir.join("data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::spawn(cmd, dir.join("data"))
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_env(
        dir.path(),
        &faulty_manifest(""),
        &[("BATON_LOG_FORMAT", "json")],
    );
    let resp = server
        .client()
        .get(server.url("/faulty/ok"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let served = |line: &str| {
        serde_json::from_str::<Json>(line)
            .is_ok_and(|v| v["fields"]["message"] == "served" && v["span"]["id"] == id.as_str())
    };
    let log = server.wait_log_line("the JSON `served` line of the request", served);
    let line: Json = serde_json::from_str(log.lines().find(|l| served(l)).unwrap()).unwrap();
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["path"], "/faulty/ok");
    // Every line is JSON, the startup lines included.
    for l in log.lines() {
        assert!(serde_json::from_str::<Json>(l).is_ok(), "not JSON: {l}");
    }
}

/// Every text line written while a request is served names it, with
/// `BATON_LOG`'s usual directives (the request scope) as with a span-scoped
/// one (the `request` span): the same prefix, the level's line included.
#[test]
fn text_lines_in_a_request_name_it_whether_a_span_or_a_scope_does() {
    for directives in ["info", "warn,[request]=info"] {
        let dir = tempfile::tempdir().unwrap();
        let server = start_with_env(
            dir.path(),
            &faulty_manifest(""),
            &[("BATON_LOG", directives)],
        );
        let resp = server
            .client()
            .get(server.url("/faulty/trap"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 500);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        let named = format!("request{{id={id} method=GET path=/faulty/trap}}: ");
        let log = server.wait_log_line("the `served` line", |l| {
            l.contains(&format!(
                "{named}baton::server::dispatch: served status=500 "
            ))
        });
        let failed = log
            .lines()
            .find(|l| l.contains("handler failed: "))
            .unwrap_or_else(|| panic!("{directives}: no `handler failed` line:\n{log}"));
        assert!(
            failed.contains(&format!(
                " ERROR {named}baton::server::dispatch: handler failed: "
            )),
            "{directives}: {failed}"
        );
        // Lines outside a request name none (at `warn` there is none).
        if directives == "info" {
            let listening = log.lines().find(|l| l.contains(" listening ")).unwrap();
            assert!(!listening.contains("request{"), "{listening}");
        }
    }
}

#[test]
fn queued_log_lines_are_written_out_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest(""));
    let admin = server.client();
    let ids: Vec<String> = (0..20)
        .map(|_| {
            let resp = admin.get(server.url("/faulty/ok")).send().unwrap();
            resp.headers()["x-request-id"].to_str().unwrap().to_string()
        })
        .collect();
    let log = server.terminate();
    assert!(log.contains("shutting down"), "{log}");
    for id in ids {
        assert!(
            log.lines().any(|l| l.contains(&id) && l.contains("served")),
            "{id} missing:\n{log}"
        );
    }
}

#[test]
fn an_unknown_log_format_stops_the_start_with_what_to_write() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["serve", "--data", "/nonexistent/never-created"])
        .env("BATON_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BATON_LOG_FORMAT is `yaml`: expected `text` or `json`"),
        "{err}"
    );
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop: a real
/// file system that a test can fill.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test fills a small tmpfs and needs to mount one (run it as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes `name` until the file system is full; returns the bytes written.
    fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join(name)).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn readiness_fails_while_the_store_cannot_be_written() {
    let fs = Tmpfs::mount("64m");
    let server = Server::start(fs.path(), &faulty_manifest(""));
    let admin = server.client();
    let readyz = |server: &Server| {
        let resp = server
            .anonymous()
            .get(server.url("/admin/v1/readyz"))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Json>().unwrap_or(Json::Null))
    };
    assert_eq!(readyz(&server).0, 200);
    let put = admin
        .put(server.url("/faulty/kv/a"))
        .body("before")
        .send()
        .unwrap();
    assert!(put.status().is_success());
    assert!(fs.fill("filler") > 0);
    // Each probe needs fresh space, so one of the next probes finds none.
    let refusal = poll("/readyz to fail on the full disk", || {
        match readyz(&server) {
            (503, body) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(refusal["error"]["kind"], "not-ready", "{refusal}");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the store cannot be written"),
        "{message}"
    );
    // Writes are refused, not acknowledged, while the store cannot take them.
    let put = admin
        .put(server.url("/faulty/kv/b"))
        .body("during")
        .send()
        .unwrap();
    assert_eq!(put.status(), 500);
    // sled keeps refusing after an I/O error until it is opened again: with
    // space again, a restarted server is ready and has what it acknowledged.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    server.kill9();
    let server = Server::start(fs.path(), &faulty_manifest(""));
    assert_eq!(readyz(&server).0, 200);
    let got = server
        .client()
        .get(server.url("/faulty/kv/a"))
        .send()
        .unwrap();
    assert_eq!(got.text().unwrap(), "before");
}

/// The metric names a PromQL expression mentions (`baton_…`, `process_…`).
fn metric_names(expr: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = ["baton_", "process_"]
        .iter()
        .filter_map(|p| rest.find(p))
        .min()
    {
        let preceded = rest[..at].chars().next_back().is_some_and(is_name);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name(c)).unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_queries_only_series_the_server_exports() {
    let dashboard: Json = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");
    // A server where every family has a series: a request, a kv read, a
    // job, a refused swap, a refused credential.
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path());
    assert_eq!(
        client()
            .get(server.url("/jobber/order"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let id = spawn(
        &server,
        json!({"kind": "quick", "input": "x", "attempts": 1}),
    );
    wait_state(&server, &id, "succeeded");
    let refused = server
        .client()
        .put(server.url("/admin/v1/handlers/jobber"))
        .body("junk")
        .send()
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(
        server
            .anonymous()
            .get(server.url("/admin/v1/users"))
            .send()
            .unwrap()
            .status(),
        401
    );
    let exported: std::collections::HashSet<String> = scrape(&server)
        .samples
        .iter()
        .map(|s| s.metric.clone())
        .collect();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            // prometheus-parse folds `_bucket` lines into the histogram's name.
            let sample = name.strip_suffix("_bucket").unwrap_or(&name);
            assert!(
                exported.contains(sample),
                "`{name}` (in {expr}) is not exported; exported: {exported:?}"
            );
        }
    }
}
