//! `KestraKeyValue`: one entry of a Kestra namespace's key-value store.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DeletionPolicy, KestraStatus, ValueSource};

/// Kestra's seven KV types (`core/.../models/kv/KVType.java`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum KvType {
    String,
    Number,
    Boolean,
    Datetime,
    Date,
    Duration,
    Json,
}

impl KvType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::Number => "NUMBER",
            Self::Boolean => "BOOLEAN",
            Self::Datetime => "DATETIME",
            Self::Date => "DATE",
            Self::Duration => "DURATION",
            Self::Json => "JSON",
        }
    }
}

/// A Kestra key-value entry managed from Kubernetes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "model.kestra.io",
    version = "v1alpha1",
    kind = "KestraKeyValue",
    plural = "kestrakeyvalues",
    shortname = "keyvalue",
    shortname = "kv",
    category = "kestra",
    namespaced,
    status = "KeyValueStatus",
    doc = "A Kestra key-value entry, kept equal to its spec by kestra-operator",
    printcolumn(
        name = "Kestra Namespace",
        type_ = "string",
        json_path = ".spec.namespace"
    ),
    printcolumn(name = "Key", type_ = "string", json_path = ".spec.key"),
    printcolumn(name = "Type", type_ = "string", json_path = ".status.type"),
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
// `value` may be any JSON, which CEL cannot see: exactly-one-of is a schema `oneOf` here.
#[schemars(extend("oneOf" = [{"required": ["value"]}, {"required": ["valueFrom"]}]))]
#[x_kube(
    // `GET .../kv/inheritance` is Kestra's listing of the parent namespaces' keys, not the key.
    validation = Rule::new("self.key != 'inheritance'")
        .message("spec.key 'inheritance' cannot be read back from Kestra (GET .../kv/inheritance is Kestra's listing of inherited keys): choose another key"),
    validation = Rule::new("self.key == oldSelf.key")
        .message("spec.key is immutable: create a new KestraKeyValue to manage another key"),
    validation = Rule::new("self.__namespace__ == oldSelf.__namespace__")
        .message("spec.namespace is immutable: create a new KestraKeyValue to manage a key in another Kestra namespace"),
    validation = Rule::new("has(self.tenant) == has(oldSelf.tenant) && (!has(self.tenant) || self.tenant == oldSelf.tenant)")
        .message("spec.tenant is immutable: create a new KestraKeyValue to manage a key of another tenant"),
    validation = Rule::new(super::instance::INSTANCE_REF_IMMUTABLE)
        .message("spec.instanceRef is immutable: create a new KestraKeyValue to manage an object of another Kestra instance")
)]
pub struct KestraKeyValueSpec {
    /// The Kestra namespace (not a Kubernetes one).
    #[schemars(length(min = 1, max = 150), regex(pattern = "^[a-z0-9][a-z0-9._-]*$"))]
    pub namespace: String,
    /// The key; letters, digits, `.`, `_` and `-`, starting with a letter or digit.
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = "^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
    )]
    pub key: String,
    /// The value: a YAML string is stored as STRING, a number as NUMBER, true/false as BOOLEAN,
    /// an object or list as JSON. Use `type` for DATE, DATETIME or DURATION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub value: Option<serde_json::Value>,
    /// The value from a Secret or ConfigMap key, instead of `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueSource>,
    /// Force a Kestra type (e.g. DATE, DATETIME, DURATION, or NUMBER for a string value).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<KvType>,
    /// Time to live as an ISO-8601 duration (e.g. `PT5M`, `P1D`); the entry expires in Kestra.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+([.][0-9]+)?S)?)?$"))]
    #[x_kube(validation = Rule::new("self != 'P' && !self.endsWith('T')")
        .message("spec.ttl must be an ISO-8601 duration with at least one part, e.g. PT5M, PT1H30M or P1D"))]
    pub ttl: Option<String>,
    /// Free text stored with the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Kestra tenant; the operator's default tenant when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = "^[a-z0-9][a-z0-9_-]*$"))]
    pub tenant: Option<String>,
    /// The Kestra instance to use (`KestraInstance` of this namespace or a
    /// `ClusterKestraInstance`); the operator's default instance when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<super::instance::InstanceRef>,
    /// `Delete` (default) removes the entry from Kestra with this resource; `Orphan` leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Stop syncing this entry until set back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// How often to check Kestra for drift (e.g. `5m`), overriding the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub resync_period: Option<String>,
}

/// Any JSON value: Kubernetes keeps it as given.
fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The value: any YAML scalar, object or list.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// KV-specific status fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyValueStatusFields {
    /// The type Kestra stored the value as.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// When the entry expires in Kestra (from `ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The `ttl` the entry was last written with: a change of `spec.ttl` writes it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

pub type KeyValueStatus = KestraStatus<KeyValueStatusFields>;
