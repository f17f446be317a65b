//! The five scenarios of issue 5. Each returns its figures as a serialisable struct.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::baseline;
use crate::env::delta;
use crate::kestra::{self, Counters};
use crate::metrics;
use crate::procs::cpu_seconds;
use crate::resources::{self, Item, Kind};
use crate::session::{NAMESPACE, Session};
use crate::stats::{Percentiles, percentiles};

fn own_cpu() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(f64::NAN)
}

/// CPU seconds of every process of a measurement, over its window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CpuUse {
    pub operator: f64,
    pub apiserver: f64,
    pub etcd: f64,
    pub kestra_fake: f64,
    /// This tool (watches, the baseline's client).
    pub bench: f64,
}

struct CpuMark {
    operator: f64,
    apiserver: f64,
    etcd: f64,
    fake: f64,
    bench: f64,
}

fn cpu_mark(s: &Session) -> CpuMark {
    let (apiserver, etcd) = s.cp.cpu();
    CpuMark {
        operator: s.operator.as_ref().map_or(0.0, |o| o.cpu()),
        apiserver,
        etcd,
        fake: s.kestra.pid().and_then(cpu_seconds).unwrap_or(f64::NAN),
        bench: own_cpu(),
    }
}

fn cpu_since(s: &Session, m: &CpuMark) -> CpuUse {
    let now = cpu_mark(s);
    CpuUse {
        operator: now.operator - m.operator,
        apiserver: now.apiserver - m.apiserver,
        etcd: now.etcd - m.etcd,
        kestra_fake: now.fake - m.fake,
        bench: now.bench - m.bench,
    }
}

// ---- 1. cold sync ------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ColdSide {
    /// Start to the last resource Ready (operator) or the last status patch (baseline).
    pub seconds: f64,
    /// Kestra requests (`METHOD route status`), from the double's counters.
    pub kestra: BTreeMap<String, u64>,
    /// API server requests on the three kinds and Events (`VERB resource[/sub]`).
    pub apiserver: BTreeMap<String, f64>,
    pub cpu: CpuUse,
    /// Operator only: VmRSS and VmHWM at the end, MiB.
    pub rss_mib: f64,
    pub hwm_mib: f64,
    /// Operator only: time to the first resource Ready.
    pub first_ready_seconds: f64,
    pub create_seconds: f64,
}

pub async fn cold_operator(
    s: &mut Session,
    bin: &Path,
    resync: &str,
    concurrency: u16,
    env: &[String],
) -> anyhow::Result<(ColdSide, Instant, String)> {
    s.reset_kestra_counters().await?;
    let api_before = s.cp.request_counts().await;
    let cpu = cpu_mark(s);
    let started = Instant::now();
    let command = s.start_operator(bin, resync, concurrency, env).await?;
    let timeout = Duration::from_secs(120) + Duration::from_millis(200 * s.n() as u64);
    let first = async {
        let deadline = Instant::now() + timeout;
        while s.tracker.ready_count() == 0 && Instant::now() < deadline {
            s.tracker.changed(Duration::from_millis(100)).await;
        }
        Instant::now()
    };
    let (first, last) = tokio::join!(first, s.wait_all_ready(timeout));
    let last = match last {
        Ok(last) => last,
        Err(e) => {
            let tail = s
                .operator
                .as_ref()
                .map(|o| o.proc.tail(15))
                .unwrap_or_default();
            bail!("{e}\noperator log tail:\n{tail}");
        }
    };
    let seconds = last.duration_since(started).as_secs_f64();
    // Let Events and trailing requests finish before reading the counters.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counters = s.kestra_counters().await?;
    let (rss, hwm) = s.operator()?.memory_mib();
    let side = ColdSide {
        seconds,
        kestra: counters.by_route(),
        apiserver: delta(&api_before, &s.cp.request_counts().await),
        cpu: cpu_since(s, &cpu),
        rss_mib: rss,
        hwm_mib: hwm,
        first_ready_seconds: first.duration_since(started).as_secs_f64(),
        create_seconds: s.create_seconds,
    };
    Ok((side, last, command))
}

pub async fn cold_baseline(
    s: &mut Session,
    concurrency: u16,
    writes: baseline::Writes,
) -> anyhow::Result<ColdSide> {
    s.reset_kestra_counters().await?;
    let api_before = s.cp.request_counts().await;
    let cpu = cpu_mark(s);
    let elapsed = baseline::run(
        &s.cp.client,
        NAMESPACE,
        &s.kestra.api,
        &s.items,
        usize::from(concurrency),
        writes,
    )
    .await?;
    // Sanity: the watches see every resource Ready, as for the operator.
    s.wait_all_ready(Duration::from_secs(60)).await?;
    let counters = s.kestra_counters().await?;
    Ok(ColdSide {
        seconds: elapsed.as_secs_f64(),
        kestra: counters.by_route(),
        apiserver: delta(&api_before, &s.cp.request_counts().await),
        cpu: cpu_since(s, &cpu),
        create_seconds: s.create_seconds,
        ..Default::default()
    })
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ColdData {
    pub concurrency: u16,
    pub operator: ColdSide,
    pub baseline: ColdSide,
    pub ratio: f64,
    /// The baseline that also adds the finalizer and publishes an Event per resource.
    #[serde(default)]
    pub baseline_same_writes: Option<ColdSide>,
    #[serde(default)]
    pub ratio_same_writes: Option<f64>,
}

// ---- restart (between the cold sync and the chained scenarios) ---------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RestartData {
    pub resync: String,
    /// From starting the new process until every resource was reconciled once.
    pub seconds: f64,
    pub kestra: BTreeMap<String, u64>,
    pub apiserver: BTreeMap<String, f64>,
}

fn reconciles(samples: &[metrics::Sample]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == "kestra_operator_reconciles_total")
        .map(|s| s.value)
        .sum()
}

/// Restart the operator with another resync period; returns when every resource has been
/// reconciled once by the new process (and what that cost).
pub async fn restart(
    s: &mut Session,
    bin: &Path,
    resync: &str,
    concurrency: u16,
    env: &[String],
) -> anyhow::Result<(RestartData, Instant)> {
    s.reset_kestra_counters().await?;
    let api_before = s.cp.request_counts().await;
    let started = Instant::now();
    s.start_operator(bin, resync, concurrency, env).await?;
    let deadline = started + Duration::from_secs(120) + Duration::from_millis(50 * s.n() as u64);
    loop {
        let done = reconciles(&s.operator()?.scrape().await);
        if done >= s.n() as f64 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after the restart only {done} of {} resources were reconciled",
                s.n()
            );
        }
        s.check_operator()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((
        RestartData {
            resync: resync.to_string(),
            seconds: done.duration_since(started).as_secs_f64(),
            kestra: s.kestra_counters().await?.by_route(),
            apiserver: delta(&api_before, &s.cp.request_counts().await),
        },
        done,
    ))
}

// ---- 3. steady state ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SteadyData {
    pub resync_seconds: f64,
    pub window_seconds: f64,
    /// Window / resync period.
    pub resyncs: f64,
    pub kestra: BTreeMap<String, u64>,
    pub reads_per_resync: f64,
    pub writes_per_resync: f64,
    /// Requests per resync by kind, and how many of them were namespace listings.
    pub per_kind: BTreeMap<String, KindRequests>,
    pub cpu_seconds_per_resync: f64,
    pub cpu: CpuUse,
    pub rss_mib: f64,
    pub rss_max_mib: f64,
    pub hwm_mib: f64,
    /// RSS at the end split into anonymous memory (heap, stacks) and file pages (the binary).
    #[serde(default)]
    pub rss_anon_mib: f64,
    #[serde(default)]
    pub rss_file_mib: f64,
    pub apiserver: BTreeMap<String, f64>,
    /// With two instances (`--instances 2`): the requests of each instance. The fields above
    /// then count both doubles together (CPU and RSS are the one operator's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceSteady>,
}

/// One instance's share of a steady-state window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InstanceSteady {
    /// The operator's `instance` label: `default` or `KestraInstance/NS/NAME`.
    pub instance: String,
    /// The double's version (`GET /api/v1/configs`).
    pub kestra_version: String,
    /// Resources that use this instance.
    pub resources: usize,
    /// Requests (`METHOD route status`), from this double's own counters.
    pub kestra: BTreeMap<String, u64>,
    pub reads_per_resync: f64,
    pub writes_per_resync: f64,
    pub per_kind: BTreeMap<String, KindRequests>,
    /// The instance checks per resync as the double counts them: `GET flows/search` (the double
    /// serves `GET /api/v1/configs` outside its counting middleware; `operator_kestra` has both).
    pub checks_per_resync: f64,
    /// The same window as the operator counted it (`kestra_operator_kestra_requests_total` of
    /// this `instance` label): the cross-check.
    pub operator_kestra: BTreeMap<String, u64>,
    pub operator_reads_per_resync: f64,
    pub operator_writes_per_resync: f64,
    /// CPU seconds of this double in the window.
    pub kestra_fake_cpu: f64,
}

fn instance_checks(counters: &Counters) -> u64 {
    counters
        .requests
        .iter()
        .filter(|c| c.route == "/api/v1/configs" || c.route == "/api/v1/{tenant}/flows/search")
        .map(|c| c.count)
        .sum()
}

/// What a two-instance window starts from: the operator's metrics and the second double's CPU.
struct InstancesMark {
    operator: Vec<metrics::Sample>,
    second_cpu: f64,
}

async fn instances_mark(s: &Session) -> anyhow::Result<Option<InstancesMark>> {
    let Some((second, _)) = &s.second else {
        return Ok(None);
    };
    second.reset_counters(None).await?;
    Ok(Some(InstancesMark {
        operator: s.scrape_operator().await,
        second_cpu: second.pid().and_then(cpu_seconds).unwrap_or(f64::NAN),
    }))
}

/// Each instance's requests since `mark`; `first`: the first double's counters of the window.
async fn instances_since(
    s: &Session,
    mark: &InstancesMark,
    first: &Counters,
    first_cpu: f64,
    resyncs: f64,
) -> anyhow::Result<(Vec<InstanceSteady>, Counters)> {
    let Some((second, second_info)) = &s.second else {
        return Ok((Vec::new(), first.clone()));
    };
    let second_counters = second.counters(None).await?;
    let operator = s.scrape_operator().await;
    let second_cpu = second.pid().and_then(cpu_seconds).unwrap_or(f64::NAN) - mark.second_cpu;
    let first_info = s.kestra.info().await?;
    let second_label = format!(
        "KestraInstance/{}/{}",
        crate::session::NAMESPACE,
        resources::SECOND_INSTANCE
    );
    let mut out = Vec::new();
    for (label, info, counters, on_second, cpu) in [
        (
            kestra::DEFAULT_INSTANCE,
            &first_info,
            first,
            false,
            first_cpu,
        ),
        (
            second_label.as_str(),
            second_info,
            &second_counters,
            true,
            second_cpu,
        ),
    ] {
        let items: Vec<Item> = s
            .items
            .iter()
            .filter(|i| i.second == on_second)
            .cloned()
            .collect();
        let made = kestra::operator_counters_of(&operator, label)
            .minus(&kestra::operator_counters_of(&mark.operator, label));
        out.push(InstanceSteady {
            instance: label.to_string(),
            kestra_version: info.version.clone(),
            resources: items.len(),
            kestra: counters.by_route(),
            reads_per_resync: counters.reads() as f64 / resyncs,
            writes_per_resync: counters.writes() as f64 / resyncs,
            per_kind: per_kind(counters, resyncs, &items),
            checks_per_resync: instance_checks(counters) as f64 / resyncs,
            operator_kestra: made.by_route(),
            operator_reads_per_resync: made.reads() as f64 / resyncs,
            operator_writes_per_resync: made.writes() as f64 / resyncs,
            kestra_fake_cpu: cpu,
        });
    }
    let mut both = first.clone();
    both.add(&second_counters);
    Ok((out, both))
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KindRequests {
    pub requests_per_resync: f64,
    pub listings_per_resync: f64,
    pub object_reads_per_resync: f64,
    pub writes_per_resync: f64,
    pub objects: usize,
}

fn kind_of_route(route: &str) -> Option<(Kind, bool)> {
    // (kind, is a namespace-level listing)
    match route {
        "/flows/{namespace}" => Some((Kind::Flow, true)),
        "/flows" | "/flows/{namespace}/{id}" | "/flows/delete/by-ids" => Some((Kind::Flow, false)),
        // The filtered key listing (Kestra 1.3 and 2.0), or the per-namespace one (up to 1.3).
        "/kv" | "/namespaces/{namespace}/kv" => Some((Kind::Kv, true)),
        "/namespaces/{namespace}/kv/{key}" => Some((Kind::Kv, false)),
        "/namespaces/{namespace}/files/directory" => Some((Kind::File, true)),
        r if r.starts_with("/namespaces/{namespace}/files") => Some((Kind::File, false)),
        _ => None,
    }
}

fn per_kind(counters: &Counters, resyncs: f64, items: &[Item]) -> BTreeMap<String, KindRequests> {
    let mut out: BTreeMap<String, KindRequests> = BTreeMap::new();
    for kind in Kind::ALL {
        out.entry(kind.short().to_string()).or_default().objects =
            items.iter().filter(|i| i.kind == kind).count();
    }
    for c in &counters.requests {
        let route = c.route.trim_start_matches("/api/v1/{tenant}");
        let Some((kind, listing)) = kind_of_route(route) else {
            continue;
        };
        let entry = out.entry(kind.short().to_string()).or_default();
        let n = c.count as f64 / resyncs;
        entry.requests_per_resync += n;
        if c.method != "GET" {
            entry.writes_per_resync += n;
        } else if listing {
            entry.listings_per_resync += n;
        } else {
            entry.object_reads_per_resync += n;
        }
    }
    out
}

pub async fn steady(
    s: &mut Session,
    resync: Duration,
    periods: u32,
    last_ready: Instant,
) -> anyhow::Result<SteadyData> {
    // Every resource has had two resyncs after `last_ready` (its last sync: the cold sync, or the
    // restart) before the window opens (the first comes 0.5 to 1.5 periods after a sync; a KV
    // key's update time is remembered from the first read after its write).
    let warm = last_ready + resync.mul_f64(2.6) + Duration::from_secs(2);
    let wait = warm.saturating_duration_since(Instant::now());
    eprintln!(
        "kestra-bench: [{}] steady state: warming up {:.0}s, then {periods} periods of {:?}",
        s.tag,
        wait.as_secs_f64(),
        resync
    );
    tokio::time::sleep(wait).await;
    s.check_operator()?;
    s.reset_kestra_counters().await?;
    let instances = instances_mark(s).await?;
    let api_before = s.cp.request_counts().await;
    let cpu = cpu_mark(s);
    let started = Instant::now();
    let window = resync * periods;
    let mut rss_max: f64 = 0.0;
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1).min(window.saturating_sub(started.elapsed())))
            .await;
        s.check_operator()?;
        rss_max = rss_max.max(s.operator()?.memory_mib().0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let counters = s.kestra_counters().await?;
    let cpu = cpu_since(s, &cpu);
    let resyncs = elapsed / resync.as_secs_f64();
    let (instances, counters) = match &instances {
        Some(mark) => instances_since(s, mark, &counters, cpu.kestra_fake, resyncs).await?,
        None => (Vec::new(), counters),
    };
    let (rss, hwm) = s.operator()?.memory_mib();
    let (rss_anon, rss_file) = s.operator()?.rss_split_mib();
    Ok(SteadyData {
        resync_seconds: resync.as_secs_f64(),
        window_seconds: elapsed,
        resyncs,
        kestra: counters.by_route(),
        reads_per_resync: counters.reads() as f64 / resyncs,
        writes_per_resync: counters.writes() as f64 / resyncs,
        per_kind: per_kind(&counters, resyncs, &s.items),
        cpu_seconds_per_resync: cpu.operator / resyncs,
        cpu,
        rss_mib: rss,
        rss_max_mib: rss_max,
        hwm_mib: hwm,
        rss_anon_mib: rss_anon,
        rss_file_mib: rss_file,
        apiserver: delta(&api_before, &s.cp.request_counts().await),
        instances,
    })
}

// ---- 4. drift ----------------------------------------------------------------------------------

/// A spec version no resource ever has: what a drift writes.
const DRIFT_TAG: u64 = 999_999;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DriftData {
    pub resync_seconds: f64,
    pub changed: usize,
    pub restored: usize,
    /// Every changed object restored (its DriftCorrected status seen), from the change.
    pub all_restored_seconds: f64,
    pub restore_seconds: Percentiles,
    /// Restored objects whose Kestra content matched the spec at the end.
    pub verified: usize,
    pub kestra: BTreeMap<String, u64>,
}

pub async fn drift(
    s: &mut Session,
    resync: Duration,
    tags: &HashMap<usize, u64>,
) -> anyhow::Result<DriftData> {
    let chosen: Vec<Item> = if s.n() >= 100 {
        s.items
            .iter()
            .filter(|i| i.index % 100 == 37)
            .cloned()
            .collect()
    } else {
        s.items.iter().take(3).cloned().collect()
    };
    eprintln!(
        "kestra-bench: [{}] drift: changing {} objects in Kestra",
        s.tag,
        chosen.len()
    );
    let before: HashMap<usize, i64> = chosen
        .iter()
        .map(|i| (i.index, s.tracker.drift_count(&(i.kind, i.name.clone()))))
        .collect();
    s.reset_kestra_counters().await?;
    let started = Instant::now();
    let kestra = s.kestra.api.clone();
    stream::iter(chosen.iter().cloned())
        .map(|item| {
            let kestra = kestra.clone();
            async move {
                item.write_kestra(&kestra, &item.content(DRIFT_TAG), false)
                    .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<i64>>()
        .await
        .context("changing objects directly in Kestra")?;
    let timeout = resync * 3 + Duration::from_secs(60);
    let deadline = started + timeout;
    let times = loop {
        let times = chosen
            .iter()
            .filter_map(|i| {
                s.tracker
                    .drift_at(&(i.kind, i.name.clone()), before[&i.index])
            })
            .map(|t| t.duration_since(started).as_secs_f64())
            .collect::<Vec<_>>();
        if times.len() == chosen.len() || Instant::now() > deadline {
            break times;
        }
        s.check_operator()?;
        s.tracker.changed(Duration::from_millis(500)).await;
    };
    let mut verified = 0;
    for item in &chosen {
        let tag = tags.get(&item.index).copied().unwrap_or(0);
        if item
            .kestra_holds(&s.kestra.api, &item.content(tag))
            .await
            .unwrap_or(false)
        {
            verified += 1;
        }
    }
    let counters = s.kestra_counters().await?;
    Ok(DriftData {
        resync_seconds: resync.as_secs_f64(),
        changed: chosen.len(),
        restored: times.len(),
        all_restored_seconds: if times.len() == chosen.len() {
            times.iter().copied().fold(0.0, f64::max)
        } else {
            f64::NAN
        },
        restore_seconds: percentiles(&times),
        verified,
        kestra: counters.by_route(),
    })
}

// ---- 2. apply latency --------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApplyData {
    pub changes: usize,
    /// Apply (start of the PATCH) to the new content readable in Kestra, ms.
    pub to_kestra_ms: Percentiles,
    /// Apply to Ready at the new generation (seen by a watch), ms.
    pub to_ready_ms: Percentiles,
    pub per_kind: BTreeMap<String, (Percentiles, Percentiles)>,
    pub timeouts: usize,
}

pub async fn apply(
    s: &mut Session,
    count: usize,
    tags: &mut HashMap<usize, u64>,
) -> anyhow::Result<ApplyData> {
    eprintln!(
        "kestra-bench: [{}] apply latency: {count} changes, one at a time",
        s.tag
    );
    let by_kind: HashMap<Kind, Vec<Item>> = Kind::ALL
        .iter()
        .map(|k| {
            (
                *k,
                s.items.iter().filter(|i| i.kind == *k).cloned().collect(),
            )
        })
        .collect();
    let mut write_ms = Vec::new();
    let mut ready_ms = Vec::new();
    let mut kind_samples: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut timeouts = 0;
    for i in 0..count {
        let kind = Kind::ALL[i % 3];
        let list = &by_kind[&kind];
        if list.is_empty() {
            continue;
        }
        let item = &list[(i / 3 * 7) % list.len()];
        let tag = tags.get(&item.index).copied().unwrap_or(0) + 1;
        tags.insert(item.index, tag);
        let expected = item.content(tag);
        let started = Instant::now();
        let generation = item.patch(&s.cp.client, NAMESPACE, tag).await?;
        let deadline = started + Duration::from_secs(30);
        let written = loop {
            if item
                .kestra_holds(&s.kestra.api, &expected)
                .await
                .unwrap_or(false)
            {
                break Some(Instant::now());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let key = (item.kind, item.name.clone());
        let ready = s
            .tracker
            .wait_ready(&key, generation, Duration::from_secs(30))
            .await;
        match (written, ready) {
            (Some(w), Some(r)) => {
                let (w, r) = (
                    w.duration_since(started).as_secs_f64() * 1000.0,
                    r.duration_since(started).as_secs_f64() * 1000.0,
                );
                write_ms.push(w);
                ready_ms.push(r);
                let e = kind_samples.entry(kind.short().to_string()).or_default();
                e.0.push(w);
                e.1.push(r);
            }
            _ => {
                timeouts += 1;
                s.check_operator()?;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(ApplyData {
        changes: count,
        to_kestra_ms: percentiles(&write_ms),
        to_ready_ms: percentiles(&ready_ms),
        per_kind: kind_samples
            .into_iter()
            .map(|(k, (w, r))| (k, (percentiles(&w), percentiles(&r))))
            .collect(),
        timeouts,
    })
}

// ---- 5. churn ----------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChurnData {
    pub target_rate: f64,
    pub seconds: f64,
    pub sent: usize,
    pub achieved_rate: f64,
    pub patch_errors: usize,
    /// Apply (start of the PATCH) to Ready at that generation or a later one, ms.
    pub lag_ms: Percentiles,
    /// The same lag per kind.
    #[serde(default)]
    pub lag_by_kind_ms: BTreeMap<String, Percentiles>,
    /// The same lag per 10-second window of sending (key: window start, s), to see when the
    /// slow updates were sent.
    #[serde(default)]
    pub lag_by_window_ms: BTreeMap<u32, Percentiles>,
    /// API-server requests for our resources and Events during the churn and drain.
    #[serde(default)]
    pub apiserver: BTreeMap<String, f64>,
    /// From the last update sent to every updated resource Ready.
    pub drain_seconds: f64,
    pub not_ready: usize,
    /// Operator `kestra_operator_reconcile_errors_total` increase, by kind and reason.
    pub reconcile_errors: BTreeMap<String, f64>,
    pub kestra_errors: u64,
    pub kestra_writes: u64,
    pub operator_warnings: usize,
    pub warning_samples: Vec<String>,
    pub cpu: CpuUse,
}

fn reconcile_errors(samples: &[metrics::Sample]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.name == "kestra_operator_reconcile_errors_total")
        .map(|s| {
            (
                format!(
                    "{} {}",
                    s.label("kind").unwrap_or(""),
                    s.label("reason").unwrap_or("")
                ),
                s.value,
            )
        })
        .collect()
}

pub async fn churn(
    s: &mut Session,
    rate: u32,
    seconds: u32,
    tags: &mut HashMap<usize, u64>,
) -> anyhow::Result<ChurnData> {
    let total = (rate * seconds) as usize;
    eprintln!(
        "kestra-bench: [{}] churn: {rate} updates/s for {seconds}s",
        s.tag
    );
    let n = s.n();
    let errors_before = reconcile_errors(&s.operator()?.scrape().await);
    let (warn_before, _) = s.operator()?.warnings();
    s.reset_kestra_counters().await?;
    let api_before = s.cp.request_counts().await;
    let cpu = cpu_mark(s);
    // (index, generation, apply start) per update.
    let sent: Arc<Mutex<Vec<(usize, i64, Instant)>>> = Arc::default();
    let failed: Arc<Mutex<usize>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        ticker.tick().await;
        let index = (k * 7919) % n;
        let tag = tags.get(&index).copied().unwrap_or(0) + 1;
        tags.insert(index, tag);
        let item = s.items[index].clone();
        let client = s.cp.client.clone();
        let permit = permits.clone().acquire_owned().await?;
        let (sent, failed) = (sent.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            match tokio::time::timeout(Duration::from_secs(30), item.patch(&client, NAMESPACE, tag))
                .await
            {
                Ok(Ok(generation)) => sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((index, generation, at)),
                _ => *failed.lock().unwrap_or_else(|p| p.into_inner()) += 1,
            }
            drop(permit);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let send_end = Instant::now();
    let send_seconds = send_end.duration_since(started).as_secs_f64();
    let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Every updated resource Ready at its last generation.
    let mut last_gen: HashMap<usize, i64> = HashMap::new();
    for (index, generation, _) in &sent {
        let g = last_gen.entry(*index).or_default();
        *g = (*g).max(*generation);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut drained = None;
    loop {
        let ready: Vec<Option<Instant>> = last_gen
            .iter()
            .map(|(index, g)| {
                let item = &s.items[*index];
                s.tracker.ready_at(&(item.kind, item.name.clone()), *g)
            })
            .collect();
        if ready.iter().all(Option::is_some) {
            drained = ready.into_iter().flatten().max();
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        s.check_operator()?;
        s.tracker.changed(Duration::from_millis(200)).await;
    }
    let mut lags = Vec::new();
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut by_window: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut not_ready = 0;
    for (index, generation, at) in &sent {
        let item = &s.items[*index];
        match s
            .tracker
            .ready_at(&(item.kind, item.name.clone()), *generation)
        {
            Some(t) => {
                let lag = t.saturating_duration_since(*at).as_secs_f64() * 1000.0;
                lags.push(lag);
                by_kind
                    .entry(item.kind.kind().to_string())
                    .or_default()
                    .push(lag);
                let window = (at.saturating_duration_since(started).as_secs() / 10) as u32 * 10;
                by_window.entry(window).or_default().push(lag);
            }
            None => not_ready += 1,
        }
    }
    let apiserver = delta(&api_before, &s.cp.request_counts().await);
    let counters = s.kestra_counters().await?;
    let errors_after = reconcile_errors(&s.operator()?.scrape().await);
    let (warn_after, samples) = s.operator()?.warnings();
    let patch_errors = *failed.lock().unwrap_or_else(|p| p.into_inner());
    Ok(ChurnData {
        target_rate: f64::from(rate),
        seconds: f64::from(seconds),
        sent: sent.len(),
        achieved_rate: sent.len() as f64 / send_seconds,
        patch_errors,
        lag_ms: percentiles(&lags),
        lag_by_kind_ms: by_kind
            .into_iter()
            .map(|(k, v)| (k, percentiles(&v)))
            .collect(),
        lag_by_window_ms: by_window
            .into_iter()
            .map(|(k, v)| (k, percentiles(&v)))
            .collect(),
        apiserver,
        drain_seconds: drained.map_or(f64::NAN, |d| {
            d.saturating_duration_since(send_end).as_secs_f64()
        }),
        not_ready,
        reconcile_errors: errors_after
            .iter()
            .map(|(k, v)| (k.clone(), v - errors_before.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v > 0.0)
            .collect(),
        kestra_errors: counters.errors(),
        kestra_writes: counters.writes(),
        operator_warnings: warn_after.saturating_sub(warn_before),
        warning_samples: samples,
        cpu: cpu_since(s, &cpu),
    })
}
