//! What the instance controller needs of each instance kind, and the Secrets and ConfigMaps an
//! instance reads.

use std::fmt::Debug;

use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Allowed, InstanceId};
use crate::crd::{ClusterKestraInstance, Connection, InstanceStatus, KestraInstance};
use crate::engine::refs::RefKind;

/// What the controller needs of each instance kind.
pub trait InstanceResource:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    const KIND: &'static str;
    const CLUSTER_SCOPED: bool;
    fn id(&self) -> InstanceId;
    fn connection(&self) -> &Connection;
    fn allowed(&self) -> Allowed;
    fn instance_status(&self) -> Option<&InstanceStatus>;
    /// The namespace of the Secrets and ConfigMaps it names.
    fn references_namespace(&self, operator_namespace: &str) -> String;
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
}

impl InstanceResource for KestraInstance {
    const KIND: &'static str = "KestraInstance";
    const CLUSTER_SCOPED: bool = false;
    fn id(&self) -> InstanceId {
        InstanceId::Namespaced {
            namespace: self.namespace().unwrap_or_default(),
            name: self.name_any(),
        }
    }
    fn connection(&self) -> &Connection {
        &self.spec.connection
    }
    fn allowed(&self) -> Allowed {
        Allowed::Any
    }
    fn instance_status(&self) -> Option<&InstanceStatus> {
        self.status.as_ref()
    }
    fn references_namespace(&self, _: &str) -> String {
        self.namespace().unwrap_or_default()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
}

impl InstanceResource for ClusterKestraInstance {
    const KIND: &'static str = "ClusterKestraInstance";
    const CLUSTER_SCOPED: bool = true;
    fn id(&self) -> InstanceId {
        InstanceId::Cluster {
            name: self.name_any(),
        }
    }
    fn connection(&self) -> &Connection {
        &self.spec.connection
    }
    fn allowed(&self) -> Allowed {
        match &self.spec.allowed_namespaces {
            None => Allowed::Selector(None),
            Some(selector) => match kube::core::Selector::try_from(selector.clone()) {
                Ok(selector) => Allowed::Selector(Some(selector)),
                Err(e) => {
                    Allowed::Invalid(format!("spec.allowedNamespaces is not a selector: {e}"))
                }
            },
        }
    }
    fn instance_status(&self) -> Option<&InstanceStatus> {
        self.status.as_ref()
    }
    fn references_namespace(&self, operator_namespace: &str) -> String {
        operator_namespace.to_string()
    }
    fn api(client: kube::Client, _: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// The Secrets and ConfigMaps an instance reads.
pub(super) fn references(connection: &Connection) -> Vec<(RefKind, String)> {
    let mut refs = Vec::new();
    if let Some(auth) = &connection.auth {
        for key_ref in [&auth.basic_auth_secret_ref, &auth.api_key_secret_ref]
            .into_iter()
            .flatten()
        {
            refs.push((RefKind::Secret, key_ref.name.clone()));
        }
    }
    if let Some((kind, key_ref)) = connection
        .ca_bundle_ref
        .as_ref()
        .and_then(|c| c.reference())
    {
        refs.push((kind, key_ref.name.clone()));
    }
    refs
}
