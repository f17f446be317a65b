//! The fault suite: N resources of the three kinds over several Kestra namespaces, a private
//! Kestra double, and in turn: Kestra down during a cold sync; Kestra answering 500, 429, slowly
//! and not at all; kube-apiserver restarted; etcd restarted; the operator killed with SIGKILL at
//! random moments during waves of creates, updates and deletes; the leader killed with two
//! replicas; a long disconnect from the apiserver ending in watch expiry (410 Gone).
//!
//! After each fault: every resource Ready (conflict losers: Conflict), Kestra exactly equal to
//! the specs (every object compared), objects no resource owns (seeded directly in Kestra, and
//! those of conflict losers) untouched, resources deleted during the fault gone from Kestra, and
//! every finalizer released (deleted resources are gone from Kubernetes).
//!
//! The suite runs on its own control plane (`target/faults/testenv-<pid>`, stopped when the test
//! process exits) because it restarts kube-apiserver and etcd. Cases run one at a time.
//! Short cases (small N) run in `make test`; the long ones are `#[ignore]`d and run by
//! `make faults` (`FAULTS_N`, default 1000), which renders `target/faults/results.jsonl` into
//! docs/reliability.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use common::*;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::api::{Patch, PatchParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use testenv::{FakeHooks, TestNamespace, wait_until};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// The suite's own control plane

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static PLANE: OnceLock<PathBuf> = OnceLock::new();

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the repository root")
        .to_path_buf()
}

/// Points the test environment at a control plane of this process's own, started on first use
/// and stopped by a watchdog when the process exits. Call it (holding SERIAL) before anything
/// else reads the environment.
#[allow(unsafe_code, reason = "std::env::set_var is unsafe since edition 2024")]
fn plane_dir() -> &'static Path {
    PLANE.get_or_init(|| {
        let root = repo_root();
        let dir = root
            .join("target/faults")
            .join(format!("testenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fault suite's environment dir");
        let fake = root.join("target/debug/kestra-fake");
        // SAFETY: set once, before the test environment is first read; every test of this
        // binary waits on SERIAL before touching the environment.
        unsafe {
            std::env::set_var("KESTRA_TESTENV_DIR", &dir);
            if std::env::var_os("KESTRA_FAKE_BIN").is_none() && fake.is_file() {
                std::env::set_var("KESTRA_FAKE_BIN", &fake);
            }
        }
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 2; done; \
             KESTRA_TESTENV_DIR='{dir}' '{root}/scripts/testenv' down >/dev/null 2>&1; \
             rm -rf '{dir}/etcd-data' '{dir}/pki' '{dir}/run'",
            pid = std::process::id(),
            dir = dir.display(),
            root = root.display(),
        );
        let watchdog = std::process::Command::new("setsid")
            .args(["-f", "bash", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        assert!(
            watchdog.is_ok_and(|s| s.success()),
            "could not start the watchdog that stops the fault suite's control plane"
        );
        dir
    })
}

fn run_file(name: &str) -> PathBuf {
    plane_dir().join("run").join(name)
}

fn pid_of(component: &str) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(run_file(&format!("{component}.pid")))?;
    Ok(text.trim().parse()?)
}

fn port_of(component: &str) -> anyhow::Result<u16> {
    let text = std::fs::read_to_string(run_file(&format!("{component}.port")))?;
    Ok(text.trim().parse()?)
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// Whether the process still runs: a zombie group leader counts as running while any of its
/// threads is still exiting (a killed Go server holds its sockets until the last one is gone).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(") ").next().unwrap_or_default();
    if !state.starts_with('Z') && !state.starts_with('X') {
        return true;
    }
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| tasks.count() > 1)
}

/// The local ports a command line listens on (`127.0.0.1:PORT` and `--secure-port PORT`).
fn ports_in(argv: &[String]) -> Vec<u16> {
    let mut ports = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        if arg == "--secure-port"
            && let Some(p) = argv.get(i + 1).and_then(|p| p.parse().ok())
        {
            ports.push(p);
        }
        if arg.starts_with("--listen") {
            for part in argv
                .get(i + 1)
                .map(String::as_str)
                .unwrap_or_default()
                .split(',')
            {
                if let Some(p) = part.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    ports.push(p);
                }
            }
        }
    }
    ports
}

/// Stops a control-plane component with `sig`; returns its command line for the restart.
async fn stop_component(component: &str, sig: &str) -> anyhow::Result<Vec<String>> {
    let pid = pid_of(component)?;
    let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))?
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ensure!(!argv.is_empty(), "no command line for {component} ({pid})");
    signal(pid, sig)?;
    // As scripts/testenv stops it: SIGTERM, then SIGKILL after 10 s (kube-apiserver would
    // otherwise wait a minute for its watches to drain).
    let gone = |limit: u64| {
        wait_until(
            Duration::from_secs(limit),
            Duration::from_millis(100),
            || async {
                ensure!(!alive(pid), "{component} ({pid}) still running");
                Ok(())
            },
        )
    };
    if gone(10).await.is_err() {
        signal(pid, "KILL")?;
        gone(30).await?;
    }
    // Its ports free again, so that the same command line can listen on them.
    for port in ports_in(&argv) {
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                std::net::TcpListener::bind(("127.0.0.1", port))
                    .with_context(|| format!("port {port} of {component} still taken"))?;
                Ok(())
            },
        )
        .await?;
    }
    Ok(argv)
}

/// Starts a component again with the same command line (same ports, same data), detached,
/// with its pid where `scripts/testenv` looks for it.
fn start_component(component: &str, argv: &[String]) -> anyhow::Result<()> {
    let dir = plane_dir();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("logs").join(format!("{component}.log")))?;
    let pid_file = run_file(&format!("{component}.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let status = std::process::Command::new("setsid")
        .args(["-f", "bash", "-c", "echo $$ >\"$0\"; exec \"$@\""])
        .arg(&pid_file)
        .args(argv)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()?;
    ensure!(status.success(), "could not start {component}");
    Ok(())
}

/// Until the apiserver answers /readyz (etcd included).
async fn wait_apiserver() -> anyhow::Result<Duration> {
    let started = Instant::now();
    wait_until(
        Duration::from_secs(180),
        Duration::from_millis(250),
        || async {
            let out = kubectl(&["get", "--raw", "/readyz"]).await?;
            ensure!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
                "apiserver not ready: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            Ok(())
        },
    )
    .await?;
    Ok(started.elapsed())
}

/// Compacts etcd at its current revision: every older resourceVersion is gone.
async fn compact_etcd() -> anyhow::Result<i64> {
    let base = format!("http://127.0.0.1:{}", port_of("etcd")?);
    let http = reqwest::Client::new();
    let range: Value = http
        .post(format!("{base}/v3/kv/range"))
        .json(&json!({"key": base64::engine::general_purpose::STANDARD.encode("/"), "limit": 1}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let revision: i64 = range["header"]["revision"]
        .as_str()
        .context("etcd revision")?
        .parse()?;
    http.post(format!("{base}/v3/kv/compaction"))
        .json(&json!({"revision": revision.to_string(), "physical": true}))
        .send()
        .await?
        .error_for_status()?;
    Ok(revision)
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy between the operator and the apiserver, to cut it off while others carry on

struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Ok(Proxy { addr, cut })
    }

    /// Drops every connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// A kubeconfig like the environment's, through this proxy.
    fn kubeconfig(&self) -> anyhow::Result<PathBuf> {
        let env = env();
        let text = std::fs::read_to_string(&env.kubeconfig)?;
        let port = port_of("kube-apiserver")?;
        let from = format!("https://127.0.0.1:{port}");
        ensure!(text.contains(&from), "the kubeconfig does not name {from}");
        let path = env
            .dir
            .join(format!("kubeconfig-proxy-{}", self.addr.port()));
        std::fs::write(
            &path,
            text.replace(&from, &format!("https://127.0.0.1:{}", self.addr.port())),
        )?;
        Ok(path)
    }
}

// ---------------------------------------------------------------------------------------------
// The workload: resources, their specs, and what Kestra must hold

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Flow,
    Kv,
    File,
}

impl Kind {
    fn of(i: usize) -> Kind {
        [Kind::Flow, Kind::Kv, Kind::File][i % 3]
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Flow => "KestraFlow",
            Kind::Kv => "KestraKeyValue",
            Kind::File => "KestraNamespaceFile",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Flow => "kestraflows",
            Kind::Kv => "kestrakeyvalues",
            Kind::File => "kestranamespacefiles",
        }
    }

    fn api(self, client: &kube::Client, ns: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("model.kestra.io", "v1alpha1", self.name());
        let ar = ApiResource::from_gvk_with_plural(&gvk, self.plural());
        Api::namespaced_with(client.clone(), ns, &ar)
    }
}

const KESTRA_NAMESPACES: usize = 4;

#[derive(Clone, Debug)]
struct Res {
    /// The Kestra object's index (a loser shares it with its winner).
    i: usize,
    kind: Kind,
    /// Kubernetes namespace and name.
    ns: String,
    name: String,
    version: u32,
    loser: bool,
    live: bool,
}

struct Model {
    base: String,
    resources: BTreeMap<(String, String), Res>,
    next: usize,
}

impl Model {
    fn kns(&self, i: usize) -> String {
        format!("{}.n{}", self.base, i % KESTRA_NAMESPACES)
    }

    fn object_name(kind: Kind, i: usize) -> String {
        match kind {
            Kind::Flow => format!("f{i}"),
            Kind::Kv => format!("k{i}"),
            Kind::File => format!("/d{}/f{i}.txt", i % 3),
        }
    }

    fn spec(&self, r: &Res) -> Value {
        let kns = self.kns(r.i);
        let name = Self::object_name(r.kind, r.i);
        let v = r.version;
        let tag = if r.loser { "loser" } else { "winner" };
        let spec = match r.kind {
            Kind::Flow => json!({
                "id": name,
                "namespace": kns,
                "source": flow_source(&name, &kns, &format!("description: {tag} v{v}\n")),
            }),
            Kind::Kv => json!({"namespace": kns, "key": name, "value": kv_value(r.i, v, r.loser)}),
            Kind::File => json!({
                "namespace": kns,
                "filename": name.trim_start_matches('/'),
                "content": format!("file {} {tag} version {v}\n", r.i),
            }),
        };
        json!({
            "apiVersion": "model.kestra.io/v1alpha1",
            "kind": r.kind.name(),
            "metadata": {"name": r.name},
            "spec": spec,
        })
    }

    /// Kestra's expected content: `kind:kns:name` -> value, for every live winner.
    fn expected(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for r in self.resources.values().filter(|r| r.live && !r.loser) {
            let kns = self.kns(r.i);
            let name = Self::object_name(r.kind, r.i);
            let spec = self.spec(r);
            let (key, value) = match r.kind {
                Kind::Flow => (format!("flow:{kns}:{name}"), spec["spec"]["source"].clone()),
                Kind::Kv => {
                    let value = kv_value(r.i, r.version, false);
                    let type_ = match value {
                        Value::Number(_) => "NUMBER",
                        Value::Object(_) => "JSON",
                        _ => "STRING",
                    };
                    (
                        format!("kv:{kns}:{name}"),
                        json!({"type": type_, "value": value}),
                    )
                }
                Kind::File => (
                    format!("file:{kns}:{name}"),
                    json!(b64(spec["spec"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .as_bytes())),
                ),
            };
            out.insert(key, value);
        }
        out
    }

    fn live_winners(&self) -> Vec<(String, String)> {
        self.resources
            .values()
            .filter(|r| r.live && !r.loser)
            .map(|r| (r.ns.clone(), r.name.clone()))
            .collect()
    }

    fn has_live_loser(&self, i: usize) -> bool {
        self.resources
            .values()
            .any(|r| r.live && r.loser && r.i == i)
    }
}

fn kv_value(i: usize, version: u32, loser: bool) -> Value {
    if loser {
        return json!(format!("loser-{i}"));
    }
    match (i / 3) % 3 {
        0 => json!(format!("v{version}-{i}")),
        1 => json!(u64::from(version) * 100_000 + i as u64),
        _ => json!({"v": version, "i": i}),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One change to the cluster.
#[derive(Clone, Debug)]
enum Op {
    Apply((String, String)),
    Delete((String, String)),
}

#[derive(Default, Clone, Copy, Debug)]
struct WaveSize {
    creates: usize,
    updates: usize,
    deletes: usize,
    losers_deleted: usize,
}

// ---------------------------------------------------------------------------------------------
// Reading Kestra back (counting our own requests, to tell them from the operator's)

#[derive(Clone)]
struct Reader {
    http: reqwest::Client,
    root: String,
    requests: std::sync::Arc<AtomicU64>,
}

impl Reader {
    fn new(url: &str) -> Reader {
        Reader {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            root: format!("{url}/api/v1/main"),
            requests: Default::default(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<reqwest::Response> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .http
            .get(format!("{}{path}", self.root))
            .query(query)
            .send()
            .await?)
    }

    /// Everything the Kestra namespaces hold: `kind:kns:name` -> content.
    async fn inventory(&self, namespaces: &[String]) -> anyhow::Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        for kns in namespaces {
            let flows: Vec<Value> = self
                .get(&format!("/flows/{kns}"), &[])
                .await?
                .error_for_status()?
                .json()
                .await?;
            let reads = flows.iter().map(|f| {
                let id = f["id"].as_str().unwrap_or_default().to_string();
                async move {
                    let full: Value = self
                        .get(&format!("/flows/{kns}/{id}"), &[("source", "true")])
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    anyhow::Ok((format!("flow:{kns}:{id}"), full["source"].clone()))
                }
            });
            for item in futures::stream::iter(reads)
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
            {
                let (k, v) = item?;
                out.insert(k, v);
            }
            let keys: Vec<Value> = self
                .get(&format!("/namespaces/{kns}/kv"), &[])
                .await?
                .error_for_status()?
                .json()
                .await?;
            let reads = keys.iter().map(|k| {
                let key = k["key"].as_str().unwrap_or_default().to_string();
                async move {
                    let entry: Value = self
                        .get(&format!("/namespaces/{kns}/kv/{key}"), &[])
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    anyhow::Ok((
                        format!("kv:{kns}:{key}"),
                        json!({"type": entry["type"], "value": entry["value"]}),
                    ))
                }
            });
            for item in futures::stream::iter(reads)
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
            {
                let (k, v) = item?;
                out.insert(k, v);
            }
            let mut dirs = vec!["/".to_string()];
            let mut files = Vec::new();
            while let Some(dir) = dirs.pop() {
                let r = self
                    .get(
                        &format!("/namespaces/{kns}/files/directory"),
                        &[("path", &dir)],
                    )
                    .await?;
                if r.status() == 404 {
                    continue;
                }
                let children: Vec<Value> = r.error_for_status()?.json().await?;
                for child in children {
                    let name = child["fileName"].as_str().unwrap_or_default();
                    let path = format!("{}/{name}", dir.trim_end_matches('/'));
                    if child["type"] == "Directory" {
                        dirs.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
            let reads = files.into_iter().map(|path| async move {
                let bytes = self
                    .get(&format!("/namespaces/{kns}/files"), &[("path", &path)])
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                anyhow::Ok((format!("file:{kns}:{path}"), json!(b64(&bytes))))
            });
            for item in futures::stream::iter(reads)
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await
            {
                let (k, v) = item?;
                out.insert(k, v);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// One case's world

struct World {
    long: bool,
    n: usize,
    label: &'static str,
    ns_a: TestNamespace,
    ns_b: TestNamespace,
    _fake: kestra_fake::RunningFake,
    url: String,
    hooks: FakeHooks,
    client: kube::Client,
    model: Model,
    /// Objects put in Kestra directly, which no resource names.
    seeded: BTreeMap<String, Value>,
    reader: Reader,
    rng: StdRng,
    started: Instant,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

fn fault_n(long: bool) -> usize {
    if long {
        std::env::var("FAULTS_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    } else {
        30
    }
}

impl World {
    async fn new(label: &'static str, long: bool) -> anyhow::Result<World> {
        let serial = SERIAL.lock().await;
        plane_dir();
        let n = fault_n(long);
        let ns_a = namespace(&format!("faults-{label}"));
        let ns_b = namespace(&format!("faults-{label}-b"));
        let fake = private_fake(kestra_fake::FakeConfig::default()).await?;
        let url = fake.url();
        let hooks = FakeHooks::new(&url)?;
        let client = env().kube_client().await?;
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        eprintln!("faults {label}: N={n}, seed {seed} (FAULTS_SEED to replay)");
        let model = Model {
            base: ns_a.kestra.clone(),
            resources: BTreeMap::new(),
            next: 0,
        };
        let reader = Reader::new(&url);
        let mut world = World {
            long,
            n,
            label,
            ns_a,
            ns_b,
            _fake: fake,
            url,
            hooks,
            client,
            model,
            seeded: BTreeMap::new(),
            reader,
            rng: StdRng::seed_from_u64(seed),
            started: Instant::now(),
            _serial: serial,
        };
        world.seed_unowned().await?;
        world.hooks.reset_counters().await?;
        world.add_resources(n);
        Ok(world)
    }

    fn kestra_namespaces(&self) -> Vec<String> {
        (0..KESTRA_NAMESPACES).map(|j| self.model.kns(j)).collect()
    }

    /// Objects in every Kestra namespace that no resource names: they must survive everything.
    async fn seed_unowned(&mut self) -> anyhow::Result<()> {
        let kestra = Kestra::private(&self.url);
        for kns in self.kestra_namespaces() {
            for x in 0..2 {
                let id = format!("unowned-flow-{x}");
                let source = flow_source(&id, &kns, "description: not managed\n");
                kestra.save_flow(&kns, &id, &source).await?;
                self.seeded
                    .insert(format!("flow:{kns}:{id}"), json!(source));
                let key = format!("unowned-key-{x}");
                kestra.put_kv(&kns, &key, &format!("\"kept {x}\"")).await?;
                self.seeded.insert(
                    format!("kv:{kns}:{key}"),
                    json!({"type": "STRING", "value": format!("kept {x}")}),
                );
                // One next to the managed files (in their folders), one at the root.
                let path = if x == 0 {
                    "/unowned.txt".to_string()
                } else {
                    "/d1/unowned.txt".to_string()
                };
                kestra.upload(&kns, &path, b"not managed\n").await?;
                self.seeded
                    .insert(format!("file:{kns}:{path}"), json!(b64(b"not managed\n")));
            }
        }
        Ok(())
    }

    /// `count` new winners in namespace A (not yet applied).
    fn add_resources(&mut self, count: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for _ in 0..count {
            let i = self.model.next;
            self.model.next += 1;
            let r = Res {
                i,
                kind: Kind::of(i),
                ns: self.ns_a.name.clone(),
                name: format!("r{i:05}"),
                version: 1,
                loser: false,
                live: true,
            };
            out.push((r.ns.clone(), r.name.clone()));
            self.model
                .resources
                .insert((r.ns.clone(), r.name.clone()), r);
        }
        out
    }

    /// Resources in namespace B naming the objects of the first `count` winners: they lose.
    fn add_losers(&mut self, count: usize) -> Vec<(String, String)> {
        let winners: Vec<Res> = self
            .model
            .resources
            .values()
            .filter(|r| !r.loser && r.live)
            .take(count)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for w in winners {
            let r = Res {
                ns: self.ns_b.name.clone(),
                name: format!("loser-{:05}", w.i),
                loser: true,
                version: 1,
                ..w
            };
            out.push((r.ns.clone(), r.name.clone()));
            self.model
                .resources
                .insert((r.ns.clone(), r.name.clone()), r);
        }
        out
    }

    fn losers(&self) -> usize {
        (self.n / 100).clamp(2, 10)
    }

    /// Sends `ops` to the apiserver (8 at a time), retrying through apiserver outages.
    async fn run_ops(&self, ops: Vec<Op>) -> anyhow::Result<()> {
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(ops.into_iter().map(|op| {
            let client = self.client.clone();
            let manifest = match &op {
                Op::Apply(key) => Some((
                    self.model.resources[key].kind,
                    self.model.spec(&self.model.resources[key]),
                )),
                Op::Delete(_) => None,
            };
            let kind_of_delete = match &op {
                Op::Delete(key) => Some(self.model.resources[key].kind),
                Op::Apply(_) => None,
            };
            async move {
                let deadline = Instant::now() + Duration::from_secs(240);
                loop {
                    let result = match (&op, &manifest, kind_of_delete) {
                        (Op::Apply((ns, name)), Some((kind, body)), _) => kind
                            .api(&client, ns)
                            .patch(
                                name,
                                &PatchParams::apply("faults").force(),
                                &Patch::Apply(body),
                            )
                            .await
                            .map(drop),
                        (Op::Delete((ns, name)), _, Some(kind)) => {
                            match kind
                                .api(&client, ns)
                                .delete(name, &DeleteParams::default())
                                .await
                            {
                                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                                other => other.map(drop),
                            }
                        }
                        _ => unreachable!(),
                    };
                    match result {
                        Ok(()) => return Ok(()),
                        // The apiserver may be restarting: retry until the deadline.
                        Err(_) if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        Err(e) => return Err(anyhow::Error::from(e).context(format!("{op:?}"))),
                    }
                }
            }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
        for r in results {
            r?;
        }
        Ok(())
    }

    async fn apply_all(&self, keys: &[(String, String)]) -> anyhow::Result<()> {
        self.run_ops(keys.iter().cloned().map(Op::Apply).collect())
            .await
    }

    /// A random wave of changes: the model is updated, the ops returned (not yet sent).
    fn wave(&mut self, size: WaveSize) -> (Vec<Op>, WaveSize) {
        let mut ops = Vec::new();
        let mut done = WaveSize::default();
        let mut candidates: Vec<(String, String)> = self
            .model
            .resources
            .values()
            .filter(|r| r.live && !r.loser && !self.model.has_live_loser(r.i))
            .map(|r| (r.ns.clone(), r.name.clone()))
            .collect();
        // Fisher-Yates with our seeded rng.
        for k in (1..candidates.len()).rev() {
            let j = self.rng.random_range(0..=k);
            candidates.swap(k, j);
        }
        let mut pick = candidates.into_iter();
        for key in pick.by_ref().take(size.deletes) {
            self.model.resources.get_mut(&key).unwrap().live = false;
            ops.push(Op::Delete(key));
            done.deletes += 1;
        }
        for key in pick.take(size.updates) {
            self.model.resources.get_mut(&key).unwrap().version += 1;
            ops.push(Op::Apply(key));
            done.updates += 1;
        }
        for key in self.add_resources(size.creates) {
            ops.push(Op::Apply(key));
            done.creates += 1;
        }
        let losers: Vec<(String, String)> = self
            .model
            .resources
            .values()
            .filter(|r| r.live && r.loser)
            .take(size.losers_deleted)
            .map(|r| (r.ns.clone(), r.name.clone()))
            .collect();
        for key in losers {
            self.model.resources.get_mut(&key).unwrap().live = false;
            ops.push(Op::Delete(key));
            done.losers_deleted += 1;
        }
        // Interleave: deletes, updates and creates arrive mixed.
        for k in (1..ops.len()).rev() {
            let j = self.rng.random_range(0..=k);
            ops.swap(k, j);
        }
        (ops, done)
    }

    fn wave_size(&self, fraction: f64) -> WaveSize {
        let part = |f: f64| ((self.n as f64) * f).ceil() as usize;
        WaveSize {
            creates: part(fraction / 2.0),
            updates: part(fraction),
            deletes: part(fraction / 2.0),
            losers_deleted: 0,
        }
    }

    fn operator_spec<'a>(&'a self, resync: &'a str) -> OpSpec<'a> {
        OpSpec::new(&[&self.ns_a.name, &self.ns_b.name], resync)
            .kestra(&self.url)
            .arg("--log-level")
            .arg(log_level())
    }

    /// Every resource in its expected state and Kestra equal to the specs; returns when so.
    async fn converge(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let last = std::sync::Mutex::new(String::new());
        let result = wait_until(timeout, Duration::from_secs(1), || async {
            let r = self.check().await;
            if let Err(e) = &r {
                *last.lock().unwrap() = format!("{e:#}");
            }
            r
        })
        .await;
        if let Err(e) = result {
            bail!(
                "{}: not converged within {timeout:?}: {}\n({e:#})",
                self.label,
                last.lock().unwrap()
            );
        }
        Ok(started.elapsed())
    }

    async fn check(&self) -> anyhow::Result<()> {
        // Kubernetes: every live resource in its state, every deleted one gone.
        let mut seen: BTreeMap<(String, String), Value> = BTreeMap::new();
        for ns in [&self.ns_a.name, &self.ns_b.name] {
            for kind in [Kind::Flow, Kind::Kv, Kind::File] {
                let list = kind
                    .api(&self.client, ns)
                    .list(&ListParams::default())
                    .await?;
                for obj in list.items {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    let value = serde_json::to_value(&obj)?;
                    seen.insert((ns.clone(), name), value);
                }
            }
        }
        let mut problems = Vec::new();
        for (key, r) in &self.model.resources {
            match (r.live, seen.get(key)) {
                (false, Some(obj)) => problems.push(format!(
                    "{}/{} was deleted but is still there (finalizers {}, {})",
                    key.0,
                    key.1,
                    obj["metadata"]["finalizers"],
                    ready_reason(obj)
                )),
                (true, None) => problems.push(format!("{}/{} is missing", key.0, key.1)),
                (true, Some(obj)) => {
                    let ready = condition(obj, "Ready");
                    let current =
                        obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
                    let ok = match (r.loser, ready) {
                        (false, Some(c)) => c["status"] == "True" && current,
                        (true, Some(c)) => c["reason"] == "Conflict" && current,
                        _ => false,
                    };
                    if !ok {
                        problems.push(format!("{}/{}: {}", key.0, key.1, ready_reason(obj)));
                    }
                }
                (false, None) => {}
            }
        }
        for key in seen.keys() {
            if !self.model.resources.contains_key(key) {
                problems.push(format!("{}/{} is not in the model", key.0, key.1));
            }
        }
        if !problems.is_empty() {
            let count = problems.len();
            problems.truncate(8);
            bail!("{count} resources not there yet: {problems:?}");
        }
        // Kestra: exactly the specs plus the unowned objects.
        let mut want = self.model.expected();
        want.extend(self.seeded.clone());
        let have = self.reader.inventory(&self.kestra_namespaces()).await?;
        let mut diffs = Vec::new();
        for (key, value) in &want {
            match have.get(key) {
                None => diffs.push(format!("{key} missing in Kestra")),
                Some(got) if got != value => {
                    diffs.push(format!("{key} is {got} in Kestra, the spec says {value}"))
                }
                Some(_) => {}
            }
        }
        for key in have.keys() {
            if !want.contains_key(key) {
                diffs.push(format!("{key} is in Kestra but no live resource names it"));
            }
        }
        if !diffs.is_empty() {
            let count = diffs.len();
            diffs.truncate(8);
            bail!("Kestra differs in {count} objects: {diffs:?}");
        }
        Ok(())
    }

    /// Conflict losers were never reported deleting anything, and the winners they shadowed
    /// were created once.
    async fn check_losers(&self) -> anyhow::Result<()> {
        let events = all_events(&self.ns_b.name).await?;
        let bad: Vec<String> = events
            .iter()
            .filter(|e| {
                e.name.starts_with("loser-")
                    && matches!(
                        e.reason.as_str(),
                        "Deleted" | "Created" | "Updated" | "DriftCorrected"
                    )
            })
            .map(|e| format!("{} {}: {}", e.name, e.reason, e.message))
            .collect();
        ensure!(
            bad.is_empty(),
            "conflict losers wrote to or deleted from Kestra: {bad:?}"
        );
        Ok(())
    }

    /// Kestra requests and writes answered so far, minus our own reads.
    async fn counts(&self) -> anyhow::Result<(u64, u64)> {
        let c = self.hooks.counters().await?;
        let writes = c
            .requests
            .iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "DELETE") && r.status < 300)
            .map(|r| r.count)
            .sum();
        Ok((
            c.total - self.reader.requests.load(Ordering::Relaxed),
            writes,
        ))
    }

    fn converge_timeout(&self) -> Duration {
        Duration::from_secs(120 + (self.n as u64) * 3 / 10)
    }

    /// Baseline: every resource created and in sync (with the operator running).
    async fn baseline(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let keys: Vec<(String, String)> = self.model.live_winners();
        self.apply_all(&keys).await?;
        // Losers are created at least a second later, so their claims are younger.
        next_second().await;
        let losers = self.add_losers(self.losers());
        self.apply_all(&losers).await?;
        self.converge(self.converge_timeout()).await?;
        Ok(started.elapsed())
    }

    fn record(&self, fault: &str, mut figures: Value) -> anyhow::Result<()> {
        let file = if self.long {
            "results.jsonl"
        } else {
            "results-short.jsonl"
        };
        let dir = repo_root().join("target/faults");
        std::fs::create_dir_all(&dir)?;
        figures["case"] = json!(self.label);
        figures["fault"] = json!(fault);
        figures["n"] = json!(self.n);
        figures["losers"] = json!(self.losers());
        figures["kestra_namespaces"] = json!(KESTRA_NAMESPACES);
        figures["unowned_preserved"] = json!(self.seeded.len());
        figures["total_secs"] = json!(secs(self.started.elapsed()));
        figures["at"] = json!(now_stamp());
        eprintln!("FAULTS {figures}");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join(file))?;
        writeln!(f, "{figures}")?;
        Ok(())
    }
}

/// The operators' log filter: `FAULTS_LOG_LEVEL`, else info with the watchers' errors (410s).
fn log_level() -> &'static str {
    static LEVEL: OnceLock<String> = OnceLock::new();
    LEVEL.get_or_init(|| {
        std::env::var("FAULTS_LOG_LEVEL")
            .unwrap_or_else(|_| "info,kube_runtime::watcher=debug".to_string())
    })
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn wave_json(w: WaveSize) -> Value {
    json!({"creates": w.creates, "updates": w.updates, "deletes": w.deletes, "losers_deleted": w.losers_deleted})
}

fn gone_410(logs: &str) -> usize {
    logs.lines()
        .filter(|l| {
            l.contains("410")
                && (l.contains("Expired") || l.contains("too old") || l.contains("Gone"))
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// The cases

/// Kestra refuses connections for a while just after the operator starts on N resources it
/// has never synced; resources are deleted, updated and created meanwhile.
async fn kestra_down_during_cold_sync(long: bool) -> anyhow::Result<()> {
    let down_secs: u64 = if long { 60 } else { 6 };
    let mut w = World::new("kestra-down", long).await?;
    let keys = w.model.live_winners();
    w.apply_all(&keys).await?;
    next_second().await;
    let losers = w.add_losers(w.losers());
    w.apply_all(&losers).await?;

    let started = Instant::now();
    let op = start_operator(w.operator_spec("10m")).await?;
    // Down once a tenth is synced: the rest of the cold sync meets a dead Kestra.
    let ready_at_down = wait_until(
        Duration::from_secs(120),
        Duration::from_millis(20),
        || async {
            let c = w.hooks.counters().await?;
            let writes = c.count("PUT", "") + c.count("POST", "");
            ensure!(writes as usize >= w.n / 10, "{writes} writes so far");
            Ok(writes)
        },
    )
    .await?;
    w.hooks.down(down_secs as f64, "refuse").await?;
    let down_at = Instant::now();
    let mut size = w.wave_size(0.1);
    size.losers_deleted = w.losers();
    let (ops, done) = w.wave(size);
    w.run_ops(ops).await?;
    // Deleting what was synced waits for Kestra, and says so.
    let mut pending_seen = 0usize;
    while down_at.elapsed() < Duration::from_secs(down_secs) {
        let list = get_json(
            &w.ns_a.name,
            "kestraflows,kestrakeyvalues,kestranamespacefiles",
        )
        .await?;
        pending_seen = pending_seen.max(
            list["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter(|o| {
                            condition(o, "Ready").is_some_and(|c| c["reason"] == "DeletionPending")
                        })
                        .count()
                })
                .unwrap_or(0),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let back = Instant::now();
    let converge = w.converge(w.converge_timeout()).await?;
    w.check_losers().await?;
    // With N in the hundreds some deleted resources were synced before the outage.
    ensure!(
        pending_seen > 0 || !long,
        "no resource showed DeletionPending while Kestra was down"
    );
    let (requests, writes) = w.counts().await?;
    w.record(
        &format!("Kestra down {down_secs} s (connections refused) during a cold sync"),
        json!({
            "fault_secs": down_secs,
            "converge_secs": secs(converge),
            "cold_sync_total_secs": secs(started.elapsed()),
            "synced_writes_before_down": ready_at_down,
            "wave": wave_json(done),
            "deletion_pending_seen": pending_seen,
            "operator_requests": requests,
            "writes": writes,
            "after_back_secs": secs(back.elapsed()),
        }),
    )?;
    drop(op);
    Ok(())
}

/// Kestra answers 500, then 429, then slowly, then too slowly (timeouts), each for a while
/// with a wave of changes; convergence is measured after each.
async fn kestra_errors_and_latency(long: bool) -> anyhow::Result<()> {
    let phase_secs: u64 = if long { 20 } else { 2 };
    let mut w = World::new("kestra-errors", long).await?;
    let _op = start_operator(w.operator_spec("10m").arg("--kestra-timeout").arg("2s")).await?;
    let baseline = w.baseline().await?;
    let phases: [(&str, &str, Value); 4] = [
        (
            "500",
            "fail",
            json!({"count": 100_000_000u64, "status": 500}),
        ),
        (
            "429",
            "fail",
            json!({"count": 100_000_000u64, "status": 429, "retryAfter": 1}),
        ),
        ("slow (1 s per request)", "latency", json!({"ms": 1000})),
        (
            "too slow (3 s per request, 2 s timeout)",
            "latency",
            json!({"ms": 3000}),
        ),
    ];
    for (name, hook, body) in phases {
        w.hooks.reset_counters().await?;
        w.reader.requests.store(0, Ordering::Relaxed);
        w.hooks.post(hook, body).await?;
        let (ops, done) = {
            let size = w.wave_size(0.1);
            w.wave(size)
        };
        let fault_start = Instant::now();
        w.run_ops(ops).await?;
        let remaining = Duration::from_secs(phase_secs).saturating_sub(fault_start.elapsed());
        tokio::time::sleep(remaining).await;
        let (during_requests, during_writes) = w.counts().await?;
        w.hooks
            .post(
                hook,
                json!(if hook == "fail" {
                    json!({"count": 0})
                } else {
                    json!({"ms": 0})
                }),
            )
            .await?;
        let converge = w.converge(w.converge_timeout()).await?;
        let (requests, writes) = w.counts().await?;
        w.record(
            &format!("Kestra answering {name} for {phase_secs} s"),
            json!({
                "fault_secs": phase_secs,
                "converge_secs": secs(converge),
                "baseline_sync_secs": secs(baseline),
                "wave": wave_json(done),
                "requests_during_fault": during_requests,
                "writes_during_fault": during_writes,
                "operator_requests": requests,
                "writes": writes,
            }),
        )?;
    }
    w.check_losers().await?;
    Ok(())
}

/// kube-apiserver (SIGTERM, then started again) or etcd (SIGKILL, down a while, started again)
/// restarted between two waves of changes.
async fn control_plane_restart(long: bool, component: &'static str) -> anyhow::Result<()> {
    let label = if component == "etcd" {
        "etcd-restart"
    } else {
        "apiserver-restart"
    };
    let mut w = World::new(label, long).await?;
    let op = start_operator(w.operator_spec("10m")).await?;
    let baseline = w.baseline().await?;
    w.hooks.reset_counters().await?;
    w.reader.requests.store(0, Ordering::Relaxed);
    let (ops, first) = {
        let size = w.wave_size(0.1);
        w.wave(size)
    };
    w.run_ops(ops).await?;
    let stopped = Instant::now();
    let (sig, pause) = if component == "etcd" {
        ("KILL", Duration::from_secs(if long { 10 } else { 3 }))
    } else if long {
        ("TERM", Duration::ZERO)
    } else {
        ("KILL", Duration::ZERO)
    };
    let argv = stop_component(component, sig).await?;
    tokio::time::sleep(pause).await;
    start_component(component, &argv)?;
    let ready_after = wait_apiserver().await?;
    let outage = stopped.elapsed();
    let (ops, mut second) = {
        let mut size = w.wave_size(0.1);
        size.losers_deleted = w.losers();
        w.wave(size)
    };
    w.run_ops(ops).await?;
    second.creates += first.creates;
    second.updates += first.updates;
    second.deletes += first.deletes;
    let converge = w.converge(w.converge_timeout()).await?;
    w.check_losers().await?;
    let (requests, writes) = w.counts().await?;
    let logs = op.logs();
    ensure!(
        op.process.pid().is_some_and(alive),
        "the operator died with the {component}:\n{}",
        op.process.tail(30)
    );
    // A restarted apiserver's watch cache starts at the current revision: resumed watches
    // expire (410 Gone) and the operator lists again.
    ensure!(
        component == "etcd" || gone_410(&logs) > 0,
        "no watch met 410 Gone after the apiserver restart"
    );
    w.record(
        &if component == "etcd" {
            format!(
                "etcd killed (SIGKILL), down {} s, restarted",
                pause.as_secs()
            )
        } else {
            format!(
                "kube-apiserver restarted ({}, started again)",
                if sig == "TERM" {
                    "SIGTERM, SIGKILL after 10 s"
                } else {
                    "SIGKILL"
                }
            )
        },
        json!({
            "fault_secs": secs(outage),
            "apiserver_ready_after_secs": secs(ready_after),
            "converge_secs": secs(converge),
            "baseline_sync_secs": secs(baseline),
            "wave": wave_json(second),
            "operator_requests": requests,
            "writes": writes,
            "gone_410_seen": gone_410(&logs),
        }),
    )?;
    Ok(())
}

/// The operator killed with SIGKILL at a random moment of each of several waves, and started
/// again; one more wave lands while it is dead.
async fn operator_killed(long: bool) -> anyhow::Result<()> {
    let kills = if long { 20 } else { 5 };
    let mut w = World::new("operator-kill", long).await?;
    let mut op = start_operator(w.operator_spec("10m")).await?;
    let baseline = w.baseline().await?;
    w.hooks.reset_counters().await?;
    w.reader.requests.store(0, Ordering::Relaxed);
    let mut total = WaveSize::default();
    let mut restart_secs = Vec::new();
    let mut kill_delays = Vec::new();
    for k in 0..kills {
        let mut size = w.wave_size(if long { 0.03 } else { 0.1 });
        if k == kills / 2 {
            size.losers_deleted = w.losers();
        }
        let (ops, done) = w.wave(size);
        total.creates += done.creates;
        total.updates += done.updates;
        total.deletes += done.deletes;
        total.losers_deleted += done.losers_deleted;
        // The kill lands while the wave is being applied and reconciled.
        let delay = Duration::from_millis(w.rng.random_range(0..2500));
        kill_delays.push(delay.as_millis() as u64);
        let wave = w.run_ops(ops);
        let kill = async {
            tokio::time::sleep(delay).await;
            op.process.kill()
        };
        let (applied, killed) = tokio::join!(wave, kill);
        applied?;
        killed?;
        // A change while no operator runs.
        let (ops, done) = w.wave(WaveSize {
            creates: 1,
            updates: 1,
            deletes: 1,
            losers_deleted: 0,
        });
        total.creates += done.creates;
        total.updates += done.updates;
        total.deletes += done.deletes;
        w.run_ops(ops).await?;
        let restart = Instant::now();
        op = start_operator(w.operator_spec("10m")).await?;
        restart_secs.push(secs(restart.elapsed()));
    }
    let converge = w.converge(w.converge_timeout()).await?;
    w.check_losers().await?;
    let (requests, writes) = w.counts().await?;
    w.record(
        &format!("operator killed (SIGKILL) {kills} times during waves of changes"),
        json!({
            "fault_secs": kills,
            "converge_secs": secs(converge),
            "baseline_sync_secs": secs(baseline),
            "wave": wave_json(total),
            "kill_delays_ms": kill_delays,
            "restart_to_ready_secs_max": restart_secs.iter().cloned().fold(0.0, f64::max),
            "operator_requests": requests,
            "writes": writes,
        }),
    )?;
    Ok(())
}

fn lease_holder(ns: &str, lease: &str) -> anyhow::Result<String> {
    let out = env().kubectl_ok([
        "get",
        "lease",
        lease,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    Ok(out.trim().to_string())
}

/// Two replicas with leader election; the leader is killed with SIGKILL during a wave.
async fn leader_killed(long: bool) -> anyhow::Result<()> {
    let mut w = World::new("leader-kill", long).await?;
    let lease = "kestra-operator-faults";
    let ns = w.ns_a.name.clone();
    let spec = |identity: &'static str| {
        w.operator_spec("10m")
            .arg("--leader-election")
            .arg("--leader-election-namespace")
            .arg(&ns)
            .arg("--leader-election-lease")
            .arg(lease)
            .arg("--identity")
            .arg(identity)
    };
    let mut a = start_operator(spec("replica-a")).await?;
    let mut b = start_operator(spec("replica-b")).await?;
    let holder = wait_until(Duration::from_secs(60), POLL, || async {
        let h = lease_holder(&ns, lease)?;
        ensure!(!h.is_empty(), "no holder yet");
        Ok(h)
    })
    .await?;
    let baseline = w.baseline().await?;
    w.hooks.reset_counters().await?;
    w.reader.requests.store(0, Ordering::Relaxed);
    let (ops, first) = {
        let size = w.wave_size(0.1);
        w.wave(size)
    };
    let delay = Duration::from_millis(w.rng.random_range(0..1500));
    let leader = if holder == "replica-a" {
        &mut a
    } else {
        &mut b
    };
    let wave = w.run_ops(ops);
    let kill = async {
        tokio::time::sleep(delay).await;
        let killed = leader.process.kill();
        (killed, Instant::now())
    };
    let (applied, (killed, killed_at)) = tokio::join!(wave, kill);
    applied?;
    killed?;
    // More work while no replica leads: the one left must take over and do it.
    let (ops, mut done) = {
        let mut size = w.wave_size(0.1);
        size.losers_deleted = w.losers();
        w.wave(size)
    };
    w.run_ops(ops).await?;
    done.creates += first.creates;
    done.updates += first.updates;
    done.deletes += first.deletes;
    let takeover = wait_until(Duration::from_secs(90), POLL, || async {
        let h = lease_holder(&ns, lease)?;
        ensure!(!h.is_empty() && h != holder, "the lease still names {h:?}");
        Ok(killed_at.elapsed())
    })
    .await?;
    w.converge(w.converge_timeout()).await?;
    let converge = killed_at.elapsed();
    w.check_losers().await?;
    let (requests, writes) = w.counts().await?;
    w.record(
        "the leader killed (SIGKILL) with two replicas, during a wave; another wave before the takeover",
        json!({
            "fault_secs": 0,
            "converge_secs": secs(converge),
            "baseline_sync_secs": secs(baseline),
            "kill_delay_ms": delay.as_millis() as u64,
            "wave": wave_json(done),
            "operator_requests": requests,
            "writes": writes,
            "lease_duration_secs": 15,
            "takeover_secs": secs(takeover),
        }),
    )?;
    Ok(())
}

/// The operator cut off from the apiserver for a while (a proxy drops its connections) while
/// others change resources; etcd is compacted and the apiserver restarted meanwhile, so its
/// watches resume from a resourceVersion that no longer exists: 410 Gone.
async fn long_disconnect_and_watch_expiry(long: bool) -> anyhow::Result<()> {
    let cut_secs: u64 = if long { 30 } else { 5 };
    let mut w = World::new("disconnect", long).await?;
    let upstream: SocketAddr = format!("127.0.0.1:{}", port_of("kube-apiserver")?).parse()?;
    let proxy = Proxy::start(upstream).await?;
    let kubeconfig = proxy.kubeconfig()?.to_string_lossy().into_owned();
    let op = start_operator(w.operator_spec("10m").env("KUBECONFIG", &kubeconfig)).await?;
    let baseline = w.baseline().await?;
    w.hooks.reset_counters().await?;
    w.reader.requests.store(0, Ordering::Relaxed);
    let before_410 = gone_410(&op.logs());

    proxy.cut();
    let cut_at = Instant::now();
    let (ops, done) = {
        let mut size = w.wave_size(0.2);
        size.losers_deleted = w.losers();
        w.wave(size)
    };
    w.run_ops(ops).await?;
    // Long run: etcd compacted and the apiserver restarted behind the cut, so that the
    // operator's watches resume from a revision that no longer exists. (The short run in
    // `make test` keeps to the cut: the restart is the apiserver case's, and its 410 recovery
    // takes tens of seconds.)
    let revision = if long {
        let revision = compact_etcd().await?;
        let argv = stop_component("kube-apiserver", "KILL").await?;
        start_component("kube-apiserver", &argv)?;
        wait_apiserver().await?;
        Some(revision)
    } else {
        None
    };
    // More changes after the compaction, still unseen by the operator.
    let (ops, more) = {
        let size = w.wave_size(0.05);
        w.wave(size)
    };
    w.run_ops(ops).await?;
    let remaining = Duration::from_secs(cut_secs).saturating_sub(cut_at.elapsed());
    tokio::time::sleep(remaining).await;
    let cut_for = cut_at.elapsed();
    proxy.restore();
    let converge = w.converge(w.converge_timeout()).await?;
    w.check_losers().await?;
    let seen_410 = gone_410(&op.logs()) - before_410;
    ensure!(
        seen_410 > 0 || !long,
        "the operator's watches never met 410 Gone; log tail:\n{}",
        op.process.tail(40)
    );
    let (requests, writes) = w.counts().await?;
    w.record(
        &if long {
            format!(
                "operator cut off from the apiserver {} s; etcd compacted and apiserver restarted meanwhile (watch expiry, 410 Gone)",
                cut_for.as_secs()
            )
        } else {
            format!("operator cut off from the apiserver {} s", cut_for.as_secs())
        },
        json!({
            "fault_secs": secs(cut_for),
            "converge_secs": secs(converge),
            "baseline_sync_secs": secs(baseline),
            "compacted_revision": revision,
            "wave": wave_json(WaveSize {
                creates: done.creates + more.creates,
                updates: done.updates + more.updates,
                deletes: done.deletes + more.deletes,
                losers_deleted: done.losers_deleted,
            }),
            "gone_410_seen": seen_410,
            "operator_requests": requests,
            "writes": writes,
        }),
    )?;
    Ok(())
}

// Short cases (make test): small N, short faults.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_kestra_down_during_cold_sync() -> anyhow::Result<()> {
    kestra_down_during_cold_sync(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_kestra_errors_and_latency() -> anyhow::Result<()> {
    kestra_errors_and_latency(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_apiserver_restart() -> anyhow::Result<()> {
    control_plane_restart(false, "kube-apiserver").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_etcd_restart() -> anyhow::Result<()> {
    control_plane_restart(false, "etcd").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_operator_killed() -> anyhow::Result<()> {
    operator_killed(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_leader_killed() -> anyhow::Result<()> {
    leader_killed(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_long_disconnect_and_watch_expiry() -> anyhow::Result<()> {
    long_disconnect_and_watch_expiry(false).await
}

// Long cases (make faults): FAULTS_N resources (default 1000), faults at full length.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_1_kestra_down_during_cold_sync() -> anyhow::Result<()> {
    kestra_down_during_cold_sync(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_2_kestra_errors_and_latency() -> anyhow::Result<()> {
    kestra_errors_and_latency(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_3_apiserver_restart() -> anyhow::Result<()> {
    control_plane_restart(true, "kube-apiserver").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_4_etcd_restart() -> anyhow::Result<()> {
    control_plane_restart(true, "etcd").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_5_operator_killed() -> anyhow::Result<()> {
    operator_killed(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_6_leader_killed() -> anyhow::Result<()> {
    leader_killed(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make faults"]
async fn long_7_long_disconnect_and_watch_expiry() -> anyhow::Result<()> {
    long_disconnect_and_watch_expiry(true).await
}
