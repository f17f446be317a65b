//! Direct calls to the Kestra API (the same requests the operator sends for writes), with the
//! benchmark's credential, each counted by route template as the double and the operator count.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use crate::kestra::{Counters, Credential};

#[derive(Clone)]
pub struct KestraApi {
    pub http: reqwest::Client,
    base: String,
    tenant: String,
    credential: Option<Credential>,
    counts: Arc<Mutex<Counters>>,
}

pub(crate) const FLOWS: &str = "/api/v1/{tenant}/flows";
pub(crate) const FLOW: &str = "/api/v1/{tenant}/flows/{namespace}/{id}";
pub(crate) const FLOWS_BY_IDS: &str = "/api/v1/{tenant}/flows/delete/by-ids";
pub(crate) const KV: &str = "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}";
pub(crate) const FILES: &str = "/api/v1/{tenant}/namespaces/{namespace}/files";
pub(crate) const FILE_STATS: &str = "/api/v1/{tenant}/namespaces/{namespace}/files/stats";

impl KestraApi {
    pub fn new(url: &str, tenant: &str, credential: Option<Credential>) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: format!("{}/api/v1/{tenant}", url.trim_end_matches('/')),
            tenant: tenant.to_string(),
            credential,
            counts: Arc::default(),
        })
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub(crate) fn counters(&self) -> Counters {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        Counters {
            requests: counts.requests.clone(),
            total: counts.total,
        }
    }

    /// Send with the credential, and count the request under `route`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        route: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let request = match &self.credential {
            Some(Credential::Basic(pair)) => {
                let (user, password) = pair.split_once(':').unwrap_or((pair, ""));
                request.basic_auth(user, Some(password))
            }
            Some(Credential::ApiKey(key)) => request.bearer_auth(key),
            None => request,
        };
        let answer = request.send().await;
        let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count(method, route, status, 1);
        Ok(answer?)
    }

    pub(crate) fn check(
        response: reqwest::Response,
        what: &str,
    ) -> anyhow::Result<reqwest::Response> {
        if response.status().is_success() {
            Ok(response)
        } else {
            bail!("{what}: HTTP {}", response.status())
        }
    }

    /// POST /flows: returns the revision.
    pub async fn create_flow(&self, source: &str) -> anyhow::Result<i64> {
        let request = self
            .http
            .post(format!("{}/flows", self.base))
            .header("Content-Type", "application/x-yaml")
            .body(source.to_string());
        let r = self.send(request, "POST", FLOWS).await?;
        let flow: Value = Self::check(r, "create flow")?.json().await?;
        Ok(flow["revision"].as_i64().unwrap_or(0))
    }

    pub async fn update_flow(
        &self,
        namespace: &str,
        id: &str,
        source: &str,
    ) -> anyhow::Result<i64> {
        let request = self
            .http
            .put(format!("{}/flows/{namespace}/{id}", self.base))
            .header("Content-Type", "application/x-yaml")
            .body(source.to_string());
        let r = self.send(request, "PUT", FLOW).await?;
        let flow: Value = Self::check(r, "update flow")?.json().await?;
        Ok(flow["revision"].as_i64().unwrap_or(0))
    }

    pub async fn flow_source(&self, namespace: &str, id: &str) -> anyhow::Result<Option<String>> {
        let request = self
            .http
            .get(format!("{}/flows/{namespace}/{id}", self.base))
            .query(&[("source", "true")]);
        let r = self.send(request, "GET", FLOW).await?;
        if r.status() == 404 {
            return Ok(None);
        }
        let flow: Value = Self::check(r, "get flow")?.json().await?;
        Ok(flow["source"].as_str().map(str::to_string))
    }

    /// Delete one flow, named in the body (never a path that could be another route).
    pub async fn delete_flow(&self, namespace: &str, id: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .delete(format!("{}/flows/delete/by-ids", self.base))
            .json(&json!([{ "namespace": namespace, "id": id }]));
        let r = self.send(request, "DELETE", FLOWS_BY_IDS).await?;
        if r.status() == 404 {
            return Ok(());
        }
        let answer: Value = Self::check(r, "delete flow")?.json().await?;
        match answer["count"].as_u64() {
            Some(0 | 1) => Ok(()),
            _ => bail!("delete flow {namespace}/{id}: unexpected answer {answer}"),
        }
    }

    /// PUT a KV entry; `body` is the typed text (a JSON string for the benchmark's values).
    pub async fn put_kv(&self, namespace: &str, key: &str, body: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .put(format!("{}/namespaces/{namespace}/kv/{key}", self.base))
            .header("Content-Type", "text/plain")
            .body(body.to_string());
        let r = self.send(request, "PUT", KV).await?;
        Self::check(r, "put kv").map(|_| ())
    }

    pub async fn kv_value(&self, namespace: &str, key: &str) -> anyhow::Result<Option<Value>> {
        let request = self
            .http
            .get(format!("{}/namespaces/{namespace}/kv/{key}", self.base));
        let r = self.send(request, "GET", KV).await?;
        if r.status() == 404 || r.status() == 410 {
            return Ok(None);
        }
        let entry: Value = Self::check(r, "get kv")?.json().await?;
        Ok(Some(entry["value"].clone()))
    }

    pub async fn delete_kv(&self, namespace: &str, key: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .delete(format!("{}/namespaces/{namespace}/kv/{key}", self.base));
        let r = self.send(request, "DELETE", KV).await?;
        if r.status() == 404 {
            return Ok(());
        }
        Self::check(r, "delete kv").map(|_| ())
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
        let request = self
            .http
            .post(format!("{}/namespaces/{namespace}/files", self.base))
            .query(&[("path", path)])
            .multipart(reqwest::multipart::Form::new().part("fileContent", part));
        let r = self.send(request, "POST", FILES).await?;
        Self::check(r, "upload file").map(|_| ())
    }

    pub async fn file(&self, namespace: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let request = self
            .http
            .get(format!("{}/namespaces/{namespace}/files", self.base))
            .query(&[("path", path)]);
        let r = self.send(request, "GET", FILES).await?;
        if r.status() == 404 {
            return Ok(None);
        }
        Ok(Some(Self::check(r, "get file")?.bytes().await?.to_vec()))
    }

    /// Delete one file, only when Kestra says it is a file (a DELETE of a directory's path
    /// deletes the whole directory).
    pub async fn delete_file(&self, namespace: &str, path: &str) -> anyhow::Result<()> {
        let request = self
            .http
            .get(format!("{}/namespaces/{namespace}/files/stats", self.base))
            .query(&[("path", path)]);
        let r = self.send(request, "GET", FILE_STATS).await?;
        if r.status() == 404 {
            return Ok(());
        }
        let stats: Value = Self::check(r, "file stats")?.json().await?;
        if stats["type"] != "File" {
            bail!(
                "{namespace}{path} is not a file ({}); left in place",
                stats["type"]
            );
        }
        let request = self
            .http
            .delete(format!("{}/namespaces/{namespace}/files", self.base))
            .query(&[("path", path)]);
        let r = self.send(request, "DELETE", FILES).await?;
        if r.status() == 404 {
            return Ok(());
        }
        Self::check(r, "delete file").map(|_| ())
    }
}
