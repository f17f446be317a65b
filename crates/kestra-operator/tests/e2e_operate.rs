//! Operating the operator: metrics and probes, leader election with failover, and the same
//! documented manifests against a real Kestra when one is given.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

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

/// A real Kestra, when `KESTRA_E2E_URL` names one (credentials in `KESTRA_E2E_BASIC_AUTH` or
/// `KESTRA_E2E_API_KEY`, tenant in `KESTRA_E2E_TENANT`): the documented manifests (Kestra 1.3
/// and 2.0 refuse the documented flow, and status says why), a flow they accept, then for each
/// kind drift restored, a resync that writes nothing, and delete.
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
    let kn = ns.kestra.clone();
    let _op = start_operator(
        OpSpec::new(&[&ns.name], "3s")
            .env("KESTRA_API_URL", &url)
            .env("KESTRA_API_BASIC_AUTH", &basic)
            .env("KESTRA_API_API_KEY", &api_key)
            .arg("--tenant")
            .arg(&tenant),
    )
    .await?;
    let auth = basic
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()));
    let kestra = Kestra::new(&url, Some(&tenant), auth);

    // The documented manifests: key and file sync; Kestra refuses the flow (1.3: the Log task
    // needs a message; 2.0 also no longer knows the legacy type), and status shows why.
    let documented = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/documented.yaml"
    ))?;
    apply(&ns.name, &documented.replace("company.team", &kn)).await?;
    for resource in ["kestrakeyvalue/kv-1", "kestranamespacefile/nsfile-1"] {
        wait_ready(&ns.name, resource).await?;
    }
    let refused = wait_reason(
        &ns.name,
        "kestraflow/hello-world",
        "False",
        "Rejected",
        READY,
    )
    .await?;
    let message = condition(&refused, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    ensure!(
        message.contains("message: must not be null") || message.contains("Invalid type"),
        "Kestra's refusal is shown: {message}"
    );
    ensure!(
        refused["status"]["validated"] == false,
        "{}",
        refused["status"]
    );
    ensure!(
        kestra.flow(&kn, "hello-world").await?.is_none(),
        "a refused flow is not in Kestra"
    );

    // A flow Kestra accepts.
    let source = format!(
        "id: hello\nnamespace: {kn}\ntasks:\n- id: hello\n  type: io.kestra.plugin.core.log.Log\n  message: Hello from Kubernetes\n"
    );
    apply(&ns.name, &flow_manifest("hello", "hello", &kn, &source, "")).await?;
    wait_ready(&ns.name, "kestraflow/hello").await?;

    // Drift of each kind, made directly in Kestra, is restored.
    let edited = source.replace("Hello from Kubernetes", "edited in the UI");
    kestra.save_flow(&kn, "hello", &edited).await?;
    kestra.put_kv(&kn, "key1", "\"edited\"").await?;
    kestra.upload(&kn, "/nsfile-1.txt", b"edited").await?;
    wait_until(READY, POLL, || async {
        ensure!(
            kestra.flow_source(&kn, "hello").await?.as_deref() == Some(source.as_str()),
            "flow"
        );
        let (_, entry) = kestra.kv(&kn, "key1").await?;
        ensure!(entry["value"] == "value1", "key {entry}");
        ensure!(
            kestra.file(&kn, "/nsfile-1.txt").await?.as_deref() == Some(b"Hello World".as_slice()),
            "file"
        );
        Ok(())
    })
    .await?;

    // Resyncs (every 3 s) of objects that match write nothing.
    let revision = kestra
        .flow(&kn, "hello")
        .await?
        .map(|f| f["revision"].clone());
    let key_revision = kestra.kv(&kn, "key1").await?.1["revision"].clone();
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    ensure!(
        kestra
            .flow(&kn, "hello")
            .await?
            .map(|f| f["revision"].clone())
            == revision,
        "a resync wrote the flow"
    );
    ensure!(
        kestra.kv(&kn, "key1").await?.1["revision"] == key_revision,
        "a resync wrote the key"
    );

    for resource in [
        "kestraflow/hello-world",
        "kestraflow/hello",
        "kestrakeyvalue/kv-1",
        "kestranamespacefile/nsfile-1",
    ] {
        k(&ns.name, &["delete", resource, "--timeout=60s"]).await?;
    }
    ensure!(
        kestra.flow(&kn, "hello").await?.is_none(),
        "flow left in Kestra"
    );
    ensure!(kestra.kv(&kn, "key1").await?.0 == 404, "key left in Kestra");
    ensure!(
        kestra.file(&kn, "/nsfile-1.txt").await?.is_none(),
        "file left in Kestra"
    );
    Ok(())
}
