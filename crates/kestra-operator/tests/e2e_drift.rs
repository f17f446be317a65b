//! End to end: changes made directly in Kestra are reverted within one resync period; an
//! unchanged resync, an identical re-apply, a requested reconcile and a restart write nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use anyhow::ensure;
use common::*;
use testenv::wait_until;

const RESYNC: Duration = Duration::from_secs(3);
/// One resync period plus its 10% jitter, plus the reconcile itself.
const WITHIN_ONE_RESYNC: Duration = Duration::from_millis(3_300 + 2_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_kestra_is_reverted_within_one_resync_period() {
    let ns = namespace("drift");
    let kn = ns.kestra.clone();
    let op = start_operator(OpSpec::new(&[&ns.name], "3s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();

    let desired = flow_source("drifty", &kn, "description: from Kubernetes\n");
    apply(
        &ns.name,
        &[
            flow_manifest("drifty", "drifty", &kn, &desired, ""),
            kv_manifest("drifty-kv", &kn, "drifty", "  value: desired\n"),
            file_manifest("drifty-file", &kn, "drift/file.txt", "  content: desired\n"),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    for r in ["flow/drifty", "kv/drifty-kv", "nsfile/drifty-file"] {
        wait_ready(&ns.name, r).await.unwrap();
    }

    // Edits made in the Kestra UI / API.
    let edited = flow_source("drifty", &kn, "description: edited in the Kestra UI\n");
    let saved = kestra.save_flow(&kn, "drifty", &edited).await.unwrap();
    assert_eq!(saved["revision"], 2);
    kestra.put_kv(&kn, "drifty", "\"tampered\"").await.unwrap();
    kestra
        .upload(&kn, "/drift/file.txt", b"tampered")
        .await
        .unwrap();
    let edited_at = Instant::now();

    let restored = wait_until(WITHIN_ONE_RESYNC, Duration::from_millis(100), || async {
        let flow = kestra.flow_source(&kn, "drifty").await?;
        let (_, kv) = kestra.kv(&kn, "drifty").await?;
        let file = kestra.file(&kn, "/drift/file.txt").await?;
        ensure!(
            flow.as_deref() == Some(desired.as_str()),
            "flow not restored yet"
        );
        ensure!(kv["value"] == "desired", "kv not restored yet: {kv}");
        ensure!(
            file.as_deref() == Some(&b"desired"[..]),
            "file not restored yet"
        );
        Ok(edited_at.elapsed())
    })
    .await
    .expect("every drift reverted within one resync period");
    eprintln!(
        "TIMING: drift reverted {} ms after the edit (resync period {RESYNC:?})",
        restored.as_millis()
    );

    for (res, kind, name) in [
        ("flow/drifty", "KestraFlow", "drifty"),
        ("kv/drifty-kv", "KestraKeyValue", "drifty-kv"),
        ("nsfile/drifty-file", "KestraNamespaceFile", "drifty-file"),
    ] {
        let obj = wait_obj(
            &ns.name,
            res,
            Duration::from_secs(10),
            "driftCorrections 1",
            |o| {
                ensure!(
                    o["status"]["driftCorrections"] == 1,
                    "driftCorrections is {}",
                    o["status"]["driftCorrections"]
                );
                Ok(())
            },
        )
        .await
        .unwrap();
        assert!(
            obj["status"]["lastDriftTime"].is_string(),
            "{}",
            obj["status"]
        );
        assert_eq!(condition(&obj, "Ready").unwrap()["status"], "True");
        let ev = wait_event(
            &ns.name,
            kind,
            name,
            "DriftCorrected",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(ev.type_, "Normal");
        assert!(ev.message.contains("changed outside Kubernetes"), "{ev:?}");
    }
    let flow = kestra.flow(&kn, "drifty").await.unwrap().unwrap();
    assert_eq!(flow["revision"], 3, "create, the UI edit, the restore");
    let obj = get_json(&ns.name, "flow/drifty").await.unwrap();
    assert_eq!(obj["status"]["revision"], 3);
    let metrics = op.metrics().await.unwrap();
    assert!(
        metrics.contains("kestra_operator_drift_corrections_total{kind=\"KestraFlow\"} 1"),
        "{metrics}"
    );

    // A flow deleted in Kestra is restored too.
    kestra.delete_flow(&kn, "drifty").await.unwrap();
    let deleted_at = Instant::now();
    wait_until(WITHIN_ONE_RESYNC, Duration::from_millis(100), || async {
        let flow = kestra.flow_source(&kn, "drifty").await?;
        ensure!(
            flow.as_deref() == Some(desired.as_str()),
            "flow not restored yet"
        );
        Ok(())
    })
    .await
    .expect("a flow deleted in Kestra is restored within one resync period");
    eprintln!(
        "TIMING: deleted flow restored after {} ms",
        deleted_at.elapsed().as_millis()
    );
    wait_obj(
        &ns.name,
        "flow/drifty",
        Duration::from_secs(10),
        "driftCorrections 2",
        |o| {
            ensure!(
                o["status"]["driftCorrections"] == 2,
                "driftCorrections is {}",
                o["status"]["driftCorrections"]
            );
            Ok(())
        },
    )
    .await
    .unwrap();

    // Suspended: Kestra is left alone; resumed: the spec wins again.
    apply(
        &ns.name,
        &flow_manifest("drifty", "drifty", &kn, &desired, "  suspend: true\n"),
    )
    .await
    .unwrap();
    let obj = wait_reason(&ns.name, "flow/drifty", "False", "Suspended", READY)
        .await
        .unwrap();
    assert!(condition(&obj, "Stalled").is_none(), "{}", obj["status"]);
    kestra.save_flow(&kn, "drifty", &edited).await.unwrap();
    tokio::time::sleep(RESYNC * 2 + Duration::from_millis(500)).await;
    assert_eq!(
        kestra.flow_source(&kn, "drifty").await.unwrap().as_deref(),
        Some(edited.as_str()),
        "a suspended resource must not write to Kestra"
    );
    apply(
        &ns.name,
        &flow_manifest("drifty", "drifty", &kn, &desired, "  suspend: false\n"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/drifty").await.unwrap();
    assert_eq!(
        kestra.flow_source(&kn, "drifty").await.unwrap().as_deref(),
        Some(desired.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_resyncs_reapplies_requests_and_restarts_write_nothing() {
    let ns = namespace("no-churn");
    let kn = ns.kestra.clone();
    let PrivateKestra {
        fake: _fake,
        url,
        kestra,
        mut op,
    } = private_kestra(
        kestra_fake::FakeConfig::default(),
        OpSpec::new(&[&ns.name], "2s"),
    )
    .await
    .unwrap();

    let source = flow_source("steady", &kn, "");
    let manifests = [
        flow_manifest("steady", "steady", &kn, &source, ""),
        kv_manifest("text", &kn, "text", "  value: unchanging\n"),
        // Values Kestra normalises: they must still compare equal.
        kv_manifest(
            "when",
            &kn,
            "when",
            "  value: \"2024-01-31T10:00:00+02:00\"\n  type: DATETIME\n",
        ),
        kv_manifest("span", &kn, "span", "  value: P1D\n  type: DURATION\n"),
        kv_manifest("num", &kn, "num", "  value: 1.50\n"),
        kv_manifest("doc", &kn, "doc", "  value: {b: 1, a: [true, null]}\n"),
        file_manifest("file", &kn, "steady.txt", "  content: steady\n"),
    ]
    .join("---\n");
    apply(&ns.name, &manifests).await.unwrap();
    let resources = [
        "flow/steady",
        "kv/text",
        "kv/when",
        "kv/span",
        "kv/num",
        "kv/doc",
        "nsfile/file",
    ];
    for r in resources {
        wait_ready(&ns.name, r).await.unwrap();
    }
    // The first sync: one write per object.
    assert_eq!(
        count(&url, "POST", "/api/v1/{tenant}/flows").await.unwrap(),
        1
    );
    assert_eq!(
        count(
            &url,
            "PUT",
            "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}"
        )
        .await
        .unwrap(),
        5
    );
    assert_eq!(
        count(
            &url,
            "POST",
            "/api/v1/{tenant}/namespaces/{namespace}/files"
        )
        .await
        .unwrap(),
        1
    );

    // Four resync periods (2 s plus up to 10% jitter each): reads only. The first resync after
    // a write reads each key once; the later ones go through the namespace listing, so the
    // window must hold at least two resyncs after the first, even on a loaded machine.
    reset_counters(&url).await.unwrap();
    let mut versions = Vec::new();
    for r in resources {
        let obj = get_json(&ns.name, r).await.unwrap();
        versions.push(obj["metadata"]["resourceVersion"].clone());
    }
    tokio::time::sleep(Duration::from_millis(9_000)).await;
    assert_eq!(
        writes(&url).await.unwrap(),
        Vec::<String>::new(),
        "an unchanged resync must not write"
    );
    // Nor write the status: the Ready message of the write ("created ...") stays.
    for (r, version) in resources.iter().zip(&versions) {
        let obj = get_json(&ns.name, r).await.unwrap();
        assert_eq!(
            &obj["metadata"]["resourceVersion"], version,
            "{r}: a resync rewrote the status: {}",
            obj["status"]
        );
    }
    let listings = count(&url, "GET", "/api/v1/{tenant}/flows/{namespace}")
        .await
        .unwrap();
    let flow_reads = count(&url, "GET", "/api/v1/{tenant}/flows/{namespace}/{id}")
        .await
        .unwrap();
    let kv_reads = count(
        &url,
        "GET",
        "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
    )
    .await
    .unwrap();
    let file_reads = count(&url, "GET", "/api/v1/{tenant}/namespaces/{namespace}/files")
        .await
        .unwrap();
    // The filtered, paged key listing (Kestra 1.3 and 2.0 have it; 2.0 lacks the other).
    let kv_listings = count(&url, "GET", "/api/v1/{tenant}/kv").await.unwrap();
    eprintln!(
        "resync reads over 9s: {listings} flow listings, {flow_reads} flow reads, {kv_reads} KV reads, {file_reads} file reads"
    );
    assert!(
        listings >= 2,
        "the flow drift check reads the namespace listing: {listings}"
    );
    assert_eq!(
        flow_reads, 0,
        "an unchanged flow is checked from the listing, without reading its source"
    );
    let file_listings = count(
        &url,
        "GET",
        "/api/v1/{tenant}/namespaces/{namespace}/files/directory",
    )
    .await
    .unwrap();
    // KV entries are checked through the namespace key listing, files through their directory's
    // listing: an entry is read only when its update time (a file: size or modification time)
    // moved since it was last read, or for the first check after a write, so unchanged ones
    // cost no read of their own.
    assert!(
        kv_listings >= 2 && kv_reads <= 5 && file_listings >= 2 && file_reads <= 2,
        "resyncs happened through listings: {kv_listings} KV listings, {kv_reads} KV reads, \
         {file_listings} file directory listings, {file_reads} file reads"
    );
    for r in resources {
        let obj = get_json(&ns.name, r).await.unwrap();
        assert!(
            obj["status"]["driftCorrections"].is_null(),
            "{r}: {}",
            obj["status"]
        );
        assert_eq!(condition(&obj, "Ready").unwrap()["status"], "True", "{r}");
    }
    let events = all_events(&ns.name).await.unwrap();
    assert!(
        events.iter().all(|e| e.reason == "Created"),
        "only Created Events expected: {:?}",
        events
            .iter()
            .map(|e| (&e.name, &e.reason))
            .collect::<Vec<_>>()
    );

    // An identical re-apply changes nothing, and neither does a requested reconcile.
    let out = apply(&ns.name, &manifests).await.unwrap();
    assert_eq!(out.matches("unchanged").count(), resources.len(), "{out}");
    let stamp = now_stamp();
    for r in resources {
        k(
            &ns.name,
            &[
                "annotate",
                "--overwrite",
                r,
                &format!("model.kestra.io/reconcile-requested-at={stamp}"),
            ],
        )
        .await
        .unwrap();
    }
    for r in resources {
        wait_obj(
            &ns.name,
            r,
            Duration::from_secs(15),
            "the requested reconcile handled",
            |o| {
                ensure!(
                    o["status"]["lastHandledReconcileAt"] == stamp.as_str(),
                    "lastHandledReconcileAt {}",
                    o["status"]["lastHandledReconcileAt"]
                );
                Ok(())
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        writes(&url).await.unwrap(),
        Vec::<String>::new(),
        "a re-apply or a reconcile request of an unchanged spec must not write"
    );
    assert!(
        count(&url, "GET", "/api/v1/{tenant}/flows/{namespace}/{id}")
            .await
            .unwrap()
            >= 1,
        "a requested reconcile reads the flow itself"
    );

    // A restart neither: the new process finds every object in sync, and leaves its status as
    // it is (no status write either).
    let version_before =
        get_json(&ns.name, "flow/steady").await.unwrap()["metadata"]["resourceVersion"].clone();
    op.process.stop().unwrap();
    let op = start_operator(OpSpec::new(&[&ns.name], "2s").kestra(&url))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        writes(&url).await.unwrap(),
        Vec::<String>::new(),
        "a restart must not write"
    );
    assert!(
        op.logs().contains("matches the spec"),
        "the new process reconciled: {}",
        op.process.tail(10)
    );
    assert_eq!(
        get_json(&ns.name, "flow/steady").await.unwrap()["metadata"]["resourceVersion"],
        version_before,
        "a restart must not rewrite an unchanged status"
    );
    let flow = kestra.flow(&kn, "steady").await.unwrap().unwrap();
    assert_eq!(flow["revision"], 1, "no revision churn");
    assert_eq!(
        get_json(&ns.name, "flow/steady").await.unwrap()["status"]["revision"],
        1
    );
}
