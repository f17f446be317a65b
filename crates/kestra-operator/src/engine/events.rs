//! Publishing Events without holding every one of them in memory.
//!
//! kube's `Recorder` keeps each Event it publishes so that a repeat within six minutes becomes a
//! series (`x3 over 5m`), and forgets old ones only when it publishes again. After a cold sync of
//! 10,000 resources it held 10,000 `Created` Events (about 25 MB) until the next Event, which in
//! a steady state may never come. Here a `Normal` Event (created, updated, drift corrected: one
//! per change) is published without being kept, and the recorder that counts repeated warnings
//! is replaced once it is older than the series window, so its memory is bounded.
//!
//! Events are sent in the background, 8 at a time: a reconcile does not wait for its Event (on
//! a cold sync that wait was one more API-server round trip per resource). At most 512 wait
//! their turn; beyond that a reconcile waits for room. Unbounded, the queue of a 10,000-resource
//! cold sync raised the operator's peak RSS from about 65 to 90 MiB.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// kube's series window (`CACHE_TTL`): repeats further apart are separate Events anyway.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Events in flight to the API server at once; the rest wait their turn in order.
const EVENTS_IN_FLIGHT: usize = 8;
/// Events sent or waiting to be; a reconcile publishing one more waits for room.
const EVENTS_QUEUED: usize = 512;

pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
    warnings: Mutex<(Instant, Recorder)>,
    in_flight: Arc<Semaphore>,
    queued: Arc<Semaphore>,
}

impl EventRecorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            reporter,
            warnings: Mutex::new((Instant::now(), recorder)),
            in_flight: Arc::new(Semaphore::new(EVENTS_IN_FLIGHT)),
            queued: Arc::new(Semaphore::new(EVENTS_QUEUED)),
        }
    }

    fn fresh(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// The recorder for warnings, replaced (with its cache) once older than the series window.
    fn warnings(&self) -> Recorder {
        let mut current = self.warnings.lock();
        if current.0.elapsed() > SERIES_WINDOW {
            *current = (Instant::now(), self.fresh());
        }
        current.1.clone()
    }

    /// Drop the warnings' cache when it is stale, even if nothing is published.
    pub fn forget_stale(&self) {
        let _ = self.warnings();
    }

    /// Send `event` in the background once there is room in the queue; a failure is logged with
    /// `kind`. The handle lets a caller wait for it (before the object it names goes away).
    pub async fn publish(
        &self,
        event: Event,
        reference: ObjectReference,
        kind: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        // The semaphores are never closed; without a permit the Event is still sent.
        let queued = self.queued.clone().acquire_owned().await.ok();
        // Normal Events get a recorder of their own, made when sent, so none is kept.
        let warnings = (event.type_ == EventType::Warning).then(|| self.warnings());
        let (client, reporter) = (self.client.clone(), self.reporter.clone());
        let in_flight = self.in_flight.clone();
        tokio::spawn(async move {
            let _queued = queued;
            let _sending = in_flight.acquire_owned().await.ok();
            let recorder = warnings.unwrap_or_else(|| Recorder::new(client, reporter));
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::warn!(kind, error = %e, "could not publish an Event");
            }
        })
    }
}
