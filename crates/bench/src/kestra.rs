//! The Kestra a benchmark runs against, and a direct client of its API (used by the baseline, by
//! drift injection and to see when a write landed). The default is a private Kestra double (the
//! `kestra-fake` binary, no auth, hooks on: its counters give the Kestra requests and its latency
//! hook adds delay). With `--kestra-url` it is an external Kestra: the requests are then counted
//! by the operator (`kestra_operator_kestra_requests_total`) and by this client itself, and the
//! benchmark deletes the objects it wrote (by name, one at a time) before and after each session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::metrics::Sample;
use crate::procs::Proc;
use crate::resources::{Item, Kind};

pub use crate::kestra_api::KestraApi;

pub const DEFAULT_TENANT: &str = "main";

/// Credentials for an external Kestra, from the environment only (never a flag: the command
/// line is written into BENCHMARKS.md).
#[derive(Clone)]
pub enum Credential {
    /// `user:password`.
    Basic(String),
    ApiKey(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic(_) => f.write_str("Basic(redacted)"),
            Self::ApiKey(_) => f.write_str("ApiKey(redacted)"),
        }
    }
}

impl Credential {
    /// `KESTRA_BENCH_BASIC_AUTH` (`user:password`) or `KESTRA_BENCH_API_KEY`, at most one.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let basic = std::env::var("KESTRA_BENCH_BASIC_AUTH")
            .ok()
            .filter(|v| !v.is_empty());
        let key = std::env::var("KESTRA_BENCH_API_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        match (basic, key) {
            (Some(_), Some(_)) => {
                bail!("set KESTRA_BENCH_BASIC_AUTH or KESTRA_BENCH_API_KEY, not both")
            }
            (Some(b), None) if !b.contains(':') => {
                bail!("KESTRA_BENCH_BASIC_AUTH must be user:password")
            }
            (Some(b), None) => Ok(Some(Self::Basic(b))),
            (None, Some(k)) => Ok(Some(Self::ApiKey(k))),
            (None, None) => Ok(None),
        }
    }

    /// The operator's environment variable for this credential.
    pub fn operator_env(&self) -> (&'static str, &str) {
        match self {
            Self::Basic(b) => ("KESTRA_API_BASIC_AUTH", b),
            Self::ApiKey(k) => ("KESTRA_API_API_KEY", k),
        }
    }
}

/// Which Kestra the sessions use.
#[derive(Clone, Debug)]
pub enum Target {
    /// A private `kestra-fake` per session, answering like this Kestra version (`1.3`, `2.0`).
    Double { bin: PathBuf, version: String },
    External {
        url: String,
        tenant: String,
        credential: Option<Credential>,
    },
}

impl Target {
    pub fn is_double(&self) -> bool {
        matches!(self, Self::Double { .. })
    }

    /// The double of the second instance in a two-instance run: the other version (2.0 beside
    /// 1.3, 1.3 beside 2.0), so that both are covered.
    pub fn second(&self) -> anyhow::Result<Self> {
        match self {
            Self::Double { bin, version } => Ok(Self::Double {
                bin: bin.clone(),
                version: if version == "1.3" { "2.0" } else { "1.3" }.to_string(),
            }),
            Self::External { .. } => {
                bail!("a second instance runs on a double only (not with --kestra-url)")
            }
        }
    }
}

/// What `/api/v1/configs` says (recorded with the results).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KestraInfo {
    /// `double` or `external`.
    pub target: String,
    pub version: String,
    pub edition: String,
}

impl KestraInfo {
    /// The 1.3 double: the benchmark's reference, whose rows carry no label.
    pub fn is_default(&self) -> bool {
        self.target == "double" && self.version.starts_with("1.3")
    }

    /// How the report names the Kestra of a run.
    pub fn label(&self) -> String {
        let kind = if self.target == "external" {
            "external Kestra"
        } else {
            "Kestra double"
        };
        format!("{kind} {} {}", self.version, self.edition.to_lowercase())
            .trim()
            .to_string()
    }
}

/// The requests counted at the last reset on an external Kestra: the operator's (and which
/// process made them) and this client's.
#[derive(Default)]
struct Mark {
    operator_pid: Option<u32>,
    operator: Counters,
    client: Counters,
}

pub struct Kestra {
    /// The double's process (none for an external Kestra).
    pub proc: Option<Proc>,
    pub url: String,
    pub api: KestraApi,
    mark: Mutex<Mark>,
}

impl Kestra {
    pub async fn start(target: &Target, logs: &Path, tag: &str) -> anyhow::Result<Self> {
        match target {
            Target::Double { bin, version } => Self::start_double(bin, version, logs, tag).await,
            Target::External {
                url,
                tenant,
                credential,
            } => Ok(Self {
                proc: None,
                url: url.clone(),
                api: KestraApi::new(url, tenant, credential.clone())?,
                mark: Mutex::default(),
            }),
        }
    }

    async fn start_double(
        bin: &Path,
        version: &str,
        logs: &Path,
        tag: &str,
    ) -> anyhow::Result<Self> {
        let port_file = logs.join(format!("fake-{tag}.port"));
        let _ = std::fs::remove_file(&port_file);
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", "127.0.0.1:0", "--test-hooks", "--port-file"])
            .arg(&port_file)
            .args(["--kestra-version", version])
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
            proc: Some(proc),
            api: KestraApi::new(&url, DEFAULT_TENANT, None)?,
            url,
            mark: Mutex::default(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Added latency: only the double can add it.
    pub async fn set_latency(&self, ms: u64) -> anyhow::Result<()> {
        match &self.proc {
            Some(_) => self.hook("latency", json!({ "ms": ms })).await,
            None if ms == 0 => Ok(()),
            None => bail!("latency cannot be added to an external Kestra (use --latencies 0)"),
        }
    }

    /// Start counting requests from zero. `operator`: the running operator's metrics and pid.
    pub async fn reset_counters(&self, operator: Option<(u32, &[Sample])>) -> anyhow::Result<()> {
        if self.proc.is_some() {
            return self.hook("counters/reset", json!({})).await;
        }
        let mark = Mark {
            operator_pid: operator.map(|(pid, _)| pid),
            operator: operator.map_or_else(Counters::default, |(_, s)| operator_counters(s)),
            client: self.api.counters(),
        };
        *self.mark.lock().unwrap_or_else(PoisonError::into_inner) = mark;
        Ok(())
    }

    /// Requests since the last reset: the double's own count, or on an external Kestra the
    /// operator's and this client's.
    pub async fn counters(&self, operator: Option<(u32, &[Sample])>) -> anyhow::Result<Counters> {
        if self.proc.is_some() {
            return Ok(self
                .api
                .http
                .get(format!("{}/__fake/counters", self.url))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?);
        }
        let mark = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        let mut now = self.api.counters().minus(&mark.client);
        if let Some((pid, samples)) = operator {
            let made = operator_counters(samples);
            // A restarted operator counts from zero.
            now.add(&if mark.operator_pid == Some(pid) {
                made.minus(&mark.operator)
            } else {
                made
            });
        }
        Ok(now)
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

    /// Version and edition from `/api/v1/configs`.
    pub async fn info(&self) -> anyhow::Result<KestraInfo> {
        let r = self
            .api
            .http
            .get(format!("{}/api/v1/configs", self.url))
            .send()
            .await?;
        let configs: Value = KestraApi::check(r, "GET /api/v1/configs")?.json().await?;
        let text = |k: &str| configs[k].as_str().unwrap_or("unknown").to_string();
        Ok(KestraInfo {
            target: if self.proc.is_some() {
                "double"
            } else {
                "external"
            }
            .to_string(),
            version: text("version"),
            edition: text("edition"),
        })
    }

    /// On an external Kestra, delete what the items may have left (their own objects, by name);
    /// a double starts empty.
    pub async fn remove_items(&self, items: &[Item]) -> anyhow::Result<()> {
        if self.proc.is_some() {
            return Ok(());
        }
        let failed: Vec<String> = stream::iter(items)
            .map(|item| async move {
                let done = match item.kind {
                    Kind::Flow => self.api.delete_flow(&item.namespace, &item.object).await,
                    Kind::Kv => self.api.delete_kv(&item.namespace, &item.object).await,
                    Kind::File => self.api.delete_file(&item.namespace, &item.object).await,
                };
                done.err().map(|e| format!("{}: {e:#}", item.name))
            })
            .buffer_unordered(16)
            .filter_map(|failed| async move { failed })
            .collect()
            .await;
        if let Some(first) = failed.first() {
            bail!("{} object(s) not deleted, first {first}", failed.len());
        }
        Ok(())
    }
}

/// The `instance` label of the operator's default Kestra (its flags).
pub const DEFAULT_INSTANCE: &str = "default";

/// The operator's `kestra_operator_kestra_requests_total` of its default instance as counters
/// (no answer: status 0). The series carry an `instance` label (`default`,
/// `KestraInstance/NS/NAME`, `ClusterKestraInstance/NAME`); the benchmark's external Kestra is
/// the default instance, so only its series count. A series without the label (an operator
/// from before instances) is the default instance's too.
fn operator_counters(samples: &[Sample]) -> Counters {
    operator_counters_of(samples, DEFAULT_INSTANCE)
}

/// The operator's requests to one instance (`instance` label value) as counters.
pub fn operator_counters_of(samples: &[Sample], instance: &str) -> Counters {
    let mut out = Counters::default();
    for s in samples.iter().filter(|s| {
        s.name == "kestra_operator_kestra_requests_total"
            && s.label("instance").unwrap_or(DEFAULT_INSTANCE) == instance
    }) {
        out.count(
            s.label("method").unwrap_or("?"),
            s.label("route").unwrap_or("?"),
            s.label("status").and_then(|v| v.parse().ok()).unwrap_or(0),
            s.value as u64,
        );
    }
    out
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
    pub(crate) fn count(&mut self, method: &str, route: &str, status: u16, n: u64) {
        match self
            .requests
            .iter_mut()
            .find(|c| c.method == method && c.route == route && c.status == status)
        {
            Some(c) => c.count += n,
            None => self.requests.push(Counter {
                method: method.to_string(),
                route: route.to_string(),
                status,
                count: n,
            }),
        }
        self.total += n;
    }

    pub(crate) fn add(&mut self, other: &Counters) {
        for c in &other.requests {
            self.count(&c.method, &c.route, c.status, c.count);
        }
    }

    /// What was counted since `earlier` (a snapshot of the same counts).
    pub(crate) fn minus(&self, earlier: &Counters) -> Counters {
        let mut out = Counters::default();
        for c in &self.requests {
            let before = earlier
                .requests
                .iter()
                .find(|e| e.method == c.method && e.route == c.route && e.status == c.status)
                .map_or(0, |e| e.count);
            let n = c.count.saturating_sub(before);
            if n > 0 {
                out.count(&c.method, &c.route, c.status, n);
            }
        }
        out
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kestra_api::{FLOW, KV};

    fn sample(method: &str, route: &str, status: &str, value: f64) -> Sample {
        Sample {
            name: "kestra_operator_kestra_requests_total".into(),
            labels: vec![
                ("route".into(), route.into()),
                ("method".into(), method.into()),
                ("status".into(), status.into()),
            ],
            value,
        }
    }

    #[test]
    fn operator_counts_since_a_mark_and_after_a_restart() {
        let before = operator_counters(&[sample("GET", FLOW, "200", 5.0)]);
        let after = operator_counters(&[
            sample("GET", FLOW, "200", 12.0),
            sample("PUT", KV, "error", 1.0),
        ]);
        let since = after.minus(&before);
        assert_eq!(since.reads(), 7);
        assert_eq!(since.writes(), 1);
        assert_eq!(since.total, 8);
        assert_eq!(
            since
                .by_route()
                .get("PUT /namespaces/{namespace}/kv/{key} 0"),
            Some(&1)
        );
        // A counter that went down belongs to a new process: nothing negative.
        assert_eq!(before.minus(&after).total, 0);
    }

    /// What the operator serves since instances (the `instance` label first), parsed from its
    /// text: each instance's series count for that instance only.
    #[test]
    fn operator_counts_are_split_by_the_instance_label() {
        let text = concat!(
            "# TYPE kestra_operator_kestra_requests counter\n",
            "kestra_operator_kestra_requests_total{instance=\"default\",route=\"/api/v1/{tenant}/flows/{namespace}\",method=\"GET\",status=\"200\"} 10\n",
            "kestra_operator_kestra_requests_total{instance=\"KestraInstance/bench/second\",route=\"/api/v1/{tenant}/flows/{namespace}\",method=\"GET\",status=\"200\"} 7\n",
            "kestra_operator_kestra_requests_total{instance=\"KestraInstance/bench/second\",route=\"/api/v1/configs\",method=\"GET\",status=\"200\"} 2\n",
            "kestra_operator_kestra_requests_total{instance=\"default\",route=\"/api/v1/{tenant}/kv/{key}\",method=\"PUT\",status=\"error\"} 1\n",
            "# EOF\n",
        );
        let samples = crate::metrics::parse(text);
        let default = operator_counters(&samples);
        assert_eq!((default.reads(), default.writes()), (10, 1));
        let second = operator_counters_of(&samples, "KestraInstance/bench/second");
        assert_eq!((second.reads(), second.writes()), (9, 0));
        assert_eq!(second.by_route().get("GET /api/v1/configs 200"), Some(&2));
        // An operator from before the label: every series is the default instance's.
        let old = operator_counters(&[sample("GET", FLOW, "200", 4.0)]);
        assert_eq!(old.total, 4);
    }

    #[test]
    fn the_client_counts_what_it_sends_and_credentials_stay_out_of_debug() {
        let mut sum = Counters::default();
        sum.add(&operator_counters(&[sample("GET", KV, "200", 2.0)]));
        sum.add(&operator_counters(&[sample("GET", KV, "200", 3.0)]));
        assert_eq!(sum.reads(), 5);
        assert_eq!(sum.requests.len(), 1);
        let text = format!("{:?}", Credential::Basic("admin:hunter2".into()));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
