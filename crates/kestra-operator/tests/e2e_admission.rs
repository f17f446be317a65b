//! End to end: what admission refuses (schema and CEL rules, with their messages), and what it
//! cannot see (the flow YAML itself) ending in status with no write to Kestra.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;

const FLOW_HEAD: &str =
    "apiVersion: model.kestra.io/v1alpha1\nkind: KestraFlow\nmetadata: {name: f}\n";
const KV_HEAD: &str =
    "apiVersion: model.kestra.io/v1alpha1\nkind: KestraKeyValue\nmetadata: {name: kv}\n";
const FILE_HEAD: &str =
    "apiVersion: model.kestra.io/v1alpha1\nkind: KestraNamespaceFile\nmetadata: {name: file}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_at_admission_with_their_message() {
    let ns = namespace("admission");
    let kn = ns.kestra.as_str();
    let src = "source: \"id: f\\nnamespace: a.b\\ntasks: []\"";
    let long_id = "a".repeat(101);
    let long_ns = "a".repeat(151);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        // KestraFlow
        (
            "flow without source or sourceFrom",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}}}"),
            vec!["set exactly one of spec.source (the flow YAML) or spec.sourceFrom"],
        ),
        (
            "flow with both source and sourceFrom",
            format!(
                "{FLOW_HEAD}spec: {{id: f, namespace: {kn}, {src}, sourceFrom: {{configMapKeyRef: {{name: c, key: k}}}}}}"
            ),
            vec!["set exactly one of spec.source (the flow YAML) or spec.sourceFrom"],
        ),
        (
            "reserved flow id",
            format!("{FLOW_HEAD}spec: {{id: pause, namespace: {kn}, {src}}}"),
            vec![
                "spec.id is a name Kestra reserves for its API",
                "choose another flow id",
            ],
        ),
        (
            "another reserved flow id",
            format!("{FLOW_HEAD}spec: {{id: executions, namespace: {kn}, {src}}}"),
            vec!["Kestra reserves"],
        ),
        (
            "flow id pattern",
            format!("{FLOW_HEAD}spec: {{id: -bad, namespace: {kn}, {src}}}"),
            vec!["spec.id", "should match '^[a-zA-Z0-9][a-zA-Z0-9._-]*$'"],
        ),
        (
            "flow id with a space",
            format!("{FLOW_HEAD}spec: {{id: \"my flow\", namespace: {kn}, {src}}}"),
            vec!["spec.id", "should match"],
        ),
        (
            "flow id too long",
            format!("{FLOW_HEAD}spec: {{id: {long_id}, namespace: {kn}, {src}}}"),
            vec!["spec.id", "Too long"],
        ),
        (
            "namespace pattern",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: Company.Team, {src}}}"),
            vec!["spec.namespace", "should match '^[a-z0-9][a-z0-9._-]*$'"],
        ),
        (
            "namespace too long",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: {long_ns}, {src}}}"),
            vec!["spec.namespace", "Too long"],
        ),
        (
            "tenant pattern",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}, tenant: Main_Tenant, {src}}}"),
            vec!["spec.tenant", "should match"],
        ),
        (
            "deletionPolicy enum",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}, deletionPolicy: Keep, {src}}}"),
            vec!["spec.deletionPolicy", "Unsupported value: \"Keep\""],
        ),
        (
            "resyncPeriod pattern",
            format!(
                "{FLOW_HEAD}spec: {{id: f, namespace: {kn}, resyncPeriod: five minutes, {src}}}"
            ),
            vec!["spec.resyncPeriod", "should match"],
        ),
        // KestraKeyValue
        (
            "key pattern",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: _private, value: v}}"),
            vec!["spec.key", "should match '^[a-zA-Z0-9][a-zA-Z0-9._-]*$'"],
        ),
        (
            "key with a slash",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: a/b, value: v}}"),
            vec!["spec.key", "should match"],
        ),
        (
            "value and valueFrom",
            format!(
                "{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v, valueFrom: {{secretKeyRef: {{name: s, key: k}}}}}}"
            ),
            vec![
                "must validate one and only one schema (oneOf)",
                "Found 2 valid alternatives",
            ],
        ),
        (
            "neither value nor valueFrom",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k}}"),
            vec![
                "must validate one and only one schema (oneOf)",
                "Found none valid",
            ],
        ),
        (
            "valueFrom with both references",
            format!(
                "{KV_HEAD}spec: {{namespace: {kn}, key: k, valueFrom: {{secretKeyRef: {{name: s, key: k}}, configMapKeyRef: {{name: c, key: k}}}}}}"
            ),
            vec!["set exactly one of secretKeyRef or configMapKeyRef"],
        ),
        (
            "valueFrom with no reference",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, valueFrom: {{}}}}"),
            vec!["set exactly one of secretKeyRef or configMapKeyRef"],
        ),
        (
            "ttl that is not ISO-8601",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v, ttl: 5m}}"),
            vec!["spec.ttl", "should match"],
        ),
        (
            "ttl with no part",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v, ttl: PT}}"),
            vec!["spec.ttl must be an ISO-8601 duration with at least one part, e.g. PT5M"],
        ),
        (
            "ttl P alone",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v, ttl: P}}"),
            vec!["spec.ttl must be an ISO-8601 duration with at least one part"],
        ),
        (
            "type enum",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v, type: TEXT}}"),
            vec!["spec.type", "Unsupported value: \"TEXT\"", "\"DURATION\""],
        ),
        // KestraNamespaceFile
        (
            "a .. segment",
            format!(
                "{FILE_HEAD}spec: {{namespace: {kn}, filename: scripts/../etc/passwd, content: x}}"
            ),
            vec!["spec.filename must not contain '.' or '..' path segments"],
        ),
        (
            "a leading ..",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: ../up.txt, content: x}}"),
            vec!["spec.filename must not contain '.' or '..' path segments"],
        ),
        (
            "a . segment",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: ./here.txt, content: x}}"),
            vec!["spec.filename must not contain '.' or '..' path segments"],
        ),
        (
            "under _flows",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: _flows/f.yml, content: x}}"),
            vec!["spec.filename must not be under _flows"],
        ),
        (
            "under /_flows",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: /_flows/f.yml, content: x}}"),
            vec!["spec.filename must not be under _flows"],
        ),
        (
            "a directory",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: scripts/, content: x}}"),
            vec!["spec.filename must name a file"],
        ),
        (
            "content and contentBase64",
            format!(
                "{FILE_HEAD}spec: {{namespace: {kn}, filename: a.txt, content: x, contentBase64: eA==}}"
            ),
            vec![
                "set exactly one of spec.content (text), spec.contentBase64 (binary) or spec.contentFrom",
            ],
        ),
        (
            "content and contentFrom",
            format!(
                "{FILE_HEAD}spec: {{namespace: {kn}, filename: a.txt, content: x, contentFrom: {{secretKeyRef: {{name: s, key: k}}}}}}"
            ),
            vec!["set exactly one of spec.content"],
        ),
        (
            "no content at all",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: a.txt}}"),
            vec!["set exactly one of spec.content"],
        ),
        (
            "contentBase64 that is not base64",
            format!(
                "{FILE_HEAD}spec: {{namespace: {kn}, filename: a.bin, contentBase64: \"not base64!\"}}"
            ),
            vec!["spec.contentBase64", "should match"],
        ),
    ];

    let mut failures = Vec::new();
    for (what, manifest, needles) in &cases {
        match apply_refused(&ns.name, manifest).await {
            Err(e) => failures.push(format!("{what}: {e:#}")),
            Ok(stderr) => {
                for needle in needles {
                    if !stderr.contains(needle) {
                        failures.push(format!(
                            "{what}: the message lacks {needle:?}: {}",
                            stderr.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let left = k(&ns.name, &["get", "kestra", "-o", "name"]).await.unwrap();
    assert!(
        left.trim().is_empty(),
        "refused manifests left objects: {left}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_fields_are_immutable() {
    let ns = namespace("immutable");
    let kn = ns.kestra.as_str();
    let src = "source: \"id: f\\nnamespace: a.b\\ntasks: []\"";
    let valid = [
        format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}, {src}}}"),
        format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v}}"),
        format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: a.txt, content: x}}"),
    ];
    apply(&ns.name, &valid.join("\n---\n")).await.unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "flow id",
            format!("{FLOW_HEAD}spec: {{id: g, namespace: {kn}, {src}}}"),
            "spec.id is immutable: create a new KestraFlow to manage another flow",
        ),
        (
            "flow namespace",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}.other, {src}}}"),
            "spec.namespace is immutable: create a new KestraFlow",
        ),
        (
            "flow tenant added",
            format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}, tenant: other, {src}}}"),
            "spec.tenant is immutable",
        ),
        (
            "kv key",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k2, value: v}}"),
            "spec.key is immutable: create a new KestraKeyValue",
        ),
        (
            "kv namespace",
            format!("{KV_HEAD}spec: {{namespace: {kn}.other, key: k, value: v}}"),
            "spec.namespace is immutable",
        ),
        (
            "kv tenant added",
            format!("{KV_HEAD}spec: {{namespace: {kn}, key: k, value: v, tenant: other}}"),
            "spec.tenant is immutable",
        ),
        (
            "file filename",
            format!("{FILE_HEAD}spec: {{namespace: {kn}, filename: b.txt, content: x}}"),
            "spec.filename is immutable: create a new KestraNamespaceFile",
        ),
        (
            "file namespace",
            format!("{FILE_HEAD}spec: {{namespace: {kn}.other, filename: a.txt, content: x}}"),
            "spec.namespace is immutable",
        ),
        (
            "file tenant added",
            format!(
                "{FILE_HEAD}spec: {{namespace: {kn}, filename: a.txt, content: x, tenant: other}}"
            ),
            "spec.tenant is immutable",
        ),
    ];
    let mut failures = Vec::new();
    for (what, manifest, needle) in &cases {
        match apply_refused(&ns.name, manifest).await {
            Err(e) => failures.push(format!("{what}: {e:#}")),
            Ok(stderr) if !stderr.contains(needle) => failures.push(format!(
                "{what}: the message lacks {needle:?}: {}",
                stderr.trim()
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // A tenant, once set, cannot be removed or changed either; other fields still change.
    let with_tenant = format!(
        "apiVersion: model.kestra.io/v1alpha1\nkind: KestraKeyValue\nmetadata: {{name: kv-t}}\nspec: {{namespace: {kn}, key: t, value: v, tenant: one}}"
    );
    apply(&ns.name, &with_tenant).await.unwrap();
    for changed in [
        with_tenant.replace(", tenant: one", ""),
        with_tenant.replace("tenant: one", "tenant: two"),
    ] {
        let stderr = apply_refused(&ns.name, &changed).await.unwrap();
        assert!(stderr.contains("spec.tenant is immutable"), "{stderr}");
    }
    apply(&ns.name, &with_tenant.replace("value: v", "value: w"))
        .await
        .unwrap();
    apply(&ns.name, &format!("{FLOW_HEAD}spec: {{id: f, namespace: {kn}, source: \"id: f\\nnamespace: a.b\\ntasks: [x]\"}}"))
        .await
        .unwrap();
}

/// The flow YAML is not something admission can read: a wrong id or namespace, or YAML that
/// does not parse, ends in InvalidSpec + Stalled, with nothing sent to Kestra.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_yaml_errors_stall_without_any_kestra_request() {
    let fake = private_fake(kestra_fake::FakeConfig::default())
        .await
        .unwrap();
    let url = fake.url();
    let ns = namespace("yaml-errors");
    let kn = ns.kestra.clone();
    let _op = start_operator(OpSpec::new(&[&ns.name], "30s").kestra(&url))
        .await
        .unwrap();

    let cases = [
        (
            "wrong-id",
            flow_source("another-id", &kn, ""),
            "has id \"another-id\" but spec.id is \"wrong-id\"",
        ),
        (
            "wrong-ns",
            flow_source("wrong-ns", "some.other.ns", ""),
            "has namespace \"some.other.ns\" but spec.namespace is",
        ),
        (
            "no-id",
            format!("namespace: {kn}\ntasks: []\n"),
            "has no `id`",
        ),
        (
            "unparsable",
            "id: [unclosed\nnamespace: {oops\n".to_string(),
            "not a YAML mapping",
        ),
        (
            "a-list",
            "- id: a-list\n- tasks\n".to_string(),
            "not a YAML mapping",
        ),
    ];
    let manifests: Vec<String> = cases
        .iter()
        .map(|(id, src, _)| flow_manifest(id, id, &kn, src, ""))
        .collect();
    apply(&ns.name, &manifests.join("---\n")).await.unwrap();
    for (id, _, needle) in &cases {
        let obj = wait_reason(
            &ns.name,
            &format!("flow/{id}"),
            "False",
            "InvalidSpec",
            READY,
        )
        .await
        .unwrap();
        assert_stalled(&obj, "InvalidSpec");
        let message = condition(&obj, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(needle), "{id}: {message}");
        assert!(
            message.contains("nothing is written to Kestra"),
            "{id}: the message says what to do: {message}"
        );
        assert_eq!(obj["status"]["observedGeneration"], 1);
        let ev = wait_event(
            &ns.name,
            "KestraFlow",
            id,
            "InvalidSpec",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(ev.type_, "Warning");
    }
    let printed = k(&ns.name, &["get", "flow", "wrong-id", "-o", "wide"])
        .await
        .unwrap();
    let row = &table(&printed)[0];
    assert_eq!(cell(row, "READY"), "False");
    assert!(cell(row, "REASON").starts_with("InvalidSpec"), "{printed}");

    let all = counters(&url).await.unwrap();
    assert!(
        all.is_empty(),
        "an invalid flow YAML must not reach Kestra at all: {all:?}"
    );

    // Fixing the spec is all it takes.
    let fixed = flow_source("wrong-id", &kn, "");
    apply(
        &ns.name,
        &flow_manifest("wrong-id", "wrong-id", &kn, &fixed, ""),
    )
    .await
    .unwrap();
    let obj = wait_ready(&ns.name, "flow/wrong-id").await.unwrap();
    assert!(condition(&obj, "Stalled").is_none(), "{}", obj["status"]);
    assert_eq!(
        Kestra::private(&url)
            .flow_source(&kn, "wrong-id")
            .await
            .unwrap()
            .as_deref(),
        Some(fixed.as_str())
    );
    for w in writes(&url).await.unwrap() {
        assert!(w.contains("/flows"), "only the fixed flow is written: {w}");
    }
}
