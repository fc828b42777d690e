//! Prometheus metrics: every family the server exports, in one registry
//! rendered by `GET /admin/v1/metrics`.
//!
//! The registry is process-wide ([`global`]), as a Prometheus client's
//! default registry is: the request path, the runtime, the job engine's
//! store and auth record into it without being handed it. What the request
//! path records goes through [`HandlerMetrics`], the handles of one
//! handler's series resolved once (when its slot is created), so that a
//! request costs a few atomic additions and no lookup by label; only the
//! first request of a new (method, status) pair of a handler takes that
//! handler's own lock, never a global one.
//!
//! - [`process`]: resident memory, CPU time and open file descriptors,
//!   read from `/proc` at scrape time.
//! - [`jobs`]: the job-store wrapper that follows every job's state.

pub mod jobs;
pub mod process;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The `Content-Type` of the Prometheus text format (0.0.4).
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of OpenMetrics text (1.0.0).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `handler` label of requests no handler is mounted for.
pub const UNROUTED: &str = "(none)";

/// The `handler` label of the admin API's requests.
pub const ADMIN: &str = crate::manifest::ADMIN_MOUNT_NAME;

/// Upper bounds (seconds) of the request-duration buckets: 0.5 ms to 10 s.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the job-duration buckets: 0.1 s to 1 h.
const JOB_BUCKETS: [f64; 13] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Upper bounds (seconds) of the store-flush buckets: 0.1 ms to 1 s.
const FLUSH_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabel {
    handler: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    handler: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    handler: String,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    handler: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    handler: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    handler: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    handler: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    handler: String,
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Why a handler invocation failed, as `baton_handler_failures_total`'s `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The guest trapped.
    Trap,
    /// The guest ran past its deadline.
    Timeout,
    /// The guest hit its memory cap.
    Memory,
    /// The host could not instantiate it.
    Instantiate,
}

impl FailureKind {
    const ALL: [FailureKind; 4] = [
        FailureKind::Trap,
        FailureKind::Timeout,
        FailureKind::Memory,
        FailureKind::Instantiate,
    ];

    fn label(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::Instantiate => "instantiate",
        }
    }
}

/// A `kv` host call, as `baton_kv_operations_total`'s `op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOp {
    /// `get`.
    Get,
    /// `set`.
    Set,
    /// `delete`.
    Delete,
    /// `compare-and-swap`.
    CompareAndSwap,
    /// `scan`.
    Scan,
    /// `increment`.
    Increment,
    /// `apply`.
    Apply,
    /// `apply-if`.
    ApplyIf,
}

impl KvOp {
    const ALL: [KvOp; 8] = [
        KvOp::Get,
        KvOp::Set,
        KvOp::Delete,
        KvOp::CompareAndSwap,
        KvOp::Scan,
        KvOp::Increment,
        KvOp::Apply,
        KvOp::ApplyIf,
    ];

    fn label(self) -> &'static str {
        match self {
            KvOp::Get => "get",
            KvOp::Set => "set",
            KvOp::Delete => "delete",
            KvOp::CompareAndSwap => "compare_and_swap",
            KvOp::Scan => "scan",
            KvOp::Increment => "increment",
            KvOp::Apply => "apply",
            KvOp::ApplyIf => "apply_if",
        }
    }
}

/// What a swap did, as `baton_swaps_total`'s `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapResult {
    /// A new version now serves.
    Deployed,
    /// The component was refused; the old version keeps serving.
    Rejected,
    /// An earlier version serves again.
    RolledBack,
}

impl SwapResult {
    fn label(self) -> &'static str {
        match self {
            SwapResult::Deployed => "deployed",
            SwapResult::Rejected => "rejected",
            SwapResult::RolledBack => "rolled_back",
        }
    }
}

/// How an outbound HTTP request ended, as `baton_outbound_requests_total`'s `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundResult {
    /// A response came back (whatever its status).
    Answered,
    /// Refused before any connection: outside the grant, a non-public
    /// address, or past `http_max_requests`.
    Refused,
    /// DNS, connection, TLS, timeout, size or protocol failure.
    Failed,
}

impl OutboundResult {
    fn label(self) -> &'static str {
        match self {
            OutboundResult::Answered => "answered",
            OutboundResult::Refused => "refused",
            OutboundResult::Failed => "failed",
        }
    }
}

/// Why a credential was refused, as `baton_auth_failures_total`'s `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential on a route that needs one.
    Missing,
    /// A credential header that cannot be read.
    Malformed,
    /// A bad, expired or revoked token, or a wrong user name, password or code.
    Invalid,
    /// A valid caller without the permission the route needs.
    Forbidden,
    /// Refused by the failed-login limiter.
    RateLimited,
}

impl AuthFailure {
    fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Invalid => "invalid",
            AuthFailure::Forbidden => "forbidden",
            AuthFailure::RateLimited => "rate_limited",
        }
    }
}

/// Every family the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<HandlerLabel>,
    instantiations: Family<ModeLabels, Counter>,
    failures: Family<KindLabels, Counter>,
    jobs: Family<StateLabels, Gauge>,
    jobs_finished: Family<StateLabels, Counter>,
    job_duration: HistogramFamily<HandlerLabel>,
    swaps: Family<ResultLabels, Counter>,
    outbound: Family<ResultLabels, Counter>,
    versions: Family<VersionLabels, Gauge>,
    kv_operations: Family<OpLabels, Counter>,
    store_flush: Histogram,
    auth_failures: Family<ReasonLabel, Counter>,
    login_rate_limited: Counter,
    /// The version each handler serves now (its `baton_handler_version_info` series).
    current_versions: Mutex<HashMap<String, String>>,
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "baton_http_requests",
            "HTTP requests answered, by handler (`(none)`: no mount matched; `admin`: the admin API), method and status; requests refused before any Wasm ran included",
            requests.clone(),
        );
        let request_duration: HistogramFamily<HandlerLabel> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register(
            "baton_http_request_duration_seconds",
            "Time from a request's arrival to its response, by handler",
            request_duration.clone(),
        );
        let instantiations = Family::default();
        registry.register(
            "baton_instantiations",
            "Handler instances used, by handler and mode (fresh: instantiated for the request or job; warm: reused)",
            instantiations.clone(),
        );
        let failures = Family::default();
        registry.register(
            "baton_handler_failures",
            "Requests and job attempts a handler failed, by kind (trap, timeout, memory, instantiate)",
            failures.clone(),
        );
        let jobs = Family::default();
        registry.register(
            "baton_jobs",
            "Unfinished jobs, by handler and state (queued: waiting for dependencies, a slot or a retry; running)",
            jobs.clone(),
        );
        let jobs_finished = Family::default();
        registry.register(
            "baton_jobs_finished",
            "Jobs that reached a final state, by handler and state (a rolled-back job was first counted as succeeded)",
            jobs_finished.clone(),
        );
        let job_duration: HistogramFamily<HandlerLabel> =
            Family::new_with_constructor(|| Histogram::new(JOB_BUCKETS));
        registry.register(
            "baton_job_duration_seconds",
            "Time from a job's creation to its final state, by handler",
            job_duration.clone(),
        );
        let outbound = Family::default();
        registry.register(
            "baton_outbound_requests",
            "Outbound HTTP requests of handlers, by result (answered, refused, failed)",
            outbound.clone(),
        );
        let swaps = Family::default();
        registry.register(
            "baton_swaps",
            "Handler swaps, by result (deployed, rejected, rolled_back)",
            swaps.clone(),
        );
        let versions = Family::default();
        registry.register(
            "baton_handler_version_info",
            "The version (sha256) each handler serves: 1 for the current one",
            versions.clone(),
        );
        let kv_operations = Family::default();
        registry.register(
            "baton_kv_operations",
            "kv host calls, by handler and operation",
            kv_operations.clone(),
        );
        let store_flush = Histogram::new(FLUSH_BUCKETS);
        registry.register(
            "baton_store_flush_duration_seconds",
            "Time one store flush (fsync) takes; concurrent writers share one",
            store_flush.clone(),
        );
        let auth_failures = Family::default();
        registry.register(
            "baton_auth_failures",
            "Refused credentials, by reason (missing, malformed, invalid, forbidden, rate_limited)",
            auth_failures.clone(),
        );
        let login_rate_limited = Counter::default();
        registry.register(
            "baton_login_rate_limited",
            "Logins and Basic credentials refused by the failed-login limiter",
            login_rate_limited.clone(),
        );
        registry.register(
            "baton_build",
            "The running build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            registry,
            requests,
            request_duration,
            instantiations,
            failures,
            jobs,
            jobs_finished,
            job_duration,
            swaps,
            outbound,
            versions,
            kv_operations,
            store_flush,
            auth_failures,
            login_rate_limited,
            current_versions: Mutex::new(HashMap::new()),
        }
    }

    /// Every family, in OpenMetrics text when `openmetrics`, else in the
    /// Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut out = String::new();
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        // Writing into a String only fails if an encoder itself refuses.
        if let Err(e) = encoded {
            tracing::error!("encoding the metrics failed: {e}");
        }
        out
    }

    /// The handles of `handler`'s series.
    pub fn handler(&self, handler: &str) -> Arc<HandlerMetrics> {
        let h = || handler.to_string();
        Arc::new(HandlerMetrics {
            name: h(),
            requests: ArcSwap::from_pointee(HashMap::new()),
            new_request_series: Mutex::new(()),
            duration: self
                .request_duration
                .get_or_create_owned(&HandlerLabel { handler: h() }),
            fresh: self.instantiations.get_or_create_owned(&ModeLabels {
                handler: h(),
                mode: "fresh",
            }),
            warm: self.instantiations.get_or_create_owned(&ModeLabels {
                handler: h(),
                mode: "warm",
            }),
            failures: FailureKind::ALL.map(|k| {
                self.failures.get_or_create_owned(&KindLabels {
                    handler: h(),
                    kind: k.label(),
                })
            }),
            kv: KvOp::ALL.map(|op| {
                self.kv_operations.get_or_create_owned(&OpLabels {
                    handler: h(),
                    op: op.label(),
                })
            }),
        })
    }

    /// Records how an outbound HTTP request of `handler` ended.
    pub fn outbound(&self, handler: &str, result: OutboundResult) {
        self.outbound
            .get_or_create(&ResultLabels {
                handler: handler.to_string(),
                result: result.label(),
            })
            .inc();
    }

    /// Records a swap of `handler`.
    pub fn swap(&self, handler: &str, result: SwapResult) {
        self.swaps
            .get_or_create(&ResultLabels {
                handler: handler.to_string(),
                result: result.label(),
            })
            .inc();
    }

    /// Makes `version` the one `baton_handler_version_info` shows for the
    /// mounted `handler`.
    pub fn serving(&self, handler: &str, version: &str) {
        // A mounted handler's unfinished-job gauges exist (at 0) from the
        // start, so that dashboards show every handler.
        for state in [
            crate::jobs::JobState::Queued,
            crate::jobs::JobState::Running,
        ] {
            drop(self.jobs.get_or_create(&StateLabels {
                handler: handler.to_string(),
                state: state.as_str(),
            }));
        }
        let mut current = self
            .current_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let previous = current.insert(handler.to_string(), version.to_string());
        if let Some(old) = previous.filter(|old| old != version) {
            self.versions.remove(&VersionLabels {
                handler: handler.to_string(),
                version: old,
            });
        }
        self.versions
            .get_or_create(&VersionLabels {
                handler: handler.to_string(),
                version: version.to_string(),
            })
            .set(1);
    }

    /// Records a refused credential.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
        if reason == AuthFailure::RateLimited {
            self.login_rate_limited.inc();
        }
    }

    /// Records one store flush that took `took`.
    pub fn store_flushed(&self, took: Duration) {
        self.store_flush.observe(took.as_secs_f64());
    }

    /// Moves `handler`'s job gauges by `delta` jobs in `state`.
    fn job_gauge(&self, handler: &str, state: crate::jobs::JobState, delta: i64) {
        self.jobs
            .get_or_create(&StateLabels {
                handler: handler.to_string(),
                state: state.as_str(),
            })
            .inc_by(delta);
    }

    /// Records a job of `handler` reaching the final `state`, `took` after it was created.
    fn job_finished(&self, handler: &str, state: crate::jobs::JobState, took: Option<Duration>) {
        self.jobs_finished
            .get_or_create(&StateLabels {
                handler: handler.to_string(),
                state: state.as_str(),
            })
            .inc();
        if let Some(took) = took {
            self.job_duration
                .get_or_create(&HandlerLabel {
                    handler: handler.to_string(),
                })
                .observe(took.as_secs_f64());
        }
    }
}

/// The HTTP methods `baton_http_requests_total` names; any other is `other`,
/// so that clients cannot grow the label set.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

/// The `method` label of `method`.
fn method_label(method: &axum::http::Method) -> (usize, &'static str) {
    let m = method.as_str();
    METHODS
        .iter()
        .position(|k| *k == m)
        .map_or((METHODS.len(), "other"), |i| (i, METHODS[i]))
}

/// One handler's series, resolved once.
pub struct HandlerMetrics {
    name: String,
    /// Request counters by (method index, status), filled on first use.
    requests: ArcSwap<HashMap<(usize, u16), Counter>>,
    /// Held while adding a (method, status) pair to `requests`.
    new_request_series: Mutex<()>,
    duration: Histogram,
    fresh: Counter,
    warm: Counter,
    failures: [Counter; 4],
    kv: [Counter; 8],
}

impl HandlerMetrics {
    /// Records a request answered with `status` after `took`.
    pub fn request(&self, method: &axum::http::Method, status: u16, took: Duration) {
        let (index, label) = method_label(method);
        let key = (index, status);
        match self.requests.load().get(&key) {
            Some(c) => c.inc(),
            None => self.new_request_series(key, label).inc(),
        };
        self.duration.observe(took.as_secs_f64());
    }

    #[cold]
    fn new_request_series(&self, key: (usize, u16), method: &'static str) -> Counter {
        let _one_writer = self
            .new_request_series
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = self.requests.load().get(&key) {
            return c.clone();
        }
        let counter = global().requests.get_or_create_owned(&RequestLabels {
            handler: self.name.clone(),
            method,
            status: key.1,
        });
        let mut next = HashMap::clone(&self.requests.load());
        next.insert(key, counter.clone());
        self.requests.store(Arc::new(next));
        counter
    }

    /// Records an instance used: reused (`warm`) or instantiated afresh.
    pub fn instance(&self, warm: bool) {
        if warm {
            self.warm.inc();
        } else {
            self.fresh.inc();
        }
    }

    /// Records a failed request or job attempt.
    pub fn failure(&self, kind: FailureKind) {
        self.failures[kind as usize].inc();
    }

    /// Records a `kv` host call.
    pub fn kv(&self, op: KvOp) {
        self.kv[op as usize].inc();
    }
}

impl std::fmt::Debug for HandlerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whether a scraper's `Accept` header prefers OpenMetrics text to the
/// Prometheus text format (Prometheus itself sends both, OpenMetrics first).
pub fn prefers_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_scrapers_get_openmetrics_and_others_get_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(prefers_openmetrics(Some(prometheus)));
        assert!(prefers_openmetrics(Some("application/openmetrics-text")));
        assert!(!prefers_openmetrics(None));
        assert!(!prefers_openmetrics(Some("*/*")));
        assert!(!prefers_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!prefers_openmetrics(Some(
            "text/plain, application/openmetrics-text;q=0.5"
        )));
        assert!(!prefers_openmetrics(Some(
            "application/openmetrics-text;q=0"
        )));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET).1, "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap()),
            (METHODS.len(), "other")
        );
    }

    #[test]
    fn both_formats_carry_the_families_and_openmetrics_ends_with_eof() {
        let m = global();
        let h = m.handler("unit-test-handler");
        h.request(&axum::http::Method::POST, 201, Duration::from_millis(3));
        m.serving("unit-test-handler", "aaa");
        m.serving("unit-test-handler", "bbb");
        let text = m.render(false);
        assert!(
            text.contains("# TYPE baton_http_requests_total counter"),
            "{text}"
        );
        assert!(text.contains("handler=\"unit-test-handler\",method=\"POST\",status=\"201\""));
        assert!(text.contains("version=\"bbb\""));
        assert!(!text.contains("version=\"aaa\""), "{text}");
        assert!(!text.contains("# EOF"));
        let om = m.render(true);
        assert!(om.contains("# TYPE baton_http_requests counter"), "{om}");
        assert!(om.trim_end().ends_with("# EOF"), "{om}");
    }
}
