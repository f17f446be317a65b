//! The transport to Kestra: base URL, tenant, auth, timeouts, retries, rate limit, metrics and
//! the leadership fence. The calls of each Kestra resource live in their own file.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use tokio::sync::watch;

use super::error::{KestraError, Unavailability};
use crate::metrics::{DEFAULT_INSTANCE_LABEL, InstanceLabel, Metrics};

/// How the operator authenticates to Kestra. Its secrets never show in Debug output, logs or
/// errors.
#[derive(Clone)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <token>` (an EE API token).
    Bearer(SecretString),
    /// HTTP basic auth from a `user:password` string.
    Basic {
        user: String,
        password: SecretString,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f
                .debug_tuple("Bearer")
                .field(&format_args!("<redacted>"))
                .finish(),
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &format_args!("<redacted>"))
                .finish(),
        }
    }
}

impl PartialEq for Auth {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::None, Self::None) => true,
            (Self::Bearer(a), Self::Bearer(b)) => a.expose_secret() == b.expose_secret(),
            (
                Self::Basic { user, password },
                Self::Basic {
                    user: other_user,
                    password: other_password,
                },
            ) => user == other_user && password.expose_secret() == other_password.expose_secret(),
            _ => false,
        }
    }
}

impl Eq for Auth {}

impl Auth {
    /// Parse `KESTRA_API_BASIC_AUTH`-style `user:password`.
    pub fn basic(user_password: &str) -> Result<Self, KestraError> {
        match user_password.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Self::Basic {
                user: user.to_string(),
                password: password.into(),
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
    /// Extra CA certificates to trust.
    pub ca: Option<CaBundle>,
    /// Attempts for a request that failed without an answer or with 502/503/504.
    pub attempts: u32,
    /// Requests per second to Kestra at most (all kinds together); `None`: no limit.
    pub rate_limit: Option<std::num::NonZeroU32>,
}

/// CA certificates (PEM) and where they came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaBundle {
    /// `file /etc/ca.pem`, `ConfigMap ns/name key ca.crt`, ...
    pub origin: String,
    pub pem: Vec<u8>,
}

impl CaBundle {
    pub fn from_file(path: &std::path::Path) -> Result<Self, KestraError> {
        let pem = std::fs::read(path).map_err(|e| {
            KestraError::Config(format!("cannot read CA file {}: {e}", path.display()))
        })?;
        Ok(Self {
            origin: format!("CA file {}", path.display()),
            pem,
        })
    }
}

type RateLimiter = governor::DefaultDirectRateLimiter;

#[derive(Clone)]
pub struct KestraClient {
    http: reqwest::Client,
    root: Url,
    tenant: Option<String>,
    auth: Auth,
    /// Waits between the attempts of a call (`ClientConfig::attempts` attempts at most).
    retries: ExponentialBuilder,
    limiter: Option<Arc<RateLimiter>>,
    metrics: Arc<Metrics>,
    /// The instance this client talks to, as its metric label.
    instance: InstanceLabel,
    /// Flips to true when this replica may no longer act (the leader Lease was lost): calls in
    /// flight are abandoned and no new one starts, so a successor never races a late write.
    fence: Option<watch::Receiver<bool>>,
    /// What Kestra said about itself at start (`None` until then, or if it would not say).
    server: Arc<std::sync::OnceLock<super::ServerInfo>>,
    /// Set once Kestra answered that it has no filtered KV listing.
    pub(super) kv_search_missing: Arc<std::sync::atomic::AtomicBool>,
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
pub(super) struct Call<'a> {
    pub route: &'static str,
    pub method: Method,
    pub tenant: Option<&'a str>,
    pub segments: &'a [&'a str],
}

impl KestraClient {
    pub fn new(config: ClientConfig, metrics: Arc<Metrics>) -> Result<Self, KestraError> {
        let mut root = parse_root(&config.url)?;
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
        if let Some(ca) = &config.ca {
            let certs = reqwest::Certificate::from_pem_bundle(&ca.pem)
                .map_err(|e| KestraError::Config(format!("{} is not PEM: {e}", ca.origin)))?;
            if certs.is_empty() {
                return Err(KestraError::Config(format!(
                    "{} holds no PEM certificate",
                    ca.origin
                )));
            }
            for cert in certs {
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
            retries: retry_policy(config.attempts),
            limiter: config.rate_limit.map(|per_second| {
                Arc::new(RateLimiter::direct(governor::Quota::per_second(per_second)))
            }),
            instance: metrics.instance_label(DEFAULT_INSTANCE_LABEL),
            metrics,
            fence: None,
            server: Arc::default(),
            kv_search_missing: Arc::default(),
        })
    }

    /// Remember what Kestra said about itself; the first answer sticks.
    pub fn set_server_info(&self, info: super::ServerInfo) {
        let _ = self.server.set(info);
    }

    pub fn server(&self) -> Option<&super::ServerInfo> {
        self.server.get()
    }

    pub fn dialect(&self) -> super::Dialect {
        super::Dialect::of(self.server.get())
    }

    /// The same client, its requests counted under `instance` (bounded: see
    /// `Metrics::instance_label`).
    pub fn labelled(mut self, instance: &str) -> Self {
        self.instance = self.metrics.instance_label(instance);
        self
    }

    /// The same client, whose calls stop as soon as `lost` turns true.
    pub fn fenced_by(mut self, lost: watch::Receiver<bool>) -> Self {
        self.fence = Some(lost);
        self
    }

    fn fenced(&self) -> bool {
        self.fence.as_ref().is_some_and(|lost| *lost.borrow())
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
            Auth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            Auth::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
        }
    }

    /// Send a call, retrying idempotent failures without an answer; returns status and body.
    pub(super) async fn send(
        &self,
        call: Call<'_>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<(StatusCode, Bytes), KestraError> {
        let url = self.url(call.tenant, call.segments);
        let method_name = method_label(&call.method);
        let idempotent = call.method != Method::POST;
        let (call, url, build) = (&call, &url, &build);
        let attempt = || async move {
            // Fenced, maybe while waiting to try again: no new call starts (nor waits for the
            // rate limiter).
            if self.fenced() {
                return Ok(Err(KestraError::Fenced));
            }
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            if self.fenced() {
                return Ok(Err(KestraError::Fenced));
            }
            let request =
                self.authorize(build(self.http.request(call.method.clone(), url.clone())));
            let started = Instant::now();
            let exchange = async {
                let response = request.send().await.map_err(|e| transport_error(&e))?;
                let status = response.status();
                let body = response.bytes().await.map_err(|e| transport_error(&e))?;
                Ok((status, body))
            };
            let outcome = tokio::select! {
                outcome = exchange => outcome,
                () = fence_closed(self.fence.clone()) => return Ok(Err(KestraError::Fenced)),
            };
            let status = outcome.as_ref().ok().map(|(s, _)| s.as_u16());
            self.metrics.observe_request(
                &self.instance,
                call.route,
                method_name,
                status,
                started.elapsed(),
            );
            let retryable = match &outcome {
                Ok((s, _)) => idempotent && matches!(s.as_u16(), 502..=504),
                Err(e) => idempotent || is_connect_error(e),
            };
            if retryable {
                Err(Transient(outcome))
            } else {
                Ok(outcome)
            }
        };
        // The wait between attempts ends early when the fence closes (the next attempt then
        // returns `Fenced` at once).
        let fence = self.fence.clone();
        let pause = move |delay| {
            let fence = fence.clone();
            async move {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = fence_closed(fence) => {}
                }
            }
        };
        match attempt.retry(self.retries).sleep(pause).await {
            Ok(outcome) | Err(Transient(outcome)) => outcome,
        }
    }

    pub(super) async fn expect_ok(
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
}

pub(super) fn yaml_body(request: RequestBuilder, source: &str) -> RequestBuilder {
    request
        .header("Content-Type", "application/x-yaml")
        .body(source.to_string())
}

/// Header values cannot carry control characters; such a description is not sent.
pub(super) fn header_safe(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || !c.is_control())
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KestraError> {
    serde_json::from_slice(body).map_err(KestraError::Json)
}

/// An attempt's outcome that another attempt may improve on: no answer (for an idempotent call,
/// or a call that could not connect), or 502/503/504 to an idempotent call.
struct Transient(Result<(StatusCode, Bytes), KestraError>);

/// Waits between the attempts of a call: 100 ms, then three times longer each time, each plus
/// up to as much again at random (so that calls failing together do not retry in step).
fn retry_policy(attempts: u32) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_factor(3.0)
        .without_max_delay()
        .with_max_times(attempts.saturating_sub(1) as usize)
        .with_jitter()
}

/// Resolves when the fence closes; never without a fence (or once its sender is gone).
async fn fence_closed(fence: Option<watch::Receiver<bool>>) {
    match fence {
        Some(mut lost) => {
            if lost.wait_for(|lost| *lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
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
        Unavailability::Timeout
    } else if is_tls_failure(error) {
        Unavailability::Tls
    } else if error.is_connect() {
        Unavailability::Connect
    } else {
        Unavailability::Transport
    };
    // reqwest's message names the URL (no credentials: they travel in headers).
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    KestraError::Unavailable { what, message }
}

/// Whether the TLS handshake failed (an unknown CA, a name mismatch, an expired certificate).
/// rustls' error sits in an `io::Error` inside another (`hyper_util` Connect error -> io -> io ->
/// rustls); an `io::Error`'s `source()` skips the error it wraps, so those are opened by hand.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    fn holds_rustls(error: &(dyn std::error::Error + 'static)) -> bool {
        if error.is::<rustls::Error>() {
            return true;
        }
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| holds_rustls(inner));
        wrapped || error.source().is_some_and(holds_rustls)
    }
    std::error::Error::source(error).is_some_and(holds_rustls)
}

fn is_connect_error(error: &KestraError) -> bool {
    matches!(
        error,
        KestraError::Unavailable {
            what: Unavailability::Connect,
            ..
        }
    )
}

/// Kestra's root URL. Credentials in it are refused, and never repeated: they would be logged
/// with the URL, and `KESTRA_API_BASIC_AUTH` keeps them out of logs.
fn parse_root(text: &str) -> Result<Url, KestraError> {
    let root = Url::parse(text.trim()).map_err(|e| {
        KestraError::Config(format!(
            "the Kestra URL is not a URL ({e}); give it as http(s)://host:port"
        ))
    })?;
    if !root.username().is_empty() || root.password().is_some() {
        return Err(KestraError::Config(
            "the Kestra URL carries a user name or password (user:password@): remove them from \
             the URL and give the login in KESTRA_API_BASIC_AUTH (or --kestra-basic-auth-file)"
                .to_string(),
        ));
    }
    if !matches!(root.scheme(), "http" | "https") {
        return Err(KestraError::Config(format!(
            "the Kestra URL {root} must start with http:// or https://"
        )));
    }
    Ok(root)
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
                ca: None,
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
                ca: None,
                attempts: 1,
                rate_limit: None,
            },
            Metrics::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("http://"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        for url in [
            "http://admin:s3cr3t-pass@kestra:8080",
            "http://admin@kestra:8080",
            "ht tp://admin:s3cr3t-pass@kestra",
        ] {
            let err = parse_root(url).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t-pass"), "{err}");
        }
        let err = parse_root("http://admin:s3cr3t-pass@kestra:8080")
            .unwrap_err()
            .to_string();
        assert!(err.contains("KESTRA_API_BASIC_AUTH"), "{err}");
        assert!(parse_root("https://kestra.example:8443/prefix").is_ok());
    }

    /// A server answering 503 to everything, and the number of requests it got.
    async fn unavailable_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let router = axum::Router::new().fallback(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy") }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (url, hits)
    }

    fn retrying_client(url: &str) -> KestraClient {
        KestraClient::new(
            ClientConfig {
                url: url.to_string(),
                tenant: Some("main".into()),
                auth: Auth::None,
                timeout: Duration::from_secs(5),
                ca: None,
                attempts: 3,
                rate_limit: None,
            },
            Metrics::new(),
        )
        .expect("valid test config")
    }

    fn call(method: Method) -> Call<'static> {
        Call {
            route: "/api/v1/{tenant}/flows",
            method,
            tenant: Some("main"),
            segments: &["flows"],
        }
    }

    #[tokio::test]
    async fn idempotent_calls_are_retried_with_growing_waits() {
        let (url, hits) = unavailable_server().await;
        let kestra = retrying_client(&url);
        let started = Instant::now();
        let (status, body) = kestra.send(call(Method::GET), |r| r).await.unwrap();
        let took = started.elapsed();
        assert_eq!((status.as_u16(), &body[..]), (503, &b"busy"[..]));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
        // 100 then 300 ms, each with up to as much again of jitter.
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_millis(2000), "{took:?}");
        // A POST may have been applied: it is not sent twice.
        let (status, _) = kestra.send(call(Method::POST), |r| r).await.unwrap();
        assert_eq!(status.as_u16(), 503);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn the_fence_ends_the_wait_between_attempts() {
        let (url, hits) = unavailable_server().await;
        let (lose, lost) = watch::channel(false);
        let mut kestra = retrying_client(&url).fenced_by(lost);
        // A wait long enough that only the fence can end it within the test.
        kestra.retries = retry_policy(3).with_min_delay(Duration::from_secs(60));
        let closer = tokio::spawn({
            let hits = hits.clone();
            async move {
                while hits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // The answer is in by then: the call waits to try again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                lose.send_replace(true);
                lose
            }
        });
        let started = Instant::now();
        let result = kestra.send(call(Method::GET), |r| r).await;
        assert!(matches!(result, Err(KestraError::Fenced)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(closer.await);
        // Once fenced, no call starts.
        let result = kestra.send(call(Method::GET), |r| r).await;
        assert!(matches!(result, Err(KestraError::Fenced)), "{result:?}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let auth = Auth::basic("admin:s3cr3t-pass").unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cr3t-pass"), "{shown}");
        assert!(format!("{:?}", Auth::Bearer("tok-123".into())).contains("redacted"));
        assert!(Auth::basic("no-colon").is_err());
    }
}
