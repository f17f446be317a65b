//! A fresh Kubernetes namespace and a fresh Kestra namespace per test.

use std::ffi::OsStr;
use std::process::Output;

use anyhow::{Context, bail};
use rand::Rng;

use crate::TestEnv;

/// The label put on every namespace made by [`TestEnv::namespace`].
pub const TEST_LABEL: &str = "kestra-operator-test";

/// A Kubernetes namespace created for one test, and a Kestra namespace name nobody else uses.
///
/// Namespaces are left in place when dropped: without kube-controller-manager a deleted
/// namespace never finalizes anyway, and what a failed test left is there to inspect
/// (`kubectl get ns -l kestra-operator-test=true`). `scripts/testenv down` discards them all.
#[derive(Debug, Clone)]
pub struct TestNamespace {
    /// The Kubernetes namespace, e.g. `flows-k3x9qa`.
    pub name: String,
    /// A Kestra namespace for this test, e.g. `e2e.flows-k3x9qa` (matches `^[a-z0-9][a-z0-9._-]*`).
    pub kestra: String,
    env: &'static TestEnv,
}

impl TestEnv {
    /// Creates a Kubernetes namespace `<prefix>-<random>` labelled `kestra-operator-test=true`,
    /// and names a matching Kestra namespace `e2e.<prefix>-<random>`.
    pub fn namespace(&'static self, prefix: &str) -> anyhow::Result<TestNamespace> {
        let prefix = sanitize(prefix);
        let mut last = None;
        for _ in 0..5 {
            let name = format!("{prefix}-{}", random_suffix());
            let manifest = format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    {TEST_LABEL}: \"true\"\n"
            );
            let output = self.kubectl_stdin(["create", "-f", "-"], &manifest)?;
            if output.status.success() {
                return Ok(TestNamespace {
                    kestra: format!("e2e.{name}"),
                    name,
                    env: self,
                });
            }
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if !stderr.contains("AlreadyExists") {
                bail!("creating namespace {name}: {stderr}");
            }
            last = Some(stderr);
        }
        bail!(
            "could not find a free namespace name: {}",
            last.unwrap_or_default()
        )
    }
}

impl TestNamespace {
    /// Runs `kubectl -n <name> ARGS`, whatever the exit status.
    pub fn kubectl<I, S>(&self, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["-n".into(), self.name.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.env.kubectl(all)
    }

    /// Runs `kubectl -n <name> ARGS`; fails with its stderr unless it exits 0; returns stdout.
    pub fn kubectl_ok<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["-n".into(), self.name.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.env.kubectl_ok(all)
    }

    /// `kubectl -n <name> apply -f -` with `yaml`; fails with kubectl's stderr (e.g. an
    /// admission message) unless it succeeds; returns stdout.
    pub fn apply(&self, yaml: &str) -> anyhow::Result<String> {
        let args = ["-n", self.name.as_str(), "apply", "-f", "-"];
        let output = self
            .env
            .kubectl_stdin(args, yaml)
            .context("kubectl apply")?;
        crate::kubectl::check(&args, output)
    }
}

/// Lowercase `[a-z0-9-]`, starting with a letter or digit, at most 40 characters.
fn sanitize(prefix: &str) -> String {
    let mapped: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let cut: String = trimmed.chars().take(40).collect();
    let cut = cut.trim_end_matches('-');
    if cut.is_empty() {
        "test".to_string()
    } else {
        cut.to_string()
    }
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A cluster-scoped object a test made (e.g. a `ClusterKestraInstance`), deleted when dropped,
/// its finalizers first: a failed test must not leave behind an object that no operator will
/// ever release.
pub struct ClusterObject {
    env: &'static TestEnv,
    /// `kind/name`, as kubectl takes it.
    resource: String,
}

impl TestEnv {
    /// Delete `kind/name` when the returned guard is dropped.
    pub fn cluster_object(&'static self, kind: &str, name: &str) -> ClusterObject {
        ClusterObject {
            env: self,
            resource: format!("{kind}/{name}"),
        }
    }
}

impl Drop for ClusterObject {
    fn drop(&mut self) {
        let _ = self.env.kubectl([
            "patch",
            &self.resource,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
        let _ = self.env.kubectl([
            "delete",
            &self.resource,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_prefixes() {
        assert_eq!(sanitize("Flows_Basic"), "flows-basic");
        assert_eq!(sanitize("--x--"), "x");
        assert_eq!(sanitize("::"), "test");
        assert_eq!(sanitize(&"a".repeat(80)).len(), 40);
        assert_eq!(random_suffix().len(), 6);
    }
}
