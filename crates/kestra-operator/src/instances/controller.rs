//! The instance controller: on every replica it reads each `KestraInstance` and
//! `ClusterKestraInstance`, builds its client and checks Kestra, so that the registry (and the
//! webhook) know it; the leader also writes its status and finalizer, and holds its deletion
//! while resources still use it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

use super::settings::{Credential, Settings, settings};
use super::status::{Check, instance_status, needs_write};
use super::{Allowed, Instance, InstanceId, Instances};
use crate::crd::{
    ClusterKestraInstance, Connection, InstanceAuth, InstanceRef, InstanceStatus, KestraFlow,
    KestraInstance, KestraKeyValue, KestraNamespaceFile,
};
use crate::engine::finalizer::{finalizer_addition, finalizer_removal};
use crate::engine::refs::{RefKind, read_key};
use crate::engine::{FINALIZER, Reason, Shared, backoff_delay, current_time};
use crate::kestra::{CaBundle, KestraClient};
use crate::metrics::InstanceLabels;

/// How often a held deletion looks again at the resources still using the instance.
const HELD_RECHECK: Duration = Duration::from_secs(5);
/// How long the first listing of the instances may take before resources stop waiting for it.
const LOAD_WAIT: Duration = Duration::from_secs(30);

/// The settings of the instance controller.
#[derive(Clone, Debug)]
pub struct InstanceConfig {
    /// Where the Secrets and ConfigMaps of `ClusterKestraInstance`s live.
    pub operator_namespace: String,
    /// How often a healthy instance is checked again.
    pub check_period: Duration,
    /// Whether this operator writes the status and finalizer of ClusterKestraInstances (it
    /// always reads them).
    pub manage_cluster_instances: bool,
}

/// What the instance reconciles share.
pub struct InstanceContext {
    shared: Arc<Shared>,
    config: InstanceConfig,
    /// The leadership fence every instance client obeys.
    fence: watch::Receiver<bool>,
    failures: Mutex<HashMap<InstanceId, u32>>,
}

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
fn references(connection: &Connection) -> Vec<(RefKind, String)> {
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

/// Read what the spec names and make the client settings, or say why not.
async fn read_settings<K: InstanceResource>(
    obj: &K,
    ctx: &InstanceContext,
) -> Result<Settings, Check> {
    let client = &ctx.shared.client;
    let namespace = obj.references_namespace(&ctx.config.operator_namespace);
    let connection = obj.connection();
    let failed = |error: crate::engine::ReconcileError| Check::Failed {
        reason: error.reason(),
        message: format!("{error}; {}", error.advice()),
    };
    let invalid = |message: String| Check::Failed {
        reason: Reason::InvalidSpec,
        message: format!("{message}; fix the spec"),
    };
    let credential = match &connection.auth {
        None => None,
        Some(InstanceAuth {
            basic_auth_secret_ref: Some(key_ref),
            api_key_secret_ref: None,
        }) => Some(Credential::Basic(
            read_key(client, &namespace, RefKind::Secret, key_ref)
                .await
                .map_err(failed)?,
        )),
        Some(InstanceAuth {
            basic_auth_secret_ref: None,
            api_key_secret_ref: Some(key_ref),
        }) => Some(Credential::ApiKey(
            read_key(client, &namespace, RefKind::Secret, key_ref)
                .await
                .map_err(failed)?,
        )),
        Some(_) => {
            return Err(invalid(
                "set exactly one of spec.auth.basicAuthSecretRef or spec.auth.apiKeySecretRef"
                    .into(),
            ));
        }
    };
    let ca = match &connection.ca_bundle_ref {
        None => None,
        Some(source) => match source.reference() {
            Some((kind, key_ref)) => Some(CaBundle {
                origin: format!(
                    "{kind:?} {namespace}/{} key {:?}",
                    key_ref.name, key_ref.key
                ),
                pem: read_key(client, &namespace, kind, key_ref)
                    .await
                    .map_err(failed)?,
            }),
            None => {
                return Err(invalid(
                    "set exactly one of spec.caBundleRef.configMapKeyRef or secretKeyRef".into(),
                ));
            }
        },
    };
    settings(connection, credential, ca).map_err(invalid)
}

/// The version a client knows Kestra to run.
fn version<E>(client: &Result<KestraClient, E>) -> Option<crate::kestra::ServerInfo> {
    client.as_ref().ok().and_then(|c| c.server().cloned())
}

/// Kestra's version, then whether the credentials open the tenant.
async fn probe(client: &KestraClient, url: &str) -> Check {
    match client.server_info().await {
        Ok(info) => match client.check_access().await {
            Ok(()) => Check::Connected(info),
            Err(error) => Check::from_kestra(&error, url),
        },
        Err(error) => Check::from_kestra(&error, url),
    }
}

impl InstanceContext {
    /// Whether this replica writes the status and finalizer of `K` objects: the leader, and
    /// for cluster instances only an operator allowed to (one that sees every namespace).
    fn manages<K: InstanceResource>(&self) -> bool {
        self.shared.leading.load(Ordering::SeqCst)
            && (!K::CLUSTER_SCOPED || self.config.manage_cluster_instances)
    }

    fn new_client(&self, id: &InstanceId, settings: &Settings) -> Result<KestraClient, Check> {
        KestraClient::new(settings.config.clone(), self.shared.metrics.clone())
            .map(|client| client.labelled(&id.label()).fenced_by(self.fence.clone()))
            .map_err(|error| Check::Failed {
                reason: Reason::InvalidSpec,
                message: format!("{error}; fix the spec"),
            })
    }

    /// Build (or keep) the client, check Kestra, and put the result in the registry.
    async fn refresh<K: InstanceResource>(&self, obj: &K) -> Check {
        let id = obj.id();
        let url = obj.connection().url.clone();
        let previous = self.shared.instances.get(&id);
        // Read before the check: a reused client learns the version in place.
        let version_before = previous.as_deref().and_then(|p| version(&p.client));
        let settings = read_settings(obj, self).await;
        // The API server did not answer: keep what was known rather than fail every resource.
        if let (
            Some(_),
            Err(
                check @ Check::Failed {
                    reason: Reason::KubernetesError,
                    ..
                },
            ),
        ) = (&previous, &settings)
        {
            return check.clone();
        }
        let mut client = match &settings {
            Ok(settings) => match previous.as_deref() {
                Some(Instance {
                    client: Ok(client),
                    fingerprint,
                    ..
                }) if *fingerprint == settings.fingerprint => Ok(client.clone()),
                _ => self.new_client(&id, settings),
            },
            Err(check) => Err(check.clone()),
        };
        let check = match &client {
            Ok(client) => probe(client, &url).await,
            Err(check) => check.clone(),
        };
        // A Kestra upgraded in place: a new client, so that the new version's rules apply.
        if let (Ok(known), Check::Connected(info), Ok(settings)) = (&client, &check, &settings)
            && known.server().is_some_and(|s| s != info)
        {
            client = self.new_client(&id, settings);
        }
        if let (Ok(client), Check::Connected(info)) = (&client, &check) {
            client.set_server_info(info.clone());
        }
        let fingerprint = settings.as_ref().map_or(0, |s| s.fingerprint);
        let same = previous.as_deref().is_some_and(|p| {
            p.fingerprint == fingerprint
                && p.client.is_ok() == client.is_ok()
                && version_before == version(&client)
        });
        let revision = match &previous {
            Some(p) if same => p.revision,
            _ => self.shared.instances.new_revision(),
        };
        self.shared.instances.insert(Instance {
            id: id.clone(),
            client: client.map_err(|check| match check {
                Check::Failed { message, .. } => message,
                other => format!("{other:?}"),
            }),
            allowed: obj.allowed(),
            revision,
            fingerprint,
        });
        self.record_metrics(&id, &check);
        check
    }

    fn record_metrics(&self, id: &InstanceId, check: &Check) {
        let metrics = &self.shared.metrics;
        let label = id.label();
        metrics
            .instance_ready
            .get_or_create(&InstanceLabels {
                instance: metrics.instance_label(&label),
            })
            .set(i64::from(check.is_connected()));
        if let Check::Connected(info) = check {
            metrics.set_kestra_info(
                &label,
                &info.version,
                info.edition.as_deref().unwrap_or("unknown"),
            );
        }
    }

    /// Write the status (leader only) and an Event when the Ready condition changed.
    async fn record<K: InstanceResource>(&self, obj: &K, check: &Check) -> Result<(), kube::Error> {
        if !self.manages::<K>() {
            return Ok(());
        }
        let prior = obj.instance_status();
        let now = current_time();
        let status = instance_status(
            prior,
            obj.meta().generation,
            &obj.connection().url,
            check,
            &now,
        );
        if !needs_write(prior, &status, &now, self.shared.config.status_refresh) {
            return Ok(());
        }
        let before = prior
            .and_then(|p| p.conditions.first())
            .map(|c| (c.status, c.reason.clone()));
        let after = status
            .conditions
            .first()
            .map(|c| (c.status, c.reason.clone()));
        let patch = Patch::Apply(json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        }));
        K::api(self.shared.client.clone(), obj.namespace().as_deref())
            .patch_status(
                &obj.name_any(),
                &PatchParams::apply("kestra-operator").force(),
                &patch,
            )
            .await?;
        if before != after {
            let (type_, reason) = match check {
                Check::Connected(_) => (EventType::Normal, Reason::Connected),
                Check::Failed { reason, .. } => (EventType::Warning, *reason),
                Check::InUse { .. } => (EventType::Warning, Reason::InstanceInUse),
            };
            let note = status.reason.clone().unwrap_or_default();
            let event = Event {
                type_,
                reason: reason.as_str().to_string(),
                note: Some(note.chars().take(1000).collect()),
                action: "Check".to_string(),
                secondary: None,
            };
            // Sent in the background (the handle is not waited for).
            drop(
                self.shared
                    .recorder
                    .publish(event, obj.object_ref(&()), K::KIND)
                    .await,
            );
        }
        Ok(())
    }

    async fn patch_finalizers<K: InstanceResource>(
        &self,
        obj: &K,
        patch: json_patch::Patch,
    ) -> Result<(), kube::Error> {
        K::api(self.shared.client.clone(), obj.namespace().as_deref())
            .patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map(|_| ())
    }

    /// The resources naming `id`, read fresh: a deletion is decided on them.
    async fn users(&self, id: &InstanceId) -> Result<Vec<String>, kube::Error> {
        let namespaces: Vec<Option<String>> = match id {
            InstanceId::Namespaced { namespace, .. } => vec![Some(namespace.clone())],
            _ if self.shared.config.namespaces.is_empty() => vec![None],
            _ => self
                .shared
                .config
                .namespaces
                .iter()
                .cloned()
                .map(Some)
                .collect(),
        };
        let mut users = Vec::new();
        for namespace in &namespaces {
            let ns = namespace.as_deref();
            users.extend(
                users_of::<KestraFlow>(&self.shared.client, ns, id, |r| {
                    r.spec.instance_ref.as_ref()
                })
                .await?,
            );
            users.extend(
                users_of::<KestraKeyValue>(&self.shared.client, ns, id, |r| {
                    r.spec.instance_ref.as_ref()
                })
                .await?,
            );
            users.extend(
                users_of::<KestraNamespaceFile>(&self.shared.client, ns, id, |r| {
                    r.spec.instance_ref.as_ref()
                })
                .await?,
            );
        }
        Ok(users)
    }

    fn delay_after(&self, id: &InstanceId, check: &Check) -> Duration {
        let mut failures = self.failures.lock();
        if check.is_connected() {
            failures.remove(id);
            return self.config.check_period;
        }
        let count = failures.entry(id.clone()).or_insert(0);
        *count = count.saturating_add(1);
        backoff_delay(*count, Duration::from_secs(2), self.config.check_period)
    }
}

async fn users_of<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    id: &InstanceId,
    instance_ref: impl Fn(&K) -> Option<&InstanceRef>,
) -> Result<Vec<String>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api.list(&Default::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|r| InstanceId::of(&r.namespace().unwrap_or_default(), instance_ref(r)) == *id)
        .map(|r| {
            format!(
                "{} {}/{}",
                K::kind(&()),
                r.namespace().unwrap_or_default(),
                r.name_any()
            )
        })
        .collect())
}

/// Errors that end an instance reconcile early (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum InstanceReconcileError {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Patch(#[from] crate::engine::finalizer::PatchBuildError),
}

async fn reconcile<K: InstanceResource>(
    obj: Arc<K>,
    ctx: Arc<InstanceContext>,
) -> Result<Action, InstanceReconcileError> {
    let id = obj.id();
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    if obj.meta().deletion_timestamp.is_some() {
        // Until its finalizer goes the instance keeps serving: resources being deleted need it
        // to delete their Kestra objects.
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        let users = ctx.users(&id).await?;
        if users.is_empty() {
            if ctx.manages::<K>() {
                ctx.patch_finalizers(obj.as_ref(), finalizer_removal(obj.finalizers())?)
                    .await?;
            }
            return Ok(Action::requeue(HELD_RECHECK));
        }
        ctx.refresh(obj.as_ref()).await;
        ctx.record(obj.as_ref(), &Check::InUse { users }).await?;
        return Ok(Action::requeue(HELD_RECHECK));
    }
    if ctx.manages::<K>() && !has_finalizer {
        ctx.patch_finalizers(
            obj.as_ref(),
            finalizer_addition(obj.meta().finalizers.as_deref())?,
        )
        .await?;
    }
    let check = ctx.refresh(obj.as_ref()).await;
    ctx.record(obj.as_ref(), &check).await?;
    Ok(Action::requeue(ctx.delay_after(&id, &check)))
}

fn error_policy<K: InstanceResource>(
    obj: Arc<K>,
    error: &InstanceReconcileError,
    ctx: Arc<InstanceContext>,
) -> Action {
    tracing::warn!(kind = K::KIND, object = %ObjectRef::from_obj(obj.as_ref()), %error, "instance reconcile failed");
    let failed = Check::Failed {
        reason: Reason::KubernetesError,
        message: error.to_string(),
    };
    Action::requeue(ctx.delay_after(&obj.id(), &failed))
}

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
    let ctx = Arc::new(InstanceContext {
        shared: shared.clone(),
        config: config.clone(),
        fence,
        failures: Mutex::default(),
    });
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
