//! What a benchmark invocation writes under `target/bench/runs/<time>/`: `meta.json` (machine,
//! versions, command) and one JSON file per measurement.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::procs::OtherWork;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    pub kernel: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Versions {
    pub rustc: String,
    pub kubernetes: String,
    pub etcd: String,
    pub operator_commit: String,
    pub operator_version: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The exact command line of this invocation.
    pub command: String,
    /// The operator's command line (its Kestra URL and namespace vary per session).
    pub operator_command: String,
    pub machine: Machine,
    pub versions: Versions,
    pub settings: Value,
    /// The Kestra measured against (absent in runs made before it was recorded: the 1.3 double).
    #[serde(default = "double_1_3")]
    pub kestra: crate::kestra::KestraInfo,
}

fn double_1_3() -> crate::kestra::KestraInfo {
    crate::kestra::KestraInfo {
        target: "double".into(),
        version: "1.3.31".into(),
        edition: "OSS".into(),
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub scenario: String,
    pub n: usize,
    pub latency_ms: u64,
    pub run: usize,
    pub started_at: String,
    pub finished_at: String,
    /// Sampled over a few seconds before the measurement: load and the busiest other processes.
    pub before: OtherWork,
    pub load_end: [f64; 3],
    pub data: Value,
}

impl Record {
    pub fn file_name(&self) -> String {
        format!(
            "{}-n{}-l{}-r{}.json",
            self.scenario, self.n, self.latency_ms, self.run
        )
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let nproc = output(&mut Command::new("nproc"))
        .parse()
        .unwrap_or_else(|_| std::thread::available_parallelism().map_or(0, |n| n.get()));
    Machine {
        nproc,
        memory_gib: mem_kib / 1024.0 / 1024.0,
        cpu_model,
        kernel: output(Command::new("uname").arg("-r")),
    }
}

pub fn versions(root: &Path, operator_bin: &Path) -> Versions {
    let commit = output(
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(root),
    );
    // Only what goes into the binaries: edited docs do not change what is measured.
    let dirty = !output(
        Command::new("git")
            .args([
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "crates",
                "Cargo.toml",
                "Cargo.lock",
            ])
            .current_dir(root),
    )
    .is_empty();
    let cache = std::env::var("KESTRA_OPERATOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kestra-operator")
        });
    let etcd = std::fs::read_dir(&cache)
        .ok()
        .and_then(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .find(|n| n.starts_with("k8s-"))
        })
        .and_then(|n| n.split("etcd-").nth(1).map(str::to_string))
        .unwrap_or_default();
    Versions {
        rustc: output(Command::new("rustc").arg("--version")),
        kubernetes: String::new(),
        etcd,
        operator_commit: if dirty {
            format!("{commit} (with uncommitted changes)")
        } else {
            commit
        },
        operator_version: output(Command::new(operator_bin).arg("version")),
    }
}

pub struct RunDir {
    pub dir: PathBuf,
    pub meta: Meta,
}

impl RunDir {
    pub fn create(out: &Path, meta: Meta) -> anyhow::Result<Self> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let dir = out.join("runs").join(stamp);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let run = Self { dir, meta };
        run.save_meta()?;
        Ok(run)
    }

    pub fn save_meta(&self) -> anyhow::Result<()> {
        std::fs::write(
            self.dir.join("meta.json"),
            serde_json::to_vec_pretty(&self.meta)?,
        )?;
        Ok(())
    }

    pub fn save(&self, record: &Record) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(record.file_name());
        std::fs::write(&path, serde_json::to_vec_pretty(record)?)?;
        Ok(path)
    }
}

/// Every invocation's meta and records, oldest first.
pub fn load_all(out: &Path) -> Vec<(Meta, Vec<Record>)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter()
        .filter_map(|dir| {
            let meta: Meta =
                serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
            let mut records: Vec<Record> = std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .filter(|e| e.file_name() != "meta.json")
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect();
            records.sort_by(|a: &Record, b| {
                (&a.scenario, a.n, a.latency_ms, a.run).cmp(&(
                    &b.scenario,
                    b.n,
                    b.latency_ms,
                    b.run,
                ))
            });
            Some((meta, records))
        })
        .collect()
}
