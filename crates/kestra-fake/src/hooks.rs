//! Test hooks under `/__fake/` (only with `--test-hooks`): fault injection (latency, failing
//! statuses, downtime), request counters and reset. Hook requests are never counted.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;

use crate::config::BasicAuth;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::app::AppState;
use crate::errors::ApiError;
use crate::store::Store;

/// The longest downtime a hook may ask for, so a mistaken call cannot wedge a test run.
const MAX_DOWN_SECS: f64 = 600.0;

#[derive(Default)]
pub struct Hooks {
    faults: Mutex<Faults>,
    /// (method, route template, status) -> count.
    counters: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Basic credentials set by `/__fake/credentials`, replacing the configured ones: the
    /// password was changed in Kestra.
    basic_auth: Mutex<Option<BasicAuth>>,
}

#[derive(Default)]
struct Faults {
    latency: Option<Rule<Duration>>,
    failures: Vec<Rule<Failure>>,
    hang_until: Option<Instant>,
}

/// What a rule does, and which requests it applies to.
struct Rule<T> {
    action: T,
    route: Option<String>,
    method: Option<String>,
}

impl<T> Rule<T> {
    fn applies(&self, method: &str, path: &str) -> bool {
        self.route
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

struct Failure {
    remaining: u32,
    status: u16,
    retry_after_secs: u64,
    /// Answer like a Kestra that quotes the request body in its error
    /// (`Invalid JSON value for: <body>`), as versions parsing KV bodies as JSON do.
    echo_body: bool,
}

/// What an injected failure asks of the request.
pub enum Injection {
    Fail(ApiError),
    /// Answer this status with the request body quoted in the message.
    EchoBody(u16),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hooks {
    pub fn hang_until(&self) -> Option<Instant> {
        lock(&self.faults)
            .hang_until
            .filter(|until| *until > Instant::now())
    }

    pub fn latency_for(&self, method: &str, path: &str) -> Option<Duration> {
        lock(&self.faults)
            .latency
            .as_ref()
            .filter(|rule| rule.applies(method, path))
            .map(|rule| rule.action)
    }

    /// Consumes one failure from the first rule that matches, if any.
    pub fn take_failure(&self, method: &str, path: &str) -> Option<Injection> {
        let mut faults = lock(&self.faults);
        let rule = faults
            .failures
            .iter_mut()
            .find(|rule| rule.action.remaining > 0 && rule.applies(method, path))?;
        rule.action.remaining -= 1;
        let injection = if rule.action.echo_body {
            Injection::EchoBody(rule.action.status)
        } else {
            Injection::Fail(ApiError::Injected {
                status: rule.action.status,
                retry_after_secs: rule.action.retry_after_secs,
            })
        };
        faults.failures.retain(|rule| rule.action.remaining > 0);
        Some(injection)
    }

    /// The basic credentials accepted now: those set by the hook, else the configured ones.
    pub fn basic_auth(&self, configured: Option<&BasicAuth>) -> Option<BasicAuth> {
        lock(&self.basic_auth)
            .clone()
            .or_else(|| configured.cloned())
    }

    pub fn count(&self, method: &str, route: &str, status: u16) {
        *lock(&self.counters)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    fn clear(&self) {
        *lock(&self.faults) = Faults::default();
        lock(&self.counters).clear();
        *lock(&self.basic_auth) = None;
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/latency", post(latency))
        .route("/fail", post(fail))
        .route("/down", post(down))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/reset", post(reset))
        .route("/credentials", post(credentials))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsRequest {
    /// `user:password`, accepted from now on instead of the configured basic credentials.
    basic_auth: Option<String>,
}

async fn credentials(
    State(shared): State<AppState>,
    bytes: Bytes,
) -> Result<Json<Value>, HookError> {
    let request: CredentialsRequest = body(&bytes)?;
    let basic = match request.basic_auth {
        Some(text) => Some(
            text.parse::<BasicAuth>()
                .map_err(|_| HookError("basicAuth must be user:password".into()))?,
        ),
        None => None,
    };
    *lock(&shared.hooks.basic_auth) = basic;
    Ok(ok())
}

/// A hook request that could not be understood: a plain 400 with the reason.
struct HookError(String);

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({ "message": self.0 }))).into_response()
    }
}

/// Parses a JSON body; an empty body is the type's default (which clears a rule).
fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, HookError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| HookError(format!("invalid hook body: {e}")))
}

fn ok() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "UP" }))
}

#[derive(Default, Deserialize)]
struct LatencyRequest {
    #[serde(default)]
    ms: u64,
    route: Option<String>,
    method: Option<String>,
}

async fn latency(State(shared): State<AppState>, bytes: Bytes) -> Result<Json<Value>, HookError> {
    let request: LatencyRequest = body(&bytes)?;
    lock(&shared.hooks.faults).latency = (request.ms > 0).then(|| Rule {
        action: Duration::from_millis(request.ms),
        route: request.route,
        method: request.method,
    });
    Ok(ok())
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailRequest {
    #[serde(default)]
    count: u32,
    #[serde(default = "default_fail_status")]
    status: u16,
    route: Option<String>,
    method: Option<String>,
    /// For 429 and 503 answers.
    #[serde(default = "default_retry_after")]
    retry_after: u64,
    /// Quote the request body in the error message.
    #[serde(default)]
    echo_body: bool,
}

fn default_fail_status() -> u16 {
    500
}

fn default_retry_after() -> u64 {
    1
}

/// Adds a rule failing the next `count` matching requests; `count: 0` (or no body) clears them.
async fn fail(State(shared): State<AppState>, bytes: Bytes) -> Result<Json<Value>, HookError> {
    let request: FailRequest = body(&bytes)?;
    if !(400..=599).contains(&request.status) {
        return Err(HookError(format!(
            "status must be an error status (400-599), got {}",
            request.status
        )));
    }
    let mut faults = lock(&shared.hooks.faults);
    if request.count == 0 {
        faults.failures.clear();
    } else {
        faults.failures.push(Rule {
            action: Failure {
                remaining: request.count,
                status: request.status,
                retry_after_secs: request.retry_after,
                echo_body: request.echo_body,
            },
            route: request.route,
            method: request.method,
        });
    }
    Ok(ok())
}

#[derive(Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DownMode {
    /// Close the listener: connections are refused.
    #[default]
    Refuse,
    /// Accept, never answer, then drop the connections.
    Hang,
}

#[derive(Default, Deserialize)]
struct DownRequest {
    #[serde(default)]
    seconds: f64,
    #[serde(default)]
    mode: DownMode,
}

async fn down(State(shared): State<AppState>, bytes: Bytes) -> Result<Json<Value>, HookError> {
    let request: DownRequest = body(&bytes)?;
    if !(request.seconds > 0.0 && request.seconds <= MAX_DOWN_SECS) {
        return Err(HookError(format!(
            "seconds must be in (0, {MAX_DOWN_SECS}]"
        )));
    }
    let window = Duration::from_secs_f64(request.seconds);
    match request.mode {
        DownMode::Refuse => shared.conn.refuse_for(window),
        DownMode::Hang => {
            let until = Instant::now() + window;
            lock(&shared.hooks.faults).hang_until = Some(until);
            let conn = shared.conn.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(until).await;
                conn.drop_all();
            });
        }
    }
    Ok(ok())
}

async fn counters(State(shared): State<AppState>) -> Json<Value> {
    let counters = lock(&shared.hooks.counters);
    let requests: Vec<Value> = counters
        .iter()
        .map(|((method, route, status), count)| {
            json!({ "method": method, "route": route, "status": status, "count": count })
        })
        .collect();
    let total: u64 = counters.values().sum();
    Json(json!({ "requests": requests, "total": total }))
}

async fn reset_counters(State(shared): State<AppState>) -> Json<Value> {
    lock(&shared.hooks.counters).clear();
    ok()
}

/// Wipes the stored state, the fault rules and the counters.
async fn reset(State(shared): State<AppState>) -> Result<Json<Value>, ApiError> {
    shared.write(|store| {
        *store = Store::default();
        Ok(())
    })?;
    shared.hooks.clear();
    Ok(ok())
}
