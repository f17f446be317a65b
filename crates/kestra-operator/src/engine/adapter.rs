//! What each kind supplies to the engine: identity, desired state, observe, diff, write, delete.

use std::fmt::Debug;
use std::future::Future;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::{Serialize, de::DeserializeOwned};

use super::error::ReconcileError;
use super::refs::Reference;
use crate::crd::{DeletionPolicy, KestraStatus};
use crate::instances::InstanceId;
use crate::kestra::{Dialect, KestraClient, KestraError};

/// The spec fields every kind shares.
pub struct Common<'a> {
    /// Kestra namespace.
    pub namespace: &'a str,
    /// Flow id, key or filename.
    pub name: &'a str,
    pub tenant: Option<&'a str>,
    /// `spec.instanceRef`: `None` for the operator's default instance.
    pub instance_ref: Option<&'a crate::crd::InstanceRef>,
    pub deletion_policy: DeletionPolicy,
    pub suspend: bool,
    pub resync_period: Option<&'a str>,
}

/// The Kestra object a resource names, with the instance and tenant resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Which Kestra: the same id in two instances is two objects.
    pub instance: InstanceId,
    /// `None` for the tenant-less `/api/v1` root.
    pub tenant: Option<String>,
    pub namespace: String,
    /// Flow id, key, or normalised file path.
    pub name: String,
}

impl Target {
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
    /// `tenant/namespace/name`, the form kept in `status.ownedObject` (the instance is the
    /// resource's `spec.instanceRef`, which cannot change).
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.tenant.as_deref().unwrap_or("-"),
            self.namespace,
            self.name
        )
    }
}

/// How Kestra compares with the desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diff {
    InSync,
    Missing,
    Differs,
    /// A KV entry whose ttl has passed.
    Expired,
}

/// How thoroughly to look at Kestra.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObserveMode {
    /// The spec or a reference changed, or a sync was requested: read the object itself.
    Full,
    /// A periodic check: a kind may use a cheaper signal (a listing) and read only on change.
    Resync,
}

pub type Status<A> = KestraStatus<<A as Adapter>::Fields>;

/// The result of a write.
pub struct Written<A: Adapter> {
    pub fields: A::Fields,
    /// Kestra's state right after the write, when the kind read it back (or the write's answer
    /// carried it): compared with the spec to stop a rewrite loop.
    pub readback: Option<A::Observed>,
}

/// A kind adapter: small, mostly pure; the engine owns the lifecycle.
pub trait Adapter: Send + Sync + Sized + 'static {
    type Resource: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// What Kestra should hold, built from the spec and its references.
    type Desired: std::hash::Hash + Send + Sync;
    /// What Kestra holds.
    type Observed: Send + Sync;
    /// The kind's own status fields.
    type Fields: Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync;

    const KIND: &'static str;
    /// The Kestra noun for messages: `flow`, `key`, `file`.
    const NOUN: &'static str;

    fn common(resource: &Self::Resource) -> Common<'_>;
    fn status(resource: &Self::Resource) -> Option<&Status<Self>>;
    /// The Kestra object's name as Kestra keys it (e.g. a normalised path): two resources
    /// whose names Kestra stores as one object get the same name here.
    fn object_name(
        resource: &Self::Resource,
        _dialect: &Dialect,
    ) -> Result<String, ReconcileError> {
        Ok(Self::common(resource).name.to_string())
    }
    /// Secrets and ConfigMaps the spec reads.
    fn references(resource: &Self::Resource) -> Vec<Reference>;

    /// Resolve references and validate: everything admission could not check.
    fn desired(
        &self,
        client: &kube::Client,
        resource: &Self::Resource,
    ) -> impl Future<Output = Result<Self::Desired, ReconcileError>> + Send;

    fn observe(
        &self,
        kestra: &KestraClient,
        target: &Target,
        mode: ObserveMode,
        prior: Option<&Self::Fields>,
    ) -> impl Future<Output = Result<Self::Observed, KestraError>> + Send;

    /// Pure comparison: never churn Kestra for an equal object.
    fn diff(desired: &Self::Desired, observed: &Self::Observed) -> Diff;

    /// Write the desired state; returns the status fields it produced and, when the kind can
    /// have Kestra store something else than what was sent, what Kestra holds right after.
    fn write(
        &self,
        kestra: &KestraClient,
        target: &Target,
        desired: &Self::Desired,
    ) -> impl Future<Output = Result<Written<Self>, ReconcileError>> + Send;

    /// What Kestra changed, when the read-back after a write still differs from the spec.
    fn explain_difference(desired: &Self::Desired, observed: &Self::Observed) -> String;

    /// Status fields when Kestra already matched.
    fn in_sync_fields(
        desired: &Self::Desired,
        observed: &Self::Observed,
        prior: Option<&Self::Fields>,
    ) -> Self::Fields;

    /// Status fields after Kestra refused the desired state (e.g. a flow it did not validate).
    fn rejected_fields(prior: Self::Fields) -> Self::Fields {
        prior
    }

    /// The user-facing description of the synced object, e.g. `flow company.team/hello at revision 3`.
    fn describe(target: &Target, fields: &Self::Fields) -> String;

    fn delete(
        &self,
        kestra: &KestraClient,
        target: &Target,
    ) -> impl Future<Output = Result<(), KestraError>> + Send;

    /// Drop what the kind remembers of `target`: its resource is gone.
    fn forget(&self, target: &Target);
}
