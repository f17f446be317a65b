//! Values read from Secrets and ConfigMaps in the resource's own namespace.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::error::ReconcileError;
use crate::crd::{KeyRef, ValueSource};

/// Which kind of object a reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    Secret,
    ConfigMap,
}

/// A Secret or ConfigMap a resource reads, for re-syncing it when that object changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub kind: RefKind,
    pub name: String,
}

impl ValueSource {
    pub fn reference(&self) -> Option<(RefKind, &KeyRef)> {
        match (&self.secret_key_ref, &self.config_map_key_ref) {
            (Some(r), _) => Some((RefKind::Secret, r)),
            (None, Some(r)) => Some((RefKind::ConfigMap, r)),
            (None, None) => None,
        }
    }
}

/// Read the bytes of one key. Secret values never appear in errors (only names and keys do).
pub async fn read_key(
    client: &kube::Client,
    namespace: &str,
    kind: RefKind,
    key_ref: &KeyRef,
) -> Result<Vec<u8>, ReconcileError> {
    let missing_key = |what: &str| {
        ReconcileError::ReferenceNotFound(format!(
            "{what} {namespace}/{} has no key {:?}",
            key_ref.name, key_ref.key
        ))
    };
    match kind {
        RefKind::Secret => {
            let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&key_ref.name)
                .await?
                .ok_or_else(|| {
                    ReconcileError::ReferenceNotFound(format!(
                        "Secret {namespace}/{} does not exist",
                        key_ref.name
                    ))
                })?;
            secret
                .data
                .and_then(|mut d| d.remove(&key_ref.key))
                .map(|b| b.0)
                .ok_or_else(|| missing_key("Secret"))
        }
        RefKind::ConfigMap => {
            let config_map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&key_ref.name)
                .await?
                .ok_or_else(|| {
                    ReconcileError::ReferenceNotFound(format!(
                        "ConfigMap {namespace}/{} does not exist",
                        key_ref.name
                    ))
                })?;
            if let Some(text) = config_map.data.as_ref().and_then(|d| d.get(&key_ref.key)) {
                return Ok(text.clone().into_bytes());
            }
            config_map
                .binary_data
                .and_then(|mut d| d.remove(&key_ref.key))
                .map(|b| b.0)
                .ok_or_else(|| missing_key("ConfigMap"))
        }
    }
}
