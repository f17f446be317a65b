//! Wiring the instance kinds into kube-runtime controllers: their watches, the Secrets and
//! ConfigMaps they read, the namespace labels, and when the instances count as read.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch;

use super::Instances;
use super::controller::{InstanceConfig, InstanceContext, error_policy, reconcile};
use super::resource::{InstanceResource, references};
use crate::crd::{ClusterKestraInstance, KestraInstance};
use crate::engine::Shared;
use crate::engine::refs::RefKind;

/// How long the first listing of the instances may take before resources stop waiting for it.
const LOAD_WAIT: Duration = Duration::from_secs(30);

/// Only spec, deletion and finalizer changes start a reconcile, not the controller's own status
/// writes (each check writes `lastCheckTime`).
fn trigger_hash<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.uid.hash(&mut hasher);
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

/// Run the instance controllers until `shutdown` flips; `scopes` are the watched namespaces
/// (`None`: all).
pub async fn run_instances(
    shared: Arc<Shared>,
    config: InstanceConfig,
    fence: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    let scopes: Vec<Option<String>> = if shared.config.namespaces.is_empty() {
        vec![None]
    } else {
        shared.config.namespaces.iter().cloned().map(Some).collect()
    };
    let ctx = Arc::new(InstanceContext::new(shared.clone(), config.clone(), fence));
    let namespaces = watch_namespaces(&shared, shutdown.clone());
    let mut runs = Vec::new();
    let mut loads = Vec::new();
    for scope in &scopes {
        let (run, store) =
            controller::<KestraInstance>(&ctx, scope.clone(), scope.clone(), shutdown.clone());
        runs.push(run);
        loads.push(loaded::<KestraInstance>(shared.instances.clone(), store));
    }
    let (cluster_run, cluster_store) = controller::<ClusterKestraInstance>(
        &ctx,
        None,
        Some(config.operator_namespace.clone()),
        shutdown.clone(),
    );
    let cluster_load = loaded::<ClusterKestraInstance>(shared.instances.clone(), cluster_store);
    let instances = shared.instances.clone();
    tokio::spawn(async move {
        let all = async {
            future::join_all(loads).await;
            cluster_load.await;
            listed(&namespaces).await;
        };
        if tokio::time::timeout(LOAD_WAIT, all).await.is_err() {
            tracing::warn!(
                "the instances were not all read in time: resources naming one may say it does not exist until it is"
            );
        }
        instances.mark_loaded();
    });
    tokio::join!(future::join_all(runs), cluster_run);
}

/// Wait until the store is listed and every instance in it has been read once.
async fn loaded<K: InstanceResource>(instances: Arc<Instances>, store: Store<K>) {
    listed(&store).await;
    while store
        .state()
        .iter()
        .any(|obj| instances.get(&obj.id()).is_none())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Until the store has its first listing. Its readiness signal wakes one waiter only (the
/// controller's), so it is polled.
async fn listed<K>(store: &Store<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await {
            Ok(_) => return,
            Err(_) => continue,
        }
    }
}

/// The controller of one instance kind in `scope`, reading Secrets and ConfigMaps of
/// `references_scope`.
fn controller<K: InstanceResource>(
    ctx: &Arc<InstanceContext>,
    scope: Option<String>,
    references_scope: Option<String>,
    shutdown: watch::Receiver<bool>,
) -> (impl Future<Output = ()> + Send + 'static, Store<K>) {
    let client = ctx.shared.client.clone();
    let (reader, writer) = reflector::store();
    let instances = ctx.shared.instances.clone();
    let metrics = ctx.shared.metrics.clone();
    let trigger = watcher(
        K::api(client.clone(), scope.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .reflect(writer)
    .inspect_ok(move |event| {
        // Gone (its finalizer removed): resources naming it now wait with InstanceNotFound.
        if let watcher::Event::Delete(obj) = event {
            instances.remove(&obj.id());
            metrics.forget_instance(&obj.id().label());
        }
    })
    .touched_objects()
    .predicate_filter(trigger_hash::<K>, PredicateConfig::default());
    let operator_namespace = ctx.config.operator_namespace.clone();
    let secrets = watcher(
        scoped_api::<PartialObjectMeta<Secret>>(&client, references_scope.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .touched_objects();
    let config_maps = watcher(
        scoped_api::<PartialObjectMeta<ConfigMap>>(&client, references_scope.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .touched_objects();
    let mut stop = shutdown;
    let run = Controller::for_stream(trigger, reader.clone())
        .watches_stream(
            secrets,
            reference_mapper::<K, Secret>(
                RefKind::Secret,
                reader.clone(),
                operator_namespace.clone(),
            ),
        )
        .watches_stream(
            config_maps,
            reference_mapper::<K, ConfigMap>(
                RefKind::ConfigMap,
                reader.clone(),
                operator_namespace,
            ),
        )
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile::<K>, error_policy::<K>, ctx.clone())
        .for_each(|_| future::ready(()));
    (run, reader)
}

/// The instances reading a Secret or ConfigMap that changed (a rotated credential, a new CA).
fn reference_mapper<K: InstanceResource, R: Resource>(
    kind: RefKind,
    store: Store<K>,
    operator_namespace: String,
) -> impl Fn(PartialObjectMeta<R>) -> Vec<ObjectRef<K>> + Send + Sync + 'static {
    move |changed| {
        let namespace = changed.metadata.namespace.clone().unwrap_or_default();
        let name = changed.metadata.name.clone().unwrap_or_default();
        store
            .state()
            .into_iter()
            .filter(|i| {
                i.references_namespace(&operator_namespace) == namespace
                    && references(i.connection()).contains(&(kind, name.clone()))
            })
            .map(|i| ObjectRef::from_obj(i.as_ref()))
            .collect()
    }
}

fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Namespace labels, for `allowedNamespaces`; a change of a namespace's labels is announced.
fn watch_namespaces(
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> Store<PartialObjectMeta<Namespace>> {
    let (reader, writer) = reflector::store();
    shared.instances.set_namespaces(reader.clone());
    let instances = shared.instances.clone();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let labels_hash = |obj: &PartialObjectMeta<Namespace>| {
        let mut hasher = DefaultHasher::new();
        obj.metadata.labels.hash(&mut hasher);
        hasher.finish()
    };
    let stream = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(shared.client.clone()),
        watcher::Config::default().any_semantic(),
    )
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let name = obj.name_any();
                let hash = labels_hash(obj);
                let before = seen.insert(name.clone(), hash);
                if before.is_some_and(|b| b != hash) {
                    instances.namespace_labels_changed(&name);
                }
            }
            watcher::Event::Delete(obj) => {
                seen.remove(&obj.name_any());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        })
        .map_err(|error| tracing::warn!(%error, "watching namespaces (for ClusterKestraInstance allowedNamespaces)"));
    let mut stop = shutdown;
    tokio::spawn(async move {
        tokio::select! {
            _ = stream.for_each(|_| future::ready(())) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    });
    reader
}
