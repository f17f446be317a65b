//! `KestraInstance` and `ClusterKestraInstance`: a Kestra server (URL, tenant, credentials) that
//! resources name with `spec.instanceRef`, beside the operator's default one from its flags.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, KeyRef, ValueSource};

/// Which kind of instance a resource names.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum InstanceKind {
    /// A `KestraInstance` of the resource's own Kubernetes namespace.
    #[default]
    KestraInstance,
    /// A `ClusterKestraInstance` whose `allowedNamespaces` selects the resource's namespace.
    ClusterKestraInstance,
}

impl InstanceKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::KestraInstance => "KestraInstance",
            Self::ClusterKestraInstance => "ClusterKestraInstance",
        }
    }
}

/// `spec.instanceRef` of a flow, key-value entry or namespace file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRef {
    /// `KestraInstance` (default) or `ClusterKestraInstance`.
    #[serde(default)]
    pub kind: InstanceKind,
    /// The instance's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The CEL rule that keeps `spec.instanceRef` as it was created (a resource moved to another
/// Kestra would leave its object behind in the first one, still marked as owned).
pub const INSTANCE_REF_IMMUTABLE: &str = "has(self.instanceRef) == has(oldSelf.instanceRef) && (!has(self.instanceRef) || self.instanceRef == oldSelf.instanceRef)";

/// How the operator authenticates to an instance: a Secret key, exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.basicAuthSecretRef) != has(self.apiKeySecretRef)")
    .message("set exactly one of auth.basicAuthSecretRef (user:password) or auth.apiKeySecretRef (an API token)"))]
pub struct InstanceAuth {
    /// A Secret key holding `user:password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret_ref: Option<KeyRef>,
    /// A Secret key holding an API token, sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<KeyRef>,
}

/// The connection settings both instance kinds share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Kestra's root URL, e.g. `http://kestra:8080` (a trailing `/api/v1` is accepted); no
    /// credentials in it.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$")
    )]
    pub url: String,
    /// Default tenant of the resources using this instance (`main` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9][a-z0-9_-]*$"))]
    pub tenant: Option<String>,
    /// Credentials; none when Kestra is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<InstanceAuth>,
    /// CA certificates (PEM) to trust for Kestra's HTTPS, from a ConfigMap or Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_ref: Option<ValueSource>,
    /// Use the tenant-less `/api/v1` root of Kestra before 0.23.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_api_root: Option<bool>,
    /// Requests per second to this Kestra at most, every resource together (0 or unset: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub rate_limit: Option<u32>,
    /// Timeout of one request, e.g. `30s` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub timeout: Option<String>,
}

/// A Kestra server for the resources of this Kubernetes namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "model.kestra.io",
    version = "v1alpha1",
    kind = "KestraInstance",
    plural = "kestrainstances",
    shortname = "kestrainstance",
    category = "kestra",
    namespaced,
    status = "InstanceStatus",
    doc = "A Kestra server that flows, key-value entries and namespace files of this namespace can name in spec.instanceRef",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KestraInstanceSpec {
    #[serde(flatten)]
    pub connection: Connection,
}

/// A Kestra server that resources of the namespaces it allows can use.
// Not in the `kestra` category: `kubectl get kestra -n NS` would list it in every namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "model.kestra.io",
    version = "v1alpha1",
    kind = "ClusterKestraInstance",
    plural = "clusterkestrainstances",
    shortname = "clusterkestrainstance",
    status = "InstanceStatus",
    doc = "A Kestra server that flows, key-value entries and namespace files of the namespaces it allows can name in spec.instanceRef",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterKestraInstanceSpec {
    #[serde(flatten)]
    pub connection: Connection,
    /// The Kubernetes namespaces whose resources may use this instance, by their labels
    /// (`{}` selects every namespace). Unset: none may. Secrets it names are read from the
    /// operator's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "label_selector")]
    pub allowed_namespaces: Option<LabelSelector>,
}

/// Kubernetes' `LabelSelector`, as a structural schema.
fn label_selector(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "A label selector over the namespaces' labels (matchLabels, matchExpressions).",
        "properties": {
            "matchLabels": {
                "type": "object",
                "additionalProperties": { "type": "string" }
            },
            "matchExpressions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": { "type": "string" },
                        "operator": { "type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"] },
                        "values": { "type": "array", "items": { "type": "string" } }
                    }
                }
            }
        }
    })
}

/// What the operator last saw of an instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The generation of the spec last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `Ready` condition: Kestra answered with these settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One-line summary of the last check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Kestra's version, from `/api/v1/configs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kestra's edition (`OSS` or `EE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
    /// When Kestra was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::common::optional_date_time")]
    pub last_check_time: Option<Time>,
}
