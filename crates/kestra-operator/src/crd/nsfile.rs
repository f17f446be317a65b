//! `KestraNamespaceFile`: one file of a Kestra namespace.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, KestraStatus, ValueSource};

/// A Kestra namespace file managed from Kubernetes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "model.kestra.io",
    version = "v1alpha1",
    kind = "KestraNamespaceFile",
    plural = "kestranamespacefiles",
    shortname = "namespacefile",
    shortname = "nsfile",
    category = "kestra",
    namespaced,
    status = "NamespaceFileStatus",
    doc = "A Kestra namespace file, kept equal to its content by kestra-operator",
    printcolumn(
        name = "Kestra Namespace",
        type_ = "string",
        json_path = ".spec.namespace"
    ),
    printcolumn(name = "Filename", type_ = "string", json_path = ".spec.filename"),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.size"),
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
    validation = Rule::new("(has(self.content) ? 1 : 0) + (has(self.contentBase64) ? 1 : 0) + (has(self.contentFrom) ? 1 : 0) == 1")
        .message("set exactly one of spec.content (text), spec.contentBase64 (binary) or spec.contentFrom (a ConfigMap or Secret key)"),
    validation = Rule::new("self.filename == oldSelf.filename")
        .message("spec.filename is immutable: create a new KestraNamespaceFile to manage another file"),
    validation = Rule::new("self.__namespace__ == oldSelf.__namespace__")
        .message("spec.namespace is immutable: create a new KestraNamespaceFile to manage a file in another Kestra namespace"),
    validation = Rule::new("has(self.tenant) == has(oldSelf.tenant) && (!has(self.tenant) || self.tenant == oldSelf.tenant)")
        .message("spec.tenant is immutable: create a new KestraNamespaceFile to manage a file of another tenant"),
    validation = Rule::new(super::instance::INSTANCE_REF_IMMUTABLE)
        .message("spec.instanceRef is immutable: create a new KestraNamespaceFile to manage an object of another Kestra instance")
)]
pub struct KestraNamespaceFileSpec {
    /// The Kestra namespace (not a Kubernetes one).
    #[schemars(length(min = 1, max = 150), regex(pattern = "^[a-z0-9][a-z0-9._-]*$"))]
    pub namespace: String,
    /// Path of the file in the namespace, e.g. `scripts/etl.py` (a leading `/` is optional).
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(
        validation = Rule::new("!self.matches('(^|/)[.][.]?(/|$)')")
            .message("spec.filename must not contain '.' or '..' path segments: give the file's path inside the namespace, e.g. scripts/etl.py"),
        validation = Rule::new("!self.matches('^/?_flows(/|$)')")
            .message("spec.filename must not be under _flows: Kestra reserves that folder for flows"),
        validation = Rule::new("!self.endsWith('/') && !self.matches('//')")
            .message("spec.filename must name a file: no trailing '/' and no empty path segment"),
        validation = Rule::new("!self.matches('[[:cntrl:]]')")
            .message("spec.filename must not contain control characters (tab, newline, ...): Kestra cannot store such a name as given")
    )]
    pub filename: String,
    /// The file's content as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The file's content, base64-encoded (for binary files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[A-Za-z0-9+/]*={0,2}$"))]
    pub content_base64: Option<String>,
    /// The content from a ConfigMap or Secret key (`binaryData` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_from: Option<ValueSource>,
    /// The Kestra tenant; the operator's default tenant when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9][a-z0-9_-]*$"))]
    pub tenant: Option<String>,
    /// The Kestra instance to use (`KestraInstance` of this namespace or a
    /// `ClusterKestraInstance`); the operator's default instance when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<super::instance::InstanceRef>,
    /// `Delete` (default) removes the file from Kestra with this resource; `Orphan` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Stop syncing this file until set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// How often to check Kestra for drift (e.g. `5m`), overriding the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub resync_period: Option<String>,
}

/// File-specific status fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceFileStatusFields {
    /// Size in bytes of the content last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// SHA-256 (hex) of the content last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

pub type NamespaceFileStatus = KestraStatus<NamespaceFileStatusFields>;
