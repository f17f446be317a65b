//! End to end: the validating webhook on the real kube-apiserver (URL client config on
//! 127.0.0.1, the CA bundle kept by the operator). An invalid flow is refused at `kubectl apply`
//! with Kestra's message (also with `--dry-run=server`); a valid one is accepted; with Kestra
//! down or the webhook down the apply goes through (failurePolicy Ignore) and status reports.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use anyhow::ensure;
use common::*;
use kestra_fake::FakeConfig;
use testenv::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_invalid_flows_with_kestras_message_and_never_blocks() {
    let ns = namespace("webhook");
    let kn = ns.kestra.as_str();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let registration_name = format!("kestra-operator-{}", ns.name);
    let _registration = Registration::create(&registration_name, &ns.name, port, None)
        .await
        .unwrap();
    let PrivateKestra {
        fake: _fake,
        url,
        kestra: _kestra,
        mut op,
    } = private_kestra(
        FakeConfig::default(),
        serving_spec(&ns.name, "1s", &addr, &registration_name),
    )
    .await
    .unwrap();

    // The operator puts its CA in the bundle; the API server then calls the webhook.
    let started = Instant::now();
    wait_until(Duration::from_secs(30), POLL, || async {
        let (ok, stderr) =
            apply_with_stderr(&ns.name, &flow("probe", kn, false), &["--dry-run=server"]).await?;
        ensure!(!ok, "not refused yet: {stderr}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("the webhook never answered: {e:#}\n{}", op.process.tail(30)));
    eprintln!("webhook trusted after {} ms", elapsed_ms(started));

    // An invalid flow is refused with Kestra's message, and nothing is stored.
    let stderr = apply_refused(&ns.name, &flow("bad", kn, false))
        .await
        .unwrap();
    eprintln!("refused apply:\n{stderr}");
    assert!(stderr.contains("denied the request"), "{stderr}");
    assert!(stderr.contains(KESTRA_MESSAGE), "{stderr}");
    assert!(!exists(&ns.name, "kestraflow/bad").await.unwrap());

    // --dry-run=server: refused the same way; a valid one passes and writes nothing.
    let (ok, dry) = apply_with_stderr(&ns.name, &flow("bad", kn, false), &["--dry-run=server"])
        .await
        .unwrap();
    assert!(!ok && dry.contains(KESTRA_MESSAGE), "{dry}");
    let (ok, dry) = apply_with_stderr(&ns.name, &flow("dry", kn, true), &["--dry-run=server"])
        .await
        .unwrap();
    assert!(ok, "{dry}");
    assert!(!exists(&ns.name, "kestraflow/dry").await.unwrap());
    assert_eq!(
        count(&url, "POST", "/api/v1/{tenant}/flows").await.unwrap(),
        0
    );

    // A KV value that does not parse as its type: refused by the check the reconcile makes.
    let kv = kv_manifest("num", kn, "num", "  type: NUMBER\n  value: \"twelve\"\n");
    let stderr = apply_refused(&ns.name, &kv).await.unwrap();
    assert!(
        stderr.contains("spec.type NUMBER needs a number, and \"twelve\" is not one"),
        "{stderr}"
    );
    let kv = kv_manifest("ttl", kn, "ttl", "  value: v\n  ttl: P99999999999999D\n");
    let stderr = apply_refused(&ns.name, &kv).await.unwrap();
    assert!(
        stderr.contains("spec.ttl \"P99999999999999D\" is too long"),
        "{stderr}"
    );
    let kv = kv_manifest("num", kn, "num", "  type: NUMBER\n  value: \"12\"\n");
    apply(&ns.name, &kv).await.unwrap();

    // A namespace file whose contentBase64 matches the schema but is not base64 (no padding).
    let file = file_manifest("file", kn, "a.bin", "  contentBase64: abc\n");
    let stderr = apply_refused(&ns.name, &file).await.unwrap();
    assert!(
        stderr.contains("spec.contentBase64 is not valid base64"),
        "{stderr}"
    );

    // Kestra's notes on a valid flow come back as warnings that kubectl prints.
    let legacy = flow_manifest("legacy", "legacy", kn, &flow_source("legacy", kn, ""), "");
    let (ok, stderr) = apply_with_stderr(&ns.name, &legacy, &["--dry-run=server"])
        .await
        .unwrap();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(
            "Warning: Kestra: io.kestra.core.tasks.log.Log is replaced by io.kestra.plugin.core.log.Log"
        ),
        "{stderr}"
    );

    // An instance that does not exist (yet): accepted, with a warning saying what it waits for.
    let elsewhere = flow_manifest(
        "elsewhere",
        "elsewhere",
        kn,
        &flow_source("elsewhere", kn, ""),
        "  instanceRef: {name: staging}\n",
    );
    let (ok, stderr) = apply_with_stderr(&ns.name, &elsewhere, &["--dry-run=server"])
        .await
        .unwrap();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Warning: KestraInstance {}/staging does not exist: the resource is accepted and waits with reason InstanceNotFound",
            ns.name
        )),
        "{stderr}"
    );

    // A valid flow is accepted and synced.
    apply(&ns.name, &flow("good", kn, true)).await.unwrap();
    wait_ready(&ns.name, "kestraflow/good").await.unwrap();

    // Kestra hanging: the webhook still answers in time, the apply goes through with a
    // warning, and status reports Kestra's refusal once it is back.
    testenv::FakeHooks::new(&url)
        .unwrap()
        .down(6.0, "hang")
        .await
        .unwrap();
    let started = Instant::now();
    let (ok, stderr) = apply_with_stderr(&ns.name, &flow("later", kn, false), &[])
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(ok, "{stderr}");
    assert!(took < Duration::from_secs(5), "the apply took {took:?}");
    assert!(
        stderr.contains("Kestra could not validate the flow"),
        "{stderr}"
    );
    let refused = wait_obj(
        &ns.name,
        "kestraflow/later",
        Duration::from_secs(60),
        "Kestra's refusal in status",
        |obj| {
            let ready = condition(obj, "Ready").ok_or_else(|| anyhow::anyhow!("no Ready yet"))?;
            ensure!(ready["status"] == "False", "Ready is {}", ready_reason(obj));
            ensure!(
                ready["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("must not be null"),
                "Ready is {}",
                ready_reason(obj)
            );
            Ok(())
        },
    )
    .await
    .unwrap();
    eprintln!("status later: {}", ready_reason(&refused));

    // The webhook down (the operator stopped): failurePolicy Ignore lets the apply through.
    op.process.stop().unwrap();
    let (ok, stderr) = apply_with_stderr(&ns.name, &flow("nowebhook", kn, false), &[])
        .await
        .unwrap();
    assert!(ok, "{stderr}");
    assert!(exists(&ns.name, "kestraflow/nowebhook").await.unwrap());
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `n` server-side dry-run creates of a valid flow; their latencies, sorted.
async fn dry_run_creates(
    api: &kube::Api<kestra_operator::crd::flow::KestraFlow>,
    flow: &kestra_operator::crd::flow::KestraFlow,
    n: usize,
) -> Vec<Duration> {
    let params = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        api.create(&params, flow).await.unwrap();
        took.push(started.elapsed());
    }
    took.sort();
    took
}

/// The latency the webhook adds to an apply (BENCHMARKS.md): server-side dry-run creates of a
/// valid flow through the API server, with the webhook registered (Kestra's validate route on
/// the double) and without. `cargo test --release -p kestra-operator --test e2e_webhook
/// webhook_latency -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand"]
async fn webhook_latency() {
    const N: usize = 1000;
    let ns = namespace("webhook-bench");
    let kn = ns.kestra.as_str();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let registration_name = format!("kestra-operator-{}", ns.name);
    let registration = Registration::create(&registration_name, &ns.name, port, None)
        .await
        .unwrap();
    let PrivateKestra {
        fake: _fake,
        url: _url,
        kestra: _kestra,
        op: _op,
    } = private_kestra(
        FakeConfig::default(),
        serving_spec(&ns.name, "5m", &addr, &registration_name),
    )
    .await
    .unwrap();
    let client = env().kube_client().await.unwrap();
    let api = kube::Api::namespaced(client, &ns.name);
    let manifest = |valid| -> kestra_operator::crd::flow::KestraFlow {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "model.kestra.io/v1alpha1",
            "kind": "KestraFlow",
            "metadata": {"name": "bench"},
            "spec": {"id": "bench", "namespace": kn, "source": source("bench", kn, valid)},
        }))
        .unwrap()
    };
    let params = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let invalid = manifest(false);
    // Registered and trusted: an invalid flow is refused.
    wait_until(Duration::from_secs(30), POLL, || async {
        ensure!(
            api.create(&params, &invalid).await.is_err(),
            "not refused yet"
        );
        Ok(())
    })
    .await
    .unwrap();
    let valid = manifest(true);
    dry_run_creates(&api, &valid, 20).await;
    let with = dry_run_creates(&api, &valid, N).await;
    drop(registration);
    // Gone from the API server's view: the invalid flow passes.
    wait_until(Duration::from_secs(30), POLL, || async {
        ensure!(api.create(&params, &invalid).await.is_ok(), "still refused");
        Ok(())
    })
    .await
    .unwrap();
    dry_run_creates(&api, &valid, 20).await;
    let without = dry_run_creates(&api, &valid, N).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (what, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (a, b) = (percentile(&with, p), percentile(&without, p));
        eprintln!(
            "{what}: with webhook {:.2} ms, without {:.2} ms, added {:.2} ms",
            ms(a),
            ms(b),
            ms(a) - ms(b)
        );
    }
}
