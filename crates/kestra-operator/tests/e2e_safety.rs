//! End to end: what the operator may write or delete, driven with kubectl against the double
//! playing Kestra 1.3 (names Kestra stores as one, overlapping paths, suspended deletion,
//! values Kestra keeps in another form, retries after a failed sync).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;
use testenv::wait_until;

const SHORT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_kestra_stores_as_one_file_and_overlapping_paths_are_conflicts() {
    let ns = namespace("names");
    let op = start_operator(OpSpec::new(&[&ns.name], "3s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();
    let kn = &ns.kestra;

    // Kestra 1.3 stores `q1 summary.txt` as `q1+summary.txt`: one file, two resources.
    apply(
        &ns.name,
        &file_manifest(
            "spaced",
            kn,
            "\"q1 summary.txt\"",
            "  content: from spaced\n",
        ),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "nsfile/spaced").await.unwrap();
    next_second().await;
    apply(
        &ns.name,
        &file_manifest(
            "plussed",
            kn,
            "\"q1+summary.txt\"",
            "  content: from plussed\n",
        ),
    )
    .await
    .unwrap();
    let loser = wait_reason(&ns.name, "nsfile/plussed", "False", "Conflict", SHORT)
        .await
        .unwrap();
    assert_stalled(&loser, "Conflict");
    let message = condition(&loser, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("the older resource spaced"), "{message}");

    // A file and a file below it cannot both exist: the younger resource is a Conflict.
    apply(
        &ns.name,
        &file_manifest("inner", kn, "dir/a.txt", "  content: a\n"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "nsfile/inner").await.unwrap();
    next_second().await;
    apply(
        &ns.name,
        &file_manifest("outer", kn, "dir", "  content: d\n"),
    )
    .await
    .unwrap();
    wait_reason(&ns.name, "nsfile/outer", "False", "Conflict", SHORT)
        .await
        .unwrap();

    // Several resyncs later, nothing of the losers reached Kestra.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        kestra.file(kn, "/q1 summary.txt").await.unwrap().as_deref(),
        Some(b"from spaced".as_slice())
    );
    assert_eq!(
        kestra.file(kn, "/dir/a.txt").await.unwrap().as_deref(),
        Some(b"a".as_slice())
    );

    // Deleting the losers deletes nothing.
    k(
        &ns.name,
        &[
            "delete",
            "nsfile/plussed",
            "nsfile/outer",
            "--wait=true",
            "--timeout=60s",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        kestra.file(kn, "/q1+summary.txt").await.unwrap().as_deref(),
        Some(b"from spaced".as_slice())
    );
    assert!(kestra.file(kn, "/dir/a.txt").await.unwrap().is_some());
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_resource_leaves_its_object_on_deletion() {
    let ns = namespace("suspdel");
    let op = start_operator(OpSpec::new(&[&ns.name], "5m"))
        .await
        .unwrap();
    let kestra = Kestra::shared();
    let kn = &ns.kestra;
    let source = flow_source("kept", kn, "");
    apply(&ns.name, &flow_manifest("kept", "kept", kn, &source, ""))
        .await
        .unwrap();
    wait_ready(&ns.name, "flow/kept").await.unwrap();
    apply(
        &ns.name,
        &flow_manifest("kept", "kept", kn, &source, "  suspend: true\n"),
    )
    .await
    .unwrap();
    wait_reason(&ns.name, "flow/kept", "False", "Suspended", SHORT)
        .await
        .unwrap();
    k(
        &ns.name,
        &["delete", "flow/kept", "--wait=true", "--timeout=60s"],
    )
    .await
    .unwrap();
    assert!(
        kestra.flow(kn, "kept").await.unwrap().is_some(),
        "a suspended resource must not delete its flow"
    );
    let events = all_events(&ns.name).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Orphaned" && e.message.contains("spec.suspend is true")),
        "{events:?}"
    );
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datetime_with_an_offset_is_written_once_in_utc() {
    let ns = namespace("utc");
    let op = start_operator(OpSpec::new(&[&ns.name], "2s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();
    let kn = &ns.kestra;
    apply(
        &ns.name,
        &kv_manifest(
            "when",
            kn,
            "when",
            "  type: DATETIME\n  value: \"2026-12-01T10:00:00+02:00\"\n",
        ),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "kv/when").await.unwrap();
    assert_eq!(obj["status"]["type"], "DATETIME", "{}", obj["status"]);
    let (status, entry) = kestra.kv(kn, "when").await.unwrap();
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["type"], "DATETIME", "{entry}");
    assert_eq!(entry["value"], "2026-12-01T08:00:00Z", "{entry}");
    let revision = entry["revision"].clone();
    // Resyncs every 2 s: none of them writes the key again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (_, entry) = kestra.kv(kn, "when").await.unwrap();
    assert_eq!(
        entry["revision"], revision,
        "the key was rewritten: {entry}"
    );
    let obj = get_json(&ns.name, "kv/when").await.unwrap();
    assert!(
        obj["status"]["driftCorrections"].is_null(),
        "{}",
        obj["status"]
    );
    let events = events_of(&ns.name, "KestraKeyValue", "when").await.unwrap();
    assert!(
        events.iter().all(|e| e.reason != "DriftCorrected"),
        "{events:?}"
    );
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_leaves_the_spec_to_be_handled() {
    let ns = namespace("retry");
    let op = start_operator(OpSpec::new(&[&ns.name], "2s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();
    let kn = &ns.kestra;
    // A key that expires in Kestra: Expired, not written back.
    apply(
        &ns.name,
        &kv_manifest("short", kn, "short", "  value: first\n  ttl: PT1S\n"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "kv/short").await.unwrap();
    wait_reason(&ns.name, "kv/short", "False", "Expired", SHORT)
        .await
        .unwrap();
    // A new spec whose Secret does not exist yet: the sync fails, and is not the spec handled.
    apply(
        &ns.name,
        &kv_manifest(
            "short",
            kn,
            "short",
            "  valueFrom:\n    secretKeyRef: {name: later, key: v}\n",
        ),
    )
    .await
    .unwrap();
    let obj = wait_reason(&ns.name, "kv/short", "False", "ReferenceNotFound", SHORT)
        .await
        .unwrap();
    assert_ne!(
        obj["status"]["observedGeneration"], obj["metadata"]["generation"],
        "a sync that failed must not mark the generation handled: {}",
        obj["status"]
    );
    // Once the Secret exists, the new spec is written (not taken for the expired old one).
    k(
        &ns.name,
        &[
            "create",
            "secret",
            "generic",
            "later",
            "--from-literal=v=second",
        ],
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "kv/short").await.unwrap();
    let (status, entry) = kestra.kv(kn, "short").await.unwrap();
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["value"], "second");
    drop(op);
}

/// Kestra 2.0: no per-namespace key listing (405), file names kept as sent, flows deleted
/// through the bulk route by ids. The same journey as on 1.3: sync, drift, a quiet resync,
/// delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kestra_2_0_objects_sync_drift_is_restored_and_deletes_touch_only_them() {
    let ns = namespace("v20");
    let kn = ns.kestra.clone();
    let config = kestra_fake::FakeConfig {
        kestra_version: kestra_fake::KestraVersion::V2_0,
        ..kestra_fake::FakeConfig::default()
    };
    let PrivateKestra {
        fake,
        url,
        kestra,
        op,
    } = private_kestra(config, OpSpec::new(&[&ns.name], "2s"))
        .await
        .unwrap();
    // A flow nobody manages, in the same Kestra namespace: it must survive everything.
    let bystander = format!(
        "id: bystander\nnamespace: {kn}\ntasks:\n- id: hello\n  type: io.kestra.plugin.core.log.Log\n  message: hi\n"
    );
    kestra
        .save_flow(&kn, "bystander", &bystander)
        .await
        .unwrap();

    let source = format!(
        "id: hello\nnamespace: {kn}\ntasks:\n- id: hello\n  type: io.kestra.plugin.core.log.Log\n  message: hello from 2.0\n"
    );
    let manifests = [
        flow_manifest("hello", "hello", &kn, &source, ""),
        kv_manifest("key", &kn, "key", "  value: kept\n"),
        file_manifest("spaced", &kn, "\"q1 summary.txt\"", "  content: spaced\n"),
        file_manifest("plussed", &kn, "\"q1+summary.txt\"", "  content: plussed\n"),
    ]
    .join("---\n");
    apply(&ns.name, &manifests).await.unwrap();
    for r in ["flow/hello", "kv/key", "nsfile/spaced", "nsfile/plussed"] {
        wait_ready(&ns.name, r).await.unwrap();
    }
    // On 2.0 the two names are two files.
    assert_eq!(
        kestra
            .file(&kn, "/q1 summary.txt")
            .await
            .unwrap()
            .as_deref(),
        Some(b"spaced".as_slice())
    );
    assert_eq!(
        kestra
            .file(&kn, "/q1+summary.txt")
            .await
            .unwrap()
            .as_deref(),
        Some(b"plussed".as_slice())
    );

    // Drift of the key, found through the filtered listing, is restored.
    kestra.put_kv(&kn, "key", "\"edited\"").await.unwrap();
    wait_until(SHORT, Duration::from_millis(300), || async {
        let (_, entry) = kestra.kv(&kn, "key").await?;
        anyhow::ensure!(entry["value"] == "kept", "{entry}");
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        count(&url, "GET", "/api/v1/{tenant}/namespaces/{namespace}/kv")
            .await
            .unwrap(),
        0,
        "2.0 has no per-namespace key listing"
    );
    assert!(
        count(&url, "GET", "/api/v1/{tenant}/kv").await.unwrap() > 0,
        "the filtered listing is used"
    );

    k(
        &ns.name,
        &[
            "delete",
            "flow/hello",
            "kv/key",
            "nsfile/spaced",
            "nsfile/plussed",
            "--wait=true",
            "--timeout=60s",
        ],
    )
    .await
    .unwrap();
    assert!(kestra.flow(&kn, "hello").await.unwrap().is_none());
    assert!(kestra.flow(&kn, "bystander").await.unwrap().is_some());
    assert_eq!(kestra.kv(&kn, "key").await.unwrap().0, 404);
    assert!(kestra.file(&kn, "/q1 summary.txt").await.unwrap().is_none());
    assert!(kestra.file(&kn, "/q1+summary.txt").await.unwrap().is_none());
    assert_eq!(
        count(&url, "DELETE", "/api/v1/{tenant}/flows/delete/by-ids")
            .await
            .unwrap(),
        1
    );
    drop(op);
    fake.shutdown().await.unwrap();
}

/// A resource whose Kestra object can no longer be resolved from its spec (the operator now
/// talks to the tenant-less root, and the spec names a tenant) is cleaned up through the
/// object recorded in `status.ownedObject`, instead of losing its finalizer silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_target_is_cleaned_up_through_the_owned_object() {
    let ns = namespace("unresolvable");
    let kn = ns.kestra.clone();
    let PrivateKestra {
        fake,
        url,
        kestra,
        mut op,
    } = private_kestra(
        kestra_fake::FakeConfig::default(),
        OpSpec::new(&[&ns.name], "5m"),
    )
    .await
    .unwrap();
    apply(
        &ns.name,
        &kv_manifest("tenanted", &kn, "tenanted", "  value: kept\n  tenant: t1\n"),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "kv/tenanted").await.unwrap();
    assert_eq!(obj["status"]["ownedObject"], format!("t1/{kn}/tenanted"));
    let t1 = kestra.tenant(Some("t1"));
    assert_eq!(t1.kv(&kn, "tenanted").await.unwrap().0, 200);

    // Restarted against the tenant-less root: spec.tenant t1 cannot be resolved any more.
    op.process.stop().unwrap();
    drop(op);
    let _op = start_operator(
        OpSpec::new(&[&ns.name], "5m")
            .kestra(&url)
            .arg("--legacy-api-root"),
    )
    .await
    .unwrap();
    wait_reason(&ns.name, "kv/tenanted", "False", "InvalidSpec", SHORT)
        .await
        .unwrap();
    k(
        &ns.name,
        &["delete", "kv/tenanted", "--wait=true", "--timeout=60s"],
    )
    .await
    .unwrap();
    assert_eq!(
        t1.kv(&kn, "tenanted").await.unwrap().0,
        404,
        "the owned key was deleted"
    );
    let events = all_events(&ns.name).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Deleted" && e.message.contains(&format!("t1/{kn}/tenanted"))),
        "{events:?}"
    );
    fake.shutdown().await.unwrap();
}
