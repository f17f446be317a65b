//! The benchmark's resources: a deterministic mix of the three kinds over 10 Kestra namespaces,
//! what Kestra should hold for each, and creating and changing them through the API server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kestra::KestraApi;

pub const KESTRA_NAMESPACES: usize = 10;

/// The `KestraInstance` (in the benchmark's Kubernetes namespace) that half of the resources
/// name in `spec.instanceRef` when the benchmark runs with two instances (`--instances 2`).
pub const SECOND_INSTANCE: &str = "second";

/// Consecutive resources that hold one of each kind in each Kestra namespace (3 x 10): the
/// unit in which resources alternate between the two instances.
pub const INSTANCE_BLOCK: usize = 3 * KESTRA_NAMESPACES;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Flow,
    Kv,
    File,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Flow, Kind::Kv, Kind::File];

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Flow => "KestraFlow",
            Kind::Kv => "KestraKeyValue",
            Kind::File => "KestraNamespaceFile",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Flow => "kestraflows",
            Kind::Kv => "kestrakeyvalues",
            Kind::File => "kestranamespacefiles",
        }
    }

    pub fn api_resource(self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("model.kestra.io", "v1alpha1", self.kind()),
            self.plural(),
        )
    }

    pub fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.api_resource())
    }

    pub fn short(self) -> &'static str {
        match self {
            Kind::Flow => "flow",
            Kind::Kv => "kv",
            Kind::File => "file",
        }
    }
}

/// One resource of the benchmark.
#[derive(Clone, Debug)]
pub struct Item {
    pub index: usize,
    pub kind: Kind,
    /// Kubernetes name.
    pub name: String,
    /// Kestra namespace.
    pub namespace: String,
    /// Flow id, key or file path (with its leading `/`).
    pub object: String,
    /// Whether the resource names the second instance (`spec.instanceRef`); otherwise it uses
    /// the operator's default Kestra.
    pub second: bool,
}

/// `n` resources: kinds in turn (flow, kv, file), Kestra namespaces `bench.ns0`..`bench.ns9`.
pub fn items(n: usize) -> Vec<Item> {
    (0..n)
        .map(|index| {
            let kind = Kind::ALL[index % 3];
            let namespace = format!("bench.ns{}", (index / 3) % KESTRA_NAMESPACES);
            let (name, object) = match kind {
                Kind::Flow => (format!("flow-{index}"), format!("flow-{index}")),
                Kind::Kv => (format!("kv-{index}"), format!("key-{index}")),
                Kind::File => (format!("file-{index}"), format!("/file-{index}.txt")),
            };
            Item {
                index,
                kind,
                name,
                namespace,
                object,
                second: false,
            }
        })
        .collect()
}

/// Give every other block of [`INSTANCE_BLOCK`] resources to the second instance (indexes
/// 30..59, 90..119, ...), so that both instances hold every kind in every Kestra namespace (an
/// alternation by single index would not: with kinds and namespaces in turn, a kind's resources
/// of one namespace all have the same index parity).
pub fn split_instances(items: &mut [Item]) {
    for item in items {
        item.second = (item.index / INSTANCE_BLOCK) % 2 == 1;
    }
}

/// What Kestra should hold for an item at version `tag` of its spec (0: as created; a drift
/// injection uses a tag no spec ever has).
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Flow(String),
    /// The KV value (a string) as GET returns it.
    Kv(String),
    File(Vec<u8>),
}

impl Item {
    pub fn content(&self, tag: u64) -> Content {
        match self.kind {
            Kind::Flow => Content::Flow(format!(
                "id: {}\nnamespace: {}\ntasks:\n- id: hello\n  type: io.kestra.plugin.core.log.Log\n  message: hello {} v{tag}\n",
                self.object, self.namespace, self.index
            )),
            Kind::Kv => Content::Kv(format!("value {} v{tag}", self.index)),
            Kind::File => {
                Content::File(format!("content of file {} v{tag}\n", self.index).into_bytes())
            }
        }
    }

    fn spec_fields(&self, tag: u64) -> Value {
        match self.content(tag) {
            Content::Flow(source) => json!({ "source": source }),
            Content::Kv(value) => json!({ "value": value }),
            Content::File(bytes) => json!({ "content": String::from_utf8_lossy(&bytes) }),
        }
    }

    pub fn manifest(&self, namespace: &str) -> Value {
        let mut spec = json!({ "namespace": self.namespace });
        match self.kind {
            Kind::Flow => spec["id"] = json!(self.object),
            Kind::Kv => spec["key"] = json!(self.object),
            Kind::File => spec["filename"] = json!(self.object.trim_start_matches('/')),
        }
        if let (Value::Object(spec), Value::Object(fields)) = (&mut spec, self.spec_fields(0)) {
            spec.extend(fields);
        }
        if self.second {
            spec["instanceRef"] = json!({ "kind": "KestraInstance", "name": SECOND_INSTANCE });
        }
        json!({
            "apiVersion": "model.kestra.io/v1alpha1",
            "kind": self.kind.kind(),
            "metadata": { "name": self.name, "namespace": namespace },
            "spec": spec,
        })
    }

    /// Change the spec to version `tag`; returns the new generation.
    pub async fn patch(
        &self,
        client: &kube::Client,
        namespace: &str,
        tag: u64,
    ) -> anyhow::Result<i64> {
        let api = self.kind.api(client, namespace);
        let patched = api
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": self.spec_fields(tag) })),
            )
            .await?;
        patched
            .metadata
            .generation
            .context("patched object has no generation")
    }

    /// Whether Kestra holds `content`.
    pub async fn kestra_holds(
        &self,
        kestra: &KestraApi,
        content: &Content,
    ) -> anyhow::Result<bool> {
        Ok(match content {
            Content::Flow(source) => {
                kestra
                    .flow_source(&self.namespace, &self.object)
                    .await?
                    .as_deref()
                    == Some(source)
            }
            Content::Kv(value) => {
                kestra.kv_value(&self.namespace, &self.object).await?
                    == Some(Value::String(value.clone()))
            }
            Content::File(bytes) => {
                kestra.file(&self.namespace, &self.object).await?.as_ref() == Some(bytes)
            }
        })
    }

    /// Write `content` directly into Kestra (what the baseline and a drift do).
    pub async fn write_kestra(
        &self,
        kestra: &KestraApi,
        content: &Content,
        create: bool,
    ) -> anyhow::Result<i64> {
        match content {
            Content::Flow(source) if create => kestra.create_flow(source).await,
            Content::Flow(source) => {
                kestra
                    .update_flow(&self.namespace, &self.object, source)
                    .await
            }
            Content::Kv(value) => kestra
                .put_kv(
                    &self.namespace,
                    &self.object,
                    &Value::String(value.clone()).to_string(),
                )
                .await
                .map(|_| 0),
            Content::File(bytes) => kestra
                .upload_file(&self.namespace, &self.object, bytes.clone())
                .await
                .map(|_| 0),
        }
    }
}

/// Create every item with `concurrency` requests in flight; returns the elapsed time.
pub async fn create_all(
    client: &kube::Client,
    namespace: &str,
    items: &[Item],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = Arc::new(client.clone());
    stream::iter(items.iter().cloned())
        .map(|item| {
            let client = client.clone();
            async move {
                let api = item.kind.api(&client, namespace);
                let obj: DynamicObject = serde_json::from_value(item.manifest(namespace))?;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match api.create(&PostParams::default(), &obj).await {
                        Ok(_) => return Ok::<_, anyhow::Error>(()),
                        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
                        Err(e) if attempt < 5 => {
                            tracing_free_warn(&format!(
                                "create {} failed (attempt {attempt}): {e}",
                                item.name
                            ));
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(e) => return Err(e).with_context(|| format!("creating {}", item.name)),
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

pub fn tracing_free_warn(message: &str) {
    eprintln!("kestra-bench: warning: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_gives_each_instance_every_kind_in_every_namespace() {
        let mut all = items(10_000);
        // One instance: manifests without instanceRef, as before.
        assert!(
            all.iter()
                .all(|i| i.manifest("bench")["spec"].get("instanceRef").is_none())
        );
        split_instances(&mut all);
        let second: Vec<&Item> = all.iter().filter(|i| i.second).collect();
        assert_eq!(second.len(), 4990);
        for on_second in [false, true] {
            let mut pairs: Vec<(Kind, &str)> = all
                .iter()
                .filter(|i| i.second == on_second)
                .map(|i| (i.kind, i.namespace.as_str()))
                .collect();
            pairs.sort_unstable();
            pairs.dedup();
            assert_eq!(pairs.len(), INSTANCE_BLOCK);
        }
        assert_eq!(
            second[0].manifest("bench")["spec"]["instanceRef"],
            json!({ "kind": "KestraInstance", "name": "second" })
        );
    }
}
