//! Spec and status pieces shared by the three kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happens to the Kestra object when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the Kestra object with the resource (only if this resource owned it).
    #[default]
    Delete,
    /// Leave the Kestra object in place.
    Orphan,
}

/// A key of a ConfigMap in the resource's own Kubernetes namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside its data (or binaryData).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A ConfigMap or Secret key, exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)")
    .message("set exactly one of secretKeyRef or configMapKeyRef"))]
pub struct ValueSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A condition in the `metav1.Condition` shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A CamelCase word such as `Synced` or `Conflict`.
    // Text, not `engine::Reason`: a reason this version does not know (written by another
    // version of the operator) must not make the whole resource unreadable.
    pub reason: String,
    /// What happened and what to do.
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[schemars(schema_with = "date_time")]
    pub last_transition_time: Time,
    /// The `metadata.generation` this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The kind of a condition (kstatus-compatible).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionType {
    /// Kestra matches the spec.
    Ready,
    /// Nothing progresses until the spec (or another resource) changes.
    Stalled,
}

/// Whether a condition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

/// A time as Kubernetes writes it (RFC 3339, whole seconds, UTC).
fn date_time(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

pub(super) fn optional_date_time(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["string", "null"], "format": "date-time" })
}

/// What the operator last did with this resource and whether Kestra matches it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KestraStatus<E> {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `Stalled` conditions (kstatus-compatible).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One-line summary of the last outcome (field of the Enterprise operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When Kestra was last confirmed to match the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_date_time")]
    pub last_sync_time: Option<Time>,
    /// How many times a change made directly in Kestra was reverted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift_corrections: i64,
    /// When a change made directly in Kestra was last reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_date_time")]
    pub last_drift_time: Option<Time>,
    /// The Kestra object this resource created or took over (`tenant/namespace/name`).
    /// Only an owned object is ever deleted by this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_object: Option<String>,
    /// The last value of the `model.kestra.io/reconcile-requested-at` annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(flatten)]
    pub kind: E,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}
