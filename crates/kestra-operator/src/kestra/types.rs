//! The parts of Kestra's answers the operator reads.

use serde::Deserialize;

/// `FlowWithSource` (or `Flow` without `source`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Flow {
    pub id: String,
    pub namespace: String,
    pub revision: i64,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub deleted: bool,
}

/// One row of a namespace's flow listing: enough to see whether a revision moved.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct FlowSummary {
    pub id: String,
    pub namespace: String,
    pub revision: i64,
}

/// A stored KV value with its type.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct KvEntry {
    #[serde(rename = "type")]
    pub type_: String,
    /// Absent when Kestra stored `null`.
    #[serde(default)]
    pub value: serde_json::Value,
    #[serde(default, rename = "expirationDate")]
    pub expiration_date: Option<String>,
}

/// One row of a namespace's KV listing (`GET .../namespaces/{namespace}/kv`, Kestra up to 1.3).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KvSummary {
    pub key: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub update_date: Option<String>,
    #[serde(default)]
    pub expiration_date: Option<String>,
}

/// One entry of a namespace files directory listing (`GET .../files/directory?path=`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FileStat {
    pub file_name: String,
    /// `File` or `Directory`.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub last_modified_time: Option<i64>,
}

/// What reading a KV key found.
#[derive(Clone, Debug, PartialEq)]
pub enum KvRead {
    Found(KvEntry),
    Missing,
    /// The key exists but its ttl has passed (HTTP 410).
    Expired,
}

/// One document's verdict from `POST flows/validate`. Problems come in the 200 body: a
/// non-empty `constraints` means Kestra would refuse the flow.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FlowValidation {
    /// Position of the document in the source sent.
    pub index: usize,
    /// Absent when the source could not be bound to a flow (YAML error, unknown task type).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub flow: Option<String>,
    #[serde(default)]
    pub constraints: Option<String>,
    #[serde(default)]
    pub outdated: bool,
    #[serde(default)]
    pub deprecation_paths: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub infos: Vec<String>,
}

impl FlowValidation {
    /// Kestra's constraint messages, one per line, trimmed; empty for a valid flow.
    pub fn violations(&self) -> Vec<String> {
        self.constraints
            .as_deref()
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn is_valid(&self) -> bool {
        self.violations().is_empty()
    }
}
