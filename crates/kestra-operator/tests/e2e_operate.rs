//! Operating the operator: metrics and probes, leader election with failover, and the same
//! documented manifests against a real Kestra when one is given.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::*;
use testenv::wait_until;

/// Every metric family the operator documents, present on /metrics after a sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes() -> anyhow::Result<()> {
    let ns = namespace("metrics");
    let op = start_operator(OpSpec::new(&[&ns.name], "30s")).await?;
    apply(
        &ns.name,
        &kv_manifest("m1", &ns.kestra, "m1", "  value: 1\n"),
    )
    .await?;
    wait_ready(&ns.name, "kestrakeyvalue/m1").await?;

    let http = reqwest::Client::new();
    for probe in ["healthz", "readyz"] {
        let r = http
            .get(format!("http://{}/{probe}", op.metrics_addr))
            .send()
            .await?;
        ensure!(r.status().is_success(), "/{probe} answered {}", r.status());
    }
    let text = wait_until(Duration::from_secs(15), POLL, || async {
        let text = op.metrics().await?;
        // The objects gauge is refreshed every few seconds from the caches.
        ensure!(
            text.contains(r#"kestra_operator_objects{kind="KestraKeyValue",ready="True"} 1"#),
            "objects gauge not yet 1"
        );
        Ok(text)
    })
    .await?;
    for family in [
        "kestra_operator_reconciles_total",
        "kestra_operator_reconcile_errors_total",
        "kestra_operator_reconcile_duration_seconds",
        "kestra_operator_kestra_requests_total",
        "kestra_operator_kestra_request_duration_seconds",
        "kestra_operator_drift_corrections_total",
        "kestra_operator_objects",
        "kestra_operator_leader",
    ] {
        ensure!(
            text.contains(&format!("# TYPE {family}"))
                || text.contains(&format!("{family}{{"))
                || text.contains(&format!("{family} ")),
            "/metrics lacks {family}:\n{text}"
        );
    }
    ensure!(
        text.contains(r#"kestra_operator_reconciles_total{kind="KestraKeyValue"}"#),
        "{text}"
    );
    ensure!(
        text.contains(
            r#"route="/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",method="PUT",status="200""#
        ),
        "Kestra requests are labelled by route template:\n{text}"
    );
    ensure!(text.contains("kestra_operator_leader 1"), "{text}");
    ensure!(
        !text.contains(&ns.kestra),
        "metrics must not carry object names (cardinality)"
    );
    let env = env();
    let password = env
        .basic_auth
        .split_once(':')
        .map(|(_, p)| p)
        .unwrap_or_default();
    ensure!(!text.contains(password), "metrics leak the Kestra password");
    ensure!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    Ok(())
}

fn lease_holder(ns: &str, lease: &str) -> anyhow::Result<String> {
    let out = env().kubectl_ok([
        "get",
        "lease",
        lease,
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    Ok(out.trim().to_string())
}

/// Two replicas with leader election: only the leader writes; when it is killed the other
/// takes over within the lease duration and finishes the work; nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_finishes_the_work_without_double_writes() -> anyhow::Result<()> {
    const WAVE: usize = 10;
    let ns = namespace("failover");
    let fake = private_fake(kestra_fake::FakeConfig::default()).await?;
    let url = fake.url();
    let lease = "kestra-operator-e2e";
    let spec = |identity: &'static str| {
        OpSpec::new(&[&ns.name], "5s")
            .kestra(&url)
            .arg("--leader-election")
            .arg("--leader-election-namespace")
            .arg(&ns.name)
            .arg("--leader-election-lease")
            .arg(lease)
            .arg("--identity")
            .arg(identity)
    };
    let mut a = start_operator(spec("replica-a")).await?;
    let mut b = start_operator(spec("replica-b")).await?;
    let holder = wait_until(Duration::from_secs(30), POLL, || async {
        let holder = lease_holder(&ns.name, lease)?;
        ensure!(!holder.is_empty(), "no holder yet");
        Ok(holder)
    })
    .await?;

    let manifests = |range: std::ops::Range<usize>, value: &str| -> String {
        range
            .map(|i| {
                kv_manifest(
                    &format!("kv-{i}"),
                    &ns.kestra,
                    &format!("k{i}"),
                    &format!("  value: {value}-{i}\n"),
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    };
    apply(&ns.name, &manifests(0..WAVE, "one")).await?;
    for i in 0..WAVE {
        wait_ready(&ns.name, &format!("kestrakeyvalue/kv-{i}")).await?;
    }
    let (leader, standby) = if holder == "replica-a" {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    ensure!(
        !standby.logs().contains("created key"),
        "the standby replica wrote to Kestra:\n{}",
        standby.logs()
    );

    // Kill the leader without warning, then change wave one and add wave two.
    leader.process.kill()?;
    let killed = Instant::now();
    apply(&ns.name, &manifests(0..WAVE, "two")).await?;
    apply(&ns.name, &manifests(WAVE..2 * WAVE, "two")).await?;
    let kestra = Kestra::private(&url);
    wait_until(Duration::from_secs(60), POLL, || async {
        for i in 0..2 * WAVE {
            let (status, body) = kestra.kv(&ns.kestra, &format!("k{i}")).await?;
            ensure!(
                status == 200 && body["value"] == format!("two-{i}"),
                "k{i} is {status} {body}"
            );
        }
        Ok(())
    })
    .await
    .context("the new leader did not finish the work")?;
    let takeover = killed.elapsed();
    eprintln!(
        "failover: all {} entries correct {:.1}s after the leader was killed",
        2 * WAVE,
        takeover.as_secs_f64()
    );
    ensure!(
        takeover < Duration::from_secs(45),
        "takeover took {takeover:?}"
    );
    let new_holder = lease_holder(&ns.name, lease)?;
    ensure!(
        new_holder != holder,
        "the lease still names the killed replica {holder}"
    );

    // Wave one created once and updated once, wave two created once: no double write.
    let puts = count(
        &url,
        "PUT",
        "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
    )
    .await?;
    ensure!(
        puts == (3 * WAVE) as u64,
        "expected {} KV writes, saw {puts}: {:?}",
        3 * WAVE,
        writes(&url).await?
    );
    for i in 0..2 * WAVE {
        wait_ready(&ns.name, &format!("kestrakeyvalue/kv-{i}")).await?;
    }
    Ok(())
}

/// The documented manifests against a real Kestra, when `KESTRA_E2E_URL` names one
/// (credentials in `KESTRA_E2E_BASIC_AUTH` or `KESTRA_E2E_API_KEY`, tenant in `KESTRA_E2E_TENANT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_manifests_against_a_real_kestra() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("KESTRA_E2E_URL") else {
        eprintln!("skipped: KESTRA_E2E_URL is not set (see docs/testing.md)");
        return Ok(());
    };
    let basic = std::env::var("KESTRA_E2E_BASIC_AUTH").unwrap_or_default();
    let api_key = std::env::var("KESTRA_E2E_API_KEY").unwrap_or_default();
    let tenant = std::env::var("KESTRA_E2E_TENANT").unwrap_or_else(|_| "main".to_string());
    let ns = namespace("real");
    let _op = start_operator(
        OpSpec::new(&[&ns.name], "30s")
            .env("KESTRA_API_URL", &url)
            .env("KESTRA_API_BASIC_AUTH", &basic)
            .env("KESTRA_API_API_KEY", &api_key)
            .arg("--tenant")
            .arg(&tenant),
    )
    .await?;
    let documented = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/documented.yaml"
    ))?;
    apply(&ns.name, &documented.replace("company.team", &ns.kestra)).await?;
    for resource in [
        "kestraflow/hello-world",
        "kestrakeyvalue/kv-1",
        "kestranamespacefile/nsfile-1",
    ] {
        wait_ready(&ns.name, resource).await?;
    }
    let auth = basic
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()));
    let kestra = Kestra::new(&url, Some(&tenant), auth);
    ensure!(
        kestra.flow(&ns.kestra, "hello-world").await?.is_some(),
        "flow missing in Kestra"
    );
    let (status, body) = kestra.kv(&ns.kestra, "key1").await?;
    ensure!(
        status == 200 && body["value"] == "value1",
        "kv: {status} {body}"
    );
    ensure!(
        kestra.file(&ns.kestra, "/nsfile-1.txt").await?.as_deref()
            == Some(b"Hello World".as_slice()),
        "file"
    );
    for resource in [
        "kestraflow/hello-world",
        "kestrakeyvalue/kv-1",
        "kestranamespacefile/nsfile-1",
    ] {
        k(&ns.name, &["delete", resource, "--timeout=60s"]).await?;
    }
    ensure!(
        kestra.flow(&ns.kestra, "hello-world").await?.is_none(),
        "flow left in Kestra"
    );
    Ok(())
}
