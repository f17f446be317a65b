//! Everything the double stores, per tenant. Serializable as a whole for `--state-file`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::files::FileTree;
use crate::flows::FlowRevision;
use crate::kv::KvEntry;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    pub tenants: BTreeMap<String, TenantStore>,
}

impl Store {
    /// The tenant's state, created on first write: tenants are implicit, as namespaces are.
    pub fn tenant_mut(&mut self, tenant: &str) -> &mut TenantStore {
        self.tenants.entry(tenant.to_owned()).or_default()
    }

    pub fn tenant(&self, tenant: &str) -> Option<&TenantStore> {
        self.tenants.get(tenant)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TenantStore {
    /// namespace -> flow id -> every revision, oldest first (deleted ones included).
    pub flows: BTreeMap<String, BTreeMap<String, Vec<FlowRevision>>>,
    /// namespace -> key -> entry.
    pub kv: BTreeMap<String, BTreeMap<String, KvEntry>>,
    /// namespace -> its file tree.
    pub files: BTreeMap<String, FileTree>,
    /// namespace -> key -> last revision of a deleted KV key: Kestra continues the count when
    /// the key is written again.
    #[serde(default)]
    pub kv_deleted_revisions: BTreeMap<String, BTreeMap<String, u64>>,
    /// (namespace, id) of every flow in the order it was first created: Kestra lists flows
    /// in that order (its table keeps a row per flow, updated in place).
    #[serde(default)]
    pub flow_order: Vec<(String, String)>,
}

impl TenantStore {
    /// Every flow history, in Kestra's listing order: first creation first (flows of a state
    /// file written before the order was kept come last, by name).
    pub fn flows_in_order(&self) -> Vec<(&String, &String, &Vec<FlowRevision>)> {
        let position: HashMap<(&str, &str), usize> = self
            .flow_order
            .iter()
            .enumerate()
            .map(|(i, (ns, id))| ((ns.as_str(), id.as_str()), i))
            .collect();
        let mut flows: Vec<_> = self
            .flows
            .iter()
            .flat_map(|(ns, flows)| flows.iter().map(move |(id, h)| (ns, id, h)))
            .collect();
        flows.sort_by_key(|(ns, id, _)| {
            position
                .get(&(ns.as_str(), id.as_str()))
                .copied()
                .unwrap_or(usize::MAX)
        });
        flows
    }
}
