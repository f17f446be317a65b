//! End to end: KV typing, ttl and expiry, values and contents from Secrets and ConfigMaps,
//! binary files, tenants, the legacy API root, and Secret values kept out of everything the
//! operator writes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use anyhow::ensure;
use base64::Engine;
use common::*;
use kestra_fake::FakeConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testenv::wait_until;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let lines: String = data
        .iter()
        .map(|(k, v)| format!("  {k}: {}\n", b64(v.as_bytes())))
        .collect();
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ndata:\n{lines}")
}

/// Waits until Kestra's KV entry has this value.
async fn wait_kv_value(kestra: &Kestra, kn: &str, key: &str, want: Value) {
    wait_until(Duration::from_secs(20), POLL, || async {
        let (status, body) = kestra.kv(kn, key).await?;
        ensure!(
            status == 200 && body["value"] == want,
            "{key}: {status} {body}, want {want}"
        );
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kv_type_round_trips() {
    let ns = namespace("kv-types");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "2s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();

    // (name, spec lines, Kestra type, value Kestra returns)
    let cases: Vec<(&str, &str, &str, Value)> = vec![
        (
            "string",
            "  value: hello world\n",
            "STRING",
            json!("hello world"),
        ),
        (
            "quoted-number",
            "  value: \"123\"\n",
            "STRING",
            json!("123"),
        ),
        (
            "quoted-bool",
            "  value: \"true\"\n",
            "STRING",
            json!("true"),
        ),
        (
            "multiline",
            "  value: |\n    line one\n    \"quoted\" line two\n",
            "STRING",
            json!("line one\n\"quoted\" line two\n"),
        ),
        ("integer", "  value: 42\n", "NUMBER", json!(42)),
        ("decimal", "  value: 1.5\n", "NUMBER", json!(1.5)),
        (
            "number-from-text",
            "  value: \"7\"\n  type: NUMBER\n",
            "NUMBER",
            json!(7),
        ),
        ("boolean", "  value: true\n", "BOOLEAN", json!(true)),
        (
            "boolean-from-text",
            "  value: \"false\"\n  type: BOOLEAN\n",
            "BOOLEAN",
            json!(false),
        ),
        (
            "date",
            "  value: \"2024-01-31\"\n  type: DATE\n",
            "DATE",
            json!("2024-01-31"),
        ),
        (
            "datetime",
            "  value: \"2024-01-31T10:00:00Z\"\n  type: DATETIME\n",
            "DATETIME",
            json!("2024-01-31T10:00:00Z"),
        ),
        (
            "datetime-offset",
            "  value: \"2024-01-31T12:00:00+02:00\"\n  type: DATETIME\n",
            "DATETIME",
            json!("2024-01-31T10:00:00Z"),
        ),
        ("duration", "  value: PT5M\n", "DURATION", json!("PT5M")),
        (
            "duration-typed",
            "  value: PT1H30M\n  type: DURATION\n",
            "DURATION",
            json!("PT1H30M"),
        ),
        (
            "json-object",
            "  value: {a: [1, 2], b: {c: x}}\n",
            "JSON",
            json!({"a": [1, 2], "b": {"c": "x"}}),
        ),
        (
            "json-list",
            "  value: [1, two, {three: 3}]\n",
            "JSON",
            json!([1, "two", {"three": 3}]),
        ),
        (
            "json-from-text",
            "  value: '{\"k\": [true]}'\n  type: JSON\n",
            "JSON",
            json!({"k": [true]}),
        ),
        (
            "string-forced",
            "  value: 99\n  type: STRING\n",
            "STRING",
            json!("99"),
        ),
    ];
    let manifests: Vec<String> = cases
        .iter()
        .map(|(name, spec, ..)| kv_manifest(name, &kn, name, spec))
        .collect();
    apply(&ns.name, &manifests.join("---\n")).await.unwrap();

    let mut failures = Vec::new();
    for (name, _, type_, value) in &cases {
        let obj = wait_ready(&ns.name, &format!("kv/{name}")).await.unwrap();
        if obj["status"]["type"] != *type_ {
            failures.push(format!(
                "{name}: status.type {} want {type_}",
                obj["status"]["type"]
            ));
        }
        let (status, stored) = kestra.kv(&kn, name).await.unwrap();
        if status != 200 || stored["type"] != *type_ || stored["value"] != *value {
            failures.push(format!(
                "{name}: Kestra has {status} {stored}, want {type_} {value}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let out = k(&ns.name, &["get", "kv"]).await.unwrap();
    for row in table(&out) {
        let name = cell(&row, "NAME");
        let want = cases.iter().find(|c| c.0 == name).map(|c| c.2).unwrap();
        assert_eq!(cell(&row, "TYPE"), want, "{out}");
        assert_eq!(cell(&row, "KEY"), name, "{out}");
    }

    // Several resyncs later, every value still compares equal: nothing rewritten.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let events = all_events(&ns.name).await.unwrap();
    let churn: Vec<_> = events
        .iter()
        .filter(|e| e.reason != "Created")
        .map(|e| (&e.name, &e.reason))
        .collect();
    assert!(churn.is_empty(), "values rewritten on resync: {churn:?}");
}

/// KV values from Secret and ConfigMap keys, and file contents from them (binaryData too),
/// follow the referenced object: its creation, its updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_contents_from_secrets_and_configmaps_follow_their_changes() {
    let ns = namespace("refs");
    let kn = ns.kestra.clone();
    // A long resync: only the watches of the referenced objects can explain a prompt update.
    let _op = start_operator(OpSpec::new(&[&ns.name], "10m"))
        .await
        .unwrap();
    let kestra = Kestra::shared();

    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let objects = [
        secret(
            "creds",
            &[("token", "first-token"), ("script", "print('v1')\n")],
        ),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata:\n  level: debug\nbinaryData:\n  blob.bin: {}\n",
            b64(&binary)
        ),
        kv_manifest(
            "from-secret",
            &kn,
            "token",
            "  valueFrom:\n    secretKeyRef: {name: creds, key: token}\n",
        ),
        kv_manifest(
            "from-cm",
            &kn,
            "level",
            "  valueFrom:\n    configMapKeyRef: {name: settings, key: level}\n",
        ),
        kv_manifest(
            "not-yet",
            &kn,
            "later",
            "  valueFrom:\n    secretKeyRef: {name: later, key: value}\n",
        ),
        file_manifest(
            "script",
            &kn,
            "scripts/run.py",
            "  contentFrom:\n    secretKeyRef: {name: creds, key: script}\n",
        ),
        file_manifest(
            "blob",
            &kn,
            "data/blob.bin",
            "  contentFrom:\n    configMapKeyRef: {name: settings, key: blob.bin}\n",
        ),
    ];
    apply(&ns.name, &objects.join("---\n")).await.unwrap();
    for r in [
        "kv/from-secret",
        "kv/from-cm",
        "nsfile/script",
        "nsfile/blob",
    ] {
        wait_ready(&ns.name, r).await.unwrap();
    }
    assert_eq!(
        kestra.kv(&kn, "token").await.unwrap().1["value"],
        "first-token"
    );
    assert_eq!(kestra.kv(&kn, "level").await.unwrap().1["value"], "debug");
    assert_eq!(
        kestra
            .file(&kn, "/scripts/run.py")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"print('v1')\n"[..])
    );
    assert_eq!(
        kestra.file(&kn, "/data/blob.bin").await.unwrap(),
        Some(binary.clone())
    );

    // A reference that does not exist yet: ReferenceNotFound, then synced once it appears.
    let obj = wait_reason(&ns.name, "kv/not-yet", "False", "ReferenceNotFound", READY)
        .await
        .unwrap();
    assert_transient(&obj, "ReferenceNotFound");
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("Secret") && message.contains("later"),
        "{message}"
    );
    apply(&ns.name, &secret("later", &[("value", "arrived")]))
        .await
        .unwrap();
    wait_kv_value(&kestra, &kn, "later", json!("arrived")).await;
    wait_ready(&ns.name, "kv/not-yet").await.unwrap();

    // Updates of the Secret and the ConfigMap reach Kestra without a spec change.
    let started = std::time::Instant::now();
    apply(
        &ns.name,
        &secret(
            "creds",
            &[("token", "rotated-token"), ("script", "print('v2')\n")],
        ),
    )
    .await
    .unwrap();
    apply(
        &ns.name,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata:\n  level: info\nbinaryData:\n  blob.bin: {}\n",
            b64(&binary[..128])
        ),
    )
    .await
    .unwrap();
    wait_kv_value(&kestra, &kn, "token", json!("rotated-token")).await;
    wait_kv_value(&kestra, &kn, "level", json!("info")).await;
    wait_until(Duration::from_secs(20), POLL, || async {
        ensure!(
            kestra.file(&kn, "/scripts/run.py").await?.as_deref() == Some(&b"print('v2')\n"[..]),
            "script not updated"
        );
        ensure!(
            kestra.file(&kn, "/data/blob.bin").await?.as_deref() == Some(&binary[..128]),
            "blob not updated"
        );
        Ok(())
    })
    .await
    .unwrap();
    eprintln!(
        "TIMING: Secret/ConfigMap change reached Kestra in {} ms",
        started.elapsed().as_millis()
    );
    let blob = wait_obj(
        &ns.name,
        "nsfile/blob",
        Duration::from_secs(10),
        "size 128",
        |o| {
            ensure!(o["status"]["size"] == 128, "size {}", o["status"]["size"]);
            Ok(())
        },
    )
    .await
    .unwrap();
    assert_eq!(blob["status"]["sha256"], sha256_hex(&binary[..128]));
    let ev = wait_event(
        &ns.name,
        "KestraKeyValue",
        "from-secret",
        "Updated",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(ev.type_, "Normal");
}

/// A flow whose YAML comes from a ConfigMap key follows the ConfigMap's changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_source_from_a_configmap_follows_its_changes() {
    let ns = namespace("flow-cm");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "10m"))
        .await
        .unwrap();
    let kestra = Kestra::shared();
    let configmap = |source: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: flows}}\ndata:\n  etl.yaml: |\n{}",
            indent(source, 4)
        )
    };
    let v1 = flow_source("etl", &kn, "");
    apply(
        &ns.name,
        &[
            configmap(&v1),
            format!(
                "apiVersion: model.kestra.io/v1alpha1\nkind: KestraFlow\nmetadata: {{name: etl}}\nspec:\n  id: etl\n  namespace: {kn}\n  sourceFrom:\n    configMapKeyRef: {{name: flows, key: etl.yaml}}\n"
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/etl").await.unwrap();
    assert_eq!(
        kestra.flow_source(&kn, "etl").await.unwrap().as_deref(),
        Some(v1.as_str())
    );

    let v2 = flow_source("etl", &kn, "description: edited in the ConfigMap\n");
    apply(&ns.name, &configmap(&v2)).await.unwrap();
    let reached = wait_until(Duration::from_secs(20), POLL, || async {
        let stored = kestra.flow_source(&kn, "etl").await?;
        ensure!(
            stored.as_deref() == Some(v2.as_str()),
            "Kestra still has revision with {stored:?}"
        );
        Ok(())
    })
    .await;
    if let Err(e) = reached {
        let obj = get_json(&ns.name, "flow/etl").await.unwrap();
        panic!(
            "the ConfigMap change did not reach Kestra (status: {}): {e:#}",
            obj["status"]["reason"]
        );
    }
    let obj = wait_obj(
        &ns.name,
        "flow/etl",
        Duration::from_secs(10),
        "revision 2",
        |o| {
            ensure!(
                o["status"]["revision"] == 2,
                "revision {}",
                o["status"]["revision"]
            );
            Ok(())
        },
    )
    .await
    .unwrap();
    assert_eq!(condition(&obj, "Ready").unwrap()["status"], "True");

    // A ConfigMap whose YAML names another flow: InvalidSpec, nothing written.
    apply(&ns.name, &configmap(&flow_source("not-etl", &kn, "")))
        .await
        .unwrap();
    let obj = wait_reason(
        &ns.name,
        "flow/etl",
        "False",
        "InvalidSpec",
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_stalled(&obj, "InvalidSpec");
    assert_eq!(
        kestra.flow_source(&kn, "etl").await.unwrap().as_deref(),
        Some(v2.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_files_round_trip_byte_for_byte() {
    let ns = namespace("binary");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "2s"))
        .await
        .unwrap();
    let kestra = Kestra::shared();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let text = "héllo wörld ✓\r\nsecond line\n\ttabbed\n";
    apply(
        &ns.name,
        &[
            file_manifest(
                "all-bytes",
                &kn,
                "bin/all-bytes.bin",
                &format!("  contentBase64: {}\n", b64(&all_bytes)),
            ),
            file_manifest(
                "leading-slash",
                &kn,
                "/top/level.txt",
                "  content: slashed\n",
            ),
            file_manifest(
                "unicode",
                &kn,
                "docs/unicode.txt",
                &format!("  content: {}\n", serde_json::to_string(text).unwrap()),
            ),
            file_manifest("empty", &kn, "empty.txt", "  content: \"\"\n"),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "nsfile/all-bytes").await.unwrap();
    assert_eq!(obj["status"]["size"], 256);
    assert_eq!(obj["status"]["sha256"], sha256_hex(&all_bytes));
    assert_eq!(
        kestra.file(&kn, "/bin/all-bytes.bin").await.unwrap(),
        Some(all_bytes.clone())
    );

    wait_ready(&ns.name, "nsfile/leading-slash").await.unwrap();
    assert_eq!(
        kestra.file(&kn, "/top/level.txt").await.unwrap().as_deref(),
        Some(&b"slashed"[..])
    );
    let obj = wait_ready(&ns.name, "nsfile/unicode").await.unwrap();
    assert_eq!(obj["status"]["size"], text.len());
    assert_eq!(
        kestra
            .file(&kn, "/docs/unicode.txt")
            .await
            .unwrap()
            .as_deref(),
        Some(text.as_bytes())
    );
    let obj = wait_ready(&ns.name, "nsfile/empty").await.unwrap();
    assert_eq!(obj["status"]["size"], 0);
    assert_eq!(
        kestra.file(&kn, "/empty.txt").await.unwrap().as_deref(),
        Some(&b""[..])
    );

    let out = k(&ns.name, &["get", "nsfile", "all-bytes"]).await.unwrap();
    assert_eq!(cell(&table(&out)[0], "SIZE"), "256", "{out}");

    // Stable across resyncs (the comparison is byte-exact, so an equal file is never rewritten).
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let events = all_events(&ns.name).await.unwrap();
    let churn: Vec<_> = events
        .iter()
        .filter(|e| e.reason != "Created")
        .map(|e| (&e.name, &e.reason))
        .collect();
    assert!(churn.is_empty(), "files rewritten on resync: {churn:?}");
}

/// A ttl expires the value in Kestra; the operator reports Expired and does not write it back
/// until asked with the reconcile-requested-at annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_is_reported_and_rewritten_only_on_request() {
    const KV_ROUTE: &str = "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}";
    let ns = namespace("ttl");
    let kn = ns.kestra.clone();
    let PrivateKestra {
        fake: _fake,
        url,
        kestra,
        op: _op,
    } = private_kestra(FakeConfig::default(), OpSpec::new(&[&ns.name], "1s"))
        .await
        .unwrap();

    apply(
        &ns.name,
        &kv_manifest(
            "short",
            &kn,
            "short",
            "  value: short-lived\n  ttl: PT2S\n  description: expires soon\n",
        ),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "kv/short").await.unwrap();
    assert!(obj["status"]["expiresAt"].is_string(), "{}", obj["status"]);
    assert_eq!(
        kestra.kv(&kn, "short").await.unwrap().1["value"],
        "short-lived"
    );
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 1);

    let obj = wait_reason(
        &ns.name,
        "kv/short",
        "False",
        "Expired",
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    assert_stalled(&obj, "Expired");
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("model.kestra.io/reconcile-requested-at"),
        "says what to do: {message}"
    );
    wait_event(
        &ns.name,
        "KestraKeyValue",
        "short",
        "Expired",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(kestra.kv(&kn, "short").await.unwrap().0, 410);

    // Not written back while nothing changes (several resync periods).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        count(&url, "PUT", KV_ROUTE).await.unwrap(),
        1,
        "an expired value must not be rewritten"
    );
    assert_eq!(
        condition(&get_json(&ns.name, "kv/short").await.unwrap(), "Ready").unwrap()["reason"],
        "Expired"
    );

    // The annotation asks for a sync: the value is written again.
    let stamp = now_stamp();
    k(
        &ns.name,
        &[
            "annotate",
            "--overwrite",
            "kv/short",
            &format!("model.kestra.io/reconcile-requested-at={stamp}"),
        ],
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "kv/short").await.unwrap();
    assert_eq!(obj["status"]["lastHandledReconcileAt"], stamp.as_str());
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 2);
    let (status, body) = kestra.kv(&kn, "short").await.unwrap();
    assert!(
        status == 200 && body["value"] == "short-lived" || status == 410,
        "{status} {body}"
    );

    // ... and it expires again, once more without a rewrite.
    wait_reason(
        &ns.name,
        "kv/short",
        "False",
        "Expired",
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 2);

    // A spec change writes it too.
    apply(
        &ns.name,
        &kv_manifest("short", &kn, "short", "  value: renewed\n  ttl: PT1H\n"),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "kv/short").await.unwrap();
    assert!(obj["status"]["expiresAt"].is_string());
    assert_eq!(kestra.kv(&kn, "short").await.unwrap().1["value"], "renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_other_than_main_reaches_its_tenant_path() {
    let ns = namespace("tenant");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "30s"))
        .await
        .unwrap();
    let main = Kestra::shared();
    let other = main.tenant(Some("e2e-other"));
    let source = flow_source("tenanted", &kn, "");
    apply(
        &ns.name,
        &[
            flow_manifest(
                "tenanted",
                "tenanted",
                &kn,
                &source,
                "  tenant: e2e-other\n",
            ),
            kv_manifest(
                "tenanted",
                &kn,
                "tenanted",
                "  value: in another tenant\n  tenant: e2e-other\n",
            ),
            file_manifest(
                "tenanted",
                &kn,
                "tenanted.txt",
                "  content: in another tenant\n  tenant: e2e-other\n",
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    for r in ["flow/tenanted", "kv/tenanted", "nsfile/tenanted"] {
        let obj = wait_ready(&ns.name, r).await.unwrap();
        let owned = obj["status"]["ownedObject"].as_str().unwrap_or_default();
        assert!(
            owned.starts_with(&format!("e2e-other/{kn}/")),
            "{r}: {owned}"
        );
    }
    assert_eq!(
        other.flow_source(&kn, "tenanted").await.unwrap().as_deref(),
        Some(source.as_str())
    );
    assert_eq!(
        other.kv(&kn, "tenanted").await.unwrap().1["value"],
        "in another tenant"
    );
    assert_eq!(
        other.file(&kn, "/tenanted.txt").await.unwrap().as_deref(),
        Some(&b"in another tenant"[..])
    );
    assert!(
        main.flow(&kn, "tenanted").await.unwrap().is_none(),
        "nothing in tenant main"
    );
    assert_eq!(main.kv(&kn, "tenanted").await.unwrap().0, 404);
    assert_eq!(main.file(&kn, "/tenanted.txt").await.unwrap(), None);

    k(
        &ns.name,
        &[
            "delete",
            "--wait",
            "--timeout=30s",
            "flow/tenanted",
            "kv/tenanted",
            "nsfile/tenanted",
        ],
    )
    .await
    .unwrap();
    assert!(other.flow(&kn, "tenanted").await.unwrap().is_none());
    assert_eq!(other.kv(&kn, "tenanted").await.unwrap().0, 404);
    assert_eq!(other.file(&kn, "/tenanted.txt").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_api_root_works() {
    let ns = namespace("legacy");
    let kn = ns.kestra.clone();
    let config = FakeConfig {
        legacy_root: true,
        ..FakeConfig::default()
    };
    let PrivateKestra {
        fake: _fake,
        url,
        kestra,
        op: _op,
    } = private_kestra(
        config,
        OpSpec::new(&[&ns.name], "30s").arg("--legacy-api-root"),
    )
    .await
    .unwrap();
    let source = flow_source("old", &kn, "");
    apply(
        &ns.name,
        &[
            flow_manifest("old", "old", &kn, &source, ""),
            kv_manifest("old", &kn, "old", "  value: 5\n"),
            file_manifest("old", &kn, "old.txt", "  content: old school\n"),
            // `main` is what the legacy root serves, so it is accepted; another tenant is not.
            kv_manifest(
                "main-tenant",
                &kn,
                "main-tenant",
                "  value: ok\n  tenant: main\n",
            ),
            kv_manifest(
                "other-tenant",
                &kn,
                "other-tenant",
                "  value: no\n  tenant: other\n",
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    for r in ["flow/old", "kv/old", "nsfile/old", "kv/main-tenant"] {
        wait_ready(&ns.name, r).await.unwrap();
    }
    assert_eq!(
        kestra.flow_source(&kn, "old").await.unwrap().as_deref(),
        Some(source.as_str())
    );
    let (_, kv) = kestra.kv(&kn, "old").await.unwrap();
    assert_eq!(
        (&kv["type"], &kv["value"]),
        (&json!("NUMBER"), &json!(5)),
        "{kv}"
    );
    assert_eq!(
        kestra.file(&kn, "/old.txt").await.unwrap().as_deref(),
        Some(&b"old school"[..])
    );
    assert_eq!(
        kestra.kv(&kn, "main-tenant").await.unwrap().1["value"],
        "ok"
    );
    let obj = wait_reason(&ns.name, "kv/other-tenant", "False", "InvalidSpec", READY)
        .await
        .unwrap();
    assert_stalled(&obj, "InvalidSpec");
    let message = condition(&obj, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("tenant-less /api/v1 root"), "{message}");
    // Nothing went to a tenant path.
    let routes: Vec<String> = counters(&url)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.1)
        .collect();
    assert!(
        routes
            .iter()
            .all(|r| r.starts_with("/api/v1/") && !r.contains("{tenant}")),
        "{routes:?}"
    );
}

/// The strings every leak check looks for, with a random part so nothing else can contain them.
fn secret_value(label: &str) -> String {
    format!("s3cr3t-{label}-{}", now_stamp().replace('.', ""))
}

async fn assert_nowhere(ns: &str, op: &Op, secrets: &[&str]) {
    let events = all_events(ns).await.unwrap();
    let events = format!("{events:?}");
    let resources = k(ns, &["get", "kestra", "-o", "json"]).await.unwrap();
    let statuses: Vec<String> = serde_json::from_str::<Value>(&resources).unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].to_string())
        .collect();
    let logs = op.logs();
    let metrics = op.metrics().await.unwrap();
    for secret in secrets {
        assert!(
            !events.contains(secret),
            "a Secret value leaked into an Event: {events}"
        );
        for status in &statuses {
            assert!(
                !status.contains(secret),
                "a Secret value leaked into a status: {status}"
            );
        }
        assert!(
            !logs.contains(secret),
            "a Secret value leaked into the operator's log"
        );
        assert!(
            !metrics.contains(secret),
            "a Secret value leaked into /metrics"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_appear_in_events_status_or_logs() {
    let ns = namespace("no-leak");
    let kn = ns.kestra.clone();
    let first = secret_value("first");
    let second = secret_value("second");
    let PrivateKestra {
        fake: _fake,
        url,
        kestra,
        op,
    } = private_kestra(
        FakeConfig::default(),
        OpSpec::new(&[&ns.name], "2s")
            .arg("--log-level")
            .arg("debug"),
    )
    .await
    .unwrap();

    apply(
        &ns.name,
        &[
            secret("vault", &[("password", &first)]),
            kv_manifest(
                "password",
                &kn,
                "password",
                "  valueFrom:\n    secretKeyRef: {name: vault, key: password}\n",
            ),
            file_manifest(
                "password",
                &kn,
                "secret.txt",
                "  contentFrom:\n    secretKeyRef: {name: vault, key: password}\n",
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "kv/password").await.unwrap();
    wait_ready(&ns.name, "nsfile/password").await.unwrap();
    assert_eq!(
        kestra.kv(&kn, "password").await.unwrap().1["value"],
        first.as_str()
    );

    // Rotation, a drift correction and a Kestra rejection, all with the value involved.
    apply(&ns.name, &secret("vault", &[("password", &second)]))
        .await
        .unwrap();
    wait_kv_value(&kestra, &kn, "password", json!(second)).await;
    kestra
        .put_kv(&kn, "password", "\"tampered\"")
        .await
        .unwrap();
    wait_kv_value(&kestra, &kn, "password", json!(second)).await;
    // The file deleted in Kestra, and Kestra refusing its restore.
    testenv::FakeHooks::new(&url)
        .unwrap()
        .post("fail", json!({"count": 1, "status": 422, "method": "POST", "route": format!("/api/v1/main/namespaces/{kn}/files")}))
        .await
        .unwrap();
    kestra.delete_file(&kn, "/secret.txt").await.unwrap();
    let obj = wait_reason(
        &ns.name,
        "nsfile/password",
        "False",
        "Rejected",
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    assert_stalled(&obj, "Rejected");
    wait_event(
        &ns.name,
        "KestraKeyValue",
        "password",
        "DriftCorrected",
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    assert_nowhere(&ns.name, &op, &[&first, &second]).await;
}

/// A Secret value that cannot be stored as the `type` asked for: the status must say why
/// without quoting the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_value_of_the_wrong_type_is_not_quoted_in_the_error() {
    let ns = namespace("no-leak-type");
    let kn = ns.kestra.clone();
    let op = start_operator(OpSpec::new(&[&ns.name], "30s"))
        .await
        .unwrap();
    let value = secret_value("typed");
    let duration_like = "PT42M";
    apply(
        &ns.name,
        &[
            secret("vault", &[("password", &value), ("period", duration_like)]),
            kv_manifest(
                "as-number",
                &kn,
                "as-number",
                "  type: NUMBER\n  valueFrom:\n    secretKeyRef: {name: vault, key: password}\n",
            ),
            kv_manifest(
                "as-json",
                &kn,
                "as-json",
                "  type: JSON\n  valueFrom:\n    secretKeyRef: {name: vault, key: password}\n",
            ),
            kv_manifest(
                "as-date",
                &kn,
                "as-date",
                "  type: DATE\n  valueFrom:\n    secretKeyRef: {name: vault, key: password}\n",
            ),
            kv_manifest(
                "as-string",
                &kn,
                "as-string",
                "  type: STRING\n  valueFrom:\n    secretKeyRef: {name: vault, key: period}\n",
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    for r in ["kv/as-number", "kv/as-json", "kv/as-date", "kv/as-string"] {
        let obj = wait_reason(&ns.name, r, "False", "InvalidSpec", READY)
            .await
            .unwrap();
        assert_stalled(&obj, "InvalidSpec");
    }
    wait_event(
        &ns.name,
        "KestraKeyValue",
        "as-number",
        "InvalidSpec",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_nowhere(&ns.name, &op, &[&value, duration_like]).await;
}

/// A change of `ttl` or `description` alone reaches Kestra, though the value is the same; an
/// unchanged key is not written again, and a description changed in Kestra is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_and_description_changes_are_written() {
    const KV_ROUTE: &str = "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}";
    let ns = namespace("kv-meta");
    let kn = ns.kestra.clone();
    let PrivateKestra {
        fake: _fake,
        url,
        kestra,
        op: _op,
    } = private_kestra(FakeConfig::default(), OpSpec::new(&[&ns.name], "2s"))
        .await
        .unwrap();
    let manifest =
        |extra: &str| kv_manifest("meta", &kn, "meta", &format!("  value: same\n{extra}"));

    apply(&ns.name, &manifest("  description: first\n"))
        .await
        .unwrap();
    wait_ready(&ns.name, "kv/meta").await.unwrap();
    let row = kestra.kv_row(&kn, "meta").await.unwrap();
    assert_eq!(row["description"], "first");
    assert!(row.get("expirationDate").is_none(), "{row}");
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 1);

    // Only the description changes.
    apply(&ns.name, &manifest("  description: second\n"))
        .await
        .unwrap();
    wait_ready(&ns.name, "kv/meta").await.unwrap();
    assert_eq!(
        kestra.kv_row(&kn, "meta").await.unwrap()["description"],
        "second"
    );
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 2);

    // Only a ttl is added: written with it, and status tells the expiry.
    apply(&ns.name, &manifest("  description: second\n  ttl: PT1H\n"))
        .await
        .unwrap();
    let obj = wait_ready(&ns.name, "kv/meta").await.unwrap();
    assert_eq!(obj["status"]["ttl"], "PT1H", "{}", obj["status"]);
    assert!(obj["status"]["expiresAt"].is_string(), "{}", obj["status"]);
    assert!(kestra.kv_row(&kn, "meta").await.unwrap()["expirationDate"].is_string());
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 3);

    // Unchanged for two resync periods: no write.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count(&url, "PUT", KV_ROUTE).await.unwrap(), 3);

    // The description changed in Kestra (value untouched) is drift: restored.
    let headers = [("description", "edited in the UI"), ("ttl", "PT1H")];
    kestra
        .put_kv_with(&kn, "meta", "\"same\"", &headers)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let body = kestra.kv_row(&kn, "meta").await?;
            ensure!(
                body["description"] == "second",
                "description {}",
                body["description"]
            );
            Ok(())
        },
    )
    .await
    .unwrap();
    wait_event(
        &ns.name,
        "KestraKeyValue",
        "meta",
        "DriftCorrected",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}
