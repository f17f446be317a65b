//! The operator (or any binary) run as a child process against the test environment.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::TestEnv;

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A child process with stdout and stderr in `target/testenv/logs/operator-<name>.log`.
/// Killed (SIGKILL) when dropped; if the test is panicking, the log tail is printed first.
#[derive(Debug)]
pub struct Operator {
    child: Option<Child>,
    log_path: PathBuf,
    name: String,
}

impl Operator {
    /// Starts `bin ARGS` (e.g. `env!("CARGO_BIN_EXE_kestra-operator")`, `["run", "--namespaces",
    /// &ns.name]`), named after the current test thread.
    ///
    /// Environment: inherited, minus every `KESTRA_*` variable, plus `KUBECONFIG`,
    /// `KESTRA_API_URL`, `KESTRA_API_BASIC_AUTH` (the double's login) and `RUST_BACKTRACE=1`;
    /// then `extra_env` in order, where an empty value removes the variable. The API token is
    /// not set by default: pass `("KESTRA_API_API_KEY", &env.api_key)` to use it.
    pub fn start(
        env: &TestEnv,
        bin: impl AsRef<Path>,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Operator> {
        let thread = std::thread::current();
        let name = thread
            .name()
            .unwrap_or("test")
            .rsplit("::")
            .next()
            .unwrap_or("test");
        Self::start_named(env, name, bin, args, extra_env)
    }

    /// Like [`Operator::start`], with the log file named `operator-<name>-<pid>-<n>.log`.
    pub fn start_named(
        env: &TestEnv,
        name: &str,
        bin: impl AsRef<Path>,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Operator> {
        let bin = bin.as_ref();
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("{safe}-{}-{n}", std::process::id());
        let logs = env.logs_dir();
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let log_path = logs.join(format!("operator-{name}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file handle")?;

        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KESTRA_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("KUBECONFIG", &env.kubeconfig)
            .env("KESTRA_API_URL", &env.kestra_url)
            .env("KESTRA_API_BASIC_AUTH", &env.basic_auth)
            .env("RUST_BACKTRACE", "1");
        for (key, value) in extra_env {
            if value.is_empty() {
                cmd.env_remove(key);
            } else {
                cmd.env(key, value);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} {}", bin.display(), args.join(" ")))?;
        Ok(Operator {
            child: Some(child),
            log_path,
            name,
        })
    }

    /// The process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The name used in the log file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file (stdout and stderr interleaved).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process has written so far.
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Whether the process is still running; `Some(status)` once it has exited.
    pub fn exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            None => bail!("the process was already stopped"),
            Some(child) => child.try_wait().context("polling the process"),
        }
    }

    /// Waits until the log contains `needle`; fails with the log tail on timeout or if the
    /// process exits first.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.exit_status()? {
                bail!(
                    "{} exited ({status}) before logging {needle:?}; log:\n{}",
                    self.name,
                    self.tail(60)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not log {needle:?} within {timeout:?}; log:\n{}",
                    self.name,
                    self.tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then SIGKILL if still running after 10 seconds. Returns the exit status.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_within(Duration::from_secs(10))
    }

    /// SIGTERM, then SIGKILL if still running after `grace`. Returns the exit status.
    pub fn stop_within(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .context("the process was already stopped")?;
        if let Some(status) = child.try_wait().context("polling the process")? {
            return Ok(status);
        }
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if sent.success() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().context("polling the process")? {
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        child.wait().context("waiting for the killed process")
    }

    /// SIGKILL, at once (a crash, as far as the process can tell).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self
            .child
            .take()
            .context("the process was already stopped")?;
        let _ = child.kill();
        child.wait().context("waiting for the killed process")?;
        Ok(())
    }

    /// The last `lines` lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        let logs = self.logs();
        let all: Vec<&str> = logs.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}) ----\n{}\n----",
                self.name,
                self.log_path.display(),
                self.tail(80)
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
