//! `kestra-bench`: how fast N resources converge compared with the Kestra API itself, what the
//! operator costs at rest, and how it copes with drift and churn (issue 5). `make bench` runs it
//! through `scripts/bench`; results go to `target/bench/runs/<time>/` and `BENCHMARKS.md`.

#![forbid(unsafe_code)]

mod baseline;
mod env;
mod kestra;
mod kestra_api;
mod metrics;
mod operator;
mod procs;
mod record;
mod report;
mod resources;
mod scenarios;
mod session;
mod stats;
mod tracker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::env::Paths;
use crate::record::{Meta, Record, RunDir};
use crate::session::Session;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks of kestra-operator against the Kestra API double")]
struct Cli {
    /// Repository root (default: the workspace this binary was built from).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run scenarios, write JSON under target/bench/runs/ and regenerate BENCHMARKS.md.
    Run(Box<RunArgs>),
    /// Regenerate BENCHMARKS.md from the JSON under target/bench/runs/.
    Report,
}

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
struct RunArgs {
    /// Scenarios: cold, apply, steady, drift, churn (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cold,apply,steady,drift,churn"
    )]
    scenarios: Vec<String>,
    /// Resource counts for the cold sync.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    cold_n: Vec<usize>,
    /// Added Kestra latencies (ms) for cold sync and steady state; the other scenarios use the first.
    #[arg(long, value_delimiter = ',', default_value = "0,20")]
    latencies: Vec<u64>,
    /// Repetitions of each cold sync (operator and baseline).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The operator's --concurrency (per kind), and the baseline's per kind.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// The operator's --resync-period for the apply, steady, drift and churn scenarios (the
    /// operator is restarted with it after the last cold sync of their size).
    #[arg(long, default_value = "30s")]
    resync: String,
    /// The operator's --resync-period during cold syncs (its default: no resync overlaps them).
    #[arg(long, default_value = "5m")]
    cold_resync: String,
    #[arg(long, default_value_t = 10000)]
    steady_n: usize,
    /// Resync periods measured in the steady state (after one period of warm-up).
    #[arg(long, default_value_t = 3)]
    steady_periods: u32,
    #[arg(long, default_value_t = 10000)]
    drift_n: usize,
    #[arg(long, default_value_t = 1000)]
    apply_n: usize,
    /// Changes made one at a time in the apply-latency scenario.
    #[arg(long, default_value_t = 200)]
    apply_count: usize,
    #[arg(long, default_value_t = 10000)]
    churn_n: usize,
    /// Updates per second in the churn scenario.
    #[arg(long, default_value_t = 100)]
    churn_rate: u32,
    #[arg(long, default_value_t = 60)]
    churn_seconds: u32,
    /// Requests in flight while creating the resources.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// The operator binary (default: target/release/kestra-operator), e.g. a profiling wrapper.
    #[arg(long)]
    operator_bin: Option<PathBuf>,
    /// Extra environment for the operator process, KEY=VALUE (repeatable; for experiments).
    #[arg(long)]
    operator_env: Vec<String>,
    /// Which Kestra version the double answers like (`1.3` or `2.0`).
    #[arg(long, default_value = "1.3", value_parser = ["1.3", "2.0"])]
    kestra_version: String,
    /// An external Kestra instead of the double (its root URL). Credentials come from the
    /// environment: KESTRA_BENCH_BASIC_AUTH (`user:password`) or KESTRA_BENCH_API_KEY. The
    /// benchmark writes only its own objects (Kestra namespaces `bench.ns0`..`bench.ns9`) and
    /// deletes them by name before and after each session. Latency cannot be added (use
    /// `--latencies 0`).
    #[arg(long)]
    kestra_url: Option<String>,
    /// The tenant on the external Kestra.
    #[arg(long, default_value = "main", requires = "kestra_url")]
    kestra_tenant: String,
    /// Kestra instances: 1 (the operator's default Kestra only), or 2: a second double
    /// answering like the other version (2.0 beside 1.3, 1.3 beside 2.0), a `KestraInstance`
    /// `second` pointing at it in the benchmark's namespace, and every other block of 30
    /// resources (one of each kind in each Kestra namespace) naming it in `spec.instanceRef`.
    /// Steady state only; recorded as `steady-instances` (and `restart-instances`), with each
    /// instance's requests from its double and from the operator's `instance` label.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    instances: u8,
    /// Do not regenerate BENCHMARKS.md at the end.
    #[arg(long)]
    no_report: bool,
}

fn parse_period(text: &str) -> anyhow::Result<Duration> {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .with_context(|| format!("bad period {text:?}"))?;
    Ok(match unit {
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "ms" => Duration::from_millis(n),
        _ => bail!("bad period {text:?} (use e.g. 30s or 5m)"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chained {
    Steady,
    Drift,
    Apply,
    Churn,
}

#[derive(Debug)]
struct Plan {
    n: usize,
    latency: u64,
    cold_runs: usize,
    chain: Vec<Chained>,
}

fn plan(args: &RunArgs) -> Vec<Plan> {
    let has = |s: &str| args.scenarios.iter().any(|x| x == s);
    let first_latency = args.latencies.first().copied().unwrap_or(0);
    let mut sizes: Vec<usize> = args.cold_n.clone();
    sizes.extend([args.steady_n, args.drift_n, args.apply_n, args.churn_n]);
    sizes.sort_unstable();
    sizes.dedup();
    let mut plans = Vec::new();
    for &latency in &args.latencies {
        for &n in &sizes {
            let cold_runs = if has("cold") && args.cold_n.contains(&n) {
                args.runs.max(1)
            } else {
                0
            };
            let mut chain = Vec::new();
            if has("steady") && n == args.steady_n {
                chain.push(Chained::Steady);
            }
            if latency == first_latency {
                if has("drift") && n == args.drift_n {
                    chain.push(Chained::Drift);
                }
                if has("apply") && n == args.apply_n {
                    chain.push(Chained::Apply);
                }
                if has("churn") && n == args.churn_n {
                    chain.push(Chained::Churn);
                }
            }
            if cold_runs > 0 || !chain.is_empty() {
                plans.push(Plan {
                    n,
                    latency,
                    cold_runs,
                    chain,
                });
            }
        }
    }
    plans
}

fn repo_root(cli: &Cli) -> PathBuf {
    cli.root.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from("."))
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let root = repo_root(&cli);
    let out = root.join("target/bench");
    match &cli.command {
        Cmd::Report => report::write(&root, &out),
        Cmd::Run(args) => {
            let failures = run(&root, &out, args).await?;
            if !args.no_report {
                report::write(&root, &out)?;
            }
            if failures > 0 {
                bail!("{failures} measurement(s) failed (see above)");
            }
            Ok(())
        }
    }
}

struct Runner<'a> {
    paths: Paths,
    target: kestra::Target,
    args: &'a RunArgs,
    run_dir: RunDir,
    resync: Duration,
    failures: usize,
}

impl Runner<'_> {
    /// A record's scenario name: with two instances `steady-instances` and so on, so that such
    /// runs never take the place of the one-instance rows in the report.
    fn scenario_name(&self, scenario: &str) -> String {
        if self.args.instances > 1 {
            format!("{scenario}-instances")
        } else {
            scenario.to_string()
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &mut self,
        scenario: &str,
        n: usize,
        latency: u64,
        run: usize,
        before: procs::OtherWork,
        started_at: String,
        data: serde_json::Value,
    ) {
        let record = Record {
            scenario: self.scenario_name(scenario),
            n,
            latency_ms: latency,
            run,
            started_at,
            finished_at: record::now(),
            before,
            load_end: procs::load_average(),
            data,
        };
        match self.run_dir.save(&record) {
            Ok(path) => eprintln!("kestra-bench: wrote {}", path.display()),
            Err(e) => eprintln!("kestra-bench: could not save a record: {e:#}"),
        }
    }

    async fn session(&mut self, n: usize, latency: u64, tag: &str) -> anyhow::Result<Session> {
        let s = Session::new(
            &self.paths,
            &self.target,
            n,
            latency,
            self.args.create_concurrency,
            self.args.instances,
            tag,
        )
        .await?;
        if self.run_dir.meta.versions.kubernetes.is_empty() {
            self.run_dir.meta.versions.kubernetes = s.cp.version().await;
            let _ = self.run_dir.save_meta();
        }
        Ok(s)
    }

    async fn execute(&mut self, plan: &Plan) -> anyhow::Result<()> {
        let runs = plan.cold_runs.max(1);
        for run in 1..=runs {
            let tag = format!("n{}-l{}-r{run}", plan.n, plan.latency);
            let mut baselines = Vec::new();
            let mut baseline_before = None;
            if plan.cold_runs > 0 {
                for (writes, label) in [
                    (baseline::Writes::Status, "baseline"),
                    (
                        baseline::Writes::FinalizerStatusEvent,
                        "baseline-same-writes",
                    ),
                ] {
                    let mut s = self
                        .session(plan.n, plan.latency, &format!("{tag}-{label}"))
                        .await?;
                    let before = procs::other_work(&s.pids(), Duration::from_secs(3)).await;
                    eprintln!(
                        "kestra-bench: [{tag}] {label}: {} resources, concurrency {} per kind",
                        plan.n, self.args.concurrency
                    );
                    let result =
                        scenarios::cold_baseline(&mut s, self.args.concurrency, writes).await;
                    s.close().await;
                    let side = result?;
                    eprintln!("kestra-bench: [{tag}] {label} done in {:.2}s", side.seconds);
                    baselines.push(side);
                    baseline_before.get_or_insert(before);
                }
            }
            let same_writes = baselines.pop();
            let baseline = baselines.pop();
            let mut s = self.session(plan.n, plan.latency, &tag).await?;
            let result = self
                .operator_session(
                    &mut s,
                    plan,
                    run,
                    runs,
                    baseline.zip(same_writes),
                    baseline_before,
                    &tag,
                )
                .await;
            s.close().await;
            result?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn operator_session(
        &mut self,
        s: &mut Session,
        plan: &Plan,
        run: usize,
        runs: usize,
        baselines: Option<(scenarios::ColdSide, scenarios::ColdSide)>,
        baseline_before: Option<procs::OtherWork>,
        tag: &str,
    ) -> anyhow::Result<()> {
        let before = procs::other_work(&s.pids(), Duration::from_secs(3)).await;
        let started_at = record::now();
        eprintln!(
            "kestra-bench: [{tag}] operator cold sync of {} resources",
            plan.n
        );
        let (side, mut last_ready, command) = scenarios::cold_operator(
            s,
            &self.paths.operator_bin,
            &self.args.cold_resync,
            self.args.concurrency,
            &self.args.operator_env,
        )
        .await?;
        eprintln!(
            "kestra-bench: [{tag}] operator: all Ready in {:.2}s",
            side.seconds
        );
        if self.run_dir.meta.operator_command.is_empty() {
            self.run_dir.meta.operator_command = command;
            let _ = self.run_dir.save_meta();
        }
        if let Some((base, same)) = baselines {
            let ratio = side.seconds / base.seconds;
            let ratio_same = side.seconds / same.seconds;
            eprintln!(
                "kestra-bench: [{tag}] operator / baseline = {ratio:.2}; operator / baseline with the same API writes = {ratio_same:.2}"
            );
            let data = scenarios::ColdData {
                concurrency: self.args.concurrency,
                operator: side,
                baseline: base,
                ratio,
                baseline_same_writes: Some(same),
                ratio_same_writes: Some(ratio_same),
            };
            let mut before = before.clone();
            if let Some(b) = baseline_before {
                before.busiest.extend(b.busiest);
                before.other_cores = before.other_cores.max(b.other_cores);
            }
            self.record(
                "cold",
                plan.n,
                plan.latency,
                run,
                before,
                started_at,
                json!(data),
            )
            .await;
        }
        if run != runs || plan.chain.is_empty() {
            return Ok(());
        }
        if self.args.cold_resync != self.args.resync {
            // The other scenarios run with the shorter resync period: restart the operator.
            let before = procs::other_work(&s.pids(), Duration::from_secs(2)).await;
            let started_at = record::now();
            let (data, done) = scenarios::restart(
                s,
                &self.paths.operator_bin,
                &self.args.resync,
                self.args.concurrency,
                &self.args.operator_env,
            )
            .await?;
            eprintln!(
                "kestra-bench: [{tag}] restarted with --resync-period {}: every resource reconciled in {:.1}s",
                self.args.resync, data.seconds
            );
            last_ready = done;
            self.record(
                "restart",
                plan.n,
                plan.latency,
                1,
                before,
                started_at,
                json!(data),
            )
            .await;
        }
        let mut tags: HashMap<usize, u64> = HashMap::new();
        for step in &plan.chain {
            let before = procs::other_work(&s.pids(), Duration::from_secs(2)).await;
            let started_at = record::now();
            let (name, result) = match step {
                Chained::Steady => (
                    "steady",
                    scenarios::steady(s, self.resync, self.args.steady_periods, last_ready)
                        .await
                        .map(|d| json!(d)),
                ),
                Chained::Drift => (
                    "drift",
                    scenarios::drift(s, self.resync, &tags)
                        .await
                        .map(|d| json!(d)),
                ),
                Chained::Apply => (
                    "apply",
                    scenarios::apply(s, self.args.apply_count, &mut tags)
                        .await
                        .map(|d| json!(d)),
                ),
                Chained::Churn => (
                    "churn",
                    scenarios::churn(s, self.args.churn_rate, self.args.churn_seconds, &mut tags)
                        .await
                        .map(|d| json!(d)),
                ),
            };
            match result {
                Ok(data) => {
                    eprintln!("kestra-bench: [{tag}] {name}: {}", summary_line(&data));
                    self.record(name, plan.n, plan.latency, 1, before, started_at, data)
                        .await;
                }
                Err(e) => {
                    self.failures += 1;
                    eprintln!("kestra-bench: [{tag}] {name} failed: {e:#}");
                    s.check_operator()?;
                }
            }
        }
        Ok(())
    }
}

fn summary_line(data: &serde_json::Value) -> String {
    let mut text = data.to_string();
    if text.len() > 400 {
        text.truncate(400);
        text.push_str("...");
    }
    text
}

/// Start the target once to read its version (and to fail early on a wrong URL or credential).
async fn probe(target: &kestra::Target, paths: &Paths) -> anyhow::Result<kestra::KestraInfo> {
    let logs = paths.logs();
    std::fs::create_dir_all(&logs)?;
    let mut kestra = kestra::Kestra::start(target, &logs, "probe").await?;
    let info = kestra.info().await;
    if let Some(proc) = kestra.proc.as_mut() {
        proc.stop(Duration::from_secs(5)).await;
    }
    info.context("reading the Kestra version (GET /api/v1/configs)")
}

async fn run(
    root: &std::path::Path,
    out: &std::path::Path,
    args: &RunArgs,
) -> anyhow::Result<usize> {
    let paths = Paths {
        root: root.to_path_buf(),
        out: out.to_path_buf(),
        env_dir: out.join("env"),
        operator_bin: args
            .operator_bin
            .clone()
            .unwrap_or_else(|| root.join("target/release/kestra-operator")),
        fake_bin: root.join("target/release/kestra-fake"),
    };
    for bin in [&paths.operator_bin, &paths.fake_bin] {
        if !bin.exists() {
            bail!(
                "{} is missing: run `cargo build --release -p kestra-operator -p kestra-fake` (scripts/bench does)",
                bin.display()
            );
        }
    }
    let resync = parse_period(&args.resync)?;
    let target = match &args.kestra_url {
        None => kestra::Target::Double {
            bin: paths.fake_bin.clone(),
            version: args.kestra_version.clone(),
        },
        Some(url) => {
            if args.latencies.iter().any(|&l| l != 0) {
                bail!(
                    "--kestra-url: latency cannot be added to an external Kestra; use --latencies 0"
                );
            }
            let parsed = url::Url::parse(url).with_context(|| format!("--kestra-url {url:?}"))?;
            if !parsed.username().is_empty() || parsed.password().is_some() {
                bail!(
                    "--kestra-url must not hold credentials (they would be written into the results); use KESTRA_BENCH_BASIC_AUTH or KESTRA_BENCH_API_KEY"
                );
            }
            kestra::Target::External {
                url: url.trim_end_matches('/').to_string(),
                tenant: args.kestra_tenant.clone(),
                credential: kestra::Credential::from_env()?,
            }
        }
    };
    if args.instances > 1 {
        target.second()?;
        if args.scenarios.iter().any(|s| s != "steady") {
            bail!("--instances 2 measures the steady state only: use --scenarios steady");
        }
    }
    let kestra = probe(&target, &paths).await?;
    eprintln!("kestra-bench: Kestra: {}", kestra.label());
    let plans = plan(args);
    if plans.is_empty() {
        bail!("nothing to run: check --scenarios and the sizes");
    }
    let meta = Meta {
        started_at: record::now(),
        finished_at: None,
        command: std::env::var("KESTRA_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
        operator_command: String::new(),
        machine: record::machine(),
        versions: record::versions(root, &paths.operator_bin),
        settings: json!(args),
        kestra,
    };
    let run_dir = RunDir::create(out, meta)?;
    eprintln!("kestra-bench: results in {}", run_dir.dir.display());
    for p in &plans {
        eprintln!(
            "kestra-bench: plan: N={} latency={}ms cold runs={} then {:?}",
            p.n, p.latency, p.cold_runs, p.chain
        );
    }
    let mut runner = Runner {
        paths,
        target,
        args,
        run_dir,
        resync,
        failures: 0,
    };
    for p in &plans {
        if let Err(e) = runner.execute(p).await {
            runner.failures += 1;
            eprintln!(
                "kestra-bench: N={} latency={}ms failed: {e:#}",
                p.n, p.latency
            );
        }
    }
    runner.run_dir.meta.finished_at = Some(record::now());
    runner.run_dir.save_meta()?;
    // Leave nothing running.
    let _ = procs::run(
        std::process::Command::new(root.join("scripts/testenv"))
            .arg("down")
            .env("KESTRA_TESTENV_DIR", &runner.paths.env_dir)
            .env("KESTRA_FAKE_BIN", &runner.paths.fake_bin),
    );
    Ok(runner.failures)
}
