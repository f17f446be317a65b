//! Which resource owns a Kestra object when several name it: the oldest, pure.

/// A resource claiming a Kestra object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Creation time as RFC 3339 (sorts chronologically at one precision).
    pub created: String,
    pub namespace: String,
    pub name: String,
}

/// The owner among live claims: oldest first, then by namespace and name so the choice is stable.
pub fn owner<'a>(claims: impl IntoIterator<Item = &'a Claim>) -> Option<&'a Claim> {
    claims.into_iter().min_by(|a, b| {
        (&a.created, &a.namespace, &a.name).cmp(&(&b.created, &b.namespace, &b.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(created: &str, namespace: &str, name: &str) -> Claim {
        Claim {
            created: created.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn oldest_wins_then_namespace_then_name() {
        let claims = [
            claim("2026-01-02T00:00:00Z", "a", "x"),
            claim("2026-01-01T00:00:00Z", "z", "y"),
            claim("2026-01-01T00:00:00Z", "b", "y"),
        ];
        assert_eq!(owner(&claims), Some(&claims[2]));
        assert_eq!(owner(&[]), None);
    }
}

/// What a fresh look at the API server says about an ownership transition.
#[derive(Debug)]
pub enum Transition<K> {
    /// This resource owns the object; with its fresh copy.
    Owner(K),
    /// Another, older resource owns it; `true` when that one is being deleted.
    Conflict(Claim, bool),
    /// This resource is gone, or (when about to write) being deleted: do nothing.
    Gone,
    /// A watch is relisting, so a claimant may be unknown: decide later.
    Wait,
}

/// Decide an ownership transition (the first write of an object, a takeover, a delete) from
/// fresh reads of the resource and of every resource naming the same object, never from the
/// watch caches alone: a cache can be behind (a deletion not yet seen), and acting on it let
/// a conflict loser write or delete what the winner owned.
pub async fn confirm<A: super::Adapter>(
    ctx: &super::KindContext<A>,
    obj: &A::Resource,
    target: &super::Target,
    deleting: bool,
) -> Result<Transition<A::Resource>, kube::Error> {
    use kube::{Api, Resource, ResourceExt};
    if ctx.claims.relisting() {
        return Ok(Transition::Wait);
    }
    let fresh = |namespace: &str, name: &str, uid: Option<&str>| {
        let api: Api<A::Resource> = Api::namespaced(ctx.shared.client.clone(), namespace);
        let (name, uid) = (name.to_string(), uid.map(str::to_string));
        async move {
            Ok::<_, kube::Error>(
                api.get_opt(&name)
                    .await?
                    .filter(|o| o.meta().uid.is_some() && o.meta().uid == uid),
            )
        }
    };
    let namespace = obj.namespace().unwrap_or_default();
    let Some(me) = fresh(&namespace, &obj.name_any(), obj.meta().uid.as_deref()).await? else {
        return Ok(Transition::Gone);
    };
    if !deleting && me.meta().deletion_timestamp.is_some() {
        return Ok(Transition::Gone);
    }
    let mine = super::reconcile::claim_of(&me);
    let mut claims = vec![(mine.clone(), false)];
    for other in ctx.claims.claimants(target) {
        if me.meta().uid.as_deref() == Some(other.uid.as_str()) {
            continue;
        }
        if let Some(other) =
            fresh(&other.claim.namespace, &other.claim.name, Some(&other.uid)).await?
        {
            let leaving = other.meta().deletion_timestamp.is_some();
            claims.push((super::reconcile::claim_of(&other), leaving));
        }
    }
    match owner(claims.iter().map(|(c, _)| c)) {
        Some(winner) if *winner != mine => {
            let leaving = claims.iter().any(|(c, l)| c == winner && *l);
            Ok(Transition::Conflict(winner.clone(), leaving))
        }
        _ => Ok(Transition::Owner(me)),
    }
}
