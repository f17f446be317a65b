//! The lifecycle every kind shares: finalizer, suspend, conflicts, observe, diff, write,
//! status, Events, metrics, backoff, resync.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::adapter::{Adapter, Diff, ObserveMode, Status, Target};
use super::error::{ReconcileError, Retry};
use super::ownership::{Claim, owner};
use super::status::{
    Outcome, next_conditions, ready_condition, status_changed, summary, unchanged_sync_message,
};
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
}

impl EngineError {
    fn reason(&self) -> &'static str {
        match self {
            Self::AddFinalizer(_) | Self::RemoveFinalizer(_) => "KubernetesError",
            Self::Cleanup(inner) => inner.reason(),
        }
    }
}

/// What the sync step did to Kestra.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
    DriftCorrected,
}

impl Change {
    fn reason(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Updated => "Updated",
            Self::DriftCorrected => "DriftCorrected",
        }
    }
}

/// The step's result before it becomes status.
enum Step<F> {
    Synced {
        target: Target,
        fields: F,
        change: Option<Change>,
    },
    Suspended,
    Conflict {
        owner: String,
    },
    Expired {
        target: Target,
    },
}

pub async fn reconcile<A: Adapter>(
    obj: Arc<A::Resource>,
    ctx: Arc<KindContext<A>>,
) -> Result<Action, EngineError> {
    if !ctx.stores_ready.load(std::sync::atomic::Ordering::SeqCst) {
        // Ownership is decided across every watched namespace: wait until all are listed.
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

/// What the finalizer asks of one reconcile.
#[derive(Debug, PartialEq, Eq)]
enum FinalizerStep {
    /// Being deleted and still holding the finalizer: clean up, then remove it.
    Cleanup,
    /// Being deleted without the finalizer: nothing left to do.
    Gone,
    /// Live without the finalizer: add it before anything is written to Kestra.
    AddThenApply,
    Apply,
}

fn finalizer_step(deleting: bool, has_finalizer: bool) -> FinalizerStep {
    match (deleting, has_finalizer) {
        (true, true) => FinalizerStep::Cleanup,
        (true, false) => FinalizerStep::Gone,
        (false, false) => FinalizerStep::AddThenApply,
        (false, true) => FinalizerStep::Apply,
    }
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
            let action = cleanup(obj, ctx).await.map_err(EngineError::Cleanup)?;
            api.patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(finalizer_removal(obj.finalizers())),
            )
            .await
            .map_err(EngineError::RemoveFinalizer)?;
            Ok(action)
        }
        FinalizerStep::AddThenApply => {
            api.patch(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(finalizer_addition(obj.meta().finalizers.as_deref())),
            )
            .await
            .map_err(EngineError::AddFinalizer)?;
            Ok(apply(obj, ctx).await)
        }
        FinalizerStep::Apply => Ok(apply(obj, ctx).await),
    }
}

/// A JSON patch adding the finalizer, refused by the server if the list changed meanwhile.
fn finalizer_addition(current: Option<&[String]>) -> json_patch::Patch {
    let ops = match current {
        None | Some([]) => vec![
            // An empty list is not stored: the field is absent, which a test of null matches.
            json!({"op": "test", "path": "/metadata/finalizers", "value": null}),
            json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}),
        ],
        Some(list) => vec![
            json!({"op": "test", "path": "/metadata/finalizers", "value": list}),
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}),
        ],
    };
    serde_json::from_value(serde_json::Value::Array(ops)).unwrap_or_default()
}

/// A JSON patch removing the finalizer at the index it had, refused if the list changed.
fn finalizer_removal(current: &[String]) -> json_patch::Patch {
    let ops = match current.iter().position(|f| f == FINALIZER) {
        Some(index) => vec![
            json!({"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER}),
            json!({"op": "remove", "path": format!("/metadata/finalizers/{index}")}),
        ],
        None => Vec::new(),
    };
    serde_json::from_value(serde_json::Value::Array(ops)).unwrap_or_default()
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
    tracing::warn!(kind = A::KIND, object = %ObjectRef::from_obj(obj.as_ref()), reason, error = %error, "reconcile failed");
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
    let result = sync(obj, ctx, status, spec_changed || forced).await;
    finish(obj, ctx, result, requested).await
}

async fn sync<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
    status: Option<&Status<A>>,
    spec_or_request_changed: bool,
) -> Result<Step<A::Fields>, ReconcileError> {
    let common = A::common(obj);
    if common.suspend {
        return Ok(Step::Suspended);
    }
    let target = ctx.target(obj)?;
    if let Some(owner) = ctx.conflict_owner(obj, &target) {
        return Ok(Step::Conflict { owner });
    }
    let desired = ctx.adapter.desired(&ctx.shared.client, obj).await?;
    let prior = status.map(|s| &s.kind);
    let was_ready = ready_condition(status).is_some_and(|c| c.status == "True");
    let owned = status.and_then(|s| s.owned_object.as_deref()) == Some(target.key().as_str());
    let digest = ctx.digests.hash_one(&desired);
    let last_digest = ctx.last_digest(obj);
    let same_desired = last_digest == Some(digest);
    // A referenced Secret or ConfigMap can change the desired state without a new generation;
    // after a restart its last digest is unknown, so such a resource is read in full once.
    let references_may_have_changed =
        !same_desired && (last_digest.is_some() || !A::references(obj).is_empty());
    let mode = observe_mode(
        spec_or_request_changed || references_may_have_changed,
        was_ready,
        owned,
    );
    let kestra = &ctx.shared.kestra;
    let observed = ctx.adapter.observe(kestra, &target, mode, prior).await?;
    let diff = A::diff(&desired, &observed);
    let step = match diff {
        Diff::InSync => Step::Synced {
            fields: A::in_sync_fields(&desired, &observed, prior),
            target,
            change: None,
        },
        Diff::Expired if !spec_or_request_changed => Step::Expired { target },
        Diff::Missing | Diff::Differs | Diff::Expired => {
            let fields = ctx.adapter.write(kestra, &target, &desired).await?;
            let change = if owned
                && was_ready
                && same_desired
                && !spec_or_request_changed
                && diff != Diff::Expired
            {
                Change::DriftCorrected
            } else if diff == Diff::Missing || diff == Diff::Expired {
                Change::Created
            } else {
                Change::Updated
            };
            Step::Synced {
                target,
                fields,
                change: Some(change),
            }
        }
    };
    ctx.remember_digest(obj, digest);
    Ok(step)
}

async fn finish<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
    result: Result<Step<A::Fields>, ReconcileError>,
    requested: Option<String>,
) -> Action {
    let previous = A::status(obj);
    let mut next: Status<A> = previous.cloned().unwrap_or_default();
    let now = now_rfc3339();
    let resync = ctx.resync_period(obj);
    let mut event: Option<(EventType, &'static str, String)> = None;
    // What this reconcile did, when it differs from the status message it keeps.
    let mut log_line: Option<String> = None;
    let (outcome, action) = match result {
        Ok(Step::Synced {
            target,
            fields,
            change,
        }) => {
            ctx.reset_failures(obj);
            let description = A::describe(&target, &fields);
            let message = match change {
                None => {
                    log_line = Some(format!("{description} matches the spec"));
                    unchanged_sync_message(
                        ready_condition(previous),
                        obj.meta().generation,
                        &description,
                    )
                }
                Some(Change::Created) => format!("created {description}"),
                Some(Change::Updated) => format!("updated {description}"),
                Some(Change::DriftCorrected) => {
                    format!(
                        "{description} was changed outside Kubernetes and has been restored to the spec"
                    )
                }
            };
            if let Some(change) = change {
                event = Some((EventType::Normal, change.reason(), message.clone()));
                if change == Change::DriftCorrected {
                    next.drift_corrections += 1;
                    next.last_drift_time = Some(now.clone());
                    ctx.shared
                        .metrics
                        .drift_corrections
                        .get_or_create(&KindLabels { kind: A::KIND })
                        .inc();
                }
            }
            next.owned_object = Some(target.key());
            next.kind = fields;
            next.last_sync_time = Some(now.clone());
            (
                Outcome::ready("Synced", message),
                Action::requeue(resync_delay(resync, &target, std::time::SystemTime::now())),
            )
        }
        Ok(Step::Suspended) => (
            Outcome::not_ready(
                "Suspended",
                "spec.suspend is true: the operator neither reads nor writes Kestra for this resource",
            ),
            Action::await_change(),
        ),
        Ok(Step::Conflict { owner }) => {
            // The owner is the older resource: this one must never delete the object.
            next.owned_object = None;
            (
                Outcome::stalled(
                    "Conflict",
                    format!(
                        "the same Kestra {} is managed by the older resource {owner}; this one writes nothing \
                     until that resource is deleted or this one names another object",
                        A::NOUN
                    ),
                ),
                Action::requeue(jitter(resync)),
            )
        }
        Ok(Step::Expired { target }) => (
            Outcome::stalled(
                "Expired",
                format!(
                    "{} {} expired in Kestra after its ttl; it is not written again until the spec changes \
                     or the annotation {RECONCILE_REQUEST_ANNOTATION} is set to a new value",
                    A::NOUN,
                    target.key()
                ),
            ),
            Action::await_change(),
        ),
        Err(error) => {
            let reason = error.reason();
            ctx.shared
                .metrics
                .reconcile_errors
                .get_or_create(&ErrorLabels {
                    kind: A::KIND,
                    reason,
                })
                .inc();
            tracing::warn!(kind = A::KIND, object = %ObjectRef::from_obj(obj), reason, error = %error, "sync failed");
            if matches!(
                error,
                ReconcileError::Kestra(crate::kestra::KestraError::Rejected { .. })
            ) {
                next.kind = A::rejected_fields(std::mem::take(&mut next.kind));
            }
            let message = format!("{error}; {}", error.advice());
            let action = match error.retry() {
                Retry::Backoff => Action::requeue(ctx.backoff(obj)),
                Retry::AwaitChange => {
                    ctx.reset_failures(obj);
                    Action::requeue(jitter(resync))
                }
            };
            let outcome = if error.stalled() {
                Outcome::stalled(reason, message)
            } else {
                Outcome::not_ready(reason, message)
            };
            (outcome, action)
        }
    };
    let previous_ready = ready_condition(previous);
    // One Event per new outcome: a Synced resource that stays Synced only speaks when it writes.
    let outcome_changed = previous_ready.is_none_or(|c| {
        c.reason != outcome.reason || (!outcome.ready && c.message != outcome.message)
    });
    if event.is_none() && outcome_changed {
        let type_ = if outcome.ready || outcome.reason == "Suspended" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        event = Some((type_, outcome.reason, outcome.message.clone()));
    }
    next.observed_generation = obj.meta().generation;
    next.last_handled_reconcile_at = requested.or(next.last_handled_reconcile_at);
    next.reason = Some(summary(&outcome));
    next.conditions = next_conditions(
        previous
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
        &outcome,
        obj.meta().generation,
        &now,
    );
    let sync_time_fresh = previous
        .and_then(|s| s.last_sync_time.as_deref())
        .is_some_and(|t| age(t).is_some_and(|a| a < ctx.shared.config.status_refresh));
    if status_changed(previous, &next, sync_time_fresh)
        && let Err(e) = ctx.patch_status(obj, &next).await
    {
        tracing::warn!(kind = A::KIND, object = %ObjectRef::from_obj(obj), error = %e, "status update failed");
        return Action::requeue(ctx.backoff(obj));
    }
    if let Some((type_, reason, note)) = event {
        // Not awaited: the resource stays, and a cold sync need not wait on its Events.
        drop(ctx.publish(obj, type_, reason, note).await);
    }
    tracing::info!(kind = A::KIND, object = %ObjectRef::from_obj(obj), reason = outcome.reason, ready = outcome.ready, "{}", log_line.as_deref().unwrap_or(&outcome.message));
    action
}

async fn cleanup<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
) -> Result<Action, ReconcileError> {
    let status = A::status(obj);
    let common = A::common(obj);
    let Ok(target) = ctx.target(obj) else {
        return Ok(Action::await_change());
    };
    // A sync this process finished may not be in the cached status yet (the resource was
    // deleted while its first sync ran): it is remembered in memory too.
    let owned = status.and_then(|s| s.owned_object.as_deref()) == Some(target.key().as_str())
        || ctx.last_digest(obj).is_some();
    let (reason, note) = if let Some(owner) = ctx.conflict_owner(obj, &target) {
        (
            "Released",
            format!(
                "{} {} is owned by the older resource {owner} and is left in Kestra",
                A::NOUN,
                target.key()
            ),
        )
    } else if !owned {
        (
            "Released",
            format!(
                "{} {} was never owned by this resource and is left in Kestra",
                A::NOUN,
                target.key()
            ),
        )
    } else if common.deletion_policy == crate::crd::DeletionPolicy::Orphan {
        (
            "Orphaned",
            format!(
                "deletionPolicy is Orphan: {} {} is left in Kestra",
                A::NOUN,
                target.key()
            ),
        )
    } else {
        if let Err(error) = ctx.adapter.delete(&ctx.shared.kestra, &target).await {
            let error = ReconcileError::from(error);
            let message = format!(
                "deleting {} {} from Kestra failed, the resource stays until it succeeds: {error}; {}",
                A::NOUN,
                target.key(),
                error.advice()
            );
            let mut next = status.cloned().unwrap_or_default();
            let outcome = Outcome::not_ready("DeletionPending", message.clone());
            next.reason = Some(summary(&outcome));
            next.conditions = next_conditions(
                &next.conditions,
                &outcome,
                obj.meta().generation,
                &now_rfc3339(),
            );
            if status_changed(status, &next, false) {
                if let Err(e) = ctx.patch_status(obj, &next).await {
                    tracing::warn!(kind = A::KIND, error = %e, "status update failed");
                }
                drop(ctx.publish(obj, EventType::Warning, "DeletionPending", message));
            }
            return Err(error);
        }
        (
            "Deleted",
            format!("deleted {} {} from Kestra", A::NOUN, target.key()),
        )
    };
    ctx.reset_failures(obj);
    ctx.forget_digest(obj);
    // Awaited: once the finalizer is removed the resource is gone, and its last Event with it
    // if it were still queued.
    let _ = ctx
        .publish(obj, EventType::Normal, reason, note.clone())
        .await
        .await;
    tracing::info!(kind = A::KIND, object = %ObjectRef::from_obj(obj), reason, "{note}");
    // A resource that lost a conflict to this one may now own the object.
    ctx.wake_peers(obj, &target);
    Ok(Action::await_change())
}

/// The cheap periodic check only when nothing but Kestra itself can have changed.
fn observe_mode(desired_changed: bool, was_ready: bool, owned: bool) -> ObserveMode {
    if desired_changed || !was_ready || !owned {
        ObserveMode::Full
    } else {
        ObserveMode::Resync
    }
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

pub(super) fn owner_of(claims: &[Claim]) -> Option<&Claim> {
    owner(claims)
}

pub(super) fn status_patch<A: Adapter>(status: &Status<A>) -> Patch<serde_json::Value> {
    let api_version = <A::Resource as Resource>::api_version(&());
    let kind = <A::Resource as Resource>::kind(&());
    Patch::Apply(json!({ "apiVersion": api_version, "kind": kind, "status": status }))
}

pub(super) fn status_params() -> PatchParams {
    PatchParams::apply("kestra-operator").force()
}

pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn age(rfc3339: &str) -> Option<Duration> {
    let then: k8s_openapi::jiff::Timestamp = rfc3339.parse().ok()?;
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(then);
    Duration::try_from(elapsed).ok()
}

/// When to check a synced resource again: at the next resync slot of its Kestra namespace. The
/// resources of one namespace then resync together and share one listing, so that a drift check
/// costs one request per namespace and kind instead of one per resource (with resyncs spread at
/// random, a 2-second listing served few resources); the namespaces' slots are spread over the
/// period. Slots come from the wall clock, so replicas and restarts agree. The first check after
/// a change comes half a period to one and a half periods later, then one period apart.
fn resync_delay(period: Duration, target: &Target, now: std::time::SystemTime) -> Duration {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut hasher = DefaultHasher::new();
    (target.tenant.as_deref(), target.namespace.as_str()).hash(&mut hasher);
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
fn jitter(period: Duration) -> Duration {
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
    fn the_finalizer_is_added_before_any_write_and_removed_after_cleanup() {
        assert_eq!(finalizer_step(false, false), FinalizerStep::AddThenApply);
        assert_eq!(finalizer_step(false, true), FinalizerStep::Apply);
        assert_eq!(finalizer_step(true, true), FinalizerStep::Cleanup);
        assert_eq!(finalizer_step(true, false), FinalizerStep::Gone);
    }

    #[test]
    fn finalizer_patches_are_guarded_by_a_test_of_the_current_list() {
        let ops = |p: json_patch::Patch| serde_json::to_value(p).unwrap();
        assert_eq!(
            ops(finalizer_addition(None)),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        );
        let others = vec!["other.io/keep".to_string()];
        assert_eq!(
            ops(finalizer_addition(Some(&others))),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other.io/keep"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ])
        );
        let both = vec!["other.io/keep".to_string(), FINALIZER.to_string()];
        assert_eq!(
            ops(finalizer_removal(&both)),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        assert_eq!(ops(finalizer_removal(&others)), json!([]));
    }

    #[test]
    fn only_an_unchanged_synced_owned_resource_gets_the_cheap_check() {
        assert_eq!(observe_mode(false, true, true), ObserveMode::Resync);
        assert_eq!(observe_mode(true, true, true), ObserveMode::Full);
        assert_eq!(observe_mode(false, false, true), ObserveMode::Full);
        assert_eq!(observe_mode(false, true, false), ObserveMode::Full);
    }

    #[test]
    fn resources_of_a_namespace_share_resync_slots() {
        let period = Duration::from_secs(30);
        let target = |ns: &str, name: &str| Target {
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
