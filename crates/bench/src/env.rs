//! A fresh control plane per session: `scripts/testenv` in its own directory (never the tests'),
//! the CRDs applied, and an admin client.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::procs::{self, cpu_seconds};

pub struct Paths {
    /// Repository root.
    pub root: PathBuf,
    /// `target/bench`.
    pub out: PathBuf,
    /// The control plane's state directory (`target/bench/env`).
    pub env_dir: PathBuf,
    pub operator_bin: PathBuf,
    pub fake_bin: PathBuf,
}

impl Paths {
    pub fn logs(&self) -> PathBuf {
        self.out.join("logs")
    }
}

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub bin_dir: PathBuf,
    pub client: kube::Client,
    env_dir: PathBuf,
    root: PathBuf,
    fake_bin: PathBuf,
}

fn testenv(paths: &Paths, action: &str) -> anyhow::Result<String> {
    procs::run(
        Command::new(paths.root.join("scripts/testenv"))
            .arg(action)
            .env("KESTRA_TESTENV_DIR", &paths.env_dir)
            .env("KESTRA_FAKE_BIN", &paths.fake_bin)
            .current_dir(&paths.root),
    )
}

fn parse_env_sh(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches('\'').trim_matches('"').to_string(),
            )
        })
        .collect()
}

impl ControlPlane {
    /// Stop any previous control plane of the benchmarks and start a new one (empty etcd).
    pub async fn fresh(paths: &Paths) -> anyhow::Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let _ = testenv(paths, "down");
            match testenv(paths, "up") {
                Ok(_) => break,
                Err(e) if attempt < 3 => {
                    let log = std::fs::read_to_string(paths.env_dir.join("logs/kestra-fake.log"))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    eprintln!("kestra-bench: kestra-fake.log: {tail:?}");
                    eprintln!(
                        "kestra-bench: the control plane did not start (attempt {attempt}), retrying: {e:#}"
                    );
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => return Err(e).context("scripts/testenv up (benchmark environment)"),
            }
        }
        let env_sh = paths.env_dir.join("env.sh");
        let vars = parse_env_sh(
            &std::fs::read_to_string(&env_sh)
                .with_context(|| format!("reading {}", env_sh.display()))?,
        );
        let var = |k: &str| {
            vars.get(k)
                .cloned()
                .ok_or_else(|| anyhow!("{} has no {k}", env_sh.display()))
        };
        let kubeconfig = PathBuf::from(var("KUBECONFIG")?);
        let bin_dir = PathBuf::from(var("TESTENV_BIN")?);
        let kc = Kubeconfig::read_from(&kubeconfig)?;
        let mut config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        config.read_timeout = Some(Duration::from_secs(60));
        let client = kube::Client::try_from(config)?;
        let cp = Self {
            kubeconfig,
            bin_dir,
            client,
            env_dir: paths.env_dir.clone(),
            root: paths.root.clone(),
            fake_bin: paths.fake_bin.clone(),
        };
        cp.apply_crds()?;
        Ok(cp)
    }

    fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    fn apply_crds(&self) -> anyhow::Result<()> {
        let crds = self.root.join("deploy/crds/kestra-operator.crds.yaml");
        procs::run(
            self.kubectl()
                .args(["apply", "--server-side", "-f"])
                .arg(&crds),
        )?;
        procs::run(self.kubectl().args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/kestraflows.model.kestra.io",
            "crd/kestrakeyvalues.model.kestra.io",
            "crd/kestranamespacefiles.model.kestra.io",
        ]))?;
        Ok(())
    }

    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns).await?;
        Ok(())
    }

    /// Create a `KestraInstance` (no auth: the benchmark's doubles are open) once its CRD is
    /// established.
    pub async fn create_instance(
        &self,
        namespace: &str,
        name: &str,
        url: &str,
    ) -> anyhow::Result<()> {
        procs::run(self.kubectl().args([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/kestrainstances.model.kestra.io",
        ]))?;
        let resource = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("model.kestra.io", "v1alpha1", "KestraInstance"),
            "kestrainstances",
        );
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let obj: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "model.kestra.io/v1alpha1",
            "kind": "KestraInstance",
            "metadata": { "name": name, "namespace": namespace },
            "spec": { "url": url },
        }))?;
        api.create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating KestraInstance {namespace}/{name}"))?;
        Ok(())
    }

    pub async fn version(&self) -> String {
        self.client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_else(|e| format!("unknown ({e})"))
    }

    fn pid_of(&self, component: &str) -> Option<u32> {
        std::fs::read_to_string(self.env_dir.join("run").join(format!("{component}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn apiserver_pid(&self) -> Option<u32> {
        self.pid_of("kube-apiserver")
    }
    pub fn etcd_pid(&self) -> Option<u32> {
        self.pid_of("etcd")
    }
    /// The environment's own (authenticated, unused) double: it idles, but is ours.
    pub fn env_fake_pid(&self) -> Option<u32> {
        self.pid_of("kestra-fake")
    }

    /// CPU seconds of kube-apiserver and etcd.
    pub fn cpu(&self) -> (f64, f64) {
        (
            self.apiserver_pid()
                .and_then(cpu_seconds)
                .unwrap_or(f64::NAN),
            self.etcd_pid().and_then(cpu_seconds).unwrap_or(f64::NAN),
        )
    }

    /// `apiserver_request_total` summed by (verb, resource, subresource) for our resources.
    pub async fn request_counts(&self) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        let request = match http::Request::get("/metrics").body(Vec::new()) {
            Ok(r) => r,
            Err(_) => return out,
        };
        let Ok(text) = self.client.request_text(request).await else {
            return out;
        };
        for sample in crate::metrics::parse(&text) {
            if sample.name != "apiserver_request_total" {
                continue;
            }
            let resource = sample.label("resource").unwrap_or_default();
            if !(resource.starts_with("kestra") || resource == "events") {
                continue;
            }
            let key = format!(
                "{} {}{}",
                sample.label("verb").unwrap_or_default(),
                resource,
                sample
                    .label("subresource")
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            );
            *out.entry(key).or_default() += sample.value;
        }
        out
    }

    pub fn down(&self) {
        let _ = procs::run(
            Command::new(self.root.join("scripts/testenv"))
                .arg("down")
                .env("KESTRA_TESTENV_DIR", &self.env_dir)
                .env("KESTRA_FAKE_BIN", &self.fake_bin)
                .current_dir(&self.root),
        );
    }
}

/// The difference of two request-count maps (after - before), without zero entries.
pub fn delta(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
) -> std::collections::BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}
