//! The lifecycle every kind shares: finalizer, suspend, conflicts, observe, diff, write,
//! status, Events, metrics, backoff, resync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::adapter::{Adapter, Status, Target};
use super::cleanup::{Cleaned, cleanup};
use super::error::ReconcileError;
use super::finalizer::{
    FinalizerStep, PatchBuildError, finalizer_addition, finalizer_removal, finalizer_step,
};
use super::ownership::Claim;
use super::reason::Reason;
use super::record::finish;
use super::sync::sync;
use super::{FINALIZER, KindContext, RECONCILE_REQUEST_ANNOTATION};
use crate::metrics::{ErrorLabels, KindLabels};

/// Errors that reach the controller's error policy: the finalizer could not be added or
/// removed, or the Kestra object could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("adding the finalizer: {0}")]
    AddFinalizer(#[source] kube::Error),
    #[error("removing the finalizer: {0}")]
    RemoveFinalizer(#[source] kube::Error),
    #[error("{0}")]
    Cleanup(#[source] ReconcileError),
    #[error(transparent)]
    Patch(#[from] PatchBuildError),
}

impl EngineError {
    fn reason(&self) -> Reason {
        match self {
            Self::AddFinalizer(_) | Self::RemoveFinalizer(_) | Self::Patch(_) => {
                Reason::KubernetesError
            }
            Self::Cleanup(inner) => inner.reason(),
        }
    }
}

pub async fn reconcile<A: Adapter>(
    obj: Arc<A::Resource>,
    ctx: Arc<KindContext<A>>,
) -> Result<Action, EngineError> {
    let waits_for_instances =
        A::common(obj.as_ref()).instance_ref.is_some() && !ctx.shared.instances.loaded();
    if !ctx.stores_ready.load(std::sync::atomic::Ordering::SeqCst) || waits_for_instances {
        // Ownership is decided across every watched namespace: wait until all are listed (and a
        // resource naming an instance until every instance was read once, or it would be told
        // that its instance does not exist).
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let started = Instant::now();
    ctx.shared.recorder.forget_stale();
    let labels = KindLabels { kind: A::KIND };
    ctx.shared.metrics.reconciles.get_or_create(&labels).inc();
    let result = with_finalizer(obj.as_ref(), &ctx).await;
    ctx.shared
        .metrics
        .reconcile_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    result
}

/// The finalizer is added and the spec applied in one reconcile: waiting for the watch to
/// bring the finalizer back before applying would cost every new resource a second trip
/// through the queue (and on a cold sync of thousands, a second pass over all of them).
async fn with_finalizer<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
) -> Result<Action, EngineError> {
    let api: Api<A::Resource> = Api::namespaced(
        ctx.shared.client.clone(),
        &obj.namespace().unwrap_or_default(),
    );
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    match finalizer_step(obj.meta().deletion_timestamp.is_some(), has_finalizer) {
        FinalizerStep::Gone => Ok(Action::await_change()),
        FinalizerStep::Cleanup => {
            let released = match cleanup(obj, ctx).await.map_err(EngineError::Cleanup)? {
                Cleaned::Wait(action) => return Ok(action),
                Cleaned::Done(released) => released,
            };
            let patch = finalizer_removal(obj.finalizers()).map_err(EngineError::Patch)?;
            api.patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(EngineError::RemoveFinalizer)?;
            // A resource that lost a conflict to this one may own the object now that it is gone.
            if let Some(target) = released {
                ctx.wake_peers(obj, &target);
            }
            Ok(Action::await_change())
        }
        FinalizerStep::AddThenApply => {
            let patch =
                finalizer_addition(obj.meta().finalizers.as_deref()).map_err(EngineError::Patch)?;
            api.patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(EngineError::AddFinalizer)?;
            Ok(apply(obj, ctx).await)
        }
        FinalizerStep::Apply => Ok(apply(obj, ctx).await),
    }
}

/// The error policy: backoff per object for what the reconcile could not handle itself.
pub fn error_policy<A: Adapter>(
    obj: Arc<A::Resource>,
    error: &EngineError,
    ctx: Arc<KindContext<A>>,
) -> Action {
    let reason = error.reason();
    ctx.shared
        .metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            kind: A::KIND,
            reason,
        })
        .inc();
    tracing::warn!(kind = A::KIND, object = %ObjectRef::from_obj(obj.as_ref()), reason = reason.as_str(), error = %error, "reconcile failed");
    Action::requeue(ctx.backoff(obj.as_ref()))
}

fn requested_at<A: Adapter>(obj: &A::Resource) -> Option<String> {
    obj.annotations().get(RECONCILE_REQUEST_ANNOTATION).cloned()
}

async fn apply<A: Adapter>(obj: &A::Resource, ctx: &KindContext<A>) -> Action {
    let status = A::status(obj);
    let generation = obj.meta().generation;
    let requested = requested_at::<A>(obj);
    let forced = requested.is_some()
        && requested != status.and_then(|s| s.last_handled_reconcile_at.clone());
    let spec_changed = status.and_then(|s| s.observed_generation) != generation;
    let bound = ctx.bind(obj);
    // One reconcile at a time per Kestra object, from the ownership decision to the status.
    let _guard = match &bound {
        Ok(bound) => Some(ctx.locks.lock(&bound.target).await),
        Err(_) => None,
    };
    let result = sync(obj, ctx, status, bound, spec_changed || forced).await;
    finish(obj, ctx, result, requested).await
}

pub(super) fn claim_of<K: Resource>(obj: &K) -> Claim {
    Claim {
        created: obj
            .meta()
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        namespace: obj.meta().namespace.clone().unwrap_or_default(),
        name: obj.meta().name.clone().unwrap_or_default(),
    }
}

pub(super) fn status_patch<A: Adapter>(status: &Status<A>) -> Patch<serde_json::Value> {
    let api_version = <A::Resource as Resource>::api_version(&());
    let kind = <A::Resource as Resource>::kind(&());
    Patch::Apply(json!({ "apiVersion": api_version, "kind": kind, "status": status }))
}

pub(super) fn status_params() -> PatchParams {
    PatchParams::apply("kestra-operator").force()
}

/// A merge patch clearing `status.ownedObject` and nothing else: an apply of the whole status
/// would have to start from the cached one, which may be older than the status stored.
pub(super) fn owned_object_clearing() -> Patch<serde_json::Value> {
    Patch::Merge(json!({ "status": { "ownedObject": null } }))
}

/// Now, to the second (as status times are written).
pub fn current_time() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(now.round(k8s_openapi::jiff::Unit::Second).unwrap_or(now))
}

pub(super) fn age(then: &Time) -> Option<Duration> {
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(then.0);
    Duration::try_from(elapsed).ok()
}

/// When to check a synced resource again: at the next resync slot of its Kestra namespace. The
/// resources of one namespace then resync together and share one listing, so that a drift check
/// costs one request per namespace and kind instead of one per resource (with resyncs spread at
/// random, a 2-second listing served few resources); the namespaces' slots are spread over the
/// period. Slots come from the wall clock, so replicas and restarts agree. The first check after
/// a change comes half a period to one and a half periods later, then one period apart.
pub(super) fn resync_delay(
    period: Duration,
    target: &Target,
    now: std::time::SystemTime,
) -> Duration {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut hasher = DefaultHasher::new();
    (
        &target.instance,
        target.tenant.as_deref(),
        target.namespace.as_str(),
    )
        .hash(&mut hasher);
    let offset = hasher.finish() % period_ms;
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let earliest = now_ms.saturating_add(period_ms / 2);
    let slot = offset.saturating_add(
        earliest
            .saturating_sub(offset)
            .div_ceil(period_ms)
            .saturating_mul(period_ms),
    );
    Duration::from_millis(slot.saturating_sub(now_ms))
}

/// Spread resyncs so that thousands of objects do not hit Kestra in the same second.
pub(super) fn jitter(period: Duration) -> Duration {
    let spread = period.as_millis() as u64 / 10;
    if spread == 0 {
        return period;
    }
    period + Duration::from_millis(rand::random_range(0..spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_the_owned_object_patches_that_field_alone() {
        let Patch::Merge(body) = owned_object_clearing() else {
            panic!("a merge patch: null removes the field");
        };
        assert_eq!(body, json!({ "status": { "ownedObject": null } }));
        // The field name is the one the status serializes to.
        let status = crate::crd::KestraStatus::<()> {
            owned_object: Some("main/ns/name".into()),
            ..Default::default()
        };
        let written = serde_json::to_value(&status).unwrap();
        assert_eq!(written["ownedObject"], "main/ns/name");
    }

    #[test]
    fn resources_of_a_namespace_share_resync_slots() {
        let period = Duration::from_secs(30);
        let target = |ns: &str, name: &str| Target {
            instance: crate::instances::InstanceId::Default,
            tenant: Some("main".into()),
            namespace: ns.into(),
            name: name.into(),
        };
        let base = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut slots = std::collections::HashSet::new();
        for step in 0..200u64 {
            let now = base + Duration::from_millis(step * 337);
            for name in ["a", "b"] {
                let delay = resync_delay(period, &target("company.team", name), now);
                assert!(delay >= period / 2 && delay < period * 3 / 2, "{delay:?}");
                let at = now + delay;
                slots.insert(
                    at.duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis(),
                );
            }
        }
        // 67 s of changes land on a handful of slots, one period apart.
        let mut slots: Vec<u128> = slots.into_iter().collect();
        slots.sort_unstable();
        assert!(slots.len() <= 4, "{slots:?}");
        assert!(slots.windows(2).all(|w| w[1] - w[0] == 30_000), "{slots:?}");
        // Once on a slot, the next check is exactly one period later.
        let on_slot = std::time::UNIX_EPOCH + Duration::from_millis(slots[0] as u64 + 40);
        let next = resync_delay(period, &target("company.team", "a"), on_slot);
        assert_eq!(next, period - Duration::from_millis(40));
    }
}
