//! The three custom resources (group `model.kestra.io`, version `v1alpha1`).

// kube's `printcolumn(...)` repeats `type_ =` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod flow;
pub mod instance;
pub mod kv;
pub mod nsfile;

pub use common::{
    Condition, ConditionStatus, ConditionType, DeletionPolicy, KestraStatus, KeyRef, ValueSource,
};
pub use flow::{KestraFlow, KestraFlowSpec};
pub use instance::{
    ClusterKestraInstance, ClusterKestraInstanceSpec, Connection, InstanceAuth, InstanceKind,
    InstanceRef, InstanceStatus, KestraInstance, KestraInstanceSpec,
};
pub use kv::{KestraKeyValue, KestraKeyValueSpec, KvType};
pub use nsfile::{KestraNamespaceFile, KestraNamespaceFileSpec};

use kube::CustomResourceExt;

/// The CRD YAML of every kind, as `kestra-operator crds` prints it and `deploy/crds/` holds it.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let crds = [
        KestraFlow::crd(),
        KestraKeyValue::crd(),
        KestraNamespaceFile::crd(),
        KestraInstance::crd(),
        ClusterKestraInstance::crd(),
    ];
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
