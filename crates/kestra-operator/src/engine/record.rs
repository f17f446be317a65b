//! Record the outcome of a sync: status (written only when it says something new), an Event
//! per new outcome, metrics, the log line, and when to look again.

use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::adapter::{Adapter, Status};
use super::error::{ReconcileError, Retry};
use super::ownership::Claim;
use super::reason::Reason;
use super::reconcile::{age, current_time, jitter, resync_delay};
use super::status::{
    Outcome, has_reason, next_conditions, ready_condition, status_changed, summary,
    unchanged_sync_message,
};
use super::sync::{Change, Step};
use super::{KindContext, RECONCILE_REQUEST_ANNOTATION};
use crate::kestra::KestraError;
use crate::metrics::{ErrorLabels, KindLabels};

/// How a message names another resource: by name in the same Kubernetes namespace, not across
/// namespaces (whose names a user of this one may not be allowed to see).
pub fn other_resource(me_namespace: Option<&str>, other: &Claim) -> String {
    if me_namespace == Some(other.namespace.as_str()) {
        format!("the older resource {}", other.name)
    } else {
        "an older resource in another Kubernetes namespace".to_string()
    }
}

pub async fn finish<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
    result: Result<Step<A::Fields>, ReconcileError>,
    requested: Option<String>,
) -> Action {
    if matches!(result, Err(ReconcileError::Kestra(KestraError::Fenced))) {
        // Another replica leads now: it writes the status.
        return Action::await_change();
    }
    let previous = A::status(obj);
    let mut next: Status<A> = previous.cloned().unwrap_or_default();
    let now = current_time();
    let resync = ctx.resync_period(obj);
    let mut event: Option<(EventType, Reason, String)> = None;
    // What this reconcile did, when it differs from the status message it keeps.
    let mut log_line: Option<String> = None;
    // A failed sync that may succeed with the same spec does not count as handling it: the
    // retry must still see the spec (or the sync request) as new.
    let mut handled = true;
    let (outcome, action) = match result {
        Ok(Step::Later) => return Action::requeue(std::time::Duration::from_secs(1)),
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
                Outcome::ready(Reason::Synced, message),
                Action::requeue(resync_delay(resync, &target, std::time::SystemTime::now())),
            )
        }
        Ok(Step::NotRepresentable {
            target,
            fields,
            what,
        }) => {
            ctx.reset_failures(obj);
            next.owned_object = Some(target.key());
            if let Some(fields) = fields {
                next.kind = fields;
            }
            (
                Outcome::stalled(
                    Reason::NotRepresentable,
                    format!(
                        "Kestra keeps {} {} in another form than the spec: {what}; it is not written \
                         again until the spec changes or the annotation {RECONCILE_REQUEST_ANNOTATION} \
                         is set to a new value",
                        A::NOUN,
                        target.key()
                    ),
                ),
                Action::requeue(jitter(resync)),
            )
        }
        Ok(Step::Suspended) => (
            Outcome::not_ready(
                Reason::Suspended,
                "spec.suspend is true: the operator neither reads nor writes Kestra for this \
                 resource, and deleting it leaves the Kestra object in place",
            ),
            Action::await_change(),
        ),
        Ok(Step::Conflict {
            owner,
            owner_leaving,
        }) => {
            // The owner is the older resource: this one must never delete the object.
            next.owned_object = None;
            (
                Outcome::stalled(
                    Reason::Conflict,
                    format!(
                        "the same Kestra {} (or one above or below it) is managed by {}; this one \
                         writes nothing until that resource is deleted or this one names another object",
                        A::NOUN,
                        other_resource(obj.meta().namespace.as_deref(), &owner)
                    ),
                ),
                // An owner on its way out is looked at again soon, not at the next resync.
                Action::requeue(if owner_leaving {
                    std::time::Duration::from_secs(2)
                } else {
                    jitter(resync)
                }),
            )
        }
        Ok(Step::Expired { target }) => (
            Outcome::stalled(
                Reason::Expired,
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
            tracing::warn!(kind = A::KIND, object = %ObjectRef::from_obj(obj), reason = reason.as_str(), error = %error, "sync failed");
            if matches!(error, ReconcileError::Kestra(KestraError::Rejected { .. })) {
                next.kind = A::rejected_fields(std::mem::take(&mut next.kind));
            }
            handled = error.stalled();
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
        !has_reason(c, outcome.reason) || (!outcome.ready && c.message != outcome.message)
    });
    if event.is_none() && outcome_changed {
        let type_ = if outcome.ready || outcome.reason == Reason::Suspended {
            EventType::Normal
        } else {
            EventType::Warning
        };
        event = Some((type_, outcome.reason, outcome.message.clone()));
    }
    if handled {
        next.observed_generation = obj.meta().generation;
        next.last_handled_reconcile_at = requested.or(next.last_handled_reconcile_at);
    }
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
        .and_then(|s| s.last_sync_time.as_ref())
        .is_some_and(|t| age(t).is_some_and(|a| a < ctx.shared.config.status_refresh));
    if status_changed(previous, &next, sync_time_fresh)
        && let Err(e) = ctx.patch_status(obj, &next).await
    {
        tracing::warn!(kind = A::KIND, object = %ObjectRef::from_obj(obj), error = %e, "status update failed");
        return Action::requeue(ctx.backoff(obj));
    }
    if let Some((type_, reason, note)) = event {
        // Queued, not awaited: the resource stays, and a cold sync need not wait on its Events.
        drop(ctx.publish(obj, type_, reason, note).await);
    }
    tracing::info!(kind = A::KIND, object = %ObjectRef::from_obj(obj), reason = outcome.reason.as_str(), ready = outcome.ready, "{}", log_line.as_deref().unwrap_or(&outcome.message));
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_resources_are_named_only_within_the_namespace() {
        let claim = |ns: &str| Claim {
            created: String::new(),
            namespace: ns.into(),
            name: "winner".into(),
        };
        assert_eq!(
            other_resource(Some("team-a"), &claim("team-a")),
            "the older resource winner"
        );
        let across = other_resource(Some("team-a"), &claim("team-b"));
        assert!(
            !across.contains("winner") && !across.contains("team-b"),
            "{across}"
        );
    }
}
