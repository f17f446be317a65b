//! HTTP client for the Kestra API: base URL, tenant, auth, timeouts, retries, metrics.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode};
use url::Url;

use super::error::KestraError;
use super::types::{FileStat, Flow, FlowSummary, KvRead, KvSummary};
use crate::metrics::Metrics;

/// A credential that never shows in Debug output, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the operator authenticates to Kestra.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <token>` (an EE API token).
    Bearer(Secret),
    /// HTTP basic auth from a `user:password` string.
    Basic {
        user: String,
        password: Secret,
    },
}

impl Auth {
    /// Parse `KESTRA_API_BASIC_AUTH`-style `user:password`.
    pub fn basic(user_password: &str) -> Result<Self, KestraError> {
        match user_password.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self::Basic {
                user: user.to_string(),
                password: Secret::new(password),
            }),
            _ => Err(KestraError::Config(
                "basic auth must be given as user:password".to_string(),
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Kestra's root URL (`http://kestra:8080`); a trailing `/api/v1` is accepted and dropped.
    pub url: String,
    /// Default tenant; `None` means the tenant-less `/api/v1` root of Kestra before 0.23.
    pub tenant: Option<String>,
    pub auth: Auth,
    pub timeout: Duration,
    /// PEM file with extra CA certificates to trust.
    pub ca_file: Option<std::path::PathBuf>,
    /// Attempts for a request that failed without an answer or with 502/503/504.
    pub attempts: u32,
    /// Requests per second to Kestra at most (all kinds together); `None`: no limit.
    pub rate_limit: Option<std::num::NonZeroU32>,
}

type RateLimiter = governor::DefaultDirectRateLimiter;

#[derive(Clone)]
pub struct KestraClient {
    http: reqwest::Client,
    root: Url,
    tenant: Option<String>,
    auth: Auth,
    attempts: u32,
    limiter: Option<Arc<RateLimiter>>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for KestraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KestraClient")
            .field("root", &self.root.as_str())
            .field("tenant", &self.tenant)
            .field("auth", &self.auth)
            .finish()
    }
}

/// One API call: its route template (for metrics), method and path segments.
struct Call<'a> {
    route: &'static str,
    method: Method,
    tenant: Option<&'a str>,
    segments: &'a [&'a str],
}

impl KestraClient {
    pub fn new(config: ClientConfig, metrics: Arc<Metrics>) -> Result<Self, KestraError> {
        let mut root = Url::parse(config.url.trim()).map_err(|e| {
            KestraError::Config(format!("Kestra URL {:?} is not a URL: {e}", config.url))
        })?;
        if !matches!(root.scheme(), "http" | "https") {
            return Err(KestraError::Config(format!(
                "Kestra URL {:?} must start with http:// or https://",
                config.url
            )));
        }
        let path = root
            .path()
            .trim_end_matches('/')
            .trim_end_matches("/api/v1")
            .to_string();
        // reqwest is built without a default TLS provider; ring is the one kube uses too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        root.set_path(&path);
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("kestra-operator/", env!("CARGO_PKG_VERSION")))
            // Credentials must never leave over a redirect to another host or to plain HTTP.
            .redirect(reqwest::redirect::Policy::none());
        if root.scheme() == "https" {
            builder = builder.https_only(true);
        }
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                KestraError::Config(format!("cannot read CA file {}: {e}", ca.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                KestraError::Config(format!("CA file {} is not PEM: {e}", ca.display()))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| KestraError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            root,
            tenant: config.tenant.filter(|t| !t.is_empty()),
            auth: config.auth,
            attempts: config.attempts.max(1),
            limiter: config.rate_limit.map(|per_second| {
                Arc::new(RateLimiter::direct(governor::Quota::per_second(per_second)))
            }),
            metrics,
        })
    }

    /// The tenant a resource's calls go to: its own, else the operator's default.
    pub fn tenant_for(&self, resource_tenant: Option<&str>) -> Result<Option<String>, KestraError> {
        match (&self.tenant, resource_tenant) {
            (None, Some(t)) if t != "main" => Err(KestraError::Config(format!(
                "spec.tenant is {t:?} but the operator talks to the tenant-less /api/v1 root \
                 (Kestra before 0.23): remove spec.tenant or run the operator with a tenant"
            ))),
            (None, _) => Ok(None),
            (Some(default), None) => Ok(Some(default.clone())),
            (Some(_), Some(t)) => Ok(Some(t.to_string())),
        }
    }

    /// The default tenant's display name (`main`, or `-` for the legacy root).
    pub fn default_tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or("-")
    }

    fn url(&self, tenant: Option<&str>, segments: &[&str]) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]);
            if let Some(t) = tenant {
                path.push(t);
            }
            path.extend(segments);
        }
        url
    }

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
        }
    }

    /// Send a call, retrying idempotent failures without an answer; returns status and body.
    async fn send(
        &self,
        call: Call<'_>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<(StatusCode, Bytes), KestraError> {
        let url = self.url(call.tenant, call.segments);
        let method_name = method_label(&call.method);
        let idempotent = call.method != Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            let request =
                self.authorize(build(self.http.request(call.method.clone(), url.clone())));
            let started = Instant::now();
            let result = request.send().await;
            let outcome = match result {
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Ok(body) => Ok((status, body)),
                        Err(e) => Err(transport_error(&e)),
                    }
                }
                Err(e) => Err(transport_error(&e)),
            };
            let status = outcome.as_ref().ok().map(|(s, _)| s.as_u16());
            self.metrics
                .observe_request(call.route, method_name, status, started.elapsed());
            let retryable = match &outcome {
                Ok((s, _)) => idempotent && matches!(s.as_u16(), 502..=504),
                Err(e) => idempotent || is_connect_error(e),
            };
            if retryable && attempt < self.attempts {
                tokio::time::sleep(Duration::from_millis(100 * 3u64.pow(attempt - 1))).await;
                continue;
            }
            return outcome;
        }
    }

    async fn expect_ok(
        &self,
        call: Call<'_>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Bytes, KestraError> {
        let (status, body) = self.send(call, build).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(KestraError::from_status(status.as_u16(), &body))
        }
    }

    // ---- flows ----

    /// The flow with its source, or `None` when absent or deleted.
    pub async fn get_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Flow>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}/{id}",
            method: Method::GET,
            tenant,
            segments: &["flows", namespace, id],
        };
        let (status, body) = self.send(call, |r| r.query(&[("source", "true")])).await?;
        match status.as_u16() {
            200 => {
                let flow: Flow = decode(&body)?;
                Ok((!flow.deleted).then_some(flow))
            }
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// The flows of a namespace (no sources): one request however many flows it holds.
    pub async fn list_flows(
        &self,
        tenant: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<FlowSummary>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}",
            method: Method::GET,
            tenant,
            segments: &["flows", namespace],
        };
        let body = self.expect_ok(call, |r| r).await?;
        decode(&body)
    }

    /// Create a flow; `Ok(None)` when Kestra says it exists already (either error generation).
    pub async fn create_flow(
        &self,
        tenant: Option<&str>,
        source: &str,
    ) -> Result<Option<Flow>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows",
            method: Method::POST,
            tenant,
            segments: &["flows"],
        };
        let (status, body) = self.send(call, |r| yaml_body(r, source)).await?;
        match status.as_u16() {
            200 | 201 => decode(&body).map(Some),
            409 => Ok(None),
            422 if crate::kestra::error_message(&body)
                .is_some_and(|m| m.contains("already exists")) =>
            {
                Ok(None)
            }
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Update an existing flow; `Ok(None)` when it does not exist (create it instead).
    pub async fn update_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
        source: &str,
    ) -> Result<Option<Flow>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}/{id}",
            method: Method::PUT,
            tenant,
            segments: &["flows", namespace, id],
        };
        let (status, body) = self.send(call, |r| yaml_body(r, source)).await?;
        match status.as_u16() {
            200 => decode(&body).map(Some),
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Delete a flow (soft delete in Kestra); an absent flow counts as deleted.
    pub async fn delete_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}/{id}",
            method: Method::DELETE,
            tenant,
            segments: &["flows", namespace, id],
        };
        let (status, body) = self.send(call, |r| r).await?;
        match status.as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    // ---- key-value store ----

    pub async fn get_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
    ) -> Result<KvRead, KestraError> {
        self.get_kv_stamped(tenant, namespace, key)
            .await
            .map(|(read, _)| read)
    }

    /// A KV read with the entry's `updated` time when Kestra sends it (1.2 and later).
    pub async fn get_kv_stamped(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
    ) -> Result<(KvRead, Option<String>), KestraError> {
        #[derive(serde::Deserialize)]
        struct Stamp {
            #[serde(default)]
            updated: Option<String>,
        }
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "kv", key],
        };
        let (status, body) = self.send(call, |r| r).await?;
        match status.as_u16() {
            200 => {
                let stamp = decode::<Stamp>(&body).ok().and_then(|s| s.updated);
                decode(&body).map(|entry| (KvRead::Found(entry), stamp))
            }
            404 => Ok((KvRead::Missing, None)),
            410 => Ok((KvRead::Expired, None)),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// The keys of a namespace with their update times: one request however many keys it holds.
    pub async fn list_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<KvSummary>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "kv"],
        };
        let body = self.expect_ok(call, |r| r).await?;
        decode(&body)
    }

    /// Create or overwrite a KV entry; `body` is the typed text (see `kv_encoding`).
    pub async fn put_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
        body: &str,
        ttl: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
            method: Method::PUT,
            tenant,
            segments: &["namespaces", namespace, "kv", key],
        };
        self.expect_ok(call, |r| {
            let mut r = r
                .header("Content-Type", "text/plain")
                .body(body.to_string());
            if let Some(ttl) = ttl {
                r = r.header("ttl", ttl);
            }
            if let Some(description) = description.filter(|d| header_safe(d)) {
                r = r.header("description", description);
            }
            r
        })
        .await
        .map(|_| ())
    }

    pub async fn delete_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
            method: Method::DELETE,
            tenant,
            segments: &["namespaces", namespace, "kv", key],
        };
        let (status, body) = self.send(call, |r| r).await?;
        match status.as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    // ---- namespace files ----

    /// A file's bytes, or `None` when absent. `path` starts with `/`.
    pub async fn get_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<Option<Bytes>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "files"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200 => Ok(Some(body)),
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// The direct children of a directory; a missing directory has none (Kestra answers 404).
    pub async fn list_directory(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<Vec<FileStat>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files/directory",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "files", "directory"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200 => decode(&body),
            404 => Ok(Vec::new()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Upload (create or overwrite) a file as the multipart part `fileContent`.
    pub async fn upload_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
        content: Bytes,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files",
            method: Method::POST,
            tenant,
            segments: &["namespaces", namespace, "files"],
        };
        // A part filename ending in `.zip` makes Kestra extract an archive; ours never does.
        let part_name = "content";
        self.expect_ok(call, |r| {
            let part = reqwest::multipart::Part::bytes(content.to_vec())
                .file_name(part_name)
                .mime_str("application/octet-stream")
                .unwrap_or_else(|_| {
                    reqwest::multipart::Part::bytes(content.to_vec()).file_name(part_name)
                });
            r.query(&[("path", path)])
                .multipart(reqwest::multipart::Form::new().part("fileContent", part))
        })
        .await
        .map(|_| ())
    }

    pub async fn delete_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files",
            method: Method::DELETE,
            tenant,
            segments: &["namespaces", namespace, "files"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }
}

fn yaml_body(request: RequestBuilder, source: &str) -> RequestBuilder {
    request
        .header("Content-Type", "application/x-yaml")
        .body(source.to_string())
}

/// Header values cannot carry control characters; such a description is not sent.
fn header_safe(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || !c.is_control())
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KestraError> {
    serde_json::from_slice(body).map_err(|e| KestraError::Decode(e.to_string()))
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

fn transport_error(error: &reqwest::Error) -> KestraError {
    let what = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    // reqwest's message names the URL (no credentials: they travel in headers).
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    KestraError::Unavailable {
        what: what.to_string(),
        message,
    }
}

fn is_connect_error(error: &KestraError) -> bool {
    matches!(error, KestraError::Unavailable { what, .. } if what == "connection failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str, tenant: Option<&str>) -> KestraClient {
        KestraClient::new(
            ClientConfig {
                url: url.to_string(),
                tenant: tenant.map(str::to_string),
                auth: Auth::None,
                timeout: Duration::from_secs(1),
                ca_file: None,
                attempts: 1,
                rate_limit: None,
            },
            Metrics::new(),
        )
        .expect("valid test config")
    }

    #[test]
    fn builds_tenant_and_legacy_urls_with_encoded_segments() {
        let c = client("http://kestra:8080/", Some("main"));
        assert_eq!(
            c.url(Some("main"), &["flows", "company.team", "a b"])
                .as_str(),
            "http://kestra:8080/api/v1/main/flows/company.team/a%20b"
        );
        let legacy = client("http://kestra:8080/api/v1", None);
        assert_eq!(
            legacy.url(None, &["namespaces", "ns", "kv", "k"]).as_str(),
            "http://kestra:8080/api/v1/namespaces/ns/kv/k"
        );
        let prefixed = client("https://example.org/kestra/", Some("main"));
        assert_eq!(
            prefixed.url(Some("t1"), &["flows"]).as_str(),
            "https://example.org/kestra/api/v1/t1/flows"
        );
    }

    #[test]
    fn tenant_resolution() {
        let c = client("http://k", Some("main"));
        assert_eq!(c.tenant_for(None).unwrap().as_deref(), Some("main"));
        assert_eq!(c.tenant_for(Some("acme")).unwrap().as_deref(), Some("acme"));
        let legacy = client("http://k", None);
        assert_eq!(legacy.tenant_for(None).unwrap(), None);
        assert_eq!(legacy.tenant_for(Some("main")).unwrap(), None);
        assert!(legacy.tenant_for(Some("acme")).is_err());
    }

    #[test]
    fn rejects_non_http_urls() {
        let err = KestraClient::new(
            ClientConfig {
                url: "ftp://kestra".into(),
                tenant: None,
                auth: Auth::None,
                timeout: Duration::from_secs(1),
                ca_file: None,
                attempts: 1,
                rate_limit: None,
            },
            Metrics::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("http://"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let auth = Auth::basic("admin:s3cr3t-pass").unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cr3t-pass"), "{shown}");
        assert!(format!("{:?}", Auth::Bearer(Secret::new("tok-123"))).contains("redacted"));
        assert!(Auth::basic("no-colon").is_err());
    }
}
