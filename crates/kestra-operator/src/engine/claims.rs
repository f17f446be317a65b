//! Which resources name which Kestra object, kept from the same watch events as the caches.
//!
//! The conflict check looks up the few resources naming one Kestra object here instead of
//! scanning every cached resource of the kind on every reconcile, which made a resync wave cost
//! time in the square of the number of resources (about 1 s of CPU per 30 s resync at 3,000).

use std::collections::{HashMap, HashSet};
use std::hash::DefaultHasher;
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::runtime::watcher::Event;

use super::adapter::Target;
use super::ownership::Claim;
use super::reconcile::claim_of;

/// A resource naming a Kestra object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    pub uid: String,
    pub claim: Claim,
    /// Being deleted: it no longer competes for ownership.
    pub deleting: bool,
}

struct Entry {
    target: Target,
    claim: Claim,
    deleting: bool,
}

fn bucket(target: &Target) -> u64 {
    std::hash::BuildHasher::hash_one(
        &std::hash::BuildHasherDefault::<DefaultHasher>::default(),
        target,
    )
}

/// Kept small: one entry per resource (about 0.5 KB), the uid shared by both maps.
#[derive(Default)]
struct Inner {
    by_uid: HashMap<Arc<str>, Entry>,
    /// Resources by the hash of the Kestra object they name (the entry's target is compared too).
    by_target: HashMap<u64, Vec<Arc<str>>>,
    /// Per watch (a Kubernetes namespace, or all), the resources listed since its relist began.
    relisting: HashMap<Option<String>, HashSet<Arc<str>>>,
}

impl Inner {
    fn remove(&mut self, uid: &str) {
        let Some(entry) = self.by_uid.remove(uid) else {
            return;
        };
        let key = bucket(&entry.target);
        if let Some(uids) = self.by_target.get_mut(&key) {
            uids.retain(|u| &**u != uid);
            if uids.is_empty() {
                self.by_target.remove(&key);
            }
        }
    }

    /// Insert or replace; returns the shared uid.
    fn upsert(
        &mut self,
        uid: &str,
        target: Option<Target>,
        claim: Claim,
        deleting: bool,
    ) -> Arc<str> {
        let uid: Arc<str> = self
            .by_uid
            .get_key_value(uid)
            .map_or_else(|| Arc::from(uid), |(k, _)| k.clone());
        self.remove(&uid);
        // A resource whose Kestra object cannot be resolved claims nothing.
        if let Some(target) = target {
            self.by_target
                .entry(bucket(&target))
                .or_default()
                .push(uid.clone());
            self.by_uid.insert(
                uid.clone(),
                Entry {
                    target,
                    claim,
                    deleting,
                },
            );
        }
        uid
    }

    fn apply<K: Resource>(
        &mut self,
        obj: &K,
        target_of: impl Fn(&K) -> Option<Target>,
    ) -> Option<Arc<str>> {
        let uid = obj.meta().uid.as_deref()?;
        Some(self.upsert(
            uid,
            target_of(obj),
            claim_of(obj),
            obj.meta().deletion_timestamp.is_some(),
        ))
    }
}

/// The index of one kind, over every watched namespace.
#[derive(Default)]
pub struct ClaimIndex {
    inner: Mutex<Inner>,
}

impl ClaimIndex {
    /// Apply one event of the watch of `scope` (a Kubernetes namespace, or all), as its cache
    /// does; `target_of` names the Kestra object a resource claims (`None` when it cannot be
    /// resolved).
    pub fn observe<K: Resource>(
        &self,
        scope: &Option<String>,
        event: &Event<K>,
        target_of: impl Fn(&K) -> Option<Target>,
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Apply(obj) => {
                inner.apply(obj, target_of);
            }
            Event::Delete(obj) => {
                if let Some(uid) = &obj.meta().uid {
                    inner.remove(uid);
                }
            }
            Event::Init => {
                inner.relisting.insert(scope.clone(), HashSet::new());
            }
            Event::InitApply(obj) => {
                if let Some(uid) = inner.apply(obj, target_of) {
                    inner
                        .relisting
                        .entry(scope.clone())
                        .or_default()
                        .insert(uid);
                }
            }
            Event::InitDone => {
                // What the relist did not return was deleted while the watch was down.
                let seen = inner.relisting.remove(scope).unwrap_or_default();
                let gone: Vec<Arc<str>> = inner
                    .by_uid
                    .iter()
                    .filter(|(uid, e)| {
                        scope.as_ref().is_none_or(|ns| *ns == e.claim.namespace)
                            && !seen.contains(*uid)
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    inner.remove(&uid);
                }
            }
        }
    }

    /// The resources naming `target`.
    pub fn claimants(&self, target: &Target) -> Vec<Claimant> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(uids) = inner.by_target.get(&bucket(target)) else {
            return Vec::new();
        };
        uids.iter()
            .filter_map(|uid| inner.by_uid.get(uid).map(|e| (uid, e)))
            .filter(|(_, e)| e.target == *target)
            .map(|(uid, e)| Claimant {
                uid: uid.to_string(),
                claim: e.claim.clone(),
                deleting: e.deleting,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn obj(uid: &str, ns: &str, name: &str, object: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.uid = Some(uid.into());
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm.data = Some([("object".to_string(), object.to_string())].into());
        cm
    }

    fn target(name: &str) -> Target {
        Target {
            tenant: Some("main".into()),
            namespace: "company.team".into(),
            name: name.into(),
        }
    }

    fn target_of(cm: &ConfigMap) -> Option<Target> {
        let name = cm.data.as_ref()?.get("object")?;
        (!name.is_empty()).then(|| target(name))
    }

    fn uids(index: &ClaimIndex, name: &str) -> Vec<String> {
        let mut v: Vec<String> = index
            .claimants(&target(name))
            .into_iter()
            .map(|c| c.uid)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn follows_applies_and_deletes() {
        let index = ClaimIndex::default();
        let all = None;
        index.observe(&all, &Event::Apply(obj("u1", "a", "x", "f")), target_of);
        index.observe(&all, &Event::Apply(obj("u2", "b", "y", "f")), target_of);
        index.observe(&all, &Event::Apply(obj("u3", "b", "z", "g")), target_of);
        assert_eq!(uids(&index, "f"), vec!["u1", "u2"]);
        assert_eq!(uids(&index, "g"), vec!["u3"]);
        // A changed object name moves the claim; an unresolvable one claims nothing.
        index.observe(&all, &Event::Apply(obj("u2", "b", "y", "g")), target_of);
        index.observe(&all, &Event::Apply(obj("u3", "b", "z", "")), target_of);
        assert_eq!(uids(&index, "f"), vec!["u1"]);
        assert_eq!(uids(&index, "g"), vec!["u2"]);
        index.observe(&all, &Event::Delete(obj("u2", "b", "y", "g")), target_of);
        assert!(uids(&index, "g").is_empty());
        let inner = index.inner.lock().unwrap();
        assert!(!inner.by_target.contains_key(&bucket(&target("g"))));
        assert_eq!(inner.by_uid.len(), 1);
    }

    #[test]
    fn marks_deleting_and_keeps_the_claim() {
        let index = ClaimIndex::default();
        let mut o = obj("u1", "a", "x", "f");
        o.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        index.observe(&None, &Event::Apply(o.clone()), target_of);
        assert!(!index.claimants(&target("f"))[0].deleting);
        o.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        index.observe(&None, &Event::Apply(o), target_of);
        let c = &index.claimants(&target("f"))[0];
        assert!(c.deleting);
        assert_eq!(
            (c.claim.namespace.as_str(), c.claim.name.as_str()),
            ("a", "x")
        );
    }

    #[test]
    fn a_relist_drops_what_it_did_not_return_in_its_own_scope_only() {
        let index = ClaimIndex::default();
        let (a, b) = (Some("a".to_string()), Some("b".to_string()));
        index.observe(&a, &Event::Apply(obj("u1", "a", "x", "f")), target_of);
        index.observe(&a, &Event::Apply(obj("u2", "a", "y", "f")), target_of);
        index.observe(&b, &Event::Apply(obj("u3", "b", "z", "f")), target_of);
        index.observe(&a, &Event::<ConfigMap>::Init, target_of);
        index.observe(&a, &Event::InitApply(obj("u2", "a", "y", "f")), target_of);
        // Until the relist is done, nothing is dropped.
        assert_eq!(uids(&index, "f"), vec!["u1", "u2", "u3"]);
        index.observe(&a, &Event::<ConfigMap>::InitDone, target_of);
        assert_eq!(uids(&index, "f"), vec!["u2", "u3"]);
    }
}
