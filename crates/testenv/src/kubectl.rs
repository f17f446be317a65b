//! Running the pinned `kubectl` against the test apiserver.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

use crate::TestEnv;

impl TestEnv {
    /// A `kubectl` command (the pinned version from `bin_dir`) with `KUBECONFIG` set, for
    /// callers that need more control than [`TestEnv::kubectl`].
    pub fn kubectl_command(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig).stdin(Stdio::null());
        cmd
    }

    /// Runs `kubectl ARGS` and returns its output, whatever the exit status.
    pub fn kubectl<I, S>(&self, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self.kubectl_command()
            .args(&args)
            .output()
            .with_context(|| format!("running kubectl {}", show(&args)))
    }

    /// Runs `kubectl ARGS` with `input` on stdin (e.g. `apply -f -`), whatever the exit status.
    pub fn kubectl_stdin<I, S>(&self, args: I, input: &str) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut child = self
            .kubectl_command()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running kubectl {}", show(&args)))?;
        let mut stdin = child.stdin.take().context("no stdin pipe")?;
        let input = input.to_owned();
        // write from a thread so a large input cannot deadlock against a full stdout pipe
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child
            .wait_with_output()
            .with_context(|| format!("running kubectl {}", show(&args)))?;
        let _ = writer.join();
        Ok(output)
    }

    /// Runs `kubectl ARGS`; fails with its stderr unless it exits 0; returns stdout.
    pub fn kubectl_ok<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let output = self.kubectl(&args)?;
        check(&args, output)
    }
}

/// Fails with kubectl's stderr unless it exited 0; returns stdout.
pub(crate) fn check<S: AsRef<OsStr>>(args: &[S], output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "kubectl {} failed ({}): {}",
            show(args),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn show<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
