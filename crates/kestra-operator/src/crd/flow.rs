//! `KestraFlow`: a Kestra flow, its YAML inline or from a ConfigMap key.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, KestraStatus, KeyRef};

/// A Kestra flow managed from Kubernetes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "model.kestra.io",
    version = "v1alpha1",
    kind = "KestraFlow",
    plural = "kestraflows",
    shortname = "flow",
    category = "kestra",
    namespaced,
    status = "FlowStatus",
    doc = "A Kestra flow, kept equal to its YAML source by kestra-operator",
    printcolumn(
        name = "Kestra Namespace",
        type_ = "string",
        json_path = ".spec.namespace"
    ),
    printcolumn(name = "Flow", type_ = "string", json_path = ".spec.id"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
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
        name = "Instance",
        type_ = "string",
        json_path = ".spec.instanceRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.source) != has(self.sourceFrom)")
        .message("set exactly one of spec.source (the flow YAML) or spec.sourceFrom (a ConfigMap key holding it)"),
    validation = Rule::new("!(self.id in ['pause', 'resume', 'force-run', 'change-status', 'kill', 'executions', 'search', 'source', 'disable', 'enable'])")
        .message("spec.id is a name Kestra reserves for its API (pause, resume, force-run, change-status, kill, executions, search, source, disable, enable): choose another flow id"),
    // Kestra routes a literal path segment before a `{namespace}`: `DELETE flows/delete/by-query`
    // deletes every flow of the tenant, `GET flows/export/by-query` exports them, `GET
    // flows/search` searches. A flow in such a namespace could only be reached through those.
    validation = Rule::new("!(self.__namespace__ in ['search', 'source', 'distinct-namespaces', 'deprecated', 'export', 'delete', 'disable', 'enable', 'validate', 'graph', 'bulk', 'import', 'expressions'])")
        .message("spec.namespace is a word Kestra's flow API uses as a route (search, source, distinct-namespaces, deprecated, export, delete, disable, enable, validate, graph, bulk, import, expressions): requests for this flow would reach that route instead (DELETE flows/delete/by-query deletes every flow of the tenant); choose another namespace, e.g. company.delete"),
    validation = Rule::new("self.id == oldSelf.id")
        .message("spec.id is immutable: create a new KestraFlow to manage another flow"),
    validation = Rule::new("self.__namespace__ == oldSelf.__namespace__")
        .message("spec.namespace is immutable: create a new KestraFlow to manage a flow in another Kestra namespace"),
    validation = Rule::new("has(self.tenant) == has(oldSelf.tenant) && (!has(self.tenant) || self.tenant == oldSelf.tenant)")
        .message("spec.tenant is immutable: create a new KestraFlow to manage a flow of another tenant"),
    validation = Rule::new(super::instance::INSTANCE_REF_IMMUTABLE)
        .message("spec.instanceRef is immutable: create a new KestraFlow to manage an object of another Kestra instance")
)]
pub struct KestraFlowSpec {
    /// The flow id; must equal the `id` in the YAML source.
    #[schemars(
        length(min = 1, max = 100),
        regex(pattern = "^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
    )]
    pub id: String,
    /// The Kestra namespace (not a Kubernetes one); must equal the `namespace` in the YAML source.
    #[schemars(length(min = 1, max = 150), regex(pattern = "^[a-z0-9][a-z0-9._-]*$"))]
    pub namespace: String,
    /// The flow YAML, exactly as Kestra stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A ConfigMap key holding the flow YAML, instead of `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_from: Option<FlowSourceFrom>,
    /// The Kestra tenant; the operator's default tenant when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9][a-z0-9_-]*$"))]
    pub tenant: Option<String>,
    /// The Kestra instance to use (`KestraInstance` of this namespace or a
    /// `ClusterKestraInstance`); the operator's default instance when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<super::instance::InstanceRef>,
    /// `Delete` (default) removes the flow from Kestra with this resource; `Orphan` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Stop syncing this flow until set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// How often to check Kestra for drift (e.g. `5m`), overriding the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub resync_period: Option<String>,
}

/// Where a flow's YAML comes from when it is not inline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowSourceFrom {
    /// A key of a ConfigMap in the resource's Kubernetes namespace.
    pub config_map_key_ref: KeyRef,
}

/// Flow-specific status fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowStatusFields {
    /// The flow revision Kestra holds (Enterprise field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Whether Kestra accepted the flow (Enterprise field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<bool>,
}

pub type FlowStatus = KestraStatus<FlowStatusFields>;
