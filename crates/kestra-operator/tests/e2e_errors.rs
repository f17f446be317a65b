//! End to end: Kestra answering 401, 422, 500, or not answering at all. Each ends in the right
//! condition and recovers. Every test here has its own in-process double, so the faults it
//! injects touch nobody else.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use anyhow::ensure;
use common::*;
use kestra_fake::{ErrorFormat, FakeConfig};
use testenv::{FakeHooks, wait_until};

/// Long enough to see a state that lasts a few seconds, short enough to fail fast.
const SHORT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_is_reported_and_recovers() {
    const WRONG: &str = "admin:wrong-password-4711";
    let fake = private_fake(FakeConfig {
        basic_auth: Some("admin:right-password-0815".parse().unwrap()),
        api_key: Some("token-for-the-operator-9931".into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let ns = namespace("unauthorized");
    let kn = ns.kestra.clone();
    let kestra = Kestra::new(
        &url,
        Some("main"),
        Some(("admin".into(), "right-password-0815".into())),
    );

    // Wrong credentials: Unauthorized, not Stalled (the spec is fine), retried with backoff.
    let mut op = start_operator(
        OpSpec::new(&[&ns.name], "30s")
            .kestra(&url)
            .env("KESTRA_API_BASIC_AUTH", WRONG),
    )
    .await
    .unwrap();
    let source = flow_source("guarded", &kn, "");
    apply(
        &ns.name,
        &flow_manifest("guarded", "guarded", &kn, &source, ""),
    )
    .await
    .unwrap();
    let obj = wait_reason(&ns.name, "flow/guarded", "False", "Unauthorized", SHORT)
        .await
        .unwrap();
    assert_transient(&obj, "Unauthorized");
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("HTTP 401") && message.contains("KESTRA_API_BASIC_AUTH"),
        "{message}"
    );
    let ev = wait_event(
        &ns.name,
        "KestraFlow",
        "guarded",
        "Unauthorized",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(ev.type_, "Warning");
    assert!(kestra.flow(&kn, "guarded").await.unwrap().is_none());
    let leaked =
        |text: &str| text.contains("wrong-password-4711") || text.contains(&base64_of(WRONG));
    let status = get_json(&ns.name, "flow/guarded")
        .await
        .unwrap()
        .to_string();
    let events = format!("{:?}", all_events(&ns.name).await.unwrap());
    assert!(
        !leaked(&op.logs()) && !leaked(&status) && !leaked(&events),
        "the password leaked"
    );
    op.process.stop().unwrap();

    // Fixed credentials (here the API token) and a restart: the flow syncs.
    let _op = start_operator(
        OpSpec::new(&[&ns.name], "30s")
            .kestra(&url)
            .env("KESTRA_API_API_KEY", "token-for-the-operator-9931"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/guarded").await.unwrap();
    assert_eq!(
        kestra.flow_source(&kn, "guarded").await.unwrap().as_deref(),
        Some(source.as_str())
    );

    // A 401 that goes away by itself (a token rotated mid-flight): reported, then recovered
    // by the backoff retries alone.
    FakeHooks::new(&url)
        .unwrap()
        .fail_next(2, 401, "")
        .await
        .unwrap();
    apply(&ns.name, &kv_manifest("kv", &kn, "k", "  value: v\n"))
        .await
        .unwrap();
    let obj = wait_reason(&ns.name, "kv/kv", "False", "Unauthorized", SHORT)
        .await
        .unwrap();
    assert_transient(&obj, "Unauthorized");
    wait_ready(&ns.name, "kv/kv").await.unwrap();
    assert_eq!(kestra.kv(&kn, "k").await.unwrap().1["value"], "v");
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Kestra's own validation (422) ends in Rejected + Stalled with Kestra's message, without a hot
/// retry loop; fixing the spec recovers. Run against both error body formats.
async fn rejected_until_the_spec_changes(format: ErrorFormat, prefix: &str) {
    let fake = private_fake(FakeConfig {
        error_format: format,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let url = fake.url();
    let ns = namespace(prefix);
    let kn = ns.kestra.clone();
    let kestra = Kestra::private(&url);
    let _op = start_operator(OpSpec::new(&[&ns.name], "30s").kestra(&url))
        .await
        .unwrap();

    // A task without a type: Kestra refuses the flow.
    let bad = format!("id: refused\nnamespace: {kn}\ntasks:\n- id: no-type\n");
    apply(
        &ns.name,
        &flow_manifest("refused", "refused", &kn, &bad, ""),
    )
    .await
    .unwrap();
    let obj = wait_reason(&ns.name, "flow/refused", "False", "Rejected", SHORT)
        .await
        .unwrap();
    assert_stalled(&obj, "Rejected");
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("HTTP 422") && message.contains("Invalid type: <null>"),
        "Kestra's reason is shown: {message}"
    );
    assert!(message.contains("fix the spec"), "{message}");
    let ev = wait_event(
        &ns.name,
        "KestraFlow",
        "refused",
        "Rejected",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(ev.type_, "Warning");

    // No hot loop: nothing more is sent while the spec stays the same.
    let before = counters(&url).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = counters(&url).await.unwrap();
    assert_eq!(
        before, after,
        "a rejected spec must not be retried in a loop"
    );

    // An injected 422 on a KV write: same outcome, and a spec change recovers.
    let hooks = FakeHooks::new(&url).unwrap();
    hooks
        .post(
            "fail",
            serde_json::json!({"count": 1, "status": 422, "method": "PUT"}),
        )
        .await
        .unwrap();
    apply(&ns.name, &kv_manifest("kv", &kn, "k", "  value: first\n"))
        .await
        .unwrap();
    let obj = wait_reason(&ns.name, "kv/kv", "False", "Rejected", SHORT)
        .await
        .unwrap();
    assert_stalled(&obj, "Rejected");
    apply(&ns.name, &kv_manifest("kv", &kn, "k", "  value: second\n"))
        .await
        .unwrap();
    let obj = wait_ready(&ns.name, "kv/kv").await.unwrap();
    assert!(condition(&obj, "Stalled").is_none(), "{}", obj["status"]);
    assert_eq!(kestra.kv(&kn, "k").await.unwrap().1["value"], "second");

    let good = flow_source("refused", &kn, "");
    apply(
        &ns.name,
        &flow_manifest("refused", "refused", &kn, &good, ""),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "flow/refused").await.unwrap();
    assert!(condition(&obj, "Stalled").is_none(), "{}", obj["status"]);
    assert_eq!(obj["status"]["validated"], true);
    assert_eq!(
        kestra.flow_source(&kn, "refused").await.unwrap().as_deref(),
        Some(good.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_422_json_error_is_stalled_until_the_spec_changes() {
    rejected_until_the_spec_changes(ErrorFormat::Json, "rejected-json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_422_problem_json_is_stalled_until_the_spec_changes() {
    rejected_until_the_spec_changes(ErrorFormat::Problem, "rejected-problem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_transient_and_recovers() {
    let fake = private_fake(FakeConfig::default()).await.unwrap();
    let url = fake.url();
    let ns = namespace("server-error");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "30s").kestra(&url))
        .await
        .unwrap();

    FakeHooks::new(&url)
        .unwrap()
        .fail_next(2, 500, "")
        .await
        .unwrap();
    let source = flow_source("flaky", &kn, "");
    apply(&ns.name, &flow_manifest("flaky", "flaky", &kn, &source, ""))
        .await
        .unwrap();
    let obj = wait_reason(&ns.name, "flow/flaky", "False", "KestraUnavailable", SHORT)
        .await
        .unwrap();
    assert_transient(&obj, "KestraUnavailable");
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("HTTP 500") && message.contains("retrying with backoff"),
        "{message}"
    );
    wait_event(
        &ns.name,
        "KestraFlow",
        "flaky",
        "KestraUnavailable",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // Recovers by itself.
    wait_ready(&ns.name, "flow/flaky").await.unwrap();
    assert_eq!(
        Kestra::private(&url)
            .flow_source(&kn, "flaky")
            .await
            .unwrap()
            .as_deref(),
        Some(source.as_str())
    );
    // A new flow is looked up in its namespace's listing (then read if listed).
    let reads = count(&url, "GET", "/api/v1/{tenant}/flows/{namespace}")
        .await
        .unwrap()
        + count(&url, "GET", "/api/v1/{tenant}/flows/{namespace}/{id}")
            .await
            .unwrap();
    assert!(
        reads >= 3,
        "expected the two failed reads and the recovery read, saw {reads}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kestra_down_is_transient_and_deletion_waits_for_it() {
    let fake = private_fake(FakeConfig::default()).await.unwrap();
    let url = fake.url();
    let ns = namespace("down");
    let kn = ns.kestra.clone();
    let kestra = Kestra::private(&url);
    let _op = start_operator(OpSpec::new(&[&ns.name], "30s").kestra(&url))
        .await
        .unwrap();

    let before = flow_source("before", &kn, "");
    apply(
        &ns.name,
        &flow_manifest("before", "before", &kn, &before, ""),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/before").await.unwrap();

    // Connections refused for a few seconds.
    FakeHooks::new(&url)
        .unwrap()
        .down(6.0, "refuse")
        .await
        .unwrap();
    let during = flow_source("during", &kn, "");
    apply(
        &ns.name,
        &flow_manifest("during", "during", &kn, &during, ""),
    )
    .await
    .unwrap();
    k(&ns.name, &["delete", "--wait=false", "flow/before"])
        .await
        .unwrap();

    let obj = wait_reason(&ns.name, "flow/during", "False", "KestraUnavailable", SHORT)
        .await
        .unwrap();
    assert_transient(&obj, "KestraUnavailable");
    // Deletion waits, and says so.
    let obj = wait_reason(&ns.name, "flow/before", "False", "DeletionPending", SHORT)
        .await
        .unwrap();
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("the resource stays until it succeeds"),
        "{message}"
    );
    let ev = wait_event(&ns.name, "KestraFlow", "before", "DeletionPending", SHORT)
        .await
        .unwrap();
    assert_eq!(ev.type_, "Warning");

    // Back up: both finish on their own (backoff capped at 3s in these tests).
    wait_ready(&ns.name, "flow/during").await.unwrap();
    wait_until(SHORT, POLL, || async {
        ensure!(
            !exists(&ns.name, "flow/before").await?,
            "flow/before still exists"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert!(
        kestra.flow(&kn, "before").await.unwrap().is_none(),
        "deleted once Kestra was back"
    );
    assert_eq!(
        kestra.flow_source(&kn, "during").await.unwrap().as_deref(),
        Some(during.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kestra_hanging_times_out_and_recovers() {
    let fake = private_fake(FakeConfig::default()).await.unwrap();
    let url = fake.url();
    let ns = namespace("hang");
    let kn = ns.kestra.clone();
    let _op = start_operator(
        OpSpec::new(&[&ns.name], "30s")
            .kestra(&url)
            .arg("--kestra-timeout")
            .arg("1s"),
    )
    .await
    .unwrap();

    FakeHooks::new(&url)
        .unwrap()
        .down(5.0, "hang")
        .await
        .unwrap();
    apply(&ns.name, &kv_manifest("kv", &kn, "k", "  value: patient\n"))
        .await
        .unwrap();
    let obj = wait_reason(&ns.name, "kv/kv", "False", "KestraUnavailable", SHORT)
        .await
        .unwrap();
    assert_transient(&obj, "KestraUnavailable");
    wait_ready(&ns.name, "kv/kv").await.unwrap();
    assert_eq!(
        Kestra::private(&url).kv(&kn, "k").await.unwrap().1["value"],
        "patient"
    );
}
