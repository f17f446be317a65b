//! Publishing Events without holding every one of them in memory.
//!
//! kube's `Recorder` keeps each Event it publishes so that a repeat within six minutes becomes a
//! series (`x3 over 5m`), and forgets old ones only when it publishes again. After a cold sync of
//! 10,000 resources it held 10,000 `Created` Events (about 25 MB) until the next Event, which in
//! a steady state may never come. Here a `Normal` Event (created, updated, drift corrected: one
//! per change) is published without being kept, and the recorder that counts repeated warnings
//! is replaced once it is older than the series window, so its memory is bounded.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// kube's series window (`CACHE_TTL`): repeats further apart are separate Events anyway.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

pub struct EventRecorder {
    client: kube::Client,
    reporter: Reporter,
    warnings: Mutex<(Instant, Recorder)>,
}

impl EventRecorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        let recorder = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            reporter,
            warnings: Mutex::new((Instant::now(), recorder)),
        }
    }

    fn fresh(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// The recorder for warnings, replaced (with its cache) once older than the series window.
    fn warnings(&self) -> Recorder {
        let mut current = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if current.0.elapsed() > SERIES_WINDOW {
            *current = (Instant::now(), self.fresh());
        }
        current.1.clone()
    }

    /// Drop the warnings' cache when it is stale, even if nothing is published.
    pub fn forget_stale(&self) {
        let _ = self.warnings();
    }

    pub async fn publish(
        &self,
        event: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let recorder = match event.type_ {
            EventType::Normal => self.fresh(),
            EventType::Warning => self.warnings(),
        };
        recorder.publish(event, reference).await
    }
}
