//! Everything the double stores, per tenant. Serializable as a whole for `--state-file`.

use std::collections::BTreeMap;

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
}
