//! End to end: the webhook's certificates on the real kube-apiserver. A mounted certificate
//! (cert-manager's mode: `tls.crt`/`tls.key`, the CA given by the configuration) is served;
//! with generated certificates every replica serves, the standby too, and each keeps its own
//! CA in the shared `caBundle` without taking out the other's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use anyhow::ensure;
use common::*;
use kestra_fake::FakeConfig;
use testenv::wait_until;

/// Until an invalid flow is refused (server-side dry run): the API server calls the webhook and
/// trusts its certificate. Returns kubectl's message.
async fn until_refused(ns: &str, kestra_ns: &str) -> anyhow::Result<String> {
    wait_until(Duration::from_secs(30), POLL, || async {
        let (ok, stderr) =
            apply_with_stderr(ns, &flow("probe", kestra_ns, false), &["--dry-run=server"]).await?;
        ensure!(!ok, "not refused yet: {stderr}");
        Ok(stderr)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mounted_certificate_is_served() {
    let ns = namespace("webhook-mounted");
    let (ca, cert, key) = server_cert_for_localhost();
    let dir = env().logs_dir().join(format!("webhook-cert-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let name = format!("kestra-operator-{}", ns.name);
    let _registration = Registration::create(&name, &ns.name, port, Some(&ca))
        .await
        .unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    // Every field bound by name: the double and the operator stop when dropped.
    let PrivateKestra {
        fake: _fake,
        op,
        url: _url,
        kestra: _kestra,
    } = private_kestra(
        FakeConfig::default(),
        OpSpec::new(&[&ns.name], "5m")
            .arg("--webhook-addr")
            .arg(&addr)
            .arg("--webhook-cert-dir")
            .arg(&dir_arg),
    )
    .await
    .unwrap();
    let stderr = until_refused(&ns.name, &ns.kestra)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", op.process.tail(30)));
    assert!(stderr.contains(KESTRA_MESSAGE), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_serves_and_keeps_its_ca_in_the_bundle() {
    let ns = namespace("webhook-replicas");
    let name = format!("kestra-operator-{}", ns.name);
    let (leader_port, standby_port) = (free_port(), free_port());
    // The API server calls the standby only.
    let _registration = Registration::create(&name, &ns.name, standby_port, None)
        .await
        .unwrap();
    let (leader_addr, standby_addr) = (
        format!("127.0.0.1:{leader_port}"),
        format!("127.0.0.1:{standby_port}"),
    );
    let replica = |addr: &'static str| {
        OpSpec::new(&[&ns.name], "5m")
            .arg("--leader-election")
            .arg("--leader-election-namespace")
            .arg(&ns.name)
            .arg("--webhook-addr")
            .arg(addr)
            .arg("--webhook-cert-names")
            .arg("127.0.0.1")
            .arg("--webhook-configuration")
            .arg(&name)
    };
    let leader_addr: &'static str = Box::leak(leader_addr.into_boxed_str());
    let standby_addr: &'static str = Box::leak(standby_addr.into_boxed_str());
    let PrivateKestra {
        fake: _fake,
        op: leader,
        url,
        kestra: _kestra,
    } = private_kestra(FakeConfig::default(), replica(leader_addr))
        .await
        .unwrap();
    let standby = start_operator(replica(standby_addr).kestra(&url))
        .await
        .unwrap();
    let logs = standby.logs();
    assert!(
        logs.contains("waiting to become the leader") && !logs.contains("became the leader"),
        "the second replica is the standby"
    );
    let stderr = until_refused(&ns.name, &ns.kestra)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", standby.process.tail(30)));
    assert!(stderr.contains(KESTRA_MESSAGE), "{stderr}");
    // Both CAs are trusted: the leader's stays although the standby wrote the bundle after it.
    wait_until(Duration::from_secs(30), POLL, || async {
        let bundle = kubectl_ok(&[
            "get",
            "validatingwebhookconfiguration",
            &name,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])
        .await?;
        use base64::Engine as _;
        let pem = base64::engine::general_purpose::STANDARD.decode(bundle.trim())?;
        let count = String::from_utf8_lossy(&pem)
            .matches("-----BEGIN CERTIFICATE-----")
            .count();
        ensure!(count == 2, "{count} CAs in the bundle");
        Ok(())
    })
    .await
    .unwrap();
    drop(leader);
}

/// `failurePolicy: Fail` (the chart's option): with the webhook unreachable the API server
/// refuses the apply, where `Ignore` lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_failure_policy_fail_an_unreachable_webhook_blocks_the_apply() {
    let ns = namespace("webhook-fail");
    let name = format!("kestra-operator-{}", ns.name);
    // Nobody listens on this port.
    let _registration = Registration::create_with(&name, &ns.name, free_port(), None, "Fail")
        .await
        .unwrap();
    let stderr = wait_until(Duration::from_secs(30), POLL, || async {
        let (ok, stderr) =
            apply_with_stderr(&ns.name, &flow("valid", &ns.kestra, true), &[]).await?;
        ensure!(!ok, "not refused yet: {stderr}");
        Ok(stderr)
    })
    .await
    .unwrap();
    assert!(stderr.contains("failed calling webhook"), "{stderr}");
    assert!(!exists(&ns.name, "kestraflow/valid").await.unwrap());
}
