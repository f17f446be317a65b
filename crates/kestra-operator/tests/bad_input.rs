//! The bad-input catalogue: what users get wrong, for each of the three kinds, and where it is
//! stopped: by kubectl, at admission (schema, CEL, etcd's size limit), or in status with a
//! condition and a clear message. Accepted edge cases (unicode, binary, near the size limit) must
//! reach Kestra byte for byte. Throughout, the operator keeps running and nothing wrong is
//! written to Kestra (private doubles: their whole content is compared at the end).
//!
//! `BAD_INPUT_TABLE=path` writes the catalogue as the markdown table of docs/reliability.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine as _;
use common::*;
use kestra_fake::{BasicAuth, ErrorFormat, FakeConfig};
use serde_json::{Value, json};
use testenv::wait_until;

/// Which operator (and double) a case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    /// A double answering errors as Micronaut `JsonError`.
    Json,
    /// A double answering errors as `application/problem+json`.
    Problem,
    /// A double with a login; the operator has the wrong password.
    WrongPassword,
    /// The same double; the operator has the wrong API token.
    WrongToken,
    /// The same double; the operator has no credentials at all.
    NoCredentials,
}

const GROUPS: [Group; 5] = [
    Group::Json,
    Group::Problem,
    Group::WrongPassword,
    Group::WrongToken,
    Group::NoCredentials,
];

/// What the Kestra double must hold for an accepted case.
#[derive(Clone, Debug)]
enum Expect {
    Flow {
        id: String,
        source: String,
    },
    Kv {
        key: String,
        type_: String,
        value: Value,
    },
    File {
        path: String,
        bytes: Vec<u8>,
    },
}

/// Where a case is stopped.
#[derive(Clone, Debug)]
enum Stop {
    /// kubectl refuses it before sending anything.
    Kubectl,
    /// The apiserver refuses it (schema, CEL rule, name rules, etcd's request size limit).
    Admission,
    /// Accepted; the resource ends Ready=False with this reason.
    Status(&'static str),
    /// Accepted and synced; Kestra holds exactly this.
    Synced(Expect),
}

struct Case {
    kind: &'static str,
    what: String,
    group: Group,
    /// `kind/name` for kubectl, for the cases that reach the cluster.
    resource: String,
    manifest: String,
    /// `kubectl create` instead of `apply` (no last-applied annotation doubling the size).
    create: bool,
    stop: Stop,
    needles: Vec<String>,
}

const API: &str = "apiVersion: model.kestra.io/v1alpha1";
const USER: &str = "admin@kestra.io";
const PASSWORD: &str = "Bad-Input-Pass-7f3a";
const TOKEN: &str = "bad-input-token-5c1e9a";
/// Just under etcd's default 1.5 MiB request limit, with room for metadata and status.
const NEAR_LIMIT: usize = 1_400_000;
/// Over it (and under the apiserver's own 3 MiB body limit).
const OVER_LIMIT: usize = 1_600_000;

fn flow_yaml(name: &str, id: &str, kns: &str, source: &str) -> String {
    format!(
        "{API}\nkind: KestraFlow\nmetadata:\n  name: {name}\nspec:\n  id: {id}\n  namespace: {kns}\n  source: |\n{}",
        indent(source, 4)
    )
}

fn flow_spec(name: &str, spec: &str) -> String {
    format!("{API}\nkind: KestraFlow\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn kv_yaml(name: &str, kns: &str, key: &str, lines: &str) -> String {
    format!(
        "{API}\nkind: KestraKeyValue\nmetadata:\n  name: {name}\nspec:\n  namespace: {kns}\n  key: {key}\n{lines}"
    )
}

fn file_yaml(name: &str, kns: &str, filename: &str, lines: &str) -> String {
    format!(
        "{API}\nkind: KestraNamespaceFile\nmetadata:\n  name: {name}\nspec:\n  namespace: {kns}\n  filename: {filename}\n{lines}"
    )
}

fn tasks(task_type: &str) -> String {
    format!("tasks:\n- id: hello\n  type: {task_type}\n  message: hi\n")
}

fn all_bytes() -> Vec<u8> {
    // Every byte value, then invalid UTF-8 sequences on purpose.
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(&[0xc3, 0x28, 0xff, 0xfe, 0x00, 0xed, 0xa0, 0x80]);
    bytes
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Builds the catalogue; `kns` maps each group to its Kestra namespace.
fn catalogue(kns: &BTreeMap<Group, String>) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut n = 0usize;
    let mut add = |kind: &'static str,
                   what: &str,
                   group: Group,
                   build: &dyn Fn(&str, &str) -> String,
                   stop: Stop,
                   needles: &[&str]| {
        n += 1;
        let name = format!("c{n:02}");
        let ns = &kns[&group];
        let manifest = build(&name, ns);
        let resource = format!("{}/{name}", kind.to_lowercase());
        cases.push(Case {
            kind,
            what: what.to_string(),
            group,
            resource,
            manifest,
            create: false,
            stop,
            needles: needles.iter().map(|s| s.to_string()).collect(),
        });
    };
    use Group::*;
    const F: &str = "KestraFlow";
    const K: &str = "KestraKeyValue";
    const D: &str = "KestraNamespaceFile";
    let ok_source = |id: &str, kns: &str| flow_source(id, kns, "");

    // ---- KestraFlow --------------------------------------------------------------------
    add(
        F,
        "malformed manifest YAML (a tab in the indentation)",
        Json,
        &|name, kns| {
            format!(
                "{API}\nkind: KestraFlow\nmetadata:\n  name: {name}\nspec:\n  id: {name}\n\tnamespace: {kns}\n"
            )
        },
        Stop::Kubectl,
        &["error converting YAML to JSON", "found a tab character"],
    );
    add(
        F,
        "malformed manifest YAML (unclosed flow mapping)",
        Json,
        &|name, kns| {
            format!(
                "{API}\nkind: KestraFlow\nmetadata: {{name: {name}\nspec: {{id: x, namespace: {kns}}}\n"
            )
        },
        Stop::Kubectl,
        &["error converting YAML to JSON"],
    );
    add(
        F,
        "reserved flow id `pause`",
        Json,
        &|name, kns| flow_yaml(name, "pause", kns, &ok_source("pause", kns)),
        Stop::Admission,
        &[
            "spec.id is a name Kestra reserves for its API",
            "choose another flow id",
        ],
    );
    add(
        F,
        "flow `delete/by-query`, the path of Kestra's tenant-wide bulk delete",
        Json,
        &|name, _| flow_yaml(name, "by-query", "delete", &ok_source("by-query", "delete")),
        Stop::Admission,
        &[
            "spec.namespace is a word Kestra's flow API uses as a route",
            "deletes every flow of the tenant",
        ],
    );
    add(
        F,
        "flow namespace `export`, the path of Kestra's flow export",
        Json,
        &|name, _| flow_yaml(name, "by-query", "export", &ok_source("by-query", "export")),
        Stop::Admission,
        &["uses as a route"],
    );
    add(
        F,
        "reserved flow id `kill`",
        Json,
        &|name, kns| flow_yaml(name, "kill", kns, &ok_source("kill", kns)),
        Stop::Admission,
        &["Kestra reserves"],
    );
    add(
        F,
        "unicode flow id `flöw`",
        Json,
        &|name, kns| flow_yaml(name, "flöw", kns, &ok_source("flöw", kns)),
        Stop::Admission,
        &["spec.id", "should match '^[a-zA-Z0-9][a-zA-Z0-9._-]*$'"],
    );
    add(
        F,
        "unicode resource name `flöw`",
        Json,
        &|_, kns| flow_yaml("flöw", "unicode-name", kns, &ok_source("unicode-name", kns)),
        Stop::Admission,
        &["metadata.name", "a lowercase RFC 1123 subdomain"],
    );
    add(
        F,
        "flow id given as a number",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!("  id: 123\n  namespace: {kns}\n  source: x\n"),
            )
        },
        Stop::Admission,
        &["spec.id in body must be of type string"],
    );
    add(
        F,
        "misspelt field `spec.sorce`",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!("  id: {name}\n  namespace: {kns}\n  sorce: x\n  source: x\n"),
            )
        },
        Stop::Admission,
        &["strict decoding error", "unknown field \"spec.sorce\""],
    );
    add(
        F,
        "`suspend: \"yes\"` (a string, not a boolean)",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!("  id: {name}\n  namespace: {kns}\n  suspend: \"yes\"\n  source: x\n"),
            )
        },
        Stop::Admission,
        &["spec.suspend in body must be of type boolean"],
    );
    add(
        F,
        "unicode Kestra namespace",
        Json,
        &|name, _| {
            flow_yaml(
                name,
                name,
                "équipe.données",
                &ok_source(name, "équipe.données"),
            )
        },
        Stop::Admission,
        &["spec.namespace", "should match '^[a-z0-9][a-z0-9._-]*$'"],
    );
    add(
        F,
        "source id differs from spec.id",
        Json,
        &|name, kns| flow_yaml(name, name, kns, &ok_source("other-id", kns)),
        Stop::Status("InvalidSpec"),
        &[
            "has id \"other-id\" but spec.id is",
            "nothing is written to Kestra",
        ],
    );
    add(
        F,
        "source namespace differs from spec.namespace",
        Json,
        &|name, kns| flow_yaml(name, name, kns, &ok_source(name, "some.other")),
        Stop::Status("InvalidSpec"),
        &["has namespace \"some.other\" but spec.namespace is"],
    );
    add(
        F,
        "source is malformed YAML",
        Json,
        &|name, kns| flow_yaml(name, name, kns, "id: [unclosed\nnamespace: {oops\n"),
        Stop::Status("InvalidSpec"),
        &[
            "the flow source is not a YAML mapping",
            "fix the YAML in spec.source",
        ],
    );
    add(
        F,
        "source is empty",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!("  id: {name}\n  namespace: {kns}\n  source: \"\"\n"),
            )
        },
        Stop::Status("InvalidSpec"),
        &["the flow source is empty"],
    );
    add(
        F,
        "source has no id",
        Json,
        &|name, kns| {
            flow_yaml(
                name,
                name,
                kns,
                &format!("namespace: {kns}\n{}", tasks("a.b.Log")),
            )
        },
        Stop::Status("InvalidSpec"),
        &["the flow source has no `id`"],
    );
    add(
        F,
        "sourceFrom a missing ConfigMap",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!(
                    "  id: {name}\n  namespace: {kns}\n  sourceFrom:\n    configMapKeyRef: {{name: no-such-cm, key: flow.yaml}}\n"
                ),
            )
        },
        Stop::Status("ReferenceNotFound"),
        &[
            "ConfigMap",
            "/no-such-cm does not exist",
            "create the referenced object or key",
        ],
    );
    add(
        F,
        "sourceFrom a missing ConfigMap key",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!(
                    "  id: {name}\n  namespace: {kns}\n  sourceFrom:\n    configMapKeyRef: {{name: bad-input-cm, key: absent.yaml}}\n"
                ),
            )
        },
        Stop::Status("ReferenceNotFound"),
        &["/bad-input-cm has no key \"absent.yaml\""],
    );
    add(
        F,
        "sourceFrom non-UTF-8 binaryData",
        Json,
        &|name, kns| {
            flow_spec(
                name,
                &format!(
                    "  id: {name}\n  namespace: {kns}\n  sourceFrom:\n    configMapKeyRef: {{name: bad-input-cm, key: binary}}\n"
                ),
            )
        },
        Stop::Status("InvalidSpec"),
        &["is not UTF-8 text, so it cannot be a flow YAML"],
    );
    for group in [Json, Problem] {
        add(
            F,
            &format!("Kestra 422 ({group:?} errors): a task type Kestra does not know"),
            group,
            &|name, kns| {
                flow_yaml(
                    name,
                    name,
                    kns,
                    &format!("id: {name}\nnamespace: {kns}\n{}", tasks("Log")),
                )
            },
            Stop::Status("Rejected"),
            &[
                "Kestra rejected the request (HTTP 422)",
                "Invalid type: Log",
                "fix the spec so that Kestra accepts it",
            ],
        );
        add(
            F,
            &format!("Kestra 422 ({group:?} errors): no tasks"),
            group,
            &|name, kns| {
                flow_yaml(
                    name,
                    name,
                    kns,
                    &format!("id: {name}\nnamespace: {kns}\ntasks: []\n"),
                )
            },
            Stop::Status("Rejected"),
            &["HTTP 422", "tasks: must not be empty"],
        );
    }
    add(
        F,
        "unicode in the flow source (round-trip)",
        Json,
        &|name, kns| {
            flow_yaml(
                name,
                name,
                kns,
                &flow_source(name, kns, "description: \"Überprüfung – 日本語 ✓ 🚀\"\n"),
            )
        },
        Stop::Synced(Expect::Flow {
            id: String::new(),
            source: String::new(),
        }),
        &[],
    );
    add(
        F,
        "wrong password",
        WrongPassword,
        &|name, kns| flow_yaml(name, name, kns, &ok_source(name, kns)),
        Stop::Status("Unauthorized"),
        &[
            "Kestra refused the credentials (HTTP 401)",
            "check the operator's Kestra credentials",
        ],
    );

    // ---- KestraKeyValue ----------------------------------------------------------------
    for (what, key, needles) in [
        (
            "key Kestra refuses: leading `_`",
            "_private".to_string(),
            vec!["spec.key", "should match '^[a-zA-Z0-9][a-zA-Z0-9._-]*$'"],
        ),
        (
            "key Kestra refuses: a space",
            "\"a b\"".to_string(),
            vec!["spec.key", "should match"],
        ),
        (
            "key Kestra refuses: a `/`",
            "a/b".to_string(),
            vec!["spec.key", "should match"],
        ),
        (
            "unicode key `clé`",
            "clé".to_string(),
            vec!["spec.key", "should match"],
        ),
        (
            "key of 256 characters",
            "k".repeat(256),
            vec!["spec.key", "Too long"],
        ),
        (
            "key given as a number",
            "123".to_string(),
            vec!["spec.key in body must be of type string"],
        ),
        (
            "key `inheritance`, which Kestra's GET answers with the inherited listing",
            "inheritance".to_string(),
            vec!["spec.key 'inheritance' cannot be read back"],
        ),
    ] {
        add(
            K,
            what,
            Json,
            &|name, kns| kv_yaml(name, kns, &key, "  value: v\n"),
            Stop::Admission,
            &needles,
        );
    }
    for (what, lines, needles) in [
        (
            "ttl `5m` (not ISO-8601)",
            "  value: v\n  ttl: 5m\n",
            vec!["spec.ttl", "should match"],
        ),
        (
            "ttl `PT` (no part)",
            "  value: v\n  ttl: PT\n",
            vec!["spec.ttl must be an ISO-8601 duration with at least one part"],
        ),
        (
            "ttl `P1Y` (years)",
            "  value: v\n  ttl: P1Y\n",
            vec!["spec.ttl", "should match"],
        ),
        (
            "ttl given as a number",
            "  value: v\n  ttl: 300\n",
            vec!["spec.ttl in body must be of type string"],
        ),
        (
            "type `text` (not one of the seven)",
            "  value: v\n  type: text\n",
            vec!["spec.type", "Unsupported value: \"text\""],
        ),
        (
            "value: null",
            "  value: null\n",
            vec![
                "must validate one and only one schema (oneOf)",
                "Found none valid",
            ],
        ),
        (
            "value and valueFrom together",
            "  value: v\n  valueFrom: {secretKeyRef: {name: s, key: k}}\n",
            vec!["Found 2 valid alternatives"],
        ),
        (
            "valueFrom with both references",
            "  valueFrom: {secretKeyRef: {name: s, key: k}, configMapKeyRef: {name: c, key: k}}\n",
            vec!["set exactly one of secretKeyRef or configMapKeyRef"],
        ),
    ] {
        add(
            K,
            what,
            Json,
            &|name, kns| kv_yaml(name, kns, name, lines),
            Stop::Admission,
            &needles,
        );
    }
    // Every wrong type/value pairing the encoder knows.
    for (type_, value, needle) in [
        (
            "NUMBER",
            "\"abc\"",
            "spec.type NUMBER needs a number, and \"abc\" is not one",
        ),
        (
            "NUMBER",
            "true",
            "spec.type NUMBER cannot hold the boolean value given",
        ),
        (
            "NUMBER",
            "[1, 2]",
            "spec.type NUMBER cannot hold the list value given",
        ),
        (
            "BOOLEAN",
            "\"yes\"",
            "spec.type BOOLEAN needs true or false, and \"yes\" is neither",
        ),
        (
            "BOOLEAN",
            "1",
            "spec.type BOOLEAN cannot hold the number value given",
        ),
        (
            "DATE",
            "\"2026-13-01\"",
            "spec.type DATE needs a date from 0001-01-01 to 9999-12-31 such as 2026-01-31",
        ),
        (
            "DATE",
            "20260101",
            "spec.type DATE cannot hold the number value given",
        ),
        (
            "DATETIME",
            "\"2026-01-31T10:00:00\"",
            "spec.type DATETIME needs a date-time with an offset",
        ),
        (
            "DATETIME",
            "true",
            "spec.type DATETIME cannot hold the boolean value given",
        ),
        (
            "DURATION",
            "\"5 minutes\"",
            "spec.type DURATION needs an ISO-8601 duration",
        ),
        (
            "DURATION",
            "300",
            "spec.type DURATION cannot hold the number value given",
        ),
        (
            "JSON",
            "\"not json\"",
            "spec.type JSON needs an object or a list",
        ),
        (
            "JSON",
            "42",
            "spec.type JSON cannot hold the number value given",
        ),
        (
            "STRING",
            "\"PT5M\"",
            "Kestra always stores \"PT5M\" as DURATION",
        ),
        (
            "STRING",
            "{a: 1}",
            "spec.type STRING cannot hold the object value given",
        ),
    ] {
        add(
            K,
            &format!("type {type_} with value {value}"),
            Json,
            &|name, kns| {
                kv_yaml(
                    name,
                    kns,
                    name,
                    &format!("  type: {type_}\n  value: {value}\n"),
                )
            },
            Stop::Status("InvalidSpec"),
            &[needle, "nothing is written to Kestra"],
        );
    }
    add(
        K,
        "valueFrom a missing Secret",
        Json,
        &|name, kns| {
            kv_yaml(
                name,
                kns,
                name,
                "  valueFrom: {secretKeyRef: {name: no-such-secret, key: k}}\n",
            )
        },
        Stop::Status("ReferenceNotFound"),
        &["Secret", "/no-such-secret does not exist"],
    );
    add(
        K,
        "valueFrom a missing Secret key",
        Json,
        &|name, kns| {
            kv_yaml(
                name,
                kns,
                name,
                "  valueFrom: {secretKeyRef: {name: bad-input-secret, key: absent}}\n",
            )
        },
        Stop::Status("ReferenceNotFound"),
        &["/bad-input-secret has no key \"absent\""],
    );
    add(
        K,
        "valueFrom a missing ConfigMap",
        Json,
        &|name, kns| {
            kv_yaml(
                name,
                kns,
                name,
                "  valueFrom: {configMapKeyRef: {name: no-such-cm, key: k}}\n",
            )
        },
        Stop::Status("ReferenceNotFound"),
        &["ConfigMap", "/no-such-cm does not exist"],
    );
    add(
        K,
        "valueFrom a non-UTF-8 Secret value",
        Json,
        &|name, kns| {
            kv_yaml(
                name,
                kns,
                name,
                "  valueFrom: {secretKeyRef: {name: bad-input-secret, key: binary}}\n",
            )
        },
        Stop::Status("InvalidSpec"),
        &["key \"binary\" of bad-input-secret is not UTF-8 text"],
    );
    // Kestra 1.3 (JsonError) answers 500 naming such a ttl as unparsable, the problem-details
    // generation 422; the operator refuses it before either is asked, whatever the error format.
    for group in [Json, Problem] {
        add(
            K,
            &format!(
                "a ttl too long for Kestra (`P99999999999999999999D`; {group:?} errors) is refused before any write"
            ),
            group,
            &|name, kns| {
                kv_yaml(
                    name,
                    kns,
                    name,
                    "  value: v\n  ttl: P99999999999999999999D\n",
                )
            },
            Stop::Status("InvalidSpec"),
            &[
                "spec.ttl",
                "is too long: the entry would expire after the year 9999",
            ],
        );
    }
    add(
        K,
        "unicode value (round-trip)",
        Json,
        &|name, kns| kv_yaml(name, kns, name, "  value: \"naïve – 日本語 ✓ 🚀\"\n"),
        Stop::Synced(Expect::Kv {
            key: String::new(),
            type_: "STRING".into(),
            value: json!("naïve – 日本語 ✓ 🚀"),
        }),
        &[],
    );
    add(
        K,
        "unicode description (Kestra takes it in an HTTP header)",
        Json,
        &|name, kns| {
            kv_yaml(
                name,
                kns,
                name,
                "  value: v\n  description: \"Überprüfung\"\n",
            )
        },
        Stop::Status("InvalidSpec"),
        &["spec.description may hold printable ASCII only", "'Ü'"],
    );
    add(
        K,
        "a line break in the description",
        Json,
        &|name, kns| {
            kv_yaml(
                name,
                kns,
                name,
                "  value: v\n  description: \"two\\nlines\"\n",
            )
        },
        Stop::Status("InvalidSpec"),
        &["spec.description may hold printable ASCII only", "'\\n'"],
    );
    add(
        K,
        "wrong API token",
        WrongToken,
        &|name, kns| kv_yaml(name, kns, name, "  value: v\n"),
        Stop::Status("Unauthorized"),
        &["Kestra refused the credentials (HTTP 401)"],
    );
    add(
        K,
        "no credentials for a Kestra that requires them",
        NoCredentials,
        &|name, kns| kv_yaml(name, kns, name, "  value: v\n"),
        Stop::Status("Unauthorized"),
        &["Kestra refused the credentials (HTTP 401)"],
    );

    // ---- KestraNamespaceFile -----------------------------------------------------------
    for (what, filename, needles) in [
        (
            "with a `..` segment",
            "scripts/../../etc/passwd",
            vec!["spec.filename must not contain '.' or '..' path segments"],
        ),
        (
            "with a leading `..`",
            "../up.txt",
            vec!["must not contain '.' or '..' path segments"],
        ),
        (
            "under `_flows`",
            "_flows/f.yml",
            vec!["spec.filename must not be under _flows"],
        ),
        (
            "under `/_flows`",
            "/_flows/f.yml",
            vec!["spec.filename must not be under _flows"],
        ),
        (
            "with a trailing `/`",
            "scripts/",
            vec!["spec.filename must name a file"],
        ),
        (
            "with an empty segment `a//b`",
            "a//b.txt",
            vec!["spec.filename must name a file"],
        ),
        (
            "of 1025 characters",
            &"f".repeat(1025),
            vec!["spec.filename", "Too long"],
        ),
    ] {
        add(
            D,
            &format!("filename {what}"),
            Json,
            &|name, kns| file_yaml(name, kns, filename, "  content: x\n"),
            Stop::Admission,
            &needles,
        );
    }
    add(
        D,
        "contentBase64 that is not base64",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.bin"),
                "  contentBase64: \"@@not base64@@\"\n",
            )
        },
        Stop::Admission,
        &["spec.contentBase64", "should match"],
    );
    add(
        D,
        "content given as a number",
        Json,
        &|name, kns| file_yaml(name, kns, &format!("{name}.txt"), "  content: 42\n"),
        Stop::Admission,
        &["spec.content in body must be of type string"],
    );
    add(
        D,
        "content and contentBase64 together",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.txt"),
                "  content: x\n  contentBase64: eA==\n",
            )
        },
        Stop::Admission,
        &[
            "set exactly one of spec.content (text), spec.contentBase64 (binary) or spec.contentFrom",
        ],
    );
    add(
        D,
        &format!(
            "content over etcd's request limit ({OVER_LIMIT} bytes), refused by the apiserver"
        ),
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.txt"),
                &format!("  content: {}\n", "o".repeat(OVER_LIMIT)),
            )
        },
        Stop::Admission,
        &["etcdserver: request is too large"],
    );
    add(
        D,
        &format!("content just under etcd's request limit ({NEAR_LIMIT} bytes, round-trip)"),
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.txt"),
                &format!("  content: {}\n", "u".repeat(NEAR_LIMIT)),
            )
        },
        Stop::Synced(Expect::File {
            path: String::new(),
            bytes: vec![b'u'; NEAR_LIMIT],
        }),
        &[],
    );
    add(
        D,
        "non-UTF-8 bytes through contentBase64 (round-trip)",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.bin"),
                &format!("  contentBase64: {}\n", b64(&all_bytes())),
            )
        },
        Stop::Synced(Expect::File {
            path: String::new(),
            bytes: all_bytes(),
        }),
        &[],
    );
    add(
        D,
        "non-UTF-8 bytes through contentFrom a Secret (round-trip)",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.bin"),
                "  contentFrom: {secretKeyRef: {name: bad-input-secret, key: binary}}\n",
            )
        },
        Stop::Synced(Expect::File {
            path: String::new(),
            bytes: all_bytes(),
        }),
        &[],
    );
    add(
        D,
        "unicode file name and content (round-trip)",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("données/résumé-{name}-日本.txt"),
                "  content: \"ça marche – 日本語 ✓\"\n",
            )
        },
        Stop::Synced(Expect::File {
            path: String::new(),
            bytes: "ça marche – 日本語 ✓".as_bytes().to_vec(),
        }),
        &[],
    );
    add(
        D,
        "a file name with spaces (round-trip)",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("\"my notes {name}.txt\""),
                "  content: spaced\n",
            )
        },
        Stop::Synced(Expect::File {
            path: String::new(),
            bytes: b"spaced".to_vec(),
        }),
        &[],
    );
    add(
        D,
        "a control character in the file name",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("\"{name}\\tname.txt\""),
                "  content: x\n",
            )
        },
        Stop::Admission,
        &["spec.filename must not contain control characters"],
    );
    add(
        D,
        "contentFrom a missing ConfigMap key",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.txt"),
                "  contentFrom: {configMapKeyRef: {name: bad-input-cm, key: absent}}\n",
            )
        },
        Stop::Status("ReferenceNotFound"),
        &["/bad-input-cm has no key \"absent\""],
    );
    add(
        D,
        "contentFrom a missing Secret",
        Json,
        &|name, kns| {
            file_yaml(
                name,
                kns,
                &format!("{name}.txt"),
                "  contentFrom: {secretKeyRef: {name: no-such-secret, key: k}}\n",
            )
        },
        Stop::Status("ReferenceNotFound"),
        &["/no-such-secret does not exist"],
    );
    add(
        D,
        "wrong password",
        WrongPassword,
        &|name, kns| file_yaml(name, kns, &format!("{name}.txt"), "  content: x\n"),
        Stop::Status("Unauthorized"),
        &["HTTP 401"],
    );

    // Fill in the expected Kestra objects of the accepted cases from their manifests.
    for case in &mut cases {
        let name = case
            .resource
            .split('/')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if case.manifest.len() > 1_000_000 {
            case.create = true;
        }
        if let Stop::Synced(expect) = &mut case.stop {
            match expect {
                Expect::Flow { id, source } => {
                    *id = name.clone();
                    *source = case
                        .manifest
                        .split("  source: |\n")
                        .nth(1)
                        .unwrap_or_default()
                        .lines()
                        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
                        .collect();
                }
                Expect::Kv { key, .. } => *key = name.clone(),
                Expect::File { path, .. } => {
                    let filename = case
                        .manifest
                        .lines()
                        .find_map(|l| l.strip_prefix("  filename: "))
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string();
                    *path = format!("/{filename}");
                }
            }
        }
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Reading a double's whole content back

/// Everything a Kestra namespace holds: `flow:<id>`, `kv:<key>`, `file:<path>`, with content.
async fn inventory(
    url: &str,
    auth: Option<(&str, &str)>,
    kns: &str,
) -> anyhow::Result<BTreeMap<String, Value>> {
    let http = reqwest::Client::new();
    let root = format!("{url}/api/v1/main");
    let get = |path: String, query: Vec<(&'static str, String)>| {
        let mut r = http.get(format!("{root}{path}")).query(&query);
        if let Some((u, p)) = auth {
            r = r.basic_auth(u, Some(p));
        }
        r
    };
    let mut out = BTreeMap::new();
    let flows: Vec<Value> = get(format!("/flows/{kns}"), vec![])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    for f in flows {
        let id = f["id"].as_str().unwrap_or_default().to_string();
        let full: Value = get(
            format!("/flows/{kns}/{id}"),
            vec![("source", "true".into())],
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
        out.insert(format!("flow:{id}"), full["source"].clone());
    }
    let keys: Vec<Value> = get(format!("/namespaces/{kns}/kv"), vec![])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    for k in keys {
        let key = k["key"].as_str().unwrap_or_default().to_string();
        let entry: Value = get(format!("/namespaces/{kns}/kv/{key}"), vec![])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        out.insert(
            format!("kv:{key}"),
            json!({"type": entry["type"], "value": entry["value"]}),
        );
    }
    let mut dirs = vec!["/".to_string()];
    while let Some(dir) = dirs.pop() {
        let r = get(
            format!("/namespaces/{kns}/files/directory"),
            vec![("path", dir.clone())],
        )
        .send()
        .await?;
        if r.status() == 404 {
            continue;
        }
        let children: Vec<Value> = r.error_for_status()?.json().await?;
        for child in children {
            let name = child["fileName"].as_str().unwrap_or_default();
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            if child["type"] == "Directory" {
                dirs.push(path);
            } else {
                let bytes = get(
                    format!("/namespaces/{kns}/files"),
                    vec![("path", path.clone())],
                )
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
                out.insert(format!("file:{path}"), json!(b64(&bytes)));
            }
        }
    }
    Ok(out)
}

fn expected_entry(expect: &Expect) -> (String, Value) {
    match expect {
        Expect::Flow { id, source } => (format!("flow:{id}"), json!(source)),
        Expect::Kv { key, type_, value } => {
            (format!("kv:{key}"), json!({"type": type_, "value": value}))
        }
        // The doubles play Kestra 1.3, whose listings show a space in a file name as `+`.
        Expect::File { path, bytes } => (
            format!("file:{}", path.replace(' ', "+")),
            json!(b64(bytes)),
        ),
    }
}

fn shorten(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 200 {
        format!("{}... ({} chars)", &text[..200], text.len())
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------

struct Running {
    ns: testenv::TestNamespace,
    op: Op,
    kns: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_or_reported_and_never_reaches_kestra() -> anyhow::Result<()> {
    let json_fake = private_fake(FakeConfig::default()).await?;
    let problem_fake = private_fake(FakeConfig {
        error_format: ErrorFormat::Problem,
        ..FakeConfig::default()
    })
    .await?;
    let auth_fake = private_fake(FakeConfig {
        basic_auth: Some(BasicAuth {
            user: USER.into(),
            password: PASSWORD.into(),
        }),
        api_key: Some(TOKEN.into()),
        ..FakeConfig::default()
    })
    .await?;
    let url_of = |g: Group| match g {
        Group::Json => json_fake.url(),
        Group::Problem => problem_fake.url(),
        _ => auth_fake.url(),
    };

    // One Kubernetes namespace, Kestra namespace and operator per group.
    let mut running: BTreeMap<Group, Running> = BTreeMap::new();
    for group in GROUPS {
        let ns = namespace(&format!("bad-input-{group:?}"));
        let url = url_of(group);
        let wrong_basic = format!("{USER}:not-the-password");
        let mut spec = OpSpec::new(&[&ns.name], "30s").kestra(&url);
        spec = match group {
            Group::WrongPassword => spec.env("KESTRA_API_BASIC_AUTH", &wrong_basic),
            Group::WrongToken => spec.env("KESTRA_API_API_KEY", "not-the-token"),
            _ => spec,
        };
        let op = start_operator(spec).await?;
        let kns = ns.kestra.clone();
        running.insert(group, Running { ns, op, kns });
    }
    let kns: BTreeMap<Group, String> = running.iter().map(|(g, r)| (*g, r.kns.clone())).collect();
    let cases = catalogue(&kns);
    ensure!(cases.len() >= 40, "only {} cases", cases.len());

    // What the references point at.
    let json_ns = running[&Group::Json].ns.name.clone();
    apply(
        &json_ns,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bad-input-cm}}\ndata:\n  flow.yaml: \"id: x\"\nbinaryData:\n  binary: {}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bad-input-secret}}\ndata:\n  binary: {}\n  text: {}\n",
            b64(&all_bytes()),
            b64(&all_bytes()),
            b64(b"plain")
        ),
    )
    .await?;

    // Apply every case; collect what was refused on the way in.
    let mut failures = Vec::new();
    for case in &cases {
        let ns = &running[&case.group].ns.name;
        let verb = if case.create { "create" } else { "apply" };
        let output = kubectl_stdin(&["-n", ns, verb, "-f", "-"], &case.manifest).await?;
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        match (&case.stop, output.status.success()) {
            (Stop::Kubectl | Stop::Admission, true) => failures.push(format!(
                "{}: {}: accepted, but must be refused",
                case.kind, case.what
            )),
            (Stop::Kubectl | Stop::Admission, false) => {
                for needle in &case.needles {
                    if !stderr.contains(needle.as_str()) {
                        failures.push(format!(
                            "{}: {}: the refusal lacks {needle:?}: {}",
                            case.kind,
                            case.what,
                            stderr.trim()
                        ));
                    }
                }
                if matches!(case.stop, Stop::Kubectl) && stderr.contains("Error from server") {
                    failures.push(format!(
                        "{}: {}: expected kubectl to refuse it, the server did: {stderr}",
                        case.kind, case.what
                    ));
                }
            }
            (_, false) => failures.push(format!(
                "{}: {}: refused, but must be accepted: {}",
                case.kind,
                case.what,
                stderr.trim()
            )),
            (_, true) => {}
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));

    // Wait until every accepted case reaches its condition.
    let last_pending = std::sync::Mutex::new(String::new());
    let reached = wait_until(
        Duration::from_secs(90),
        Duration::from_millis(700),
        || async {
            let mut pending = Vec::new();
            let mut objects: BTreeMap<(Group, String), Value> = BTreeMap::new();
            for (group, r) in &running {
                let list = get_json(
                    &r.ns.name,
                    "kestraflows,kestrakeyvalues,kestranamespacefiles",
                )
                .await?;
                for item in list["items"].as_array().cloned().unwrap_or_default() {
                    let resource = format!(
                        "{}/{}",
                        item["kind"].as_str().unwrap_or_default().to_lowercase(),
                        item["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    objects.insert((*group, resource), item);
                }
            }
            for case in &cases {
                let Some(obj) = objects.get(&(case.group, case.resource.clone())) else {
                    if !matches!(case.stop, Stop::Kubectl | Stop::Admission) {
                        pending.push(format!("{}: missing", case.resource));
                    }
                    continue;
                };
                let Some(ready) = condition(obj, "Ready") else {
                    pending.push(format!("{}: no Ready condition", case.resource));
                    continue;
                };
                let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
                // A failed sync that may clear by itself (a missing reference, refused
                // credentials) leaves `status.observedGeneration` alone, so that the retry still
                // handles the spec as new; its Ready condition says which generation it judged.
                let judged = ready["observedGeneration"] == obj["metadata"]["generation"];
                let ok = match &case.stop {
                    Stop::Synced(_) => ready["status"] == "True" && current,
                    Stop::Status(reason) => {
                        ready["status"] == "False" && ready["reason"] == *reason && judged
                    }
                    _ => false,
                };
                if !ok {
                    pending.push(format!("{}: {}", case.resource, ready_reason(obj)));
                }
            }
            if !pending.is_empty() {
                *last_pending.lock().unwrap() = format!("{pending:#?}");
            }
            ensure!(pending.is_empty(), "not there yet: {pending:?}");
            Ok(objects)
        },
    )
    .await
    .with_context(|| {
        format!(
            "the accepted cases did not reach their expected condition; last seen: {}",
            last_pending.lock().unwrap()
        )
    })?;

    // Each status case: the message says what is wrong; Stalled when only a spec change helps.
    for case in &cases {
        let Stop::Status(reason) = &case.stop else {
            continue;
        };
        let obj = &reached[&(case.group, case.resource.clone())];
        let message = condition(obj, "Ready").unwrap()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for needle in &case.needles {
            if !message.contains(needle.as_str()) {
                failures.push(format!(
                    "{}: {}: the message lacks {needle:?}: {message}",
                    case.kind, case.what
                ));
            }
        }
        let stalled = condition(obj, "Stalled").is_some_and(|c| c["status"] == "True");
        let must_stall = matches!(*reason, "InvalidSpec" | "Rejected");
        if stalled != must_stall {
            failures.push(format!(
                "{}: {}: Stalled is {stalled}, expected {must_stall}: {}",
                case.kind, case.what, obj["status"]
            ));
        }
    }

    // Every failing case has a Warning Event with its reason.
    for (group, r) in &running {
        let want: Vec<(&Case, &str)> = cases
            .iter()
            .filter(|c| c.group == *group)
            .filter_map(|c| match c.stop {
                Stop::Status(reason) => Some((c, reason)),
                _ => None,
            })
            .collect();
        let seen = wait_until(
            Duration::from_secs(20),
            Duration::from_millis(500),
            || async {
                let events = all_events(&r.ns.name).await?;
                let missing: Vec<String> = want
                    .iter()
                    .filter(|(c, reason)| {
                        let name = c.resource.split('/').nth(1).unwrap_or_default();
                        !events
                            .iter()
                            .any(|e| e.name == name && e.reason == *reason && e.type_ == "Warning")
                    })
                    .map(|(c, reason)| format!("{} {reason}", c.resource))
                    .collect();
                ensure!(missing.is_empty(), "no Warning Event for {missing:?}");
                Ok(())
            },
        )
        .await;
        if let Err(e) = seen {
            failures.push(format!("{group:?}: {e:#}"));
        }
    }

    // Nothing but refusals from the double that requires a login (read before the read-back).
    for (method, route, status, n) in counters(&auth_fake.url()).await? {
        if status != 401 {
            failures.push(format!(
                "the wrong credentials got {method} {route} answered {status} x{n}"
            ));
        }
    }

    // Kestra holds exactly the accepted cases, byte for byte, and nothing else.
    for (group, url) in [
        (Group::Json, json_fake.url()),
        (Group::Problem, problem_fake.url()),
        (Group::WrongPassword, auth_fake.url()),
        (Group::WrongToken, auth_fake.url()),
        (Group::NoCredentials, auth_fake.url()),
    ] {
        let auth = (url == auth_fake.url()).then_some((USER, PASSWORD));
        let have = inventory(&url, auth, &kns[&group]).await?;
        let want: BTreeMap<String, Value> = cases
            .iter()
            .filter(|c| c.group == group)
            .filter_map(|c| match &c.stop {
                Stop::Synced(expect) => Some(expected_entry(expect)),
                _ => None,
            })
            .collect();
        let keys = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<BTreeSet<_>>();
        if keys(&have) != keys(&want) {
            failures.push(format!(
                "{group:?}: Kestra holds {:?}, expected exactly {:?}",
                keys(&have),
                keys(&want)
            ));
        }
        for (key, value) in &want {
            if let Some(got) = have.get(key)
                && got != value
            {
                failures.push(format!(
                    "{group:?}: {key} is {} in Kestra, expected {}",
                    shorten(got),
                    shorten(value)
                ));
            }
        }
    }
    // The operators kept running through all of it, and none panicked.
    for (group, r) in running.iter_mut() {
        if let Some(status) = r.op.process.exit_status()? {
            failures.push(format!("{group:?}: the operator exited ({status})"));
        }
        let logs = r.op.logs();
        if logs.contains("panicked") {
            failures.push(format!(
                "{group:?}: the operator panicked:\n{}",
                r.op.process.tail(40)
            ));
        }
        let health = reqwest::get(format!("http://{}/healthz", r.op.metrics_addr)).await;
        if !health.is_ok_and(|h| h.status().is_success()) {
            failures.push(format!("{group:?}: /healthz does not answer 200"));
        }
    }

    if let Ok(path) = std::env::var("BAD_INPUT_TABLE") {
        std::fs::write(&path, markdown(&cases)).with_context(|| format!("writing {path}"))?;
    }
    ensure!(
        failures.is_empty(),
        "{} problems in {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("bad input: {} cases, all as expected", cases.len());
    Ok(())
}

/// The catalogue as the table in docs/reliability.md.
fn markdown(cases: &[Case]) -> String {
    let mut out = String::from(
        "| # | Kind | Input | Stopped at | Message (excerpt) |\n|---|---|---|---|---|\n",
    );
    for (i, case) in cases.iter().enumerate() {
        let (at, message) = match &case.stop {
            Stop::Kubectl => ("kubectl".to_string(), case.needles.join(" … ")),
            Stop::Admission => ("admission".to_string(), case.needles.join(" … ")),
            Stop::Status(reason) => (
                format!(
                    "status: `{reason}`{}",
                    if matches!(*reason, "InvalidSpec" | "Rejected") {
                        ", Stalled"
                    } else {
                        ""
                    }
                ),
                case.needles.join(" … "),
            ),
            Stop::Synced(_) => (
                "accepted: Synced".to_string(),
                "Kestra holds the exact bytes".to_string(),
            ),
        };
        let what = case.what.replace('|', "\\|");
        let message = message.replace('|', "\\|").replace('\n', " ");
        out.push_str(&format!(
            "| {} | {} | {what} | {at} | {message} |\n",
            i + 1,
            case.kind
        ));
    }
    out
}
