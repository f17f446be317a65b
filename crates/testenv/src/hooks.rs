//! The Kestra double's test hooks (`/__fake/...`): request counters and fault injection.
//!
//! The double is shared by every test using the environment, and its counters and fault
//! rules are global: a test that injects faults or reads counters should scope them with a
//! `route` prefix naming its own Kestra namespace where it can, and otherwise not run in
//! parallel with other tests against the same double.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// A client for the double's hooks: [`crate::TestEnv::fake_hooks`]. Make one per test (its
/// connections belong to the Tokio runtime that first uses it).
#[derive(Debug, Clone)]
pub struct FakeHooks {
    base: String,
    http: reqwest::Client,
}

/// `GET /__fake/counters`: API requests answered, per method, route template and status.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Counters {
    #[serde(default)]
    pub requests: Vec<RouteCount>,
    #[serde(default)]
    pub total: u64,
}

/// One counter line.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RouteCount {
    pub method: String,
    pub route: String,
    pub status: u16,
    pub count: u64,
}

impl Counters {
    /// Requests with this method whose route template contains `route`, any status.
    pub fn count(&self, method: &str, route: &str) -> u64 {
        self.requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.route.contains(route))
            .map(|r| r.count)
            .sum()
    }

    /// Requests with this method (or `*` for any) that were answered with `status`.
    pub fn count_status(&self, method: &str, status: u16) -> u64 {
        self.requests
            .iter()
            .filter(|r| {
                (method == "*" || r.method.eq_ignore_ascii_case(method)) && r.status == status
            })
            .map(|r| r.count)
            .sum()
    }
}

impl FakeHooks {
    /// Hooks of the double at `kestra_url` (its root URL, without `/api/v1`).
    pub fn new(kestra_url: &str) -> anyhow::Result<FakeHooks> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client for the fake's hooks")?;
        Ok(FakeHooks {
            base: format!("{}/__fake", kestra_url.trim_end_matches('/')),
            http,
        })
    }

    /// `GET /__fake/health`: succeeds when the double answers 2xx.
    pub async fn health(&self) -> anyhow::Result<()> {
        self.send(self.http.get(self.url("health")), "health")
            .await
            .map(drop)
    }

    /// `GET /__fake/counters`.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        let body = self
            .send(self.http.get(self.url("counters")), "counters")
            .await?;
        serde_json::from_str(&body).with_context(|| format!("parsing the counters: {body}"))
    }

    /// `POST /__fake/counters/reset`: zeroes the counters (all tests share them).
    pub async fn reset_counters(&self) -> anyhow::Result<()> {
        self.post("counters/reset", Value::Null).await
    }

    /// `POST /__fake/fail`: the next `n` API requests whose path starts with `route` (`""`:
    /// any) answer `status` (400..=599; 429 and 503 carry `Retry-After: 1`). `n = 0` clears.
    pub async fn fail_next(&self, n: u32, status: u16, route: &str) -> anyhow::Result<()> {
        let mut body = json!({"count": n, "status": status});
        if !route.is_empty() {
            body["route"] = json!(route);
        }
        self.post("fail", body).await
    }

    /// `POST /__fake/latency`: delays every API request by `ms` milliseconds (`0` clears).
    pub async fn latency(&self, ms: u64) -> anyhow::Result<()> {
        self.post("latency", json!({"ms": ms})).await
    }

    /// `POST /__fake/down`: the API is unavailable for `seconds` (0 < s <= the double's max);
    /// `mode` is `"refuse"` (connections refused, same port afterwards) or `"hang"` (accepted,
    /// never answered, dropped at the end).
    pub async fn down(&self, seconds: f64, mode: &str) -> anyhow::Result<()> {
        self.post("down", json!({"seconds": seconds, "mode": mode}))
            .await
    }

    /// Accept `user_password` (`user:password`) from now on instead of the configured basic
    /// credentials, as when the password is changed in Kestra.
    pub async fn set_basic_auth(&self, user_password: &str) -> anyhow::Result<()> {
        self.post("credentials", json!({ "basicAuth": user_password }))
            .await
    }

    /// `POST /__fake/<hook>` with a JSON body, for options the helpers above do not cover
    /// (e.g. `fail` with `method` or `retryAfter`, `latency` with `route`). `POST reset` wipes
    /// the whole double, which other tests share: avoid it outside a dedicated environment.
    pub async fn post(&self, hook: &str, body: Value) -> anyhow::Result<()> {
        let mut request = self.http.post(self.url(hook));
        if !body.is_null() {
            request = request.json(&body);
        }
        self.send(request, hook).await.map(drop)
    }

    fn url(&self, hook: &str) -> String {
        format!("{}/{hook}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<String> {
        let response = request
            .send()
            .await
            .with_context(|| format!("calling the fake's {what} hook at {}", self.base))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("reading the fake's {what} hook response"))?;
        if !status.is_success() {
            bail!("the fake's {what} hook answered {status}: {body}");
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_route_and_status() {
        let c: Counters = serde_json::from_value(json!({"requests": [
            {"method": "GET", "route": "/api/v1/{tenant}/flows/{namespace}", "status": 200, "count": 2},
            {"method": "GET", "route": "/api/v1/{tenant}/flows/{namespace}", "status": 503, "count": 1},
            {"method": "PUT", "route": "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}", "status": 200, "count": 4}
        ], "total": 7}))
        .unwrap();
        assert_eq!(c.count("GET", "/flows/"), 3);
        assert_eq!(c.count("put", "/kv/"), 4);
        assert_eq!(c.count_status("*", 503), 1);
        assert_eq!(c.total, 7);
    }
}
