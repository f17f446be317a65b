//! Cleanup of a resource being deleted: delete its Kestra object only when this resource owns
//! it (read fresh), its policy says Delete and it is not suspended; otherwise leave it.

use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::KindContext;
use super::adapter::{Adapter, Target};
use super::error::ReconcileError;
use super::ownership::{self, Transition};
use super::reason::Reason;
use super::reconcile::current_time;
use super::record::other_resource;
use super::status::{Outcome, next_conditions, status_changed, summary};
use crate::crd::DeletionPolicy;
use crate::instances::{InstanceError, InstanceId};

/// What cleanup leaves behind, or that it deleted.
enum Verdict {
    Release(String),
    Orphan(String),
    Delete,
    /// Decide later (a watch is relisting).
    Wait,
}

/// `status.ownedObject` (`tenant/namespace/name`, `-` for no tenant) back as a target of
/// `instance` (the resource's, which cannot change).
pub fn parse_owned(key: &str, instance: InstanceId) -> Option<Target> {
    let mut parts = key.splitn(3, '/');
    let tenant = parts.next()?;
    let namespace = parts.next()?;
    let name = parts.next()?;
    if namespace.is_empty() || name.is_empty() {
        return None;
    }
    Some(Target {
        instance,
        tenant: (tenant != "-").then(|| tenant.to_string()),
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// How cleanup ended.
pub enum Cleaned {
    /// Not yet: the finalizer stays; look again after this.
    Wait(Action),
    /// Done: remove the finalizer, then wake the other claimants of this object.
    Done(Option<Target>),
}

/// Which Kestra object cleanup is about, from what status recorded and what the spec names.
enum Start {
    Object(Target),
    /// The spec's object cannot be named, and a write of this process may have created it:
    /// wait until it can be named (and deleted) rather than leave it behind.
    Unresolvable(ReconcileError),
    /// The spec's object cannot be named, and nothing was ever owned: nothing to delete.
    NothingOwned(ReconcileError),
}

/// `touched`: whether this process synced or sent a write for the resource.
fn start(owned: Option<Target>, named: Result<Target, ReconcileError>, touched: bool) -> Start {
    // The object it owns is the one to clean up, even if the spec's target cannot be resolved
    // any more (e.g. the operator's tenant setting changed since).
    match (owned, named) {
        (Some(owned), _) => Start::Object(owned),
        (None, Ok(target)) => Start::Object(target),
        // Nothing was recorded as owned; only a sync of this process may have written.
        (None, Err(error)) if touched => Start::Unresolvable(error),
        (None, Err(error)) => Start::NothingOwned(error),
    }
}

pub async fn cleanup<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
) -> Result<Cleaned, ReconcileError> {
    let status = A::status(obj);
    let owned_key = status.and_then(|s| s.owned_object.as_deref());
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let instance_ref = A::common(obj).instance_ref;
    let owned =
        owned_key.and_then(|key| parse_owned(key, InstanceId::of(&namespace, instance_ref)));
    let named = ctx.bind(obj).map(|bound| bound.target);
    let target = match start(owned, named, ctx.touched(obj)) {
        Start::Object(target) => target,
        Start::Unresolvable(error) => {
            pending(obj, ctx, unresolvable_message(A::NOUN, &error)).await;
            return Err(error);
        }
        Start::NothingOwned(error) => {
            let note = format!(
                "nothing in Kestra was owned by this resource ({error}); nothing is deleted"
            );
            finish_cleanup(obj, ctx, Reason::Released, note).await;
            return Ok(Cleaned::Done(None));
        }
    };
    let _guard = ctx.locks.lock(&target).await;
    let verdict = verdict(obj, ctx, &target, owned_key).await?;
    let (reason, note) = match verdict {
        Verdict::Wait => {
            return Ok(Cleaned::Wait(Action::requeue(
                std::time::Duration::from_secs(1),
            )));
        }
        Verdict::Release(note) => (Reason::Released, note),
        Verdict::Orphan(note) => (Reason::Orphaned, note),
        Verdict::Delete => {
            let kestra = match ctx.shared.instances.resolve(&namespace, instance_ref) {
                Ok(resolved) => resolved.client,
                // The instance no longer lets this namespace write: nothing is deleted there.
                Err(error @ InstanceError::NotAllowed { .. }) => {
                    let note = format!("{} {} is left in Kestra: {error}", A::NOUN, target.key());
                    finish_cleanup(obj, ctx, Reason::Released, note).await;
                    return Ok(Cleaned::Done(Some(target)));
                }
                // Gone or unusable: wait for it, deleting nothing anywhere else.
                Err(error) => {
                    let error = ReconcileError::from(error);
                    pending(obj, ctx, delete_failed_message(A::NOUN, &target, &error)).await;
                    return Err(error);
                }
            };
            if let Err(error) = ctx.adapter.delete(&kestra, &target).await {
                let error = ReconcileError::from(error);
                if !matches!(
                    error,
                    ReconcileError::Kestra(crate::kestra::KestraError::Fenced)
                ) {
                    let message = delete_failed_message(A::NOUN, &target, &error);
                    pending(obj, ctx, message).await;
                }
                return Err(error);
            }
            // Said in status before the finalizer goes: should removing it fail, the next
            // attempt sees nothing owned and deletes nothing (a successor may own it by then).
            // Sent even when the cached status names nothing: the stored one may be newer.
            ctx.clear_owned_object(obj).await?;
            (
                Reason::Deleted,
                format!("deleted {} {} from Kestra", A::NOUN, target.key()),
            )
        }
    };
    finish_cleanup(obj, ctx, reason, note).await;
    ctx.adapter.forget(&target);
    Ok(Cleaned::Done(Some(target)))
}

async fn verdict<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
    target: &Target,
    owned_key: Option<&str>,
) -> Result<Verdict, ReconcileError> {
    let common = A::common(obj);
    let what = format!("{} {}", A::NOUN, target.key());
    if let Some((owner, _)) = ctx.conflict_owner(obj, target) {
        let by = other_resource(obj.meta().namespace.as_deref(), &owner);
        return Ok(Verdict::Release(format!(
            "{what} is owned by {by} and is left in Kestra"
        )));
    }
    // A sync this process finished, or a write it sent whose answer was lost, may not be in the
    // cached status (the resource was deleted meanwhile): both are remembered in memory too.
    let owned = owned_key == Some(target.key().as_str()) || ctx.touched(obj);
    if !owned {
        return Ok(Verdict::Release(format!(
            "{what} was never owned by this resource and is left in Kestra"
        )));
    }
    if common.suspend {
        return Ok(Verdict::Orphan(format!(
            "spec.suspend is true: {what} is left in Kestra"
        )));
    }
    if common.deletion_policy == DeletionPolicy::Orphan {
        return Ok(Verdict::Orphan(format!(
            "deletionPolicy is Orphan: {what} is left in Kestra"
        )));
    }
    match ownership::confirm(ctx, obj, target, true).await? {
        Transition::Wait => Ok(Verdict::Wait),
        Transition::Gone => Ok(Verdict::Release(format!(
            "{what} is left in Kestra: this resource is already gone"
        ))),
        Transition::Conflict(owner, _) => {
            let by = other_resource(obj.meta().namespace.as_deref(), &owner);
            Ok(Verdict::Release(format!(
                "{what} is owned by {by} and is left in Kestra"
            )))
        }
        Transition::Owner(fresh) => {
            let fresh_owned = A::status(&fresh).and_then(|s| s.owned_object.as_deref())
                == Some(target.key().as_str());
            if fresh_owned || ctx.touched(obj) {
                Ok(Verdict::Delete)
            } else {
                Ok(Verdict::Release(format!(
                    "{what} is no longer owned by this resource and is left in Kestra"
                )))
            }
        }
    }
}

fn delete_failed_message(noun: &str, target: &Target, error: &ReconcileError) -> String {
    format!(
        "deleting {noun} {} from Kestra failed, the resource stays until it succeeds: {error}; {}",
        target.key(),
        error.advice()
    )
}

fn unresolvable_message(noun: &str, error: &ReconcileError) -> String {
    format!(
        "the Kestra {noun} this resource may have written cannot be named, the resource stays \
         until it can be deleted: {error}; {}",
        error.advice()
    )
}

/// Say in status and in an Event that the resource waits for its Kestra object to be deleted.
async fn pending<A: Adapter>(obj: &A::Resource, ctx: &KindContext<A>, message: String) {
    let status = A::status(obj);
    let mut next = status.cloned().unwrap_or_default();
    let outcome = Outcome::not_ready(Reason::DeletionPending, message.clone());
    next.reason = Some(summary(&outcome));
    next.conditions = next_conditions(
        &next.conditions,
        &outcome,
        obj.meta().generation,
        &current_time(),
    );
    if status_changed(status, &next, false) {
        if let Err(e) = ctx.patch_status(obj, &next).await {
            tracing::warn!(kind = A::KIND, error = %e, "status update failed");
        }
        drop(
            ctx.publish(obj, EventType::Warning, Reason::DeletionPending, message)
                .await,
        );
    }
}

async fn finish_cleanup<A: Adapter>(
    obj: &A::Resource,
    ctx: &KindContext<A>,
    reason: Reason,
    note: String,
) {
    ctx.forget(obj);
    // Awaited: once the finalizer is removed the resource is gone, and its last Event with it
    // if it were still queued.
    let _ = ctx
        .publish(obj, EventType::Normal, reason, note.clone())
        .await
        .await;
    tracing::info!(kind = A::KIND, object = %ObjectRef::from_obj(obj), reason = reason.as_str(), "{note}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_objects_parse_back_into_targets() {
        let t = parse_owned("main/company.team/dir/a b.txt", InstanceId::Default).unwrap();
        assert_eq!(t.tenant.as_deref(), Some("main"));
        assert_eq!(t.namespace, "company.team");
        assert_eq!(t.name, "dir/a b.txt");
        assert_eq!(
            parse_owned("-/ns/key", InstanceId::Default).unwrap().tenant,
            None
        );
        assert_eq!(
            parse_owned("-/ns/key", InstanceId::Default).unwrap().key(),
            "-/ns/key"
        );
        assert!(parse_owned("main/ns", InstanceId::Default).is_none());
        assert!(parse_owned("main//x", InstanceId::Default).is_none());
    }

    #[test]
    fn cleanup_starts_from_the_owned_object_then_the_spec() {
        let owned = parse_owned("main/ns/owned", InstanceId::Default).unwrap();
        let named = parse_owned("main/ns/named", InstanceId::Default).unwrap();
        let unnamed = || Err(ReconcileError::InvalidSpec("no tenant".into()));
        for touched in [false, true] {
            let Start::Object(t) = start(Some(owned.clone()), Ok(named.clone()), touched) else {
                panic!("the owned object first");
            };
            assert_eq!(t, owned);
            let Start::Object(t) = start(Some(owned.clone()), unnamed(), touched) else {
                panic!("the owned object even when the spec names none");
            };
            assert_eq!(t, owned);
            let Start::Object(t) = start(None, Ok(named.clone()), touched) else {
                panic!("else the spec's object");
            };
            assert_eq!(t, named);
        }
        assert!(matches!(
            start(None, unnamed(), true),
            Start::Unresolvable(_)
        ));
        assert!(matches!(
            start(None, unnamed(), false),
            Start::NothingOwned(_)
        ));
    }

    #[test]
    fn pending_messages_say_why_and_what_to_do() {
        let error = ReconcileError::InvalidSpec("no tenant".into());
        let message = unresolvable_message("flow", &error);
        assert!(message.contains("cannot be named"), "{message}");
        assert!(message.contains("no tenant"), "{message}");
        assert!(message.ends_with(error.advice()), "{message}");
        let target = parse_owned("main/ns/f", InstanceId::Default).unwrap();
        let message = delete_failed_message("flow", &target, &error);
        assert!(message.starts_with("deleting flow main/ns/f from Kestra failed"));
        assert!(message.ends_with(error.advice()), "{message}");
    }
}
