//! `[metrics]`: who may read `GET /admin/v1/metrics`.

use serde::Deserialize;

/// `[metrics]`.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `true`: the metrics need no token (for a scraper on a trusted
    /// network); `false` (the default): a token with `metrics:read`.
    pub public: bool,
}

/// The permission `GET /admin/v1/metrics` needs unless `[metrics] public`.
pub const METRICS_READ: &str = "metrics:read";
