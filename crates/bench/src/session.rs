//! One measured setup: a fresh control plane, a Kestra (a private double, or an external one
//! cleared of the benchmark's objects), N resources, the watches, and (for operator sessions) the
//! operator.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::env::{ControlPlane, Paths};
use crate::kestra::{Counters, Kestra, KestraInfo, Target};
use crate::operator::{Operator, OperatorArgs};
use crate::resources::{self, Item};
use crate::tracker::Tracker;

pub const NAMESPACE: &str = "bench";

pub struct Session {
    pub cp: ControlPlane,
    pub kestra: Kestra,
    /// With two instances: the second double, named by the `KestraInstance`
    /// [`resources::SECOND_INSTANCE`] that half of the resources reference.
    pub second: Option<(Kestra, KestraInfo)>,
    target: Target,
    pub items: Vec<Item>,
    pub tracker: Tracker,
    pub operator: Option<Operator>,
    pub create_seconds: f64,
    pub tag: String,
    logs: PathBuf,
}

impl Session {
    pub async fn new(
        paths: &Paths,
        target: &Target,
        n: usize,
        latency_ms: u64,
        create_concurrency: usize,
        instances: u8,
        tag: &str,
    ) -> anyhow::Result<Self> {
        eprintln!("kestra-bench: [{tag}] fresh control plane");
        let cp = ControlPlane::fresh(paths).await?;
        let logs = paths.logs();
        std::fs::create_dir_all(&logs)?;
        let kestra = Kestra::start(target, &logs, tag).await?;
        kestra.set_latency(latency_ms).await?;
        cp.create_namespace(NAMESPACE).await?;
        let mut items = resources::items(n);
        let second = if instances > 1 {
            let second = Kestra::start(&target.second()?, &logs, &format!("{tag}-second")).await?;
            second.set_latency(latency_ms).await?;
            let info = second.info().await?;
            cp.create_instance(NAMESPACE, resources::SECOND_INSTANCE, &second.url)
                .await?;
            resources::split_instances(&mut items);
            eprintln!(
                "kestra-bench: [{tag}] second instance: KestraInstance {NAMESPACE}/{} at {} ({}), for {} of the {n} resources",
                resources::SECOND_INSTANCE,
                second.url,
                info.label(),
                items.iter().filter(|i| i.second).count()
            );
            Some((second, info))
        } else {
            None
        };
        kestra
            .remove_items(&items)
            .await
            .context("clearing the benchmark's objects from Kestra")?;
        eprintln!("kestra-bench: [{tag}] creating {n} resources");
        let created =
            resources::create_all(&cp.client, NAMESPACE, &items, create_concurrency).await?;
        let tracker = Tracker::start(&cp.client, NAMESPACE).await?;
        eprintln!(
            "kestra-bench: [{tag}] created {n} resources in {:.1}s",
            created.as_secs_f64()
        );
        Ok(Self {
            cp,
            kestra,
            second,
            target: target.clone(),
            items,
            tracker,
            operator: None,
            create_seconds: created.as_secs_f64(),
            tag: tag.to_string(),
            logs,
        })
    }

    pub fn n(&self) -> usize {
        self.items.len()
    }

    /// Start the operator; returns when the process runs (the caller times from before this).
    pub async fn start_operator(
        &mut self,
        bin: &std::path::Path,
        resync: &str,
        concurrency: u16,
        env: &[String],
    ) -> anyhow::Result<String> {
        let log = match &self.operator {
            None => self.logs.join(format!("operator-{}.log", self.tag)),
            Some(_) => self
                .logs
                .join(format!("operator-{}-restarted.log", self.tag)),
        };
        if let Some(mut old) = self.operator.take() {
            old.proc.stop(Duration::from_secs(15)).await;
        }
        let (tenant, credential) = match &self.target {
            Target::External {
                tenant, credential, ..
            } => (tenant.as_str(), credential.as_ref()),
            Target::Double { .. } => (crate::kestra::DEFAULT_TENANT, None),
        };
        let args = OperatorArgs {
            bin,
            kubeconfig: &self.cp.kubeconfig,
            kestra_url: &self.kestra.url,
            tenant,
            credential: credential.map(|c| c.operator_env()),
            namespace: NAMESPACE,
            resync,
            concurrency,
            log: &log,
            env,
        };
        let command = Operator::command_line(&args);
        let mut operator = Operator::start(&args)?;
        operator.wait_metrics(Duration::from_secs(60)).await?;
        self.operator = Some(operator);
        Ok(command)
    }

    pub fn operator(&self) -> anyhow::Result<&Operator> {
        self.operator
            .as_ref()
            .context("the operator is not running")
    }

    /// Fail early when the operator died.
    pub fn check_operator(&mut self) -> anyhow::Result<()> {
        match self.operator.as_mut() {
            Some(op) => op.proc.check_alive(),
            None => Ok(()),
        }
    }

    /// Pids of every process of this session (for telling our CPU from other work).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.kestra.pid().into_iter().collect();
        pids.extend(self.second.as_ref().and_then(|(k, _)| k.pid()));
        pids.extend(self.operator.as_ref().map(Operator::pid));
        pids.extend(self.cp.apiserver_pid());
        pids.extend(self.cp.etcd_pid());
        pids.extend(self.cp.env_fake_pid());
        pids
    }

    /// Count Kestra requests from now on (the double's counters, or the operator's and the
    /// benchmark's own on an external Kestra).
    pub async fn reset_kestra_counters(&self) -> anyhow::Result<()> {
        let samples = self.operator_samples().await;
        self.kestra
            .reset_counters(samples.as_ref().map(|(pid, s)| (*pid, s.as_slice())))
            .await
    }

    /// Kestra requests since `reset_kestra_counters`.
    pub async fn kestra_counters(&self) -> anyhow::Result<Counters> {
        let samples = self.operator_samples().await;
        self.kestra
            .counters(samples.as_ref().map(|(pid, s)| (*pid, s.as_slice())))
            .await
    }

    /// The operator's metrics now (none when it does not run).
    pub async fn scrape_operator(&self) -> Vec<crate::metrics::Sample> {
        match &self.operator {
            Some(operator) => operator.scrape().await,
            None => Vec::new(),
        }
    }

    async fn operator_samples(&self) -> Option<(u32, Vec<crate::metrics::Sample>)> {
        if self.target.is_double() {
            return None;
        }
        let operator = self.operator.as_ref()?;
        Some((operator.pid(), operator.scrape().await))
    }

    pub async fn wait_all_ready(&self, timeout: Duration) -> anyhow::Result<Instant> {
        self.tracker.wait_all_ready(self.n(), timeout).await
    }

    pub async fn close(mut self) {
        if let Some(mut op) = self.operator.take() {
            op.proc.stop(Duration::from_secs(10)).await;
        }
        if let Some(proc) = self.kestra.proc.as_mut() {
            proc.stop(Duration::from_secs(5)).await;
        }
        if let Some(proc) = self.second.as_mut().and_then(|(k, _)| k.proc.as_mut()) {
            proc.stop(Duration::from_secs(5)).await;
        }
        if let Err(e) = self.kestra.remove_items(&self.items).await {
            eprintln!(
                "kestra-bench: [{}] could not delete every benchmark object from Kestra: {e:#}",
                self.tag
            );
        }
        drop(self.tracker);
        self.cp.down();
    }
}
