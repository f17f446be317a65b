//! The shared environment: started once per process by `scripts/testenv up`, then read from the
//! `env.sh` it writes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, anyhow, bail};

/// The running test environment. Obtain it with [`TestEnv::get`].
#[derive(Debug)]
pub struct TestEnv {
    /// The repository root.
    pub root: PathBuf,
    /// The environment's state directory (`target/testenv`, or `KESTRA_TESTENV_DIR`).
    pub dir: PathBuf,
    /// The admin kubeconfig of the test kube-apiserver.
    pub kubeconfig: PathBuf,
    /// The Kestra double's root URL, without `/api/v1` (`KESTRA_API_URL`).
    pub kestra_url: String,
    /// `user:password` accepted by the double (`KESTRA_API_BASIC_AUTH`).
    pub basic_auth: String,
    /// The API token accepted by the double as `Authorization: Bearer` (`KESTRA_API_API_KEY`).
    pub api_key: String,
    /// The directory with the pinned `kubectl`, `kube-apiserver` and `etcd` (`TESTENV_BIN`).
    pub bin_dir: PathBuf,
}

static ENV: OnceLock<Result<TestEnv, String>> = OnceLock::new();

impl TestEnv {
    /// The environment, started on first use in this process (`scripts/testenv up`, which is
    /// idempotent and locked, so parallel test binaries share one environment). Also installs
    /// the rustls ring provider and applies the CRDs from `deploy/crds/` when present.
    ///
    /// Fails (never skips) with the reason and the tail of the start-up output when the
    /// environment cannot start; every later call in the process returns the same error.
    pub fn get() -> anyhow::Result<&'static TestEnv> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        match ENV.get_or_init(|| Self::start().map_err(|e| format!("{e:#}"))) {
            Ok(env) => Ok(env),
            Err(reason) => Err(anyhow!("the test environment is not available: {reason}")),
        }
    }

    fn start() -> anyhow::Result<TestEnv> {
        let root = repo_root();
        let dir = std::env::var_os("KESTRA_TESTENV_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/testenv"));
        let dir = if dir.is_absolute() {
            dir
        } else {
            root.join(dir)
        };
        run_up(&root, &dir)?;
        let env_sh = dir.join("env.sh");
        let text = std::fs::read_to_string(&env_sh)
            .with_context(|| format!("reading {}", env_sh.display()))?;
        let vars = parse_env_sh(&text);
        let var = |name: &str| {
            vars.get(name)
                .cloned()
                .with_context(|| format!("{} does not set {name}", env_sh.display()))
        };
        let env = TestEnv {
            kubeconfig: PathBuf::from(var("KUBECONFIG")?),
            kestra_url: var("KESTRA_API_URL")?,
            basic_auth: var("KESTRA_API_BASIC_AUTH")?,
            api_key: var("KESTRA_API_API_KEY")?,
            bin_dir: PathBuf::from(var("TESTENV_BIN")?),
            root,
            dir,
        };
        env.apply_crds()?;
        Ok(env)
    }

    /// A new Kubernetes client for the test apiserver (admin token). Make one per test: a
    /// client belongs to the Tokio runtime it was created on.
    pub async fn kube_client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .context("loading the test kubeconfig")?;
        kube::Client::try_from(config).context("building the Kubernetes client")
    }

    /// The hooks of the Kestra double (counters, fault injection).
    pub fn fake_hooks(&self) -> anyhow::Result<crate::FakeHooks> {
        crate::FakeHooks::new(&self.kestra_url)
    }

    /// The directory for logs of processes started by tests (`target/testenv/logs`).
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn apply_crds(&self) -> anyhow::Result<()> {
        let crds = self.root.join("deploy/crds");
        // only when some YAML file there has content (a generator may have left it empty)
        let has_yaml = std::fs::read_dir(&crds).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let p = e.path();
                matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                    && std::fs::read_to_string(&p).is_ok_and(|t| {
                        t.lines().any(|l| {
                            !l.trim().is_empty()
                                && !l.trim_start().starts_with('#')
                                && l.trim() != "---"
                        })
                    })
            })
        });
        if !has_yaml {
            return Ok(());
        }
        let dir = crds.to_string_lossy().into_owned();
        self.kubectl_ok([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=testenv",
            "-f",
            &dir,
        ])
        .context("applying deploy/crds")?;
        self.kubectl_ok([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            &dir,
        ])
        .context("waiting for the CRDs from deploy/crds to be established")?;
        Ok(())
    }
}

/// The repository root, from this crate's manifest directory (`crates/testenv`).
pub(crate) fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// Runs `scripts/testenv up`, echoing its progress to the real stderr (visible even when the
/// test harness captures output) and keeping it for the error message.
fn run_up(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let script = root.join("scripts/testenv");
    let mut child = Command::new(&script)
        .arg("up")
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", script.display()))?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let echo = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
            lines.push(line);
        }
        lines
    });
    let output = child
        .wait_with_output()
        .context("waiting for scripts/testenv up")?;
    let lines = echo.join().unwrap_or_default();
    if !output.status.success() {
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        bail!(
            "`scripts/testenv up` failed ({}); last output:\n{tail}\n(logs in {}/logs)",
            output.status,
            dir.display()
        );
    }
    Ok(())
}

/// Reads `export NAME='value'` lines (the only form `scripts/testenv` writes); other lines,
/// such as the PATH update, are ignored.
fn parse_env_sh(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.trim().strip_prefix("export ")?.split_once('=')?;
            let value = value.strip_prefix('\'')?.strip_suffix('\'')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_sh() {
        let vars = parse_env_sh(
            "# comment\nexport KUBECONFIG='/t/kubeconfig'\nexport KESTRA_API_BASIC_AUTH='a@b.io:P-1'\nexport PATH=\"$TESTENV_BIN:$PATH\"\n",
        );
        assert_eq!(vars["KUBECONFIG"], "/t/kubeconfig");
        assert_eq!(vars["KESTRA_API_BASIC_AUTH"], "a@b.io:P-1");
        assert!(!vars.contains_key("PATH"));
    }

    #[test]
    fn finds_repo_root() {
        assert!(repo_root().join("scripts/testenv").is_file());
    }
}
