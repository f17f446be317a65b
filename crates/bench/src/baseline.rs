//! The direct baseline: exactly the Kestra writes and the status patches the operator makes on a
//! cold sync, with the same concurrency (per kind), and no operator logic at all: no watch, no
//! read before the write, no finalizer, no Event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::fake::{KestraApi, TENANT};
use crate::resources::{Content, Item, Kind};

/// The status the operator writes after creating the object.
fn status(item: &Item, generation: i64, revision: i64, now: &str) -> Value {
    let (description, fields) = match item.content(0) {
        Content::Flow(_) => (
            format!(
                "flow {}/{} at revision {revision} (tenant {TENANT})",
                item.namespace, item.object
            ),
            json!({ "revision": revision, "validated": true }),
        ),
        Content::Kv(_) => (
            format!(
                "key {}/{} (STRING) (tenant {TENANT})",
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
                    "file {}{} ({} bytes) (tenant {TENANT})",
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
        "ownedObject": format!("{TENANT}/{}/{}", item.namespace, item.object.trim_start_matches('/')),
    });
    if let (Value::Object(s), Value::Object(f)) = (&mut status, fields) {
        s.extend(f);
    }
    status
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Run the baseline over `items`; returns the time from start to the last status patch.
pub async fn run(
    client: &kube::Client,
    namespace: &str,
    kestra: &KestraApi,
    items: &[Item],
    concurrency: usize,
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
            let generations: HashMap<String, i64> = listed
                .items
                .iter()
                .map(|o| {
                    (
                        o.metadata.name.clone().unwrap_or_default(),
                        o.metadata.generation.unwrap_or(1),
                    )
                })
                .collect();
            let params = PatchParams::apply("kestra-operator").force();
            stream::iter(of_kind)
                .map(|item| {
                    let api = api.clone();
                    let kestra = kestra.clone();
                    let params = params.clone();
                    let generation = generations.get(&item.name).copied().unwrap_or(1);
                    async move {
                        let revision = item
                            .write_kestra(&kestra, &item.content(0), true)
                            .await
                            .with_context(|| format!("baseline write of {}", item.name))?;
                        let patch = json!({
                            "apiVersion": "model.kestra.io/v1alpha1",
                            "kind": item.kind.kind(),
                            "status": status(&item, generation, revision, &now()),
                        });
                        api.patch_status(&item.name, &params, &Patch::Apply(patch))
                            .await
                            .with_context(|| format!("baseline status patch of {}", item.name))?;
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
