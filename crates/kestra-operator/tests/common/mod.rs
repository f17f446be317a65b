//! Shared helpers of the end-to-end tests: the operator binary as a process scoped to the test's
//! Kubernetes namespaces, kubectl (async, so an in-process Kestra double keeps serving while a
//! test waits on it), reading back Kestra through its API, and bounded waits on status.
//!
//! Every e2e test: its own Kubernetes namespace(s) and Kestra namespace, its own operator process
//! (`--namespaces` = the test's namespaces, `--metrics-addr 127.0.0.1:0`), every wait bounded.
//! Tests that inject faults, read request counters or need another API variant use a private
//! in-process double (`kestra_fake::spawn`), never the shared one.

#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use serde_json::Value;
use testenv::{Operator, TestEnv, TestNamespace, wait_until};
use tokio::io::AsyncWriteExt;

mod private_kestra;
mod webhook;
// Not every test binary starts a private double or registers a webhook.
#[allow(unused_imports)]
pub use private_kestra::*;
#[allow(unused_imports)]
pub use webhook::*;

pub const OPERATOR: &str = env!("CARGO_BIN_EXE_kestra-operator");
/// Bound of a wait for a resource to become Ready after an apply.
pub const READY: Duration = Duration::from_secs(45);
pub const POLL: Duration = Duration::from_millis(200);

pub fn env() -> &'static TestEnv {
    TestEnv::get().expect("the e2e test environment (scripts/testenv up)")
}

// ---------------------------------------------------------------------------------------------
// The operator process

/// The operator run as its real binary, with its metrics address once it is listening.
pub struct Op {
    pub process: Operator,
    /// `127.0.0.1:PORT` of /metrics, /healthz and /readyz.
    pub metrics_addr: String,
}

/// How to start one operator.
pub struct OpSpec<'a> {
    /// Kubernetes namespaces to watch (`--namespaces`).
    pub namespaces: Vec<&'a str>,
    /// `--resync-period`.
    pub resync: &'a str,
    /// Extra flags.
    pub args: Vec<&'a str>,
    /// Extra environment (an empty value removes the variable), e.g. another `KESTRA_API_URL`.
    pub env: Vec<(&'a str, &'a str)>,
}

impl<'a> OpSpec<'a> {
    pub fn new(namespaces: &[&'a str], resync: &'a str) -> Self {
        Self {
            namespaces: namespaces.to_vec(),
            resync,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Talk to a private double (no credentials unless added with `env`).
    pub fn kestra(mut self, url: &'a str) -> Self {
        self.env.push(("KESTRA_API_URL", url));
        self.env.push(("KESTRA_API_BASIC_AUTH", ""));
        self
    }

    pub fn arg(mut self, arg: &'a str) -> Self {
        self.args.push(arg);
        self
    }

    pub fn env(mut self, key: &'a str, value: &'a str) -> Self {
        self.env.push((key, value));
        self
    }
}

/// Starts the operator and waits until its caches are synced (`/readyz` answers 200).
pub async fn start_operator(spec: OpSpec<'_>) -> anyhow::Result<Op> {
    let env = env();
    let namespaces = spec.namespaces.join(",");
    let mut args = vec![
        "run",
        "--namespaces",
        namespaces.as_str(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--resync-period",
        spec.resync,
        "--min-backoff",
        "1s",
        "--max-backoff",
        "3s",
        "--log-format",
        "json",
    ];
    args.extend(spec.args.iter().copied());
    let mut process = Operator::start(env, OPERATOR, &args, &spec.env)?;
    process
        .wait_for_log(
            "serving /metrics, /healthz and /readyz",
            Duration::from_secs(30),
        )
        .await?;
    let metrics_addr = process
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|l| l["fields"]["address"].as_str().map(str::to_string))
        .with_context(|| format!("no metrics address in the log:\n{}", process.tail(20)))?;
    let op = Op {
        process,
        metrics_addr,
    };
    let http = reqwest::Client::new();
    let url = format!("http://{}/readyz", op.metrics_addr);
    wait_until(Duration::from_secs(30), POLL, || async {
        let response = http.get(&url).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        ensure!(status.is_success(), "/readyz answered {status}: {body}");
        Ok(())
    })
    .await
    .with_context(|| format!("operator not ready; log:\n{}", op.process.tail(30)))?;
    Ok(op)
}

impl Op {
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        Ok(reqwest::get(&url).await?.error_for_status()?.text().await?)
    }
}

// ---------------------------------------------------------------------------------------------
// kubectl, async

pub async fn kubectl(args: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = tokio::process::Command::from(env().kubectl_command());
    cmd.args(args).kill_on_drop(true);
    cmd.output()
        .await
        .with_context(|| format!("running kubectl {}", args.join(" ")))
}

pub async fn kubectl_stdin(args: &[&str], input: &str) -> anyhow::Result<Output> {
    let mut cmd = tokio::process::Command::from(env().kubectl_command());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running kubectl {}", args.join(" ")))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let input = input.to_owned();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = child.wait_with_output().await?;
    let _ = writer.await;
    Ok(output)
}

fn checked(args: &[&str], output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "kubectl {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub async fn kubectl_ok(args: &[&str]) -> anyhow::Result<String> {
    let output = kubectl(args).await?;
    checked(args, output)
}

/// `kubectl -n NS ARGS`, failing unless it exits 0.
pub async fn k(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    kubectl_ok(&all).await
}

/// `kubectl -n NS apply -f -`: fails with kubectl's stderr (e.g. an admission message).
pub async fn apply(ns: &str, yaml: &str) -> anyhow::Result<String> {
    let args = ["-n", ns, "apply", "-f", "-"];
    let output = kubectl_stdin(&args, yaml).await?;
    checked(&args, output)
}

/// `kubectl -n NS apply -f -` expected to be refused: returns its stderr.
pub async fn apply_refused(ns: &str, yaml: &str) -> anyhow::Result<String> {
    let output = kubectl_stdin(&["-n", ns, "apply", "-f", "-"], yaml).await?;
    ensure!(
        !output.status.success(),
        "kubectl apply accepted what admission must refuse:\n{yaml}\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A resource as JSON (`kubectl get RES -o json`).
pub async fn get_json(ns: &str, resource: &str) -> anyhow::Result<Value> {
    let out = k(ns, &["get", resource, "-o", "json"]).await?;
    Ok(serde_json::from_str(&out)?)
}

/// Whether the resource exists.
pub async fn exists(ns: &str, resource: &str) -> anyhow::Result<bool> {
    let out = k(ns, &["get", resource, "--ignore-not-found", "-o", "name"]).await?;
    Ok(!out.trim().is_empty())
}

/// The condition `type_` of an object, if set.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub fn ready_reason(obj: &Value) -> String {
    condition(obj, "Ready")
        .map(|c| {
            format!(
                "{}/{}",
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "no Ready condition".into())
}

/// Polls the resource until `check` accepts it; returns the object.
pub async fn wait_obj<F>(
    ns: &str,
    resource: &str,
    timeout: Duration,
    what: &str,
    check: F,
) -> anyhow::Result<Value>
where
    F: Fn(&Value) -> anyhow::Result<()>,
{
    wait_until(timeout, POLL, || async {
        let obj = get_json(ns, resource).await?;
        check(&obj).with_context(|| format!("{resource}: status {}", obj["status"]))?;
        Ok(obj)
    })
    .await
    .with_context(|| format!("waiting for {resource} in {ns}: {what}"))
}

/// Until Ready is True for the current generation.
pub async fn wait_ready(ns: &str, resource: &str) -> anyhow::Result<Value> {
    wait_obj(ns, resource, READY, "Ready=True", |obj| {
        let ready = condition(obj, "Ready").ok_or_else(|| anyhow!("no Ready condition yet"))?;
        ensure!(ready["status"] == "True", "Ready is {}", ready_reason(obj));
        ensure!(
            obj["status"]["observedGeneration"] == obj["metadata"]["generation"],
            "observedGeneration {} != generation {}",
            obj["status"]["observedGeneration"],
            obj["metadata"]["generation"]
        );
        Ok(())
    })
    .await
}

/// Until the Ready condition has this reason (and status `ready`).
pub async fn wait_reason(
    ns: &str,
    resource: &str,
    ready: &str,
    reason: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    wait_obj(
        ns,
        resource,
        timeout,
        &format!("Ready={ready} reason {reason}"),
        |obj| {
            let c = condition(obj, "Ready").ok_or_else(|| anyhow!("no Ready condition yet"))?;
            ensure!(
                c["status"] == ready && c["reason"] == reason,
                "Ready is {}",
                ready_reason(obj)
            );
            Ok(())
        },
    )
    .await
}

/// Asserts the kstatus shape of a resource that cannot progress until its spec changes.
pub fn assert_stalled(obj: &Value, reason: &str) {
    let ready = condition(obj, "Ready").expect("a Ready condition");
    assert_eq!(ready["status"], "False", "{obj:#}");
    assert_eq!(ready["reason"], reason, "{obj:#}");
    let stalled = condition(obj, "Stalled")
        .unwrap_or_else(|| panic!("no Stalled condition: {}", obj["status"]));
    assert_eq!(stalled["status"], "True", "{}", obj["status"]);
    assert_eq!(stalled["reason"], reason, "{}", obj["status"]);
    let summary = obj["status"]["reason"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with(reason),
        "status.reason {summary:?} should start with {reason}"
    );
}

/// Asserts a transient failure: Ready False with this reason, and no Stalled condition.
pub fn assert_transient(obj: &Value, reason: &str) {
    let ready = condition(obj, "Ready").expect("a Ready condition");
    assert_eq!(ready["status"], "False", "{}", obj["status"]);
    assert_eq!(ready["reason"], reason, "{}", obj["status"]);
    assert!(
        condition(obj, "Stalled").is_none_or(|c| c["status"] != "True"),
        "a transient failure must not be Stalled: {}",
        obj["status"]
    );
}

/// An Event as `kubectl get events` shows it.
#[derive(Debug, Clone)]
pub struct Ev {
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub kind: String,
    pub name: String,
    pub count: u64,
}

/// All Events of a namespace, oldest first.
pub async fn all_events(ns: &str) -> anyhow::Result<Vec<Ev>> {
    let list = get_json(ns, "events").await?;
    let mut out: Vec<(String, Ev)> = list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let time = [
                &e["eventTime"],
                &e["lastTimestamp"],
                &e["firstTimestamp"],
                &e["metadata"]["creationTimestamp"],
            ]
            .into_iter()
            .find_map(|t| t.as_str().map(str::to_string))
            .unwrap_or_default();
            let count = e["series"]["count"]
                .as_u64()
                .or(e["count"].as_u64())
                .unwrap_or(1);
            (
                time,
                Ev {
                    type_: s(&e["type"]),
                    reason: s(&e["reason"]),
                    message: s(&e["message"]),
                    kind: s(&e["involvedObject"]["kind"]),
                    name: s(&e["involvedObject"]["name"]),
                    count,
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// Events of one object (by kind and name).
pub async fn events_of(ns: &str, kind: &str, name: &str) -> anyhow::Result<Vec<Ev>> {
    Ok(all_events(ns)
        .await?
        .into_iter()
        .filter(|e| e.kind == kind && e.name == name)
        .collect())
}

/// Waits until the object has an Event with `reason`; returns it.
pub async fn wait_event(
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> anyhow::Result<Ev> {
    wait_until(timeout, Duration::from_millis(300), || async {
        let events = events_of(ns, kind, name).await?;
        events
            .iter()
            .find(|e| e.reason == reason)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "no {reason} Event for {kind}/{name}; have {:?}",
                    events.iter().map(|e| &e.reason).collect::<Vec<_>>()
                )
            })
    })
    .await
}

/// A kubectl table, split at the header's column offsets: a row per line, a cell per header.
pub fn table(text: &str) -> Vec<Vec<(String, String)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let mut starts = Vec::new();
    let bytes = header.as_bytes();
    for i in 0..bytes.len() {
        // A column starts at a non-space preceded by the line start or by 2+ spaces.
        if bytes[i] != b' ' && (i == 0 || (i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' '))
        {
            starts.push(i);
        }
    }
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).copied().unwrap_or(header.len());
            header[s..end].trim().to_string()
        })
        .collect();
    lines
        .map(|line| {
            names
                .iter()
                .enumerate()
                .map(|(n, name)| {
                    let s = starts[n].min(line.len());
                    let end = starts
                        .get(n + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    (name.clone(), line[s..end].trim().to_string())
                })
                .collect()
        })
        .collect()
}

pub fn header(text: &str) -> Vec<String> {
    text.lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn cell<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
}

// ---------------------------------------------------------------------------------------------
// Kestra, read back (and edited "in the UI") through its API

#[derive(Clone)]
pub struct Kestra {
    /// `{url}/api/v1/{tenant}` or `{url}/api/v1`.
    root: String,
    url: String,
    auth: Option<(String, String)>,
    http: reqwest::Client,
}

impl Kestra {
    /// The shared double, with its login, tenant `main`.
    pub fn shared() -> Self {
        let env = env();
        let (user, password) = env.basic_auth.split_once(':').expect("user:password");
        Self::new(
            &env.kestra_url,
            Some("main"),
            Some((user.into(), password.into())),
        )
    }

    /// A private double without auth.
    pub fn private(url: &str) -> Self {
        Self::new(url, Some("main"), None)
    }

    pub fn new(url: &str, tenant: Option<&str>, auth: Option<(String, String)>) -> Self {
        let url = url.trim_end_matches('/').to_string();
        let root = match tenant {
            Some(t) => format!("{url}/api/v1/{t}"),
            None => format!("{url}/api/v1"),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        Self {
            root,
            url,
            auth,
            http,
        }
    }

    pub fn tenant(&self, tenant: Option<&str>) -> Self {
        Self::new(&self.url, tenant, self.auth.clone())
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.root));
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// The flow with its source, `None` on 404.
    pub async fn flow(&self, ns: &str, id: &str) -> anyhow::Result<Option<Value>> {
        let r = self
            .req(reqwest::Method::GET, &format!("/flows/{ns}/{id}"))
            .query(&[("source", "true")])
            .send()
            .await?;
        match r.status().as_u16() {
            404 => Ok(None),
            200 => Ok(Some(r.json().await?)),
            s => bail!(
                "GET flow {ns}/{id}: {s} {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }

    pub async fn flow_source(&self, ns: &str, id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .flow(ns, id)
            .await?
            .and_then(|f| f["source"].as_str().map(str::to_string)))
    }

    /// Saves a flow as a user would in the UI (PUT, or POST when absent); returns it.
    pub async fn save_flow(&self, ns: &str, id: &str, source: &str) -> anyhow::Result<Value> {
        let r = self
            .req(reqwest::Method::PUT, &format!("/flows/{ns}/{id}"))
            .header("Content-Type", "application/x-yaml")
            .body(source.to_string())
            .send()
            .await?;
        let r = if r.status() == 404 {
            self.req(reqwest::Method::POST, "/flows")
                .header("Content-Type", "application/x-yaml")
                .body(source.to_string())
                .send()
                .await?
        } else {
            r
        };
        let status = r.status();
        let body = r.text().await?;
        ensure!(
            status.is_success(),
            "saving flow {ns}/{id}: {status} {body}"
        );
        Ok(serde_json::from_str(&body)?)
    }

    /// Deletes a flow as a user would in the UI.
    pub async fn delete_flow(&self, ns: &str, id: &str) -> anyhow::Result<()> {
        let r = self
            .req(reqwest::Method::DELETE, &format!("/flows/{ns}/{id}"))
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "DELETE flow {ns}/{id}: {}",
            r.status()
        );
        Ok(())
    }

    /// `GET .../kv/{key}`: (status, body).
    pub async fn kv(&self, ns: &str, key: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .req(reqwest::Method::GET, &format!("/namespaces/{ns}/kv/{key}"))
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The key's row in the namespace's key listing (`GET .../namespaces/{ns}/kv`, Kestra 1.x):
    /// where Kestra shows a key's description and expiration date (its GET does not).
    pub async fn kv_row(&self, ns: &str, key: &str) -> anyhow::Result<Value> {
        let r = self
            .req(reqwest::Method::GET, &format!("/namespaces/{ns}/kv"))
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "GET kv listing {ns}: {}",
            r.status()
        );
        let rows: Vec<Value> = r.json().await?;
        rows.into_iter()
            .find(|row| row["key"] == key)
            .ok_or_else(|| anyhow!("no key {key} in the listing of {ns}"))
    }

    /// `PUT .../kv/{key}` with a raw (Ion/JSON) body.
    pub async fn put_kv(&self, ns: &str, key: &str, body: &str) -> anyhow::Result<()> {
        self.put_kv_with(ns, key, body, &[]).await
    }

    /// `PUT .../kv/{key}` with a raw body and headers (`ttl`, `description`).
    pub async fn put_kv_with(
        &self,
        ns: &str,
        key: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut request = self
            .req(reqwest::Method::PUT, &format!("/namespaces/{ns}/kv/{key}"))
            .header("Content-Type", "text/plain")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await?;
        ensure!(r.status().is_success(), "PUT kv {ns}/{key}: {}", r.status());
        Ok(())
    }

    /// The file's bytes, `None` on 404.
    pub async fn file(&self, ns: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let r = self
            .req(reqwest::Method::GET, &format!("/namespaces/{ns}/files"))
            .query(&[("path", path)])
            .send()
            .await?;
        match r.status().as_u16() {
            404 => Ok(None),
            200 => Ok(Some(r.bytes().await?.to_vec())),
            s => bail!("GET file {ns}{path}: {s}"),
        }
    }

    /// Deletes a namespace file as a user would in the UI.
    pub async fn delete_file(&self, ns: &str, path: &str) -> anyhow::Result<()> {
        let r = self
            .req(reqwest::Method::DELETE, &format!("/namespaces/{ns}/files"))
            .query(&[("path", path)])
            .send()
            .await?;
        ensure!(
            r.status().is_success(),
            "DELETE file {ns}{path}: {}",
            r.status()
        );
        Ok(())
    }

    pub async fn upload(&self, ns: &str, path: &str, content: &[u8]) -> anyhow::Result<()> {
        let part = reqwest::multipart::Part::bytes(content.to_vec()).file_name("upload.bin");
        let r = self
            .req(reqwest::Method::POST, &format!("/namespaces/{ns}/files"))
            .query(&[("path", path)])
            .multipart(reqwest::multipart::Form::new().part("fileContent", part))
            .send()
            .await?;
        ensure!(r.status().is_success(), "upload {ns}{path}: {}", r.status());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Private doubles and their counters

pub async fn private_fake(
    config: kestra_fake::FakeConfig,
) -> anyhow::Result<kestra_fake::RunningFake> {
    kestra_fake::spawn(config).await
}

/// The double's counters as (method, route template, status, count).
pub async fn counters(url: &str) -> anyhow::Result<Vec<(String, String, u16, u64)>> {
    let c = testenv::FakeHooks::new(url)?.counters().await?;
    Ok(c.requests
        .into_iter()
        .map(|r| (r.method, r.route, r.status, r.count))
        .collect())
}

/// Requests that change Kestra (POST, PUT, DELETE), as `METHOD route (status) xN` lines.
pub async fn writes(url: &str) -> anyhow::Result<Vec<String>> {
    Ok(counters(url)
        .await?
        .into_iter()
        .filter(|(m, ..)| matches!(m.as_str(), "POST" | "PUT" | "DELETE" | "PATCH"))
        .map(|(m, r, s, n)| format!("{m} {r} ({s}) x{n}"))
        .collect())
}

/// Requests with this method and exactly this route template.
pub async fn count(url: &str, method: &str, route: &str) -> anyhow::Result<u64> {
    Ok(counters(url)
        .await?
        .into_iter()
        .filter(|(m, r, ..)| m == method && r == route)
        .map(|(.., n)| n)
        .sum())
}

pub async fn reset_counters(url: &str) -> anyhow::Result<()> {
    testenv::FakeHooks::new(url)?.reset_counters().await
}

// ---------------------------------------------------------------------------------------------
// Manifests

pub fn flow_source(id: &str, kestra_ns: &str, extra: &str) -> String {
    format!(
        "id: {id}\nnamespace: {kestra_ns}\n{extra}tasks:\n- id: hello\n  type: io.kestra.core.tasks.log.Log\n  message: hi\n"
    )
}

/// Indents a block for a `|` YAML literal.
pub fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

pub fn flow_manifest(
    name: &str,
    id: &str,
    kestra_ns: &str,
    source: &str,
    extra_spec: &str,
) -> String {
    format!(
        "apiVersion: model.kestra.io/v1alpha1\nkind: KestraFlow\nmetadata:\n  name: {name}\nspec:\n  id: {id}\n  namespace: {kestra_ns}\n{extra_spec}  source: |\n{}",
        indent(source, 4)
    )
}

pub fn kv_manifest(name: &str, kestra_ns: &str, key: &str, spec_lines: &str) -> String {
    format!(
        "apiVersion: model.kestra.io/v1alpha1\nkind: KestraKeyValue\nmetadata:\n  name: {name}\nspec:\n  namespace: {kestra_ns}\n  key: {key}\n{spec_lines}"
    )
}

pub fn file_manifest(name: &str, kestra_ns: &str, filename: &str, spec_lines: &str) -> String {
    format!(
        "apiVersion: model.kestra.io/v1alpha1\nkind: KestraNamespaceFile\nmetadata:\n  name: {name}\nspec:\n  namespace: {kestra_ns}\n  filename: {filename}\n{spec_lines}"
    )
}

/// A fresh test namespace.
pub fn namespace(prefix: &str) -> TestNamespace {
    env().namespace(prefix).expect("a test namespace")
}

/// Sleeps until just after the next whole second (creation timestamps have second precision).
pub async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let wait = Duration::from_millis(1000 - u64::from(now.subsec_millis()) + 50);
    tokio::time::sleep(wait).await;
}

pub fn elapsed_ms(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

pub fn now_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}
