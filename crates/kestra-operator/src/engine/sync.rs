//! One sync of a live resource: observe Kestra, decide, act. Nothing here writes status.

use std::hash::BuildHasher;

use kube::Resource;

use super::adapter::{Adapter, Diff, ObserveMode, Status, Target};
use super::error::ReconcileError;
use super::ownership::{self, Claim, Transition};
use super::reason::Reason;
use super::status::{has_reason, is_ready, ready_condition};
use super::{Bound, KindContext};

/// What the sync step did to Kestra.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    DriftCorrected,
}

impl Change {
    pub fn reason(self) -> Reason {
        match self {
            Self::Created => Reason::Created,
            Self::Updated => Reason::Updated,
            Self::DriftCorrected => Reason::DriftCorrected,
        }
    }
}

/// The step's result before it becomes status.
pub enum Step<F> {
    Synced {
        target: Target,
        fields: F,
        change: Option<Change>,
    },
    Suspended,
    Conflict {
        owner: Claim,
        /// The owner is being deleted: this one may take over soon.
        owner_leaving: bool,
    },
    Expired {
        target: Target,
    },
    /// Kestra keeps something else than the spec asks, even right after a write: not written
    /// again until the spec changes.
    NotRepresentable {
        target: Target,
        fields: Option<F>,
        what: String,
    },
    /// Nothing to decide now (a watch is relisting, or the resource is going away).
    Later,
}

/// Whether the resource, unchanged since Kestra kept something else than it asked, must not be
/// written again.
fn holds_back<A: Adapter>(
    status: Option<&Status<A>>,
    generation: Option<i64>,
    changed: bool,
) -> bool {
    !changed
        && status.is_some_and(|s| s.observed_generation == generation)
        && ready_condition(status).is_some_and(|c| has_reason(c, Reason::NotRepresentable))
}

pub async fn sync<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
    status: Option<&Status<A>>,
    bound: Result<Bound, ReconcileError>,
    spec_or_request_changed: bool,
) -> Result<Step<A::Fields>, ReconcileError> {
    if A::common(obj).suspend {
        return Ok(Step::Suspended);
    }
    let Bound {
        target,
        kestra,
        revision,
    } = bound?;
    // The caches may be behind (an owner already gone, a deletion not yet seen): a conflict
    // they show is confirmed by fresh reads before Kestra is even read.
    let mut confirmed = false;
    if ctx.conflict_owner(obj, &target).is_some() {
        if let Some(step) = confirm_owner(ctx, obj, &target).await? {
            return Ok(step);
        }
        confirmed = true;
    }
    let desired = ctx.adapter.desired(&ctx.shared.client, obj).await?;
    let prior = status.map(|s| &s.kind);
    let was_ready = is_ready(status);
    let owned = status.and_then(|s| s.owned_object.as_deref()) == Some(target.key().as_str());
    // The instance's revision is part of it: another URL, credentials or version is a change.
    let digest = ctx.digests.hash_one((&desired, revision));
    let last_digest = ctx.last_digest(obj);
    let same_desired = last_digest == Some(digest);
    // A referenced Secret or ConfigMap can change the desired state without a new generation;
    // after a restart its last digest is unknown, so such a resource is read in full once.
    let references_may_have_changed =
        !same_desired && (last_digest.is_some() || !A::references(obj).is_empty());
    let changed = spec_or_request_changed || (last_digest.is_some() && !same_desired);
    let mode = observe_mode(
        spec_or_request_changed || references_may_have_changed,
        was_ready,
        owned,
    );
    let observed = ctx.adapter.observe(&kestra, &target, mode, prior).await?;
    let diff = A::diff(&desired, &observed);
    if diff == Diff::Expired && !spec_or_request_changed {
        return Ok(Step::Expired { target });
    }
    if diff != Diff::InSync && holds_back::<A>(status, obj.meta().generation, changed) {
        ctx.remember_digest(obj, digest);
        return Ok(Step::NotRepresentable {
            target,
            fields: None,
            what: A::explain_difference(&desired, &observed),
        });
    }
    // Taking an object over (writing it first, or recording it as owned) is decided on fresh
    // reads; a resource that already owns it keeps it.
    if !owned
        && !confirmed
        && let Some(step) = confirm_owner(ctx, obj, &target).await?
    {
        return Ok(step);
    }
    let step = match diff {
        Diff::InSync => Step::Synced {
            fields: A::in_sync_fields(&desired, &observed, prior),
            target,
            change: None,
        },
        Diff::Missing | Diff::Differs | Diff::Expired => {
            ctx.note_write(obj);
            let written = ctx.adapter.write(&kestra, &target, &desired).await?;
            if let Some(readback) = &written.readback
                && A::diff(&desired, readback) != Diff::InSync
            {
                ctx.remember_digest(obj, digest);
                return Ok(Step::NotRepresentable {
                    what: A::explain_difference(&desired, readback),
                    target,
                    fields: Some(written.fields),
                });
            }
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
                fields: written.fields,
                change: Some(change),
            }
        }
    };
    ctx.remember_digest(obj, digest);
    Ok(step)
}

/// `None` when fresh reads say this resource owns `target`; otherwise the step to end with.
async fn confirm_owner<A: Adapter>(
    ctx: &KindContext<A>,
    obj: &A::Resource,
    target: &Target,
) -> Result<Option<Step<A::Fields>>, ReconcileError> {
    Ok(match ownership::confirm(ctx, obj, target, false).await? {
        Transition::Owner(_) => None,
        Transition::Conflict(owner, owner_leaving) => Some(Step::Conflict {
            owner,
            owner_leaving,
        }),
        Transition::Gone | Transition::Wait => Some(Step::Later),
    })
}

/// The cheap periodic check only when nothing but Kestra itself can have changed.
pub fn observe_mode(desired_changed: bool, was_ready: bool, owned: bool) -> ObserveMode {
    if desired_changed || !was_ready || !owned {
        ObserveMode::Full
    } else {
        ObserveMode::Resync
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Condition, ConditionStatus, ConditionType};

    #[test]
    fn only_an_unchanged_synced_owned_resource_gets_the_cheap_check() {
        assert_eq!(observe_mode(false, true, true), ObserveMode::Resync);
        assert_eq!(observe_mode(true, true, true), ObserveMode::Full);
        assert_eq!(observe_mode(false, false, true), ObserveMode::Full);
        assert_eq!(observe_mode(false, true, false), ObserveMode::Full);
    }

    #[test]
    fn a_resource_kestra_cannot_represent_is_held_back_until_its_spec_changes() {
        use crate::adapters::FlowAdapter;
        let status = |reason: Reason| Status::<FlowAdapter> {
            observed_generation: Some(3),
            conditions: vec![Condition {
                type_: ConditionType::Ready,
                status: ConditionStatus::False,
                reason: reason.as_str().into(),
                message: String::new(),
                last_transition_time: crate::engine::current_time(),
                observed_generation: Some(3),
            }],
            ..Default::default()
        };
        let held = status(Reason::NotRepresentable);
        assert!(holds_back::<FlowAdapter>(Some(&held), Some(3), false));
        assert!(
            !holds_back::<FlowAdapter>(Some(&held), Some(4), false),
            "new generation"
        );
        assert!(
            !holds_back::<FlowAdapter>(Some(&held), Some(3), true),
            "requested or changed"
        );
        assert!(!holds_back::<FlowAdapter>(
            Some(&status(Reason::Synced)),
            Some(3),
            false
        ));
        assert!(!holds_back::<FlowAdapter>(None, Some(3), false));
    }
}
