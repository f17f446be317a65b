//! Watches the three kinds and records, per object, when each generation became Ready and when
//! each drift correction showed in status: the timestamps every scenario reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::resources::Kind;

pub type Key = (Kind, String);

#[derive(Default)]
struct Obj {
    generation: i64,
    /// (generation Ready was reported for, when first seen), increasing.
    ready: Vec<(i64, Instant)>,
    /// (status.driftCorrections, when first seen), increasing.
    drift: Vec<(i64, Instant)>,
    /// Last Ready condition reason (for diagnostics).
    reason: String,
}

#[derive(Default)]
struct State {
    objects: HashMap<Key, Obj>,
    initialised: usize,
}

pub struct Tracker {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

fn ready_generation(obj: &DynamicObject) -> Option<i64> {
    let status = obj.data.get("status")?;
    let ready = status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?;
    if ready.get("status").and_then(Value::as_str) != Some("True") {
        return None;
    }
    ready
        .get("observedGeneration")
        .and_then(Value::as_i64)
        .or_else(|| status.get("observedGeneration").and_then(Value::as_i64))
}

fn ready_reason(obj: &DynamicObject) -> String {
    obj.data
        .pointer("/status/reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

impl Tracker {
    /// Start watching `namespace`; returns once the three initial lists are in.
    pub async fn start(client: &kube::Client, namespace: &str) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let notify = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        for kind in Kind::ALL {
            let api = kind.api(client, namespace);
            let state = state.clone();
            let notify = notify.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = watcher(api, watcher::Config::default().any_semantic())
                    .default_backoff()
                    .boxed();
                while let Some(event) = stream.next().await {
                    let now = Instant::now();
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    match event {
                        Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                            let name = obj.metadata.name.clone().unwrap_or_default();
                            let entry = st.objects.entry((kind, name)).or_default();
                            entry.generation = obj.metadata.generation.unwrap_or(0);
                            entry.reason = ready_reason(&obj);
                            if let Some(g) = ready_generation(&obj)
                                && entry.ready.last().is_none_or(|(last, _)| g > *last)
                            {
                                entry.ready.push((g, now));
                            }
                            let drift = obj
                                .data
                                .pointer("/status/driftCorrections")
                                .and_then(Value::as_i64)
                                .unwrap_or(0);
                            if drift > entry.drift.last().map_or(0, |(d, _)| *d) {
                                entry.drift.push((drift, now));
                            }
                        }
                        Ok(watcher::Event::InitDone) => st.initialised += 1,
                        Ok(_) => {}
                        // The API server ends watches now and then; the watcher resumes.
                        Err(_) => {}
                    }
                    drop(st);
                    notify.notify_waiters();
                }
            }));
        }
        let tracker = Self {
            state,
            notify,
            tasks,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while tracker.lock().initialised < Kind::ALL.len() {
            if Instant::now() > deadline {
                bail!("the watches did not list the resources within 120s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(tracker)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Objects whose current generation is Ready.
    pub fn ready_count(&self) -> usize {
        self.lock()
            .objects
            .values()
            .filter(|o| o.ready.last().is_some_and(|(g, _)| *g >= o.generation))
            .count()
    }

    /// Wait until `expected` objects are Ready at their current generation; returns when the
    /// last one became Ready (from the watch, not from the polling).
    pub async fn wait_all_ready(
        &self,
        expected: usize,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            {
                let st = self.lock();
                let ready: Vec<Instant> = st
                    .objects
                    .values()
                    .filter_map(|o| {
                        o.ready
                            .iter()
                            .find(|(g, _)| *g >= o.generation)
                            .map(|(_, t)| *t)
                    })
                    .collect();
                if ready.len() >= expected {
                    return Ok(ready.into_iter().max().unwrap_or_else(Instant::now));
                }
                if Instant::now() > deadline {
                    let mut reasons: HashMap<String, usize> = HashMap::new();
                    for o in st.objects.values() {
                        if o.ready.last().is_none_or(|(g, _)| *g < o.generation) {
                            let head = o.reason.split(':').next().unwrap_or("").to_string();
                            *reasons.entry(head).or_default() += 1;
                        }
                    }
                    bail!(
                        "only {} of {expected} Ready after {timeout:?}; not ready by reason: {reasons:?}",
                        ready.len()
                    );
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// When `key` was first seen Ready at generation `generation` or later.
    pub fn ready_at(&self, key: &Key, generation: i64) -> Option<Instant> {
        self.lock()
            .objects
            .get(key)?
            .ready
            .iter()
            .find(|(g, _)| *g >= generation)
            .map(|(_, t)| *t)
    }

    /// Wait for [`Tracker::ready_at`].
    pub async fn wait_ready(
        &self,
        key: &Key,
        generation: i64,
        timeout: Duration,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if let Some(at) = self.ready_at(key, generation) {
                return Some(at);
            }
            if Instant::now() > deadline {
                return None;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// The object's current `status.driftCorrections`.
    pub fn drift_count(&self, key: &Key) -> i64 {
        self.lock()
            .objects
            .get(key)
            .and_then(|o| o.drift.last().map(|(d, _)| *d))
            .unwrap_or(0)
    }

    /// When `status.driftCorrections` first exceeded `above`.
    pub fn drift_at(&self, key: &Key, above: i64) -> Option<Instant> {
        self.lock()
            .objects
            .get(key)?
            .drift
            .iter()
            .find(|(d, _)| *d > above)
            .map(|(_, t)| *t)
    }

    pub async fn changed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
