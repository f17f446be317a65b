//! The direct baseline: exactly the Kestra writes and the status patches the operator makes on a
//! cold sync, with the same concurrency (per kind), and no operator logic at all: no watch, no
//! read before the write, no finalizer, no Event.
//!
//! Its second form adds the two API-server writes the operator makes per resource by design (the
//! finalizer, added before the Kestra write, and the `Created` Event after the status), so that
//! the cost of those writes and the cost of the operator's own logic can be told apart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::kestra::KestraApi;
use crate::resources::{Content, Item, Kind};

/// The status the operator writes after creating the object.
fn status(item: &Item, tenant: &str, generation: i64, revision: i64, now: &str) -> Value {
    let (description, fields) = match item.content(0) {
        Content::Flow(_) => (
            format!(
                "flow {}/{} at revision {revision} (tenant {tenant})",
                item.namespace, item.object
            ),
            json!({ "revision": revision, "validated": true }),
        ),
        Content::Kv(_) => (
            format!(
                "key {}/{} (STRING) (tenant {tenant})",
                item.namespace, item.object
            ),
            json!({ "type": "STRING" }),
        ),
        Content::File(bytes) => {
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (
                format!(
                    "file {}{} ({} bytes) (tenant {tenant})",
                    item.namespace,
                    item.object,
                    bytes.len()
                ),
                json!({ "size": bytes.len(), "sha256": sha }),
            )
        }
    };
    let message = format!("created {description}");
    let mut status = json!({
        "observedGeneration": generation,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Synced", "message": message,
            "lastTransitionTime": now, "observedGeneration": generation,
        }],
        "reason": format!("Synced: {message}"),
        "lastSyncTime": now,
        "ownedObject": format!("{tenant}/{}/{}", item.namespace, item.object.trim_start_matches('/')),
    });
    if let (Value::Object(s), Value::Object(f)) = (&mut status, fields) {
        s.extend(f);
    }
    status
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Which API-server writes the baseline makes per resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// The status patch only.
    Status,
    /// The finalizer patch, the status patch and an Event, as the operator does.
    FinalizerStatusEvent,
}

const FINALIZER: &str = "model.kestra.io/finalizer";

fn finalizer_patch() -> anyhow::Result<json_patch::Patch> {
    Ok(serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
    ]))?)
}

/// An Event like the operator's `Created` one.
fn created_event(item: &Item, namespace: &str, uid: &str) -> Event {
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", item.name)),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        action: Some("Sync".into()),
        reason: Some("Created".into()),
        note: Some(format!(
            "created {} {}/{}",
            item.kind.kind(),
            item.namespace,
            item.object
        )),
        type_: Some("Normal".into()),
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        reporting_controller: Some("kestra-operator".into()),
        reporting_instance: Some("kestra-bench".into()),
        regarding: Some(ObjectReference {
            api_version: Some("model.kestra.io/v1alpha1".into()),
            kind: Some(item.kind.kind().into()),
            name: Some(item.name.clone()),
            namespace: Some(namespace.to_string()),
            uid: Some(uid.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Run the baseline over `items`; returns the time from start to the last status patch.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    kestra: &KestraApi,
    items: &[Item],
    concurrency: usize,
    writes: Writes,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let runs = Kind::ALL.map(|kind| {
        let client = client.clone();
        let kestra = kestra.clone();
        let of_kind: Vec<Item> = items.iter().filter(|i| i.kind == kind).cloned().collect();
        async move {
            // One LIST per kind, as the operator's watch starts with.
            let api = kind.api(&client, namespace);
            let listed = api.list(&ListParams::default()).await?;
            let generations: HashMap<String, (i64, String)> = listed
                .items
                .iter()
                .map(|o| {
                    (
                        o.metadata.name.clone().unwrap_or_default(),
                        (
                            o.metadata.generation.unwrap_or(1),
                            o.metadata.uid.clone().unwrap_or_default(),
                        ),
                    )
                })
                .collect();
            let events: Api<Event> = Api::namespaced(client.clone(), namespace);
            let params = PatchParams::apply("kestra-operator").force();
            stream::iter(of_kind)
                .map(|item| {
                    let api = api.clone();
                    let kestra = kestra.clone();
                    let params = params.clone();
                    let events = events.clone();
                    let (generation, uid) = generations
                        .get(&item.name)
                        .cloned()
                        .unwrap_or((1, String::new()));
                    async move {
                        if writes == Writes::FinalizerStatusEvent {
                            api.patch(
                                &item.name,
                                &PatchParams::default(),
                                &Patch::<()>::Json(finalizer_patch()?),
                            )
                            .await
                            .with_context(|| format!("baseline finalizer of {}", item.name))?;
                        }
                        let revision = item
                            .write_kestra(&kestra, &item.content(0), true)
                            .await
                            .with_context(|| format!("baseline write of {}", item.name))?;
                        let patch = json!({
                            "apiVersion": "model.kestra.io/v1alpha1",
                            "kind": item.kind.kind(),
                            "status": status(&item, kestra.tenant(), generation, revision, &now()),
                        });
                        api.patch_status(&item.name, &params, &Patch::Apply(patch))
                            .await
                            .with_context(|| format!("baseline status patch of {}", item.name))?;
                        if writes == Writes::FinalizerStatusEvent {
                            events
                                .create(
                                    &PostParams::default(),
                                    &created_event(&item, namespace, &uid),
                                )
                                .await
                                .with_context(|| format!("baseline Event of {}", item.name))?;
                        }
                        Ok::<_, anyhow::Error>(())
                    }
                })
                .buffer_unordered(concurrency)
                .try_collect::<Vec<()>>()
                .await
        }
    });
    futures::future::try_join_all(runs).await?;
    Ok(started.elapsed())
}
