//! End to end: the documented manifests, kubectl's view of the resources, updates, deletion
//! policies and conflicts between resources naming one Kestra object.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const SHA256_HELLO_WORLD: &str = "a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e";

/// examples/documented.yaml, as written, with the Kestra namespace `company.team` made unique.
fn documented_verbatim(kestra_ns: &str) -> String {
    let path = env().root.join("examples/documented.yaml");
    let text = std::fs::read_to_string(&path).expect("examples/documented.yaml");
    assert!(
        text.contains("namespace: company.team"),
        "the documented manifests changed"
    );
    text.replace("company.team", kestra_ns)
}

/// The documented manifests with the one change real Kestra needs: the Log task of today, with
/// its message.
fn documented(kestra_ns: &str) -> String {
    let text = documented_verbatim(kestra_ns);
    let legacy = "      type: io.kestra.core.tasks.log.Log\n";
    assert!(text.contains(legacy), "the documented flow changed");
    text.replace(
        legacy,
        "      type: io.kestra.plugin.core.log.Log\n      message: Hello World\n",
    )
}

/// The documented manifests exactly as written, on the double playing each Kestra version:
/// the key and the file sync, Kestra refuses the flow, and status says what Kestra said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_manifests_as_written_on_kestra_1_3_and_2_0() {
    for (version, refusal) in [
        (
            kestra_fake::KestraVersion::V1_3,
            "Invalid entity: hello.message: must not be null",
        ),
        (
            kestra_fake::KestraVersion::V2_0,
            "Invalid entity: Invalid type: io.kestra.core.tasks.log.Log",
        ),
    ] {
        let fake = private_fake(kestra_fake::FakeConfig {
            kestra_version: version,
            ..kestra_fake::FakeConfig::default()
        })
        .await
        .unwrap();
        let url = fake.url();
        let ns = namespace("documented-as-written");
        let op = start_operator(OpSpec::new(&[&ns.name], "5m").kestra(&url))
            .await
            .unwrap();
        let kestra = Kestra::private(&url);
        apply(&ns.name, &documented_verbatim(&ns.kestra))
            .await
            .unwrap();
        wait_ready(&ns.name, "kv/kv-1").await.unwrap();
        wait_ready(&ns.name, "nsfile/nsfile-1").await.unwrap();
        let flow = wait_reason(&ns.name, "flow/hello-world", "False", "Rejected", READY)
            .await
            .unwrap();
        assert_stalled(&flow, "Rejected");
        let message = condition(&flow, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(refusal), "{version:?}: {message}");
        assert_eq!(flow["status"]["validated"], false, "{}", flow["status"]);
        assert!(
            kestra
                .flow(&ns.kestra, "hello-world")
                .await
                .unwrap()
                .is_none()
        );
        let ev = wait_event(
            &ns.name,
            "KestraFlow",
            "hello-world",
            "Rejected",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(ev.type_, "Warning");
        drop(op);
        fake.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_manifests_become_ready_and_reach_kestra() {
    let ns = namespace("documented");
    let op = start_operator(OpSpec::new(&[&ns.name], "5m"))
        .await
        .unwrap();
    let kestra = Kestra::shared();

    let manifest = documented(&ns.kestra);
    let file = env()
        .dir
        .join("tmp")
        .join(format!("{}-documented.yaml", ns.name));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &manifest).unwrap();
    let file = file.to_string_lossy().into_owned();

    let started = Instant::now();
    let out = k(&ns.name, &["apply", "-f", &file]).await.unwrap();
    assert!(
        out.contains("kestraflow.model.kestra.io/hello-world created"),
        "{out}"
    );
    k(
        &ns.name,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "flow/hello-world",
        ],
    )
    .await
    .unwrap();
    let flow_ready = started.elapsed();
    eprintln!(
        "TIMING: documented KestraFlow hello-world: kubectl apply -> Ready in {} ms",
        flow_ready.as_millis()
    );
    k(
        &ns.name,
        &[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "-f",
            &file,
        ],
    )
    .await
    .unwrap();
    eprintln!(
        "TIMING: all three documented manifests Ready in {} ms",
        started.elapsed().as_millis()
    );

    // Kestra holds exactly what the manifests say.
    let source = manifest
        .split("source: |\n")
        .nth(1)
        .unwrap()
        .split("\n---")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert!(
        source.starts_with("id: hello-world\nnamespace: e2e."),
        "{source}"
    );
    let flow = kestra
        .flow(&ns.kestra, "hello-world")
        .await
        .unwrap()
        .expect("the flow exists in Kestra");
    assert_eq!(flow["source"].as_str(), Some(source.as_str()));
    assert_eq!(flow["revision"], 1);
    let (status, kv) = kestra.kv(&ns.kestra, "key1").await.unwrap();
    assert_eq!(status, 200, "{kv}");
    assert_eq!(kv["type"], "STRING");
    assert_eq!(kv["value"], "value1");
    let content = kestra
        .file(&ns.kestra, "/nsfile-1.txt")
        .await
        .unwrap()
        .expect("the file exists in Kestra");
    assert_eq!(content, b"Hello World");

    // Status, as kstatus and the Enterprise fields have it.
    let flow = get_json(&ns.name, "flow/hello-world").await.unwrap();
    let st = &flow["status"];
    assert_eq!(st["observedGeneration"], flow["metadata"]["generation"]);
    assert_eq!(st["revision"], 1);
    assert_eq!(st["validated"], true);
    assert_eq!(st["ownedObject"], format!("main/{}/hello-world", ns.kestra));
    assert!(st["reason"].as_str().unwrap().starts_with("Synced"), "{st}");
    assert!(st["lastSyncTime"].is_string(), "{st}");
    assert!(condition(&flow, "Stalled").is_none(), "{st}");
    assert_eq!(
        flow["metadata"]["finalizers"][0],
        "model.kestra.io/finalizer"
    );
    let kv = get_json(&ns.name, "kv/kv-1").await.unwrap();
    assert_eq!(kv["status"]["type"], "STRING");
    assert_eq!(
        kv["status"]["ownedObject"],
        format!("main/{}/key1", ns.kestra)
    );
    let nsfile = get_json(&ns.name, "nsfile/nsfile-1").await.unwrap();
    assert_eq!(nsfile["status"]["size"], 11);
    assert_eq!(nsfile["status"]["sha256"], SHA256_HELLO_WORLD);
    let owned = nsfile["status"]["ownedObject"].as_str().unwrap_or_default();
    assert!(
        owned.starts_with(&format!("main/{}/", ns.kestra)) && owned.ends_with("nsfile-1.txt"),
        "{owned}"
    );

    // kubectl's columns, by short name.
    let out = k(&ns.name, &["get", "flow"]).await.unwrap();
    assert_eq!(
        header(&out),
        [
            "NAME",
            "KESTRA NAMESPACE",
            "FLOW",
            "REVISION",
            "READY",
            "AGE"
        ],
        "{out}"
    );
    let rows = table(&out);
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(cell(&rows[0], "NAME"), "hello-world");
    assert_eq!(cell(&rows[0], "KESTRA NAMESPACE"), ns.kestra);
    assert_eq!(cell(&rows[0], "FLOW"), "hello-world");
    assert_eq!(cell(&rows[0], "REVISION"), "1");
    assert_eq!(cell(&rows[0], "READY"), "True");

    let out = k(&ns.name, &["get", "flow", "-o", "wide"]).await.unwrap();
    assert_eq!(
        header(&out),
        [
            "NAME",
            "KESTRA NAMESPACE",
            "FLOW",
            "REVISION",
            "READY",
            "REASON",
            "INSTANCE",
            "AGE"
        ],
        "{out}"
    );
    assert!(
        cell(&table(&out)[0], "REASON").starts_with("Synced"),
        "{out}"
    );

    let out = k(&ns.name, &["get", "kv"]).await.unwrap();
    assert_eq!(
        header(&out),
        ["NAME", "KESTRA NAMESPACE", "KEY", "TYPE", "READY", "AGE"],
        "{out}"
    );
    let row = &table(&out)[0];
    assert_eq!(
        (
            cell(row, "NAME"),
            cell(row, "KESTRA NAMESPACE"),
            cell(row, "KEY"),
            cell(row, "TYPE"),
            cell(row, "READY")
        ),
        ("kv-1", ns.kestra.as_str(), "key1", "STRING", "True"),
        "{out}"
    );
    let out2 = k(&ns.name, &["get", "keyvalue"]).await.unwrap();
    assert_eq!(header(&out2), header(&out));

    let out = k(&ns.name, &["get", "nsfile"]).await.unwrap();
    assert_eq!(
        header(&out),
        [
            "NAME",
            "KESTRA NAMESPACE",
            "FILENAME",
            "SIZE",
            "READY",
            "AGE"
        ],
        "{out}"
    );
    let row = &table(&out)[0];
    assert_eq!(
        (
            cell(row, "NAME"),
            cell(row, "KESTRA NAMESPACE"),
            cell(row, "FILENAME"),
            cell(row, "SIZE"),
            cell(row, "READY")
        ),
        ("nsfile-1", ns.kestra.as_str(), "nsfile-1.txt", "11", "True"),
        "{out}"
    );
    let out2 = k(&ns.name, &["get", "namespacefile"]).await.unwrap();
    assert_eq!(header(&out2), header(&out));

    // The category lists all three kinds, each with its own columns.
    let out = k(&ns.name, &["get", "kestra"]).await.unwrap();
    for needle in [
        "kestraflow.model.kestra.io/hello-world",
        "kestrakeyvalue.model.kestra.io/kv-1",
        "kestranamespacefile.model.kestra.io/nsfile-1",
        "FLOW",
        "KEY",
        "FILENAME",
        "REVISION",
        "TYPE",
        "SIZE",
    ] {
        assert!(
            out.contains(needle),
            "`kubectl get kestra` lacks {needle}:\n{out}"
        );
    }

    // One Created Event each.
    for (kind, name) in [
        ("KestraFlow", "hello-world"),
        ("KestraKeyValue", "kv-1"),
        ("KestraNamespaceFile", "nsfile-1"),
    ] {
        let ev = wait_event(&ns.name, kind, name, "Created", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(ev.type_, "Normal");
    }
    // Re-applying the same file changes nothing.
    let out = k(&ns.name, &["apply", "-f", &file]).await.unwrap();
    assert!(out.contains("hello-world unchanged"), "{out}");
    // SIGTERM: a clean exit, well within the grace period.
    let mut op = op;
    let status = op.process.stop_within(Duration::from_secs(10)).unwrap();
    assert!(
        status.success(),
        "exit status {status}: {}",
        op.process.tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_reach_kestra_and_deletion_follows_the_policy() {
    let ns = namespace("update-delete");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "5m"))
        .await
        .unwrap();
    let kestra = Kestra::shared();

    let v1 = flow_source("main-flow", &kn, "");
    let kept = flow_source("kept-flow", &kn, "");
    let manifests = [
        flow_manifest("main-flow", "main-flow", &kn, &v1, ""),
        flow_manifest(
            "kept-flow",
            "kept-flow",
            &kn,
            &kept,
            "  deletionPolicy: Orphan\n",
        ),
        kv_manifest("main-kv", &kn, "main-key", "  value: first\n"),
        kv_manifest(
            "kept-kv",
            &kn,
            "kept-key",
            "  value: 1\n  deletionPolicy: Orphan\n",
        ),
        file_manifest("main-file", &kn, "dir/main.txt", "  content: first\n"),
        file_manifest(
            "kept-file",
            &kn,
            "kept.txt",
            "  content: kept\n  deletionPolicy: Orphan\n",
        ),
    ];
    apply(&ns.name, &manifests.join("---\n")).await.unwrap();
    for r in [
        "flow/main-flow",
        "flow/kept-flow",
        "kv/main-kv",
        "kv/kept-kv",
        "nsfile/main-file",
        "nsfile/kept-file",
    ] {
        wait_ready(&ns.name, r).await.unwrap();
    }

    // Updates of source, value and content reach Kestra.
    let v2 = flow_source("main-flow", &kn, "description: second version\n");
    apply(
        &ns.name,
        &flow_manifest("main-flow", "main-flow", &kn, &v2, ""),
    )
    .await
    .unwrap();
    apply(
        &ns.name,
        &kv_manifest("main-kv", &kn, "main-key", "  value: second\n"),
    )
    .await
    .unwrap();
    apply(
        &ns.name,
        &file_manifest(
            "main-file",
            &kn,
            "dir/main.txt",
            "  content: second version\n",
        ),
    )
    .await
    .unwrap();

    let flow = wait_obj(&ns.name, "flow/main-flow", READY, "revision 2", |o| {
        anyhow::ensure!(
            o["status"]["revision"] == 2
                && condition(o, "Ready").is_some_and(|c| c["status"] == "True"),
            "not yet"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(flow["status"]["observedGeneration"], 2);
    let stored = kestra.flow(&kn, "main-flow").await.unwrap().unwrap();
    assert_eq!(stored["source"].as_str(), Some(v2.as_str()));
    assert_eq!(stored["revision"], 2);
    wait_event(
        &ns.name,
        "KestraFlow",
        "main-flow",
        "Updated",
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    wait_ready(&ns.name, "kv/main-kv").await.unwrap();
    let (_, kv) = kestra.kv(&kn, "main-key").await.unwrap();
    assert_eq!(kv["value"], "second");
    let file = wait_ready(&ns.name, "nsfile/main-file").await.unwrap();
    assert_eq!(file["status"]["size"], "second version".len());
    assert_eq!(
        kestra.file(&kn, "/dir/main.txt").await.unwrap().as_deref(),
        Some(&b"second version"[..])
    );

    // Deletion: Delete removes the Kestra object, Orphan leaves it; the finalizer is released
    // either way (kubectl delete --wait returns only once the resources are gone).
    k(
        &ns.name,
        &[
            "delete",
            "--wait",
            "--timeout=60s",
            "flow/main-flow",
            "flow/kept-flow",
            "kv/main-kv",
            "kv/kept-kv",
            "nsfile/main-file",
            "nsfile/kept-file",
        ],
    )
    .await
    .unwrap();
    let left = k(&ns.name, &["get", "kestra", "-o", "name"]).await.unwrap();
    assert!(left.trim().is_empty(), "resources left: {left}");

    assert!(
        kestra.flow(&kn, "main-flow").await.unwrap().is_none(),
        "the Delete flow is still in Kestra"
    );
    assert_eq!(kestra.kv(&kn, "main-key").await.unwrap().0, 404);
    assert_eq!(kestra.file(&kn, "/dir/main.txt").await.unwrap(), None);

    assert_eq!(
        kestra
            .flow_source(&kn, "kept-flow")
            .await
            .unwrap()
            .as_deref(),
        Some(kept.as_str())
    );
    let (status, kv) = kestra.kv(&kn, "kept-key").await.unwrap();
    assert_eq!((status, &kv["value"]), (200, &serde_json::json!(1)));
    assert_eq!(
        kestra.file(&kn, "/kept.txt").await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );

    let events = all_events(&ns.name).await.unwrap();
    for (name, reason) in [
        ("main-flow", "Deleted"),
        ("kept-flow", "Orphaned"),
        ("main-kv", "Deleted"),
        ("kept-kv", "Orphaned"),
        ("main-file", "Deleted"),
        ("kept-file", "Orphaned"),
    ] {
        assert!(
            events.iter().any(|e| e.name == name && e.reason == reason),
            "no {reason} Event for {name}: {events:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_resource_owns_a_kestra_object_and_others_report_conflict() {
    let a = namespace("conflict-a");
    let b = namespace("conflict-b");
    let kn = a.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&a.name, &b.name], "30s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();

    let winner_src = flow_source("shared", &kn, "description: winner\n");
    let loser1_src = flow_source("shared", &kn, "description: loser one\n");
    let loser2_src = flow_source("shared", &kn, "description: loser two\n");

    apply(
        &a.name,
        &flow_manifest("winner", "shared", &kn, &winner_src, ""),
    )
    .await
    .unwrap();
    wait_ready(&a.name, "flow/winner").await.unwrap();
    next_second().await;
    apply(
        &b.name,
        &flow_manifest("loser-1", "shared", &kn, &loser1_src, ""),
    )
    .await
    .unwrap();
    apply(
        &b.name,
        &flow_manifest("loser-2", "shared", &kn, &loser2_src, ""),
    )
    .await
    .unwrap();
    for loser in ["flow/loser-1", "flow/loser-2"] {
        let obj = wait_reason(&b.name, loser, "False", "Conflict", READY)
            .await
            .unwrap();
        assert_stalled(&obj, "Conflict");
        let msg = condition(&obj, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string();
        // The owner lives in another Kubernetes namespace: it is not named.
        assert!(
            msg.contains("an older resource in another Kubernetes namespace")
                && !msg.contains("winner"),
            "the message says where the owner is without naming it: {msg}"
        );
        assert!(obj["status"]["ownedObject"].is_null(), "{}", obj["status"]);
    }
    wait_event(
        &b.name,
        "KestraFlow",
        "loser-1",
        "Conflict",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // The losers wrote nothing.
    let flow = kestra.flow(&kn, "shared").await.unwrap().unwrap();
    assert_eq!(flow["source"].as_str(), Some(winner_src.as_str()));
    assert_eq!(flow["revision"], 1);
    let winner = get_json(&a.name, "flow/winner").await.unwrap();
    assert_eq!(condition(&winner, "Ready").unwrap()["status"], "True");

    // Deleting a loser deletes nothing in Kestra.
    k(
        &b.name,
        &["delete", "--wait", "--timeout=30s", "flow/loser-1"],
    )
    .await
    .unwrap();
    let ev = wait_event(
        &b.name,
        "KestraFlow",
        "loser-1",
        "Released",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(
        ev.message
            .contains("is owned by an older resource in another Kubernetes namespace")
            && ev.message.contains("left in Kestra")
            && !ev.message.contains("winner"),
        "{ev:?}"
    );
    let flow = kestra
        .flow(&kn, "shared")
        .await
        .unwrap()
        .expect("a loser's deletion must not delete the flow");
    assert_eq!(flow["source"].as_str(), Some(winner_src.as_str()));
    assert_eq!(flow["revision"], 1);

    // Deleting the winner deletes its flow, and the remaining loser takes over.
    k(
        &a.name,
        &["delete", "--wait", "--timeout=30s", "flow/winner"],
    )
    .await
    .unwrap();
    // Woken by the winner's deletion, not by its own resync (30s).
    let obj = wait_obj(
        &b.name,
        "flow/loser-2",
        Duration::from_secs(15),
        "takes over",
        |o| {
            anyhow::ensure!(
                condition(o, "Ready").is_some_and(|c| c["status"] == "True"),
                "Ready is {}",
                ready_reason(o)
            );
            Ok(())
        },
    )
    .await
    .unwrap();
    assert!(condition(&obj, "Stalled").is_none(), "{}", obj["status"]);
    assert_eq!(obj["status"]["ownedObject"], format!("main/{kn}/shared"));
    let flow = kestra
        .flow(&kn, "shared")
        .await
        .unwrap()
        .expect("the new owner wrote the flow");
    assert_eq!(flow["source"].as_str(), Some(loser2_src.as_str()));
}
