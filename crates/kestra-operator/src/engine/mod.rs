//! The generic reconcile engine: one lifecycle for every kind, driven by a small adapter.

mod adapter;
mod claims;
mod cleanup;
mod error;
mod events;
pub mod finalizer;
mod ownership;
pub mod reason;
mod reconcile;
mod record;
pub mod refs;
mod runner;
pub mod status;
mod sync;

use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tokio::sync::mpsc::UnboundedSender;

pub use adapter::{Adapter, Common, Diff, ObserveMode, Status, Target, Written};
pub use error::{ReconcileError, Retry};
pub use events::EventRecorder;
pub use reason::Reason;
pub use reconcile::current_time;
pub use runner::{EngineConfig, Shared, run_kind};

use crate::instances::{InstanceId, Instances};
use crate::kestra::KestraClient;

/// Keeps the resource until its Kestra object is deleted (or orphaned).
pub const FINALIZER: &str = "model.kestra.io/finalizer";
/// Set to any new value (e.g. a timestamp) to ask for an immediate sync.
pub const RECONCILE_REQUEST_ANNOTATION: &str = "model.kestra.io/reconcile-requested-at";

/// How long a status write may take before it counts as failed (and is retried with backoff).
const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A status write that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StatusWriteError {
    #[error("writing the status: {0}")]
    Api(#[source] kube::Error),
    #[error("writing the status took longer than {0:?}")]
    Timeout(Duration),
}

/// In-memory state is keyed by the resource's uid: a resource deleted and created again under
/// the same name starts afresh.
type ObjectKey = String;

fn object_key<K: Resource>(obj: &K) -> ObjectKey {
    obj.meta().uid.clone().unwrap_or_default()
}

/// One lock per Kestra object: the reconciles of every resource naming it take turns, so an
/// ownership decision and the write or delete it allows are never interleaved with another's.
#[derive(Default)]
pub struct TargetLocks {
    locks: Mutex<HashMap<Target, Arc<tokio::sync::Mutex<()>>>>,
}

impl TargetLocks {
    pub async fn lock(&self, target: &Target) -> TargetGuard<'_> {
        let lock = self.locks.lock().entry(target.clone()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        TargetGuard {
            locks: self,
            target: target.clone(),
            _guard: guard,
        }
    }
}

/// Held while a reconcile decides about and acts on one Kestra object.
pub struct TargetGuard<'a> {
    locks: &'a TargetLocks,
    target: Target,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for TargetGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.locks.locks.lock();
        // The map holds one reference and this guard another: nobody else waits, drop the entry.
        if locks
            .get(&self.target)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            locks.remove(&self.target);
        }
    }
}

/// What the engine remembers of each resource between reconciles, evicted when it is gone.
#[derive(Default)]
pub struct Memory {
    failures: Mutex<HashMap<ObjectKey, u32>>,
    /// Digest of the desired state last synced, to tell drift from a changed reference.
    last_digests: Mutex<HashMap<ObjectKey, u64>>,
    /// Resources this process sent a write for: the write may have landed even if its answer
    /// (or the read-back after it) was lost, so the object counts as theirs at cleanup.
    wrote: Mutex<std::collections::HashSet<ObjectKey>>,
}

impl Memory {
    pub fn forget(&self, uid: &str) {
        self.failures.lock().remove(uid);
        self.last_digests.lock().remove(uid);
        self.wrote.lock().remove(uid);
    }
}

/// Per-kind state the reconciles share.
pub struct KindContext<A: Adapter> {
    pub shared: Arc<Shared>,
    pub adapter: A,
    /// Which resources (of every watched namespace) name which Kestra object, for conflicts.
    claims: Arc<claims::ClaimIndex>,
    /// Whether every watched namespace's cache has its initial listing. Each namespace's controller waits
    /// only for its own cache: without this, right after a start a resource could miss an older
    /// resource of another namespace naming the same Kestra object, and write or delete it.
    stores_ready: Arc<std::sync::atomic::AtomicBool>,
    /// Wakes a resource (routed to its namespace's controller).
    peers: HashMap<Option<String>, UnboundedSender<ObjectRef<A::Resource>>>,
    memory: Arc<Memory>,
    locks: TargetLocks,
    digests: RandomState,
}

impl<A: Adapter> KindContext<A> {
    /// The Kestra object `obj` names, with the client of its instance.
    fn bind(&self, obj: &A::Resource) -> Result<Bound, ReconcileError> {
        bind::<A>(&self.shared.instances, obj)
    }

    /// The older resource that owns `target` (or an object above or below it), when it is not
    /// `obj`, from the watch caches. A resource being deleted stays a claimant until its
    /// finalizer is gone, so that nobody takes over an object its cleanup may still delete.
    ///
    /// Returns the owner and whether it is being deleted.
    fn conflict_owner(
        &self,
        obj: &A::Resource,
        target: &Target,
    ) -> Option<(ownership::Claim, bool)> {
        let me = reconcile::claim_of(obj);
        let mut claims = vec![(me.clone(), false)];
        for other in self.claims.claimants(target) {
            if obj.meta().uid.as_ref() == Some(&other.uid) {
                continue;
            }
            claims.push((other.claim, other.deleting));
        }
        let owner = ownership::owner(claims.iter().map(|(c, _)| c))?.clone();
        let deleting = claims.iter().any(|(c, d)| *c == owner && *d);
        (owner != me).then_some((owner, deleting))
    }

    /// Reconcile the other resources naming `target` (a conflict loser may now own it).
    fn wake_peers(&self, obj: &A::Resource, target: &Target) {
        for other in self.claims.claimants(target) {
            if obj.meta().uid.as_ref() == Some(&other.uid) {
                continue;
            }
            let ns = Some(other.claim.namespace.clone());
            let sender = self.peers.get(&ns).or_else(|| self.peers.get(&None));
            if let Some(sender) = sender {
                let _ =
                    sender.send(ObjectRef::new(&other.claim.name).within(&other.claim.namespace));
            }
        }
    }

    fn resync_period(&self, obj: &A::Resource) -> Duration {
        A::common(obj)
            .resync_period
            .and_then(parse_period)
            .unwrap_or(self.shared.config.resync_period)
    }

    /// Exponential backoff per object, capped.
    fn backoff(&self, obj: &A::Resource) -> Duration {
        let mut failures = self.memory.failures.lock();
        let count = failures.entry(object_key(obj)).or_insert(0);
        *count = count.saturating_add(1);
        backoff_delay(
            *count,
            self.shared.config.min_backoff,
            self.shared.config.max_backoff,
        )
    }

    fn reset_failures(&self, obj: &A::Resource) {
        self.memory.failures.lock().remove(&object_key(obj));
    }

    fn last_digest(&self, obj: &A::Resource) -> Option<u64> {
        self.memory
            .last_digests
            .lock()
            .get(&object_key(obj))
            .copied()
    }

    fn remember_digest(&self, obj: &A::Resource, digest: u64) {
        self.memory
            .last_digests
            .lock()
            .insert(object_key(obj), digest);
    }

    /// Say that a write for `obj`'s object is about to be sent.
    fn note_write(&self, obj: &A::Resource) {
        self.memory.wrote.lock().insert(object_key(obj));
    }

    /// Whether this process synced or wrote `obj`'s object (its status may not say so yet).
    fn touched(&self, obj: &A::Resource) -> bool {
        self.last_digest(obj).is_some() || self.memory.wrote.lock().contains(&object_key(obj))
    }

    fn forget(&self, obj: &A::Resource) {
        self.memory.forget(&object_key(obj));
    }

    /// Write the status; bounded in time, and counted when it fails.
    async fn patch_status(
        &self,
        obj: &A::Resource,
        status: &Status<A>,
    ) -> Result<(), StatusWriteError> {
        let patch = reconcile::status_patch::<A>(status);
        self.send_status_patch(obj, &reconcile::status_params(), &patch)
            .await
    }

    /// Clear `status.ownedObject` alone, leaving the rest of the stored status as it is.
    async fn clear_owned_object(&self, obj: &A::Resource) -> Result<(), StatusWriteError> {
        let patch = reconcile::owned_object_clearing();
        self.send_status_patch(obj, &PatchParams::default(), &patch)
            .await
    }

    /// Send a patch of the status subresource; bounded in time, and counted when it fails.
    async fn send_status_patch(
        &self,
        obj: &A::Resource,
        params: &PatchParams,
        patch: &Patch<serde_json::Value>,
    ) -> Result<(), StatusWriteError> {
        let api: Api<A::Resource> = Api::namespaced(
            self.shared.client.clone(),
            &obj.namespace().unwrap_or_default(),
        );
        let name = obj.name_any();
        let write = api.patch_status(&name, params, patch);
        let result = match tokio::time::timeout(STATUS_WRITE_TIMEOUT, write).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(StatusWriteError::Api(error)),
            Err(_) => Err(StatusWriteError::Timeout(STATUS_WRITE_TIMEOUT)),
        };
        if result.is_err() {
            self.shared
                .metrics
                .status_write_failures
                .get_or_create(&crate::metrics::KindLabels { kind: A::KIND })
                .inc();
        }
        result
    }

    async fn publish(
        &self,
        obj: &A::Resource,
        type_: EventType,
        reason: Reason,
        note: String,
    ) -> tokio::task::JoinHandle<()> {
        let note = if note.len() > 1000 {
            let cut = note
                .char_indices()
                .take_while(|(i, _)| *i < 990)
                .last()
                .map_or(0, |(i, c)| i + c.len_utf8());
            format!("{}...", &note[..cut])
        } else {
            note
        };
        let event = Event {
            type_,
            reason: reason.as_str().to_string(),
            note: Some(note),
            action: "Sync".to_string(),
            secondary: None,
        };
        self.shared
            .recorder
            .publish(event, obj.object_ref(&()), A::KIND)
            .await
    }
}

/// A resource's Kestra object and the client to reach it.
pub struct Bound {
    pub target: Target,
    pub kestra: KestraClient,
    /// The instance's revision: a new one (another URL, credentials, version) makes the
    /// resource read Kestra afresh.
    pub revision: u64,
}

/// The Kestra object a resource names, with its instance and tenant resolved, in the form
/// Kestra keys it by (two names Kestra stores as one are one target).
fn bind<A: Adapter>(instances: &Instances, obj: &A::Resource) -> Result<Bound, ReconcileError> {
    let common = A::common(obj);
    let namespace = obj.namespace().unwrap_or_default();
    let resolved = instances.resolve(&namespace, common.instance_ref)?;
    let kestra = resolved.client;
    let target = Target {
        instance: InstanceId::of(&namespace, common.instance_ref),
        tenant: kestra.tenant_for(common.tenant)?,
        namespace: common.namespace.to_string(),
        name: A::object_name(obj, &kestra.dialect())?,
    };
    Ok(Bound {
        target,
        kestra,
        revision: resolved.revision,
    })
}

fn target_of<A: Adapter>(instances: &Instances, obj: &A::Resource) -> Option<Target> {
    bind::<A>(instances, obj).ok().map(|b| b.target)
}

/// `min * 2^(n-1)`, capped at `max`, with up to 10% jitter.
pub fn backoff_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    let spread = base.as_millis() as u64 / 10;
    let jitter = if spread > 0 {
        rand::random_range(0..spread)
    } else {
        0
    };
    (base + Duration::from_millis(jitter)).min(max)
}

/// Parse a period such as `30s`, `5m`, `1h30m` or `500ms` (Go's duration format, which also
/// reads `1.5h` or `250us`); `None` for anything else, zero or negative.
pub fn parse_period(text: &str) -> Option<Duration> {
    read_period(text).ok()
}

/// The longest period read, in bytes. kube's parser panics when a part comes to `u64::MAX`
/// seconds or more; 16 bytes hold at most 15 digits and a unit, under 10^15 hours, far below.
pub const PERIOD_MAX_LEN: usize = 16;

/// [`parse_period`], saying why a text is not a period.
pub fn read_period(text: &str) -> Result<Duration, String> {
    use kube::core::duration::ParseError;
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".to_string());
    }
    if text.len() > PERIOD_MAX_LEN {
        return Err(format!("longer than {PERIOD_MAX_LEN} characters"));
    }
    // Before parsing: kube's parser also panics on a negative part inside, as in `5m-3s`.
    if text.contains('-') {
        return Err("negative durations are refused".to_string());
    }
    let period: kube::core::Duration = text.parse().map_err(|e| match e {
        ParseError::NotANumber(_) => "each unit needs a number before it".to_string(),
        other => other.to_string(),
    })?;
    let period = Duration::from(period);
    if period.is_zero() {
        return Err("zero is refused".to_string());
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> Target {
        Target {
            instance: InstanceId::Default,
            tenant: Some("main".into()),
            namespace: "company.team".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn one_reconcile_at_a_time_acts_on_a_kestra_object() {
        let locks = Arc::new(TargetLocks::default());
        let first = locks.lock(&target("f")).await;
        // Another object is not held up.
        drop(locks.lock(&target("g")).await);
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _second = locks.lock(&target("f")).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the second waits for the first");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(
            locks.locks.lock().is_empty(),
            "no entry is kept for an object nobody acts on"
        );
    }

    #[test]
    fn memory_is_per_uid_and_forgotten() {
        let memory = Memory::default();
        memory.failures.lock().insert("uid-1".into(), 3);
        memory.last_digests.lock().insert("uid-1".into(), 7);
        memory.last_digests.lock().insert("uid-2".into(), 8);
        memory.forget("uid-1");
        assert!(memory.failures.lock().is_empty());
        assert_eq!(memory.last_digests.lock().len(), 1);
    }

    #[test]
    fn periods() {
        assert_eq!(parse_period("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_period("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_period("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_period("5"), None);
        assert_eq!(parse_period("m"), None);
        assert_eq!(parse_period("0s"), None);
        assert_eq!(parse_period(""), None);
        assert_eq!(parse_period("5d"), None);
    }

    #[test]
    fn periods_in_go_format_never_negative_and_never_a_panic() {
        assert_eq!(parse_period(" 1.5h "), Some(Duration::from_secs(5400)));
        assert_eq!(parse_period("250us"), Some(Duration::from_micros(250)));
        assert_eq!(
            parse_period("4294967295h"),
            Some(Duration::from_secs(4294967295 * 3600))
        );
        for refused in ["-5m", "5m-3s", "-0s", "0", "1.2.3s", "5m 3s", "h5"] {
            assert_eq!(parse_period(refused), None, "{refused:?}");
        }
        // Past u64::MAX seconds, or longer than any period needs, is refused: not a panic.
        for long in [
            "18446744073709551616s",
            "999999999999999999999h",
            "1h1h1h1h1h1h1h1h1h",
        ] {
            assert_eq!(parse_period(long), None, "{long:?}");
        }
        assert!(parse_period("999999999999999h").is_some());
        assert!(read_period("-5m").unwrap_err().contains("negative"));
        assert!(read_period("5d").unwrap_err().contains("'h'"));
        assert!(read_period("m").unwrap_err().contains("number"));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let min = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        let first = backoff_delay(1, min, max);
        assert!(first >= min && first < min * 2);
        let fourth = backoff_delay(4, min, max);
        assert!(fourth >= Duration::from_secs(4) && fourth < Duration::from_millis(4400));
        assert_eq!(backoff_delay(30, min, max), max);
    }
}
