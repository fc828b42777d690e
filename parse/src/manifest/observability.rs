//! `[metrics]`: who may read `GET /admin/v1/metrics`; `[telemetry]`: where traces go.

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

/// `[telemetry]`: where traces go. Read at start only.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// An OTLP collector, e.g. `http://127.0.0.1:4317`; none (the default):
    /// no traces are made at all.
    pub otlp_endpoint: Option<String>,
    /// How to reach it; by default what the url says (see
    /// [`TelemetryConfig::protocol`]).
    pub otlp_protocol: Option<OtlpProtocol>,
    /// The `service.name` of every span; default `baton`.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            otlp_protocol: None,
            service_name: "baton".to_string(),
        }
    }
}

/// The OTLP transports.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (the collector's port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (the collector's port 4318).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl TelemetryConfig {
    /// The transport: `otlp_protocol` when given; else HTTP/protobuf when the
    /// url names port 4318 or the `/v1/traces` path (OTLP/HTTP's port and
    /// path), gRPC otherwise (4317 is OTLP/gRPC's port).
    pub fn protocol(&self) -> Option<OtlpProtocol> {
        let url = self.otlp_endpoint.as_deref()?;
        if let Some(p) = self.otlp_protocol {
            return Some(p);
        }
        let (authority, path) = split_url(url)?;
        let http =
            authority.ends_with(":4318") || path.trim_end_matches('/').ends_with("/v1/traces");
        Some(if http {
            OtlpProtocol::HttpProtobuf
        } else {
            OtlpProtocol::Grpc
        })
    }

    /// Where OTLP/HTTP posts: the url as given when it has a path, else the
    /// url with OTLP/HTTP's `/v1/traces` (as `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is read).
    pub fn http_traces_url(&self) -> Option<String> {
        let url = self.otlp_endpoint.as_deref()?;
        let (_, path) = split_url(url)?;
        Some(if path.is_empty() || path == "/" {
            format!("{}/v1/traces", url.trim_end_matches('/'))
        } else {
            url.to_string()
        })
    }

    /// Checks the section; on error, the key at fault and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.otlp_endpoint
            && split_url(url).is_none()
        {
            return Err((
                "telemetry.otlp_endpoint",
                format!(
                    "`{url}` is not a collector's url: expected http:// or https://, a host[:port] and an optional path"
                ),
            ));
        }
        if self.service_name.is_empty() || self.service_name.len() > 256 {
            return Err((
                "telemetry.service_name",
                "must be 1 to 256 characters".to_string(),
            ));
        }
        Ok(())
    }
}

/// An `http(s)://` url's authority and path (`""` when it has none), when
/// the authority is a plain host[:port] and the path has no query.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b));
    (super::public_url::is_authority(authority) && path_ok).then_some((authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: Some(url.to_string()),
            ..TelemetryConfig::default()
        }
    }

    #[test]
    fn the_url_says_which_transport_unless_the_protocol_is_given() {
        use OtlpProtocol::*;
        for (url, want) in [
            ("http://127.0.0.1:4317", Grpc),
            ("https://collector.example:4317/", Grpc),
            ("http://collector:4318", HttpProtobuf),
            ("http://collector/v1/traces", HttpProtobuf),
            ("https://collector.example/otlp/v1/traces", HttpProtobuf),
        ] {
            assert_eq!(endpoint(url).protocol(), Some(want), "{url}");
        }
        let mut given = endpoint("http://127.0.0.1:4317");
        given.otlp_protocol = Some(HttpProtobuf);
        assert_eq!(given.protocol(), Some(HttpProtobuf));
        assert_eq!(TelemetryConfig::default().protocol(), None);
    }

    #[test]
    fn http_posts_to_v1_traces_unless_the_url_has_a_path() {
        assert_eq!(
            endpoint("http://c:4318").http_traces_url().as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            endpoint("http://c:4318/").http_traces_url().as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            endpoint("http://c/custom/traces")
                .http_traces_url()
                .as_deref(),
            Some("http://c/custom/traces")
        );
    }

    #[test]
    fn urls_that_are_not_a_collectors_are_refused_naming_the_key() {
        for bad in [
            "127.0.0.1:4317",
            "grpc://c:4317",
            "http://",
            "http://user:pw@c:4317",
            "http://c:4317/?q=1",
            "http://c:99999",
            "http://c d",
        ] {
            let (key, _) = endpoint(bad).check().unwrap_err();
            assert_eq!(key, "telemetry.otlp_endpoint", "{bad}");
        }
        assert!(endpoint("http://[::1]:4317").check().is_ok());
        let unnamed = TelemetryConfig {
            service_name: String::new(),
            ..TelemetryConfig::default()
        };
        assert_eq!(unnamed.check().unwrap_err().0, "telemetry.service_name");
    }
}
