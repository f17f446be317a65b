//! Prometheus metrics (OpenMetrics text on `/metrics`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::ConditionStatus;
use crate::engine::Reason;

/// The kinds, as metric labels.
pub const KINDS: [&str; 3] = ["KestraFlow", "KestraKeyValue", "KestraNamespaceFile"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
    /// The status reason of the error (`KestraUnavailable`, `Rejected`, ...).
    pub reason: Reason,
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

impl EncodeLabelValue for ConditionStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, never a concrete path (bounded cardinality, no object names).
    pub route: &'static str,
    pub method: &'static str,
    /// HTTP status, or `error` when no response came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KestraInfoLabels {
    pub version: String,
    pub edition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub kind: &'static str,
    /// `True`, `False` or `Unknown` (the Ready condition).
    pub ready: ConditionStatus,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the operator exports.
pub struct Metrics {
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub kestra_requests: Family<RequestLabels, Counter>,
    pub kestra_request_duration: Family<RouteLabels, Histogram>,
    pub drift_corrections: Family<KindLabels, Counter>,
    pub status_write_failures: Family<KindLabels, Counter>,
    pub objects: Family<ConditionLabels, Gauge>,
    pub leader: Gauge,
    /// 1 for the Kestra version and edition the operator talks to (one series).
    pub kestra_info: Family<KestraInfoLabels, Gauge>,
    registry: Registry,
}

impl Metrics {
    pub fn set_kestra_info(&self, version: &str, edition: &str) {
        self.kestra_info.clear();
        self.kestra_info
            .get_or_create(&KestraInfoLabels {
                version: version.to_string(),
                edition: edition.to_string(),
            })
            .set(1);
    }

    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("kestra_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<KindLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        let kestra_requests = Family::<RequestLabels, Counter>::default();
        let kestra_request_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        let drift_corrections = Family::<KindLabels, Counter>::default();
        let status_write_failures = Family::<KindLabels, Counter>::default();
        let objects = Family::<ConditionLabels, Gauge>::default();
        let leader = Gauge::default();
        let kestra_info = Family::<KestraInfoLabels, Gauge>::default();
        registry.register(
            "kestra_info",
            "The Kestra version and edition read from /api/v1/configs at start (unknown when it did not answer)",
            kestra_info.clone(),
        );
        registry.register("reconciles", "Reconciles run, per kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that ended in an error, per kind and status reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile took, per kind",
            reconcile_duration.clone(),
        );
        registry.register(
            "kestra_requests",
            "Requests to the Kestra API by route template, method and status",
            kestra_requests.clone(),
        );
        registry.register(
            "kestra_request_duration_seconds",
            "Latency of Kestra API requests by route template and method",
            kestra_request_duration.clone(),
        );
        registry.register(
            "drift_corrections",
            "Changes made directly in Kestra that were reverted, per kind",
            drift_corrections.clone(),
        );
        registry.register(
            "status_write_failures",
            "Status writes that failed or timed out, per kind (retried with backoff)",
            status_write_failures.clone(),
        );
        registry.register(
            "objects",
            "Resources known to the operator, per kind and Ready status",
            objects.clone(),
        );
        // Known series start at zero, so rates and alerts work before the first event.
        for kind in KINDS {
            let _ = reconciles.get_or_create(&KindLabels { kind });
            let _ = drift_corrections.get_or_create(&KindLabels { kind });
            let _ = status_write_failures.get_or_create(&KindLabels { kind });
            for &reason in Reason::ERRORS {
                let _ = reconcile_errors.get_or_create(&ErrorLabels { kind, reason });
            }
        }
        registry.register(
            "leader",
            "1 when this replica is the leader and reconciles",
            leader.clone(),
        );
        Arc::new(Self {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            kestra_requests,
            kestra_request_duration,
            drift_corrections,
            status_write_failures,
            objects,
            leader,
            kestra_info,
            registry,
        })
    }

    pub fn observe_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: Option<u16>,
        took: Duration,
    ) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.kestra_requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.kestra_request_duration
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_reason_has_a_zeroed_series_per_kind() {
        let text = Metrics::new().encode().unwrap();
        for kind in KINDS {
            for reason in Reason::ERRORS {
                let series = format!(
                    "kestra_operator_reconcile_errors_total{{kind=\"{kind}\",reason=\"{reason}\"}} 0\n"
                );
                assert!(text.contains(&series), "{series} missing from\n{text}");
            }
        }
        let errors = text
            .lines()
            .filter(|l| l.starts_with("kestra_operator_reconcile_errors_total{"))
            .count();
        assert_eq!(errors, KINDS.len() * Reason::ERRORS.len());
    }

    #[test]
    fn labels_are_the_words_of_status() {
        let metrics = Metrics::new();
        metrics
            .objects
            .get_or_create(&ConditionLabels {
                kind: "KestraFlow",
                ready: ConditionStatus::Unknown,
            })
            .set(2);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("kestra_operator_objects{kind=\"KestraFlow\",ready=\"Unknown\"} 2\n"),
            "{text}"
        );
    }
}
