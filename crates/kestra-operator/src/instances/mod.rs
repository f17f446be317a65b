//! Kestra instances: the operator's default one (from its flags) and the `KestraInstance` and
//! `ClusterKestraInstance` resources, each with its own client, rate limit and metrics label.
//! Resources name theirs with `spec.instanceRef`; everything the engine keys by Kestra object
//! (claims, locks, listings) carries the instance, so two instances never meet.

mod check;
pub mod controller;
mod resource;
mod settings;
mod status;
mod watches;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use k8s_openapi::api::core::v1::Namespace;
use kube::core::{PartialObjectMeta, Selector, SelectorExt};
use kube::runtime::reflector::Store;
use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::crd::{InstanceKind, InstanceRef};
use crate::kestra::KestraClient;
use crate::metrics::DEFAULT_INSTANCE_LABEL;

pub use controller::InstanceConfig;
pub use settings::{Settings, settings};
pub use watches::run_instances;

/// Which Kestra a resource talks to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceId {
    /// The operator's flags (`KESTRA_API_URL`, ...): resources without `spec.instanceRef`.
    Default,
    Namespaced {
        namespace: String,
        name: String,
    },
    Cluster {
        name: String,
    },
}

impl InstanceId {
    /// The instance a resource of `namespace` names (a `KestraInstance` is always of the
    /// resource's own namespace: no reference can reach another namespace's).
    pub fn of(namespace: &str, reference: Option<&InstanceRef>) -> Self {
        match reference {
            None => Self::Default,
            Some(InstanceRef {
                kind: InstanceKind::KestraInstance,
                name,
            }) => Self::Namespaced {
                namespace: namespace.to_string(),
                name: name.clone(),
            },
            Some(InstanceRef {
                kind: InstanceKind::ClusterKestraInstance,
                name,
            }) => Self::Cluster { name: name.clone() },
        }
    }

    /// The `instance` metric label: `default`, `KestraInstance/NAMESPACE/NAME` or
    /// `ClusterKestraInstance/NAME`.
    pub fn label(&self) -> String {
        match self {
            Self::Default => DEFAULT_INSTANCE_LABEL.to_string(),
            Self::Namespaced { namespace, name } => format!("KestraInstance/{namespace}/{name}"),
            Self::Cluster { name } => format!("ClusterKestraInstance/{name}"),
        }
    }
}

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("the operator's default Kestra instance"),
            Self::Namespaced { namespace, name } => write!(f, "KestraInstance {namespace}/{name}"),
            Self::Cluster { name } => write!(f, "ClusterKestraInstance {name}"),
        }
    }
}

/// Why a resource cannot use the instance it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    #[error("{0} does not exist")]
    NotFound(InstanceId),
    #[error("{id} does not allow resources of namespace {namespace}: {why}")]
    NotAllowed {
        id: InstanceId,
        namespace: String,
        why: String,
    },
    #[error("{id} cannot be used: {why}")]
    NotReady { id: InstanceId, why: String },
}

/// Which namespaces may use an instance.
#[derive(Clone, Debug)]
pub enum Allowed {
    /// The default instance, and a `KestraInstance` (only its own namespace can name it).
    Any,
    /// A `ClusterKestraInstance`: namespaces whose labels match; `None` when it allows none.
    Selector(Option<Selector>),
    /// `allowedNamespaces` cannot be read as a selector.
    Invalid(String),
}

/// One instance as the engine uses it.
#[derive(Clone, Debug)]
pub struct Instance {
    pub id: InstanceId,
    /// The client, or why there is none (a Secret missing, a setting Kestra cannot take).
    pub client: Result<KestraClient, String>,
    pub allowed: Allowed,
    /// Changes whenever what the client talks to changes (URL, tenant, credentials, CA, version):
    /// the instance's resources are then read afresh instead of trusting what was synced.
    pub revision: u64,
    /// What the client was built from (secret values included, hashed).
    pub fingerprint: u64,
}

/// A client ready for one resource.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub client: KestraClient,
    pub revision: u64,
}

/// What changed among the instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Instance(InstanceId),
    /// This namespace's labels changed: which `ClusterKestraInstance`s allow it may have.
    NamespaceLabels(String),
}

/// Every instance the operator knows, shared by the kinds, the instance controller and the
/// webhook.
pub struct Instances {
    default: KestraClient,
    named: RwLock<HashMap<InstanceId, Arc<Instance>>>,
    /// Namespace labels, for `allowedNamespaces` (set once the namespace watch starts).
    namespaces: RwLock<Option<Store<PartialObjectMeta<Namespace>>>>,
    changes: broadcast::Sender<Change>,
    /// Whether every instance resource has been read once (and the namespace labels listed):
    /// until then a resource naming one would be told, wrongly, that it does not exist.
    loaded: AtomicBool,
    next_revision: AtomicU64,
}

impl Instances {
    pub fn new(default: KestraClient) -> Arc<Self> {
        Arc::new(Self {
            default,
            named: RwLock::default(),
            namespaces: RwLock::default(),
            changes: broadcast::channel(1024).0,
            loaded: AtomicBool::new(false),
            next_revision: AtomicU64::new(1),
        })
    }

    /// The operator's default instance.
    pub fn default_client(&self) -> &KestraClient {
        &self.default
    }

    /// The client a resource of `namespace` naming `reference` uses.
    pub fn resolve(
        &self,
        namespace: &str,
        reference: Option<&InstanceRef>,
    ) -> Result<Resolved, InstanceError> {
        let id = InstanceId::of(namespace, reference);
        if id == InstanceId::Default {
            return Ok(Resolved {
                client: self.default.clone(),
                revision: 0,
            });
        }
        let instance = self
            .get(&id)
            .ok_or_else(|| InstanceError::NotFound(id.clone()))?;
        self.check_allowed(&instance, namespace)?;
        match &instance.client {
            Ok(client) => Ok(Resolved {
                client: client.clone(),
                revision: instance.revision,
            }),
            Err(why) => Err(InstanceError::NotReady {
                id,
                why: why.clone(),
            }),
        }
    }

    fn check_allowed(&self, instance: &Instance, namespace: &str) -> Result<(), InstanceError> {
        let refuse = |why: String| InstanceError::NotAllowed {
            id: instance.id.clone(),
            namespace: namespace.to_string(),
            why,
        };
        match &instance.allowed {
            Allowed::Any => Ok(()),
            Allowed::Invalid(why) => Err(refuse(why.clone())),
            Allowed::Selector(None) => Err(refuse(
                "it has no spec.allowedNamespaces (no namespace may use it)".to_string(),
            )),
            Allowed::Selector(Some(selector)) => {
                let labels = self.namespace_labels(namespace);
                if selector.matches(&labels) {
                    Ok(())
                } else {
                    Err(refuse(format!(
                        "its spec.allowedNamespaces ({selector}) does not select it"
                    )))
                }
            }
        }
    }

    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        // A lookup by name, not a scan: this runs for every watch event of a resource naming a
        // cluster instance.
        let store = self.namespaces.read();
        store
            .as_ref()
            .and_then(|s| s.get(&kube::runtime::reflector::ObjectRef::new(namespace)))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    pub fn get(&self, id: &InstanceId) -> Option<Arc<Instance>> {
        self.named.read().get(id).cloned()
    }

    /// Every named instance.
    pub fn all(&self) -> Vec<Arc<Instance>> {
        self.named.read().values().cloned().collect()
    }

    /// Put `instance` in place (its revision already decided), saying so when it changed.
    pub fn insert(&self, instance: Instance) {
        let id = instance.id.clone();
        let (revision, allowed) = (instance.revision, instance.allowed.clone());
        let previous = self.named.write().insert(id.clone(), Arc::new(instance));
        if previous.is_none_or(|p| p.revision != revision || !same_allowed(&p.allowed, &allowed)) {
            let _ = self.changes.send(Change::Instance(id));
        }
    }

    pub fn remove(&self, id: &InstanceId) {
        if self.named.write().remove(id).is_some() {
            let _ = self.changes.send(Change::Instance(id.clone()));
        }
    }

    /// A revision no instance had before.
    pub fn new_revision(&self) -> u64 {
        self.next_revision.fetch_add(1, Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn namespace_labels_changed(&self, namespace: &str) {
        let _ = self
            .changes
            .send(Change::NamespaceLabels(namespace.to_string()));
    }

    pub fn set_namespaces(&self, store: Store<PartialObjectMeta<Namespace>>) {
        *self.namespaces.write() = Some(store);
    }

    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::SeqCst);
    }
}

fn same_allowed(a: &Allowed, b: &Allowed) -> bool {
    match (a, b) {
        (Allowed::Any, Allowed::Any) => true,
        (Allowed::Selector(a), Allowed::Selector(b)) => {
            a.as_ref().map(ToString::to_string) == b.as_ref().map(ToString::to_string)
        }
        (Allowed::Invalid(a), Allowed::Invalid(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> KestraClient {
        crate::adapters::test_support::client("http://127.0.0.1:9")
    }

    fn instance(id: InstanceId, allowed: Allowed) -> Instance {
        Instance {
            id,
            client: Ok(client()),
            allowed,
            revision: 7,
            fingerprint: 1,
        }
    }

    fn cluster(name: &str) -> InstanceRef {
        InstanceRef {
            kind: InstanceKind::ClusterKestraInstance,
            name: name.into(),
        }
    }

    #[test]
    fn a_kestra_instance_is_always_of_the_resources_own_namespace() {
        let reference = InstanceRef {
            kind: InstanceKind::KestraInstance,
            name: "staging".into(),
        };
        assert_eq!(
            InstanceId::of("team-a", Some(&reference)),
            InstanceId::Namespaced {
                namespace: "team-a".into(),
                name: "staging".into()
            }
        );
        assert_eq!(InstanceId::of("team-a", None), InstanceId::Default);
        assert_eq!(
            InstanceId::of("team-a", Some(&cluster("prod"))).label(),
            "ClusterKestraInstance/prod"
        );
        let instances = Instances::new(client());
        instances.insert(instance(
            InstanceId::Namespaced {
                namespace: "team-b".into(),
                name: "staging".into(),
            },
            Allowed::Any,
        ));
        // team-b's instance is not team-a's.
        assert!(matches!(
            instances.resolve("team-a", Some(&reference)),
            Err(InstanceError::NotFound(_))
        ));
        assert_eq!(
            instances
                .resolve("team-b", Some(&reference))
                .unwrap()
                .revision,
            7
        );
    }

    #[test]
    fn a_cluster_instance_serves_only_the_namespaces_it_selects() {
        let instances = Instances::new(client());
        let id = InstanceId::Cluster {
            name: "prod".into(),
        };
        instances.insert(instance(id.clone(), Allowed::Selector(None)));
        let refused = instances
            .resolve("team-a", Some(&cluster("prod")))
            .unwrap_err();
        assert!(
            matches!(refused, InstanceError::NotAllowed { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("no namespace may use it"),
            "{refused}"
        );
        // `{}` selects every namespace.
        let everything = Selector::default();
        instances.insert(instance(id.clone(), Allowed::Selector(Some(everything))));
        assert!(instances.resolve("team-a", Some(&cluster("prod"))).is_ok());
        // A selector on a label team-a does not have (no namespace store: no labels).
        let selector: Selector = Selector::from_iter(
            [("kestra", "prod")]
                .map(|(k, v)| kube::core::Expression::Equal(k.to_string(), v.to_string())),
        );
        instances.insert(instance(id, Allowed::Selector(Some(selector))));
        let refused = instances
            .resolve("team-a", Some(&cluster("prod")))
            .unwrap_err();
        assert!(refused.to_string().contains("kestra=prod"), "{refused}");
    }

    #[test]
    fn changes_are_announced_once() {
        let instances = Instances::new(client());
        let mut changes = instances.subscribe();
        let id = InstanceId::Cluster {
            name: "prod".into(),
        };
        instances.insert(instance(id.clone(), Allowed::Any));
        instances.insert(instance(id.clone(), Allowed::Any));
        instances.remove(&id);
        assert_eq!(changes.try_recv().unwrap(), Change::Instance(id.clone()));
        assert_eq!(changes.try_recv().unwrap(), Change::Instance(id));
        assert!(
            changes.try_recv().is_err(),
            "the same instance again is no change"
        );
    }
}
