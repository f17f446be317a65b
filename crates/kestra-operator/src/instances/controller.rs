//! The instance controller: on every replica it reads each `KestraInstance` and
//! `ClusterKestraInstance`, builds its client and checks Kestra, so that the registry (and the
//! webhook) know it; the leader also writes its status and finalizer, and holds its deletion
//! while resources still use it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

use super::check::{probe, read_settings, version};
use super::resource::InstanceResource;
use super::settings::Settings;
use super::status::{Check, instance_status, needs_write};
use super::{Instance, InstanceId};
use crate::crd::{InstanceRef, KestraFlow, KestraKeyValue, KestraNamespaceFile};
use crate::engine::finalizer::{finalizer_addition, finalizer_removal};
use crate::engine::{FINALIZER, Reason, Shared, backoff_delay, current_time};
use crate::kestra::KestraClient;
use crate::metrics::InstanceLabels;

/// How often a held deletion looks again at the resources still using the instance.
const HELD_RECHECK: Duration = Duration::from_secs(5);

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
    pub(super) shared: Arc<Shared>,
    pub(super) config: InstanceConfig,
    /// The leadership fence every instance client obeys.
    fence: watch::Receiver<bool>,
    failures: Mutex<HashMap<InstanceId, u32>>,
}

impl InstanceContext {
    pub fn new(shared: Arc<Shared>, config: InstanceConfig, fence: watch::Receiver<bool>) -> Self {
        Self {
            shared,
            config,
            fence,
            failures: Mutex::default(),
        }
    }

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
        let settings =
            read_settings(obj, &self.shared.client, &self.config.operator_namespace).await;
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

pub(super) async fn reconcile<K: InstanceResource>(
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

pub(super) fn error_policy<K: InstanceResource>(
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
