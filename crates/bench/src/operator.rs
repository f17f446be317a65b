//! The operator as a child process (release build), its /metrics, CPU and memory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::metrics::{self, Sample};
use crate::procs::{Proc, cpu_seconds, memory_kib, status_kib};

pub struct Operator {
    pub proc: Proc,
    pub metrics_url: Option<String>,
    http: reqwest::Client,
}

pub struct OperatorArgs<'a> {
    pub bin: &'a Path,
    pub kubeconfig: &'a Path,
    pub kestra_url: &'a str,
    pub tenant: &'a str,
    /// The credential's environment variable and value (never printed).
    pub credential: Option<(&'static str, &'a str)>,
    pub namespace: &'a str,
    pub resync: &'a str,
    pub concurrency: u16,
    pub log: &'a Path,
    /// Extra environment, `KEY=VALUE` (e.g. allocator settings for an experiment).
    pub env: &'a [String],
}

impl Operator {
    pub fn start(args: &OperatorArgs<'_>) -> anyhow::Result<Self> {
        let mut cmd = Command::new(args.bin);
        cmd.args([
            "run",
            "--kestra-url",
            args.kestra_url,
            "--tenant",
            args.tenant,
            "--namespaces",
            args.namespace,
        ])
        .args(["--resync-period", args.resync])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", args.kubeconfig)
        .env("NO_COLOR", "1");
        // Only our flags: no credentials or settings leak in from the caller's environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("KESTRA_")
                || key == "RUST_LOG"
                || key == "LOG_LEVEL"
                || key == "CONCURRENCY"
                || key == "RESYNC_PERIOD"
                || key == "WATCH_NAMESPACES"
                || key == "METRICS_ADDR"
            {
                cmd.env_remove(key);
            }
        }
        if let Some((key, value)) = args.credential {
            cmd.env(key, value);
        }
        for pair in args.env {
            if let Some((k, v)) = pair.split_once('=') {
                cmd.env(k, v);
            }
        }
        Ok(Self {
            proc: Proc::spawn("kestra-operator", cmd, args.log)?,
            metrics_url: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    pub fn command_line(args: &OperatorArgs<'_>) -> String {
        let env: String = args.env.iter().map(|e| format!("{e} ")).collect();
        format!(
            "{env}kestra-operator run --kestra-url {} --tenant {} --namespaces {} --resync-period {} --concurrency {} --metrics-addr 127.0.0.1:0",
            args.kestra_url, args.tenant, args.namespace, args.resync, args.concurrency
        )
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Wait for the log line that names the metrics address.
    pub async fn wait_metrics(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.proc.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("serving /metrics")) {
                let clean = strip_ansi(line);
                if let Some(at) = clean.find("127.0.0.1:") {
                    let port: String = clean[at + 10..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    self.metrics_url = Some(format!("http://127.0.0.1:{port}/metrics"));
                    return Ok(());
                }
            }
            self.proc.check_alive()?;
            if Instant::now() > deadline {
                bail!("the operator did not log its metrics address within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn scrape(&self) -> Vec<Sample> {
        let Some(url) = &self.metrics_url else {
            return Vec::new();
        };
        match self.http.get(url).send().await {
            Ok(r) => metrics::parse(&r.text().await.unwrap_or_default()),
            Err(_) => Vec::new(),
        }
    }

    pub fn cpu(&self) -> f64 {
        cpu_seconds(self.pid()).unwrap_or(f64::NAN)
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        memory_kib(self.pid())
            .map(|(rss, hwm)| (rss as f64 / 1024.0, hwm as f64 / 1024.0))
            .unwrap_or((f64::NAN, f64::NAN))
    }

    /// (RssAnon, RssFile) in MiB: the heap and stacks, and the mapped binary and libraries.
    pub fn rss_split_mib(&self) -> (f64, f64) {
        status_kib(self.pid(), ["RssAnon:", "RssFile:"]).map_or((f64::NAN, f64::NAN), |[a, f]| {
            (a as f64 / 1024.0, f as f64 / 1024.0)
        })
    }

    /// Log lines at WARN or ERROR so far.
    pub fn warnings(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.proc.log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .map(strip_ansi)
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        let samples = lines
            .iter()
            .take(3)
            .map(|l| l.chars().take(300).collect())
            .collect();
        (lines.len(), samples)
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for n in chars.by_ref() {
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
