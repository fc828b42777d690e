//! What the default log level costs per request: the full host path through
//! the listener's service (route, token check, fresh instance, `handle`,
//! response) under the subscriber `baton serve` installs without traces, at
//! `BATON_LOG=warn` (no line per request) and at the default `info` (one
//! `served` line per request): text (as `baton serve` writes it, with a
//! `request` span instead of the request scope, and all through the fmt
//! layer) and JSON, in one run. The
//! lines go through the server's own log writer into a file, as `baton
//! serve 2>file` writes them. Without sockets the request is cheaper than over
//! HTTP, so the `info`/`warn` ratio here is a floor for the load test's.
//!
//! Criterion measures one configuration after another, and this VM's speed
//! drifts by up to 20 % within a minute (`warn` is measured first and last
//! to show it). So the bench ends with an interleaved run: `warn` and
//! `info` take turns in short blocks of requests, and the ratio of each
//! pair of neighbouring blocks is reported (min, median, max), which slow
//! drift moves less; on this VM the pairs still spread widely
//! (BENCHMARKS.md).
//!
//! `cargo bench -p baton --bench logging`

#[path = "../../tests/support/mod.rs"]
mod support;

use baton::auth::tokens::TokenKind;
use baton::server::ListenerService;
use baton::server::listen::ConnInfo;
use baton::telemetry::{LogFormat, access, log_dispatch, scope, writer};
use criterion::Criterion;
use std::time::{Duration, Instant};
use tracing::Dispatch;

/// A server's request path in process, and where its log lines go.
struct Setup {
    rt: tokio::runtime::Runtime,
    service: ListenerService,
    conn: ConnInfo,
    token: String,
    log_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let wasm = support::test_components().join("faulty.wasm");
    let (rt, dir, app) = support::app_in_process(&support::manifest(&format!(
        "[[handler]]\nname = \"faulty\"\nwasm = \"{w}\"\nmount = \"/faulty\"\n",
        w = wasm.display()
    )));
    let token = rt
        .block_on(app.auth.issue("admin", TokenKind::Access, 3600))
        .expect("a token for the bench");
    let service = support::listener_service(&app);
    Setup {
        rt,
        service,
        conn: ConnInfo::new("127.0.0.1:40000".parse().unwrap(), None),
        token,
        log_file: dir.path().join("stderr.log"),
        _dir: dir,
    }
}

impl Setup {
    /// One `GET /faulty/ok` through the listener's service.
    async fn request(&self) {
        let req = support::http_get("/faulty/ok", &self.token);
        let resp = self.service.call(req, &self.conn).await;
        assert_eq!(resp.status(), 200);
    }
}

/// How the text lines of a request are put together.
#[derive(Clone, Copy)]
enum Text {
    /// As `baton serve` writes plain text: the access line directly, the
    /// request named by a request scope.
    Served,
    /// The access line directly, the request named by a `request` span (as
    /// with a span-scoped directive in `BATON_LOG`).
    WithSpan,
    /// Every line through the fmt layer, in a `request` span.
    FmtLayer,
}

/// The subscriber of a server at `level` in `format` writing through `w`,
/// with text lines put together as `text` says.
fn subscriber(level: &str, format: LogFormat, text: Text, w: &writer::LogWriter) -> Dispatch {
    let direct = !matches!(text, Text::FmtLayer);
    access::write_directly(direct.then(|| w.clone()));
    scope::use_scopes(matches!(text, Text::Served));
    log_dispatch(
        tracing_subscriber::EnvFilter::new(level),
        format,
        false,
        w.clone(),
    )
}

fn one_by_one(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("logging");
    // `warn` first and last: the machine's drift shows as their difference.
    for (name, level, format, text) in [
        (
            "full_host_path_at_warn",
            "warn",
            LogFormat::Text,
            Text::Served,
        ),
        (
            "full_host_path_at_info",
            "info",
            LogFormat::Text,
            Text::Served,
        ),
        (
            "full_host_path_at_info_with_request_span",
            "info",
            LogFormat::Text,
            Text::WithSpan,
        ),
        (
            "full_host_path_at_info_line_through_fmt_layer",
            "info",
            LogFormat::Text,
            Text::FmtLayer,
        ),
        (
            "full_host_path_at_info_json",
            "info",
            LogFormat::Json,
            Text::FmtLayer,
        ),
        (
            "full_host_path_at_warn_again",
            "warn",
            LogFormat::Text,
            Text::Served,
        ),
    ] {
        let file = std::fs::File::create(&s.log_file).unwrap();
        let (w, guard) =
            writer::start(Box::new(file), writer::WriterLimits::default(), false).unwrap();
        // One subscriber alive at a time, so that each callsite's cached
        // interest is what a server at this level has.
        let dispatch = subscriber(level, format, text, &w);
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |b| b.to_async(&s.rt).iter(|| s.request()));
        });
        drop(dispatch);
        drop(guard);
        let lines = std::fs::read_to_string(&s.log_file)
            .unwrap()
            .lines()
            .count();
        // Guards the bench itself: `info` wrote a line per request, `warn` none.
        assert_eq!(level == "warn", lines == 0, "{name}: {lines} lines");
    }
    group.finish();
}

/// `warn` and `info` (text, direct access line) in turns of `BLOCK`
/// requests, `ROUNDS` times; prints the paired ratios.
fn interleaved(s: &Setup) {
    const ROUNDS: usize = 40;
    const BLOCK: u32 = 500;
    let file = std::fs::File::create(&s.log_file).unwrap();
    let (w, guard) = writer::start(Box::new(file), writer::WriterLimits::default(), false).unwrap();
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut warn_total, mut info_total) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let mut took = [Duration::ZERO; 2];
        // Which goes first alternates.
        for i in [round % 2, 1 - round % 2] {
            let level = ["warn", "info"][i];
            // A fresh subscriber per turn, the other dropped: the cached
            // interest is a server's at this level.
            let dispatch = subscriber(level, LogFormat::Text, Text::Served, &w);
            took[i] = tracing::dispatcher::with_default(&dispatch, || {
                s.rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..BLOCK {
                        s.request().await;
                    }
                    started.elapsed()
                })
            });
        }
        warn_total += took[0];
        info_total += took[1];
        ratios.push(took[0].as_secs_f64() / took[1].as_secs_f64());
    }
    drop(guard);
    let lines = std::fs::read_to_string(&s.log_file)
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        lines,
        ROUNDS * BLOCK as usize,
        "one line per request at info"
    );
    ratios.sort_by(f64::total_cmp);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / (ROUNDS as f64 * f64::from(BLOCK));
    println!(
        "logging/interleaved: {ROUNDS} rounds of {BLOCK} requests at each level; \
         warn {:.2} µs and info {:.2} µs per request; \
         warn / info (the share of warn's throughput info keeps), paired per round: \
         min {:.3}, median {:.3}, max {:.3}",
        per(warn_total),
        per(info_total),
        ratios[0],
        ratios[ROUNDS / 2],
        ratios[ROUNDS - 1]
    );
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    one_by_one(&mut c, &s);
    c.final_summary();
    interleaved(&s);
}
