//! A private Kestra double (the `kestra-fake` binary, no auth, hooks on) and a direct client of
//! its API, used by the baseline, by drift injection and to see when a write landed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::procs::Proc;

pub const TENANT: &str = "main";

pub struct Fake {
    pub proc: Proc,
    pub url: String,
    pub api: KestraApi,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counter {
    pub method: String,
    pub route: String,
    pub status: u16,
    pub count: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    pub requests: Vec<Counter>,
    pub total: u64,
}

impl Counters {
    pub fn reads(&self) -> u64 {
        self.requests
            .iter()
            .filter(|c| c.method == "GET")
            .map(|c| c.count)
            .sum()
    }
    pub fn writes(&self) -> u64 {
        self.requests
            .iter()
            .filter(|c| c.method != "GET")
            .map(|c| c.count)
            .sum()
    }
    pub fn errors(&self) -> u64 {
        self.requests
            .iter()
            .filter(|c| c.status >= 400)
            .map(|c| c.count)
            .sum()
    }
    /// `METHOD route status -> count`, the route shortened to what follows the tenant.
    pub fn by_route(&self) -> BTreeMap<String, u64> {
        self.requests
            .iter()
            .map(|c| {
                let route = c.route.trim_start_matches("/api/v1/{tenant}");
                (format!("{} {} {}", c.method, route, c.status), c.count)
            })
            .collect()
    }
}

impl Fake {
    pub async fn start(bin: &Path, logs: &Path, tag: &str) -> anyhow::Result<Self> {
        let port_file = logs.join(format!("fake-{tag}.port"));
        let _ = std::fs::remove_file(&port_file);
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", "127.0.0.1:0", "--test-hooks", "--port-file"])
            .arg(&port_file)
            .env("RUST_LOG", "warn");
        let mut proc = Proc::spawn("kestra-fake", cmd, &logs.join(format!("fake-{tag}.log")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse()
            {
                break port;
            }
            proc.check_alive()?;
            if Instant::now() > deadline {
                bail!("kestra-fake did not write {}", port_file.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let url = format!("http://127.0.0.1:{port}");
        Ok(Self {
            proc,
            api: KestraApi::new(&url)?,
            url,
        })
    }

    pub async fn set_latency(&self, ms: u64) -> anyhow::Result<()> {
        self.hook("latency", json!({ "ms": ms })).await
    }

    pub async fn reset_counters(&self) -> anyhow::Result<()> {
        self.hook("counters/reset", json!({})).await
    }

    pub async fn counters(&self) -> anyhow::Result<Counters> {
        Ok(self
            .api
            .http
            .get(format!("{}/__fake/counters", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn hook(&self, name: &str, body: Value) -> anyhow::Result<()> {
        self.api
            .http
            .post(format!("{}/__fake/{name}", self.url))
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("hook {name}"))?;
        Ok(())
    }
}

/// Direct calls to the Kestra API (the same requests the operator sends for writes).
#[derive(Clone)]
pub struct KestraApi {
    pub http: reqwest::Client,
    base: String,
}

impl KestraApi {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: format!("{url}/api/v1/{TENANT}"),
        })
    }

    fn check(response: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
        if response.status().is_success() {
            Ok(response)
        } else {
            bail!("{what}: HTTP {}", response.status())
        }
    }

    /// POST /flows: returns the revision.
    pub async fn create_flow(&self, source: &str) -> anyhow::Result<i64> {
        let r = self
            .http
            .post(format!("{}/flows", self.base))
            .header("Content-Type", "application/x-yaml")
            .body(source.to_string())
            .send()
            .await?;
        let flow: Value = Self::check(r, "create flow")?.json().await?;
        Ok(flow["revision"].as_i64().unwrap_or(0))
    }

    pub async fn update_flow(
        &self,
        namespace: &str,
        id: &str,
        source: &str,
    ) -> anyhow::Result<i64> {
        let r = self
            .http
            .put(format!("{}/flows/{namespace}/{id}", self.base))
            .header("Content-Type", "application/x-yaml")
            .body(source.to_string())
            .send()
            .await?;
        let flow: Value = Self::check(r, "update flow")?.json().await?;
        Ok(flow["revision"].as_i64().unwrap_or(0))
    }

    pub async fn flow_source(&self, namespace: &str, id: &str) -> anyhow::Result<Option<String>> {
        let r = self
            .http
            .get(format!("{}/flows/{namespace}/{id}", self.base))
            .query(&[("source", "true")])
            .send()
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        let flow: Value = Self::check(r, "get flow")?.json().await?;
        Ok(flow["source"].as_str().map(str::to_string))
    }

    /// PUT a KV entry; `body` is the typed text (a JSON string for the benchmark's values).
    pub async fn put_kv(&self, namespace: &str, key: &str, body: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/namespaces/{namespace}/kv/{key}", self.base))
            .header("Content-Type", "text/plain")
            .body(body.to_string())
            .send()
            .await?;
        Self::check(r, "put kv").map(|_| ())
    }

    pub async fn kv_value(&self, namespace: &str, key: &str) -> anyhow::Result<Option<Value>> {
        let r = self
            .http
            .get(format!("{}/namespaces/{namespace}/kv/{key}", self.base))
            .send()
            .await?;
        if r.status() == 404 || r.status() == 410 {
            return Ok(None);
        }
        let entry: Value = Self::check(r, "get kv")?.json().await?;
        Ok(Some(entry["value"].clone()))
    }

    /// Multipart upload as the operator sends it (part `fileContent`, file name `content`).
    pub async fn upload_file(
        &self,
        namespace: &str,
        path: &str,
        content: Vec<u8>,
    ) -> anyhow::Result<()> {
        let part = reqwest::multipart::Part::bytes(content)
            .file_name("content")
            .mime_str("application/octet-stream")?;
        let r = self
            .http
            .post(format!("{}/namespaces/{namespace}/files", self.base))
            .query(&[("path", path)])
            .multipart(reqwest::multipart::Form::new().part("fileContent", part))
            .send()
            .await?;
        Self::check(r, "upload file").map(|_| ())
    }

    pub async fn file(&self, namespace: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let r = self
            .http
            .get(format!("{}/namespaces/{namespace}/files", self.base))
            .query(&[("path", path)])
            .send()
            .await?;
        if r.status() == 404 {
            return Ok(None);
        }
        Ok(Some(Self::check(r, "get file")?.bytes().await?.to_vec()))
    }
}
