//! Which resources name which Kestra object, kept from the same watch events as the caches.
//!
//! The conflict check looks up the few resources naming one Kestra object here instead of
//! scanning every cached resource of the kind on every reconcile, which made a resync wave cost
//! time in the square of the number of resources (about 1 s of CPU per 30 s resync at 3,000).

use std::collections::{HashMap, HashSet};
use std::hash::DefaultHasher;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::runtime::watcher::Event;

use super::adapter::Target;
use super::ownership::Claim;
use super::reconcile::claim_of;

/// How long after its last failure a watch that delivered nothing since counts as caught up:
/// a resumed watch replays what it missed within moments of reconnecting.
const STALE_GRACE: Duration = Duration::from_secs(10);

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

/// The directories above a path-like name (`/a/b/c.txt` -> `/a`, `/a/b`); none for flow ids
/// and keys, which hold no `/`. A file there and a file above it cannot both exist in Kestra.
fn ancestors(target: &Target) -> impl Iterator<Item = Target> + '_ {
    target
        .name
        .match_indices('/')
        .map(|(i, _)| i)
        .filter(|i| *i > 0)
        .map(|i| Target {
            name: target.name[..i].to_string(),
            ..target.clone()
        })
}

fn push(map: &mut HashMap<u64, Vec<Arc<str>>>, key: u64, uid: &Arc<str>) {
    map.entry(key).or_default().push(uid.clone());
}

fn pull(map: &mut HashMap<u64, Vec<Arc<str>>>, key: u64, uid: &str) {
    if let Some(uids) = map.get_mut(&key) {
        uids.retain(|u| &**u != uid);
        if uids.is_empty() {
            map.remove(&key);
        }
    }
}

/// Kept small: one entry per resource (about 0.5 KB), the uid shared by the maps.
#[derive(Default)]
struct Inner {
    by_uid: HashMap<Arc<str>, Entry>,
    /// Resources by the hash of the Kestra object they name (the entry's target is compared too).
    by_target: HashMap<u64, Vec<Arc<str>>>,
    /// Resources by the hash of each directory above the object they name.
    by_ancestor: HashMap<u64, Vec<Arc<str>>>,
    /// Per watch (a Kubernetes namespace, or all), the resources listed since its relist began.
    relisting: HashMap<Option<String>, HashSet<Arc<str>>>,
    /// Watches that failed since their last event, with the time of their last failure:
    /// changes may be waiting behind the outage.
    stale: HashMap<Option<String>, Instant>,
}

impl Inner {
    fn remove(&mut self, uid: &str) {
        let Some(entry) = self.by_uid.remove(uid) else {
            return;
        };
        pull(&mut self.by_target, bucket(&entry.target), uid);
        for above in ancestors(&entry.target) {
            pull(&mut self.by_ancestor, bucket(&above), uid);
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
            push(&mut self.by_target, bucket(&target), &uid);
            for above in ancestors(&target) {
                push(&mut self.by_ancestor, bucket(&above), &uid);
            }
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
    /// Returns the uids of the resources that are gone.
    pub fn observe<K: Resource>(
        &self,
        scope: &Option<String>,
        event: &Event<K>,
        target_of: impl Fn(&K) -> Option<Target>,
    ) -> Vec<String> {
        let mut inner = self.inner.lock();
        // The watch delivers again: whatever it missed comes as a relist or as the events
        // since its last resource version.
        inner.stale.remove(scope);
        match event {
            Event::Apply(obj) => {
                inner.apply(obj, target_of);
                Vec::new()
            }
            Event::Delete(obj) => match &obj.meta().uid {
                Some(uid) => {
                    inner.remove(uid);
                    vec![uid.clone()]
                }
                None => Vec::new(),
            },
            Event::Init => {
                inner.relisting.insert(scope.clone(), HashSet::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                if let Some(uid) = inner.apply(obj, target_of) {
                    inner
                        .relisting
                        .entry(scope.clone())
                        .or_default()
                        .insert(uid);
                }
                Vec::new()
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
                for uid in &gone {
                    inner.remove(uid);
                }
                gone.iter().map(|uid| uid.to_string()).collect()
            }
        }
    }

    /// Name again the Kestra object of each of `objects`: their instance changed (created,
    /// deleted, another version, another namespace permission), not the resources themselves.
    pub fn reindex<K: Resource>(
        &self,
        objects: &[Arc<K>],
        target_of: impl Fn(&K) -> Option<Target>,
    ) {
        let mut inner = self.inner.lock();
        for obj in objects {
            inner.apply(obj.as_ref(), &target_of);
        }
    }

    /// The watch of `scope` failed (its connection broke, its resource version expired): until
    /// it delivers again, a resource created meanwhile may be missing here.
    pub fn watch_failed(&self, scope: &Option<String>) {
        self.inner
            .lock()
            .stale
            .insert(scope.clone(), Instant::now());
    }

    /// Whether some watch is relisting or failed since its last event: until it catches up, a
    /// claimant may be missing here, so no ownership may change hands. A watch that resumed
    /// from its resource version in a namespace where nothing changed delivers nothing: it
    /// counts as caught up `STALE_GRACE` after its last failure.
    pub fn relisting(&self) -> bool {
        let inner = self.inner.lock();
        !inner.relisting.is_empty()
            || inner
                .stale
                .values()
                .any(|failed| failed.elapsed() < STALE_GRACE)
    }

    /// The resources naming `target`, or an object above or below it in the directory tree
    /// (a file `x` and a file `x/y` cannot both exist).
    pub fn claimants(&self, target: &Target) -> Vec<Claimant> {
        let inner = self.inner.lock();
        let claimant = |uid: &Arc<str>, e: &Entry| Claimant {
            uid: uid.to_string(),
            claim: e.claim.clone(),
            deleting: e.deleting,
        };
        let naming = |t: &Target| {
            inner
                .by_target
                .get(&bucket(t))
                .into_iter()
                .flatten()
                .filter_map(|uid| inner.by_uid.get(uid).map(|e| (uid, e)))
                .filter(move |(_, e)| e.target == *t)
                .map(|(uid, e)| claimant(uid, e))
                .collect::<Vec<_>>()
        };
        let mut found = naming(target);
        for above in ancestors(target) {
            found.extend(naming(&above));
        }
        let below = inner
            .by_ancestor
            .get(&bucket(target))
            .into_iter()
            .flatten()
            .filter_map(|uid| inner.by_uid.get(uid).map(|e| (uid, e)))
            .filter(|(_, e)| ancestors(&e.target).any(|a| a == *target))
            .map(|(uid, e)| claimant(uid, e));
        found.extend(below);
        found
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
            instance: crate::instances::InstanceId::Default,
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
        let inner = index.inner.lock();
        assert!(!inner.by_target.contains_key(&bucket(&target("g"))));
        assert_eq!(inner.by_uid.len(), 1);
    }

    #[test]
    fn paths_above_and_below_each_other_overlap() {
        let index = ClaimIndex::default();
        index.observe(&None, &Event::Apply(obj("u1", "a", "x", "/d")), target_of);
        index.observe(
            &None,
            &Event::Apply(obj("u2", "a", "y", "/d/e/f.txt")),
            target_of,
        );
        index.observe(
            &None,
            &Event::Apply(obj("u3", "a", "z", "/d2/f.txt")),
            target_of,
        );
        assert_eq!(uids(&index, "/d"), vec!["u1", "u2"]);
        assert_eq!(uids(&index, "/d/e"), vec!["u1", "u2"]);
        assert_eq!(uids(&index, "/d/e/f.txt"), vec!["u1", "u2"]);
        assert_eq!(uids(&index, "/d2/f.txt"), vec!["u3"]);
        assert!(uids(&index, "/d2/f").is_empty());
        let gone = index.observe(&None, &Event::Delete(obj("u1", "a", "x", "/d")), target_of);
        assert_eq!(gone, vec!["u1"]);
        assert_eq!(uids(&index, "/d/e/f.txt"), vec!["u2"]);
        index.observe(
            &None,
            &Event::Delete(obj("u2", "a", "y", "/d/e/f.txt")),
            target_of,
        );
        // Only the directory above the remaining claim is left.
        let inner = index.inner.lock();
        assert_eq!(inner.by_ancestor.len(), 1);
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
        // Until the relist is done, nothing is dropped, and the index says it is relisting.
        assert_eq!(uids(&index, "f"), vec!["u1", "u2", "u3"]);
        assert!(index.relisting());
        let gone = index.observe(&a, &Event::<ConfigMap>::InitDone, target_of);
        assert_eq!(gone, vec!["u1"]);
        assert!(!index.relisting());
        // A watch that failed holds transitions back until it delivers again.
        index.watch_failed(&b);
        assert!(index.relisting());
        index.observe(&a, &Event::Apply(obj("u4", "a", "w", "g")), target_of);
        assert!(index.relisting(), "another watch's event does not clear it");
        index.observe(&b, &Event::<ConfigMap>::Init, target_of);
        index.observe(&b, &Event::InitApply(obj("u3", "b", "z", "f")), target_of);
        index.observe(&b, &Event::<ConfigMap>::InitDone, target_of);
        assert!(!index.relisting());
        assert_eq!(uids(&index, "f"), vec!["u2", "u3"]);
    }
}
