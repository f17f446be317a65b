//! Child processes and what /proc says about them: CPU seconds, RSS, load average.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Clock ticks per second for /proc/PID/stat times.
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of a process (its threads included), or `None` when it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is index 0 here, so utime (14) is 11 and stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// `/proc/PID/status` fields in KiB (`VmRSS:`, `VmHWM:`, `RssAnon:`, ...), from one read.
pub fn status_kib<const N: usize>(pid: u32, names: [&str; N]) -> Option<[u64; N]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut values = [0; N];
    for (value, name) in values.iter_mut().zip(names) {
        *value = field(name)?;
    }
    Some(values)
}

/// `VmRSS` and `VmHWM` (peak) in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let [rss, hwm] = status_kib(pid, ["VmRSS:", "VmHWM:"])?;
    Some((rss, hwm))
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

/// What else was busy on the machine: the processes that used the most CPU over `window`,
/// excluding the given pids (ours).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OtherWork {
    /// Load average (1, 5, 15 min) when sampled.
    pub load: [f64; 3],
    /// `command (cpu% over the window)` of the busiest other processes.
    pub busiest: Vec<String>,
    /// Total CPU (in cores) used by processes that are not ours over the window.
    pub other_cores: f64,
}

fn all_cpu() -> Vec<(u32, String, f64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(cpu) = cpu_seconds(pid) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        out.push((pid, comm, cpu));
    }
    out
}

/// Sample the CPU use of every process over `window`.
pub async fn other_work(ours: &[u32], window: Duration) -> OtherWork {
    let before = all_cpu();
    tokio::time::sleep(window).await;
    let after = all_cpu();
    let me = std::process::id();
    // By command name; a process that started during the window counts from zero.
    let mut by_comm: std::collections::BTreeMap<String, f64> = Default::default();
    for (pid, comm, cpu) in &after {
        if *pid == me || ours.contains(pid) {
            continue;
        }
        let Some(prior) = before
            .iter()
            .find(|(p, c, _)| p == pid && c == comm)
            .map(|(_, _, c)| *c)
            .or_else(|| (!comm.starts_with("kworker")).then_some(0.0))
        else {
            continue;
        };
        let delta = cpu - prior;
        if delta > 0.0 {
            let name = comm.split('/').next().unwrap_or(comm).to_string();
            *by_comm.entry(name).or_default() += delta;
        }
    }
    let mut used: Vec<(String, f64)> = by_comm.into_iter().collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    let secs = window.as_secs_f64();
    OtherWork {
        load: load_average(),
        other_cores: used.iter().map(|(_, d)| d).sum::<f64>() / secs,
        busiest: used
            .iter()
            .take(6)
            .filter(|(_, d)| d / secs >= 0.02)
            .map(|(c, d)| format!("{c} ({:.0}%)", 100.0 * d / secs))
            .collect(),
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The last lines of the log, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fail with the log tail when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if self.alive() {
            Ok(())
        } else {
            bail!(
                "{} exited; log {}:\n{}",
                self.name,
                self.log.display(),
                self.tail(20)
            )
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run a command to completion; its output is returned, or an error with its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} {:?} failed ({}): {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
