//! Wiring one kind into kube-runtime controllers: watches, triggers, concurrency, shutdown.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::adapter::Adapter;
use super::claims::ClaimIndex;
use super::events::EventRecorder;
use super::refs::{RefKind, Reference};
use super::status::ready_condition;
use super::{KindContext, RECONCILE_REQUEST_ANNOTATION, reconcile, target_of};
use crate::crd::ConditionStatus;
use crate::instances::{Change, InstanceId, Instances};
use crate::metrics::{ConditionLabels, Metrics};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Default period between drift checks.
    pub resync_period: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Reconciles running at once per kind and namespace watch.
    pub concurrency: u16,
    /// Kubernetes namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// How often an unchanged status still gets a fresh `lastSyncTime`.
    pub status_refresh: Duration,
}

/// What every kind's reconciles share.
pub struct Shared {
    pub client: kube::Client,
    /// The default Kestra instance and the `KestraInstance`/`ClusterKestraInstance` ones.
    pub instances: Arc<Instances>,
    pub metrics: Arc<Metrics>,
    pub recorder: EventRecorder,
    pub config: EngineConfig,
    /// Kinds whose caches have synced (for `/readyz`).
    pub ready_kinds: AtomicUsize,
    /// A replica waiting for the leader Lease: healthy, but it runs no controllers.
    pub standby: std::sync::atomic::AtomicBool,
    /// This replica reconciles (the leader, or the only replica): it alone writes to Kestra and
    /// to the instances' status.
    pub leading: std::sync::atomic::AtomicBool,
}

/// Only spec, annotation and deletion changes start a reconcile: the operator's own status and
/// finalizer writes do not (a reconcile adds the finalizer and applies the spec in one pass), so
/// a sync costs one Kestra read, not two. A finalizer removed by hand is added back by the next
/// resync.
fn trigger_hash<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.uid.hash(&mut hasher);
    meta.generation.hash(&mut hasher);
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION))
        .hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// What the caches keep of a resource: not `managedFields` (often as large as the rest) nor
/// kubectl's copy of the last applied manifest, which the operator never reads. At 10,000
/// resources they are most of the memory.
fn trim_for_cache<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Run the controllers of one kind until `shutdown` flips to true.
pub async fn run_kind<A: Adapter>(
    shared: Arc<Shared>,
    adapter: A,
    shutdown: watch::Receiver<bool>,
) {
    let scopes: Vec<Option<String>> = if shared.config.namespaces.is_empty() {
        vec![None]
    } else {
        shared.config.namespaces.iter().cloned().map(Some).collect()
    };
    let mut stores = Vec::new();
    let mut peers = HashMap::new();
    let mut controllers = Vec::new();
    let claims = Arc::new(ClaimIndex::default());
    let memory = Arc::new(super::Memory::default());
    // Before any watch starts: an instance read after this is announced, one read before is
    // seen by every watch event.
    let instance_changes = shared.instances.subscribe();
    for scope in &scopes {
        let api: Api<A::Resource> = match scope {
            Some(ns) => Api::namespaced(shared.client.clone(), ns),
            None => Api::all(shared.client.clone()),
        };
        let (reader, writer) = reflector::store();
        let (index, index_scope, instances) =
            (claims.clone(), scope.clone(), shared.instances.clone());
        let forget = memory.clone();
        let (failed_index, failed_scope) = (claims.clone(), scope.clone());
        let trigger = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(trim_for_cache)
            .reflect(writer)
            .inspect_err(move |_| failed_index.watch_failed(&failed_scope))
            .inspect_ok(move |event| {
                let gone =
                    index.observe(&index_scope, event, |obj| target_of::<A>(&instances, obj));
                for uid in gone {
                    forget.forget(&uid);
                }
            })
            .touched_objects()
            .predicate_filter(trigger_hash::<A::Resource>, PredicateConfig::default());
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        peers.insert(scope.clone(), peer_tx);
        stores.push(reader.clone());
        let controller = Controller::for_stream(trigger, reader.clone())
            .with_config(ControllerConfig::default().concurrency(shared.config.concurrency))
            .watches_stream(
                reference_stream::<Secret>(&shared.client, scope),
                reference_mapper::<A, Secret>(reader.clone(), RefKind::Secret),
            )
            .watches_stream(
                reference_stream::<ConfigMap>(&shared.client, scope),
                reference_mapper::<A, ConfigMap>(reader.clone(), RefKind::ConfigMap),
            )
            .reconcile_on(UnboundedReceiverStream::new(peer_rx));
        controllers.push(controller);
    }
    let stores_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctx = Arc::new(KindContext {
        shared: shared.clone(),
        adapter,
        claims,
        stores_ready: stores_ready.clone(),
        peers,
        memory,
        locks: Default::default(),
        digests: Default::default(),
    });
    tokio::spawn(follow_instances::<A>(
        shared.clone(),
        instance_changes,
        stores.clone(),
        ctx.claims.clone(),
        ctx.peers.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(mark_ready(shared.clone(), stores.clone(), stores_ready));
    tokio::spawn(count_objects::<A>(
        shared.metrics.clone(),
        stores,
        shutdown.clone(),
    ));
    let runs = controllers.into_iter().map(|controller| {
        let mut stop = shutdown.clone();
        controller
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .run(
                reconcile::reconcile::<A>,
                reconcile::error_policy::<A>,
                ctx.clone(),
            )
            .for_each(|_| future::ready(()))
    });
    future::join_all(runs).await;
}

/// When an instance changes (created, deleted, another URL, credentials or version) or a
/// namespace's labels do, the resources concerned name their Kestra object again and are synced:
/// their claims follow at once, and a resource waiting for its instance does not wait for its
/// backoff.
async fn follow_instances<A: Adapter>(
    shared: Arc<Shared>,
    mut changes: broadcast::Receiver<Change>,
    stores: Vec<Store<A::Resource>>,
    claims: Arc<ClaimIndex>,
    peers: HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<A::Resource>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let concerned = |obj: &A::Resource| -> bool {
            let namespace = obj.namespace().unwrap_or_default();
            let reference = A::common(obj).instance_ref;
            match &change {
                Ok(Change::Instance(id)) => InstanceId::of(&namespace, reference) == *id,
                Ok(Change::NamespaceLabels(changed)) => {
                    *changed == namespace
                        && matches!(
                            InstanceId::of(&namespace, reference),
                            InstanceId::Cluster { .. }
                        )
                }
                // Changes were missed: every resource naming an instance.
                Err(_) => reference.is_some(),
            }
        };
        if matches!(change, Err(broadcast::error::RecvError::Closed)) {
            return;
        }
        let objects: Vec<Arc<A::Resource>> = stores
            .iter()
            .flat_map(|store| store.state())
            .filter(|obj| concerned(obj))
            .collect();
        if objects.is_empty() {
            continue;
        }
        claims.reindex(&objects, |obj| target_of::<A>(&shared.instances, obj));
        for obj in &objects {
            let namespace = obj.namespace();
            let sender = peers.get(&namespace).or_else(|| peers.get(&None));
            if let Some(sender) = sender {
                let _ = sender.send(ObjectRef::from_obj(obj.as_ref()));
            }
        }
    }
}

fn reference_stream<K>(
    client: &kube::Client,
    scope: &Option<String>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Metadata only: the operator never caches Secret values.
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .touched_objects()
}

fn reference_mapper<A: Adapter, K: Resource>(
    store: Store<A::Resource>,
    kind: RefKind,
) -> impl Fn(PartialObjectMeta<K>) -> Vec<ObjectRef<A::Resource>> + Send + Sync + 'static {
    move |changed| {
        let namespace = changed.namespace();
        let reference = Reference {
            kind,
            name: changed.name_any(),
        };
        store
            .state()
            .into_iter()
            .filter(|r| r.namespace() == namespace && A::references(r).contains(&reference))
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    }
}

async fn mark_ready<K: Resource + Clone>(
    shared: Arc<Shared>,
    stores: Vec<Store<K>>,
    stores_ready: Arc<std::sync::atomic::AtomicBool>,
) where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    for store in stores {
        // The store's readiness signal wakes only one waiter (the controller's), so poll it.
        loop {
            match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
    }
    stores_ready.store(true, Ordering::SeqCst);
    shared.ready_kinds.fetch_add(1, Ordering::SeqCst);
}

/// Keep the objects-per-condition gauge current from the caches.
async fn count_objects<A: Adapter>(
    metrics: Arc<Metrics>,
    stores: Vec<Store<A::Resource>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let mut counts: HashMap<ConditionStatus, i64> = HashMap::from([
            (ConditionStatus::True, 0),
            (ConditionStatus::False, 0),
            (ConditionStatus::Unknown, 0),
        ]);
        for store in &stores {
            for obj in store.state() {
                let ready =
                    ready_condition(A::status(&obj)).map_or(ConditionStatus::Unknown, |c| c.status);
                *counts.entry(ready).or_default() += 1;
            }
        }
        for (ready, count) in counts {
            metrics
                .objects
                .get_or_create(&ConditionLabels {
                    kind: A::KIND,
                    ready,
                })
                .set(count);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
