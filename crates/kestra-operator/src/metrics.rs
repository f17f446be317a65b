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

/// The `instance` label of the operator's default instance (its flags).
pub const DEFAULT_INSTANCE_LABEL: &str = "default";
/// Distinct `instance` label values at most; later instances share [`OTHER_INSTANCES_LABEL`].
pub const MAX_INSTANCE_LABELS: usize = 32;
pub const OTHER_INSTANCES_LABEL: &str = "other";

/// The Kestra instance a series is about: `default`, `KestraInstance/NAMESPACE/NAME` or
/// `ClusterKestraInstance/NAME`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct InstanceLabel(Arc<str>);

impl InstanceLabel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for InstanceLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub instance: InstanceLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub instance: InstanceLabel,
    /// The route template, never a concrete path (bounded cardinality, no object names).
    pub route: &'static str,
    pub method: &'static str,
    /// HTTP status, or `error` when no response came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub instance: InstanceLabel,
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KestraInfoLabels {
    pub instance: InstanceLabel,
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
    /// 1 for the Kestra version and edition of each instance (one series per instance).
    pub kestra_info: Family<KestraInfoLabels, Gauge>,
    /// 1 when the instance's last check succeeded, 0 otherwise.
    pub instance_ready: Family<InstanceLabels, Gauge>,
    /// The `instance` label values handed out, at most `MAX_INSTANCE_LABELS`.
    instance_labels: parking_lot::Mutex<std::collections::HashMap<String, InstanceLabel>>,
    /// The `kestra_info` series of each instance, to replace it when the version changes.
    kestra_info_said:
        parking_lot::Mutex<std::collections::HashMap<InstanceLabel, KestraInfoLabels>>,
    registry: Registry,
}

impl Metrics {
    /// The label of `instance`: its own up to `MAX_INSTANCE_LABELS` instances, then `other`, so
    /// that many instances cannot grow the series without bound.
    pub fn instance_label(&self, instance: &str) -> InstanceLabel {
        let mut labels = self.instance_labels.lock();
        if let Some(label) = labels.get(instance) {
            return label.clone();
        }
        if labels.len() >= MAX_INSTANCE_LABELS {
            return InstanceLabel(Arc::from(OTHER_INSTANCES_LABEL));
        }
        let label = InstanceLabel(Arc::from(instance));
        labels.insert(instance.to_string(), label.clone());
        label
    }

    /// Say which version and edition `instance` runs (replacing what was said before).
    pub fn set_kestra_info(&self, instance: &str, version: &str, edition: &str) {
        let instance = self.instance_label(instance);
        self.forget_kestra_info(&instance);
        let labels = KestraInfoLabels {
            instance: instance.clone(),
            version: version.to_string(),
            edition: edition.to_string(),
        };
        self.kestra_info.get_or_create(&labels).set(1);
        self.kestra_info_said.lock().insert(instance, labels);
    }

    /// Drop the series of an instance that is gone.
    pub fn forget_instance(&self, instance: &str) {
        let instance = self.instance_label(instance);
        self.forget_kestra_info(&instance);
        self.instance_ready.remove(&InstanceLabels { instance });
    }

    fn forget_kestra_info(&self, instance: &InstanceLabel) {
        if let Some(labels) = self.kestra_info_said.lock().remove(instance) {
            self.kestra_info.remove(&labels);
        }
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
        let instance_ready = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "kestra_info",
            "The Kestra version and edition read from /api/v1/configs, per instance (unknown when it did not answer)",
            kestra_info.clone(),
        );
        registry.register(
            "instance_ready",
            "1 when the last check of a KestraInstance or ClusterKestraInstance succeeded",
            instance_ready.clone(),
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
            "Requests to the Kestra API by instance, route template, method and status",
            kestra_requests.clone(),
        );
        registry.register(
            "kestra_request_duration_seconds",
            "Latency of Kestra API requests by instance, route template and method",
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
            instance_ready,
            instance_labels: Default::default(),
            kestra_info_said: Default::default(),
            registry,
        })
    }

    pub fn observe_request(
        &self,
        instance: &InstanceLabel,
        route: &'static str,
        method: &'static str,
        status: Option<u16>,
        took: Duration,
    ) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.kestra_requests
            .get_or_create(&RequestLabels {
                instance: instance.clone(),
                route,
                method,
                status,
            })
            .inc();
        self.kestra_request_duration
            .get_or_create(&RouteLabels {
                instance: instance.clone(),
                route,
                method,
            })
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
    fn instance_labels_are_bounded() {
        let metrics = Metrics::new();
        for i in 0..MAX_INSTANCE_LABELS + 5 {
            let label = metrics.instance_label(&format!("KestraInstance/ns/i{i}"));
            let expected = if i < MAX_INSTANCE_LABELS {
                format!("KestraInstance/ns/i{i}")
            } else {
                OTHER_INSTANCES_LABEL.to_string()
            };
            assert_eq!(label.as_str(), expected);
        }
        // One handed out before stays its own.
        assert_eq!(
            metrics.instance_label("KestraInstance/ns/i0").as_str(),
            "KestraInstance/ns/i0"
        );
        metrics.set_kestra_info("KestraInstance/ns/i0", "1.3.31", "OSS");
        metrics.set_kestra_info("KestraInstance/ns/i0", "2.0.0", "OSS");
        let text = metrics.encode().unwrap();
        assert!(
            !text.contains("1.3.31"),
            "the old version is replaced: {text}"
        );
        assert!(text.contains(
            "kestra_operator_kestra_info{instance=\"KestraInstance/ns/i0\",version=\"2.0.0\",edition=\"OSS\"} 1"
        ));
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
