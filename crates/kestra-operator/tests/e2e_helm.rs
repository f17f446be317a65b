//! The Helm chart (`charts/kestra-operator`), tested for real: `helm` is built from its Go module
//! (`scripts/build-helm`, cached), the chart lints clean, its values schema refuses wrong values
//! and describes every value, its Chart.yaml carries the Artifact Hub metadata, its CRDs are those
//! of `deploy/crds/` (also when templated, and a release then upgrades and keeps them), each
//! credential style and the metrics port render what the operator reads, the rendered objects are
//! applied to the test control plane, and the operator then runs as a process **with the chart's
//! ServiceAccount token** (and the environment the Deployment would give it) and brings the
//! quick-start manifests to Ready, proving the RBAC is enough; the same identity is refused what it
//! does not need.
//!
//! Nothing here is skipped: if `helm` cannot be built, the tests fail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use serde_json::{Value, json};
use testenv::{Operator, TestEnv, wait_until};

const RELEASE: &str = "rel";
const FULLNAME: &str = "rel-kestra-operator";
const IMAGE: &[&str] = &[
    "--set",
    "image.repository=registry.example/kestra-operator",
    "--set",
    "image.tag=e2e",
];
const POLL: Duration = Duration::from_millis(250);
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The tests that run an operator take turns: every operator watches every
/// ClusterKestraInstance, and one test's must not write the status of another's.
static OPERATOR_RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// helm

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the repository root")
        .to_path_buf()
}

fn chart() -> PathBuf {
    root().join("charts/kestra-operator")
}

/// The `helm` binary, built once per process by `scripts/build-helm` (cached by version outside
/// the repository; a cold build takes a few minutes). Panics with the script's output if it fails.
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let script = root().join("scripts/build-helm");
        let output = Command::new(&script)
            .current_dir(root())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "scripts/build-helm failed ({}):\n{}\n{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            path.is_file(),
            "scripts/build-helm printed {path:?}, not a file"
        );
        path
    })
}

/// `helm ARGS`, with helm's own config and cache directories kept under the target directory.
fn helm(args: &[&str]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    Command::new(helm_bin())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("running helm")
}

/// `helm template rel charts/kestra-operator --namespace NS <image> ARGS`, parsed into objects.
fn render(namespace: &str, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let chart = chart();
    let mut all = vec![
        "template",
        RELEASE,
        chart.to_str().context("chart path")?,
        "--namespace",
        namespace,
    ];
    all.extend_from_slice(IMAGE);
    all.extend_from_slice(args);
    let output = helm(&all);
    ensure!(
        output.status.success(),
        "helm {} failed: {}",
        all.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).context("helm output is UTF-8")?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("parsing the rendered chart:\n{text}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// `helm template` that must fail; returns its error output.
fn render_refused(args: &[&str]) -> String {
    let chart = chart();
    let mut all = vec!["template", RELEASE, chart.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = helm(&all);
    assert!(
        !output.status.success(),
        "helm {} should fail, rendered:\n{}",
        all.join(" "),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "want one {kind}, got {}", found.len());
    found[0]
}

/// The metrics Service (the webhook has its own).
fn metrics_service(objects: &[Value]) -> &Value {
    let name = format!("{FULLNAME}-metrics");
    of_kind(objects, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no Service {name}"))
}

fn container(objects: &[Value]) -> &Value {
    let deployment = one(objects, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The container's environment by name (each variable once).
fn env_of(objects: &[Value]) -> BTreeMap<String, Value> {
    let mut vars = BTreeMap::new();
    for var in container(objects)["env"].as_array().expect("env") {
        let name = var["name"].as_str().expect("env name").to_string();
        assert!(
            vars.insert(name.clone(), var.clone()).is_none(),
            "{name} is set twice"
        );
    }
    vars
}

fn secret_ref(var: &Value) -> (&str, &str, bool) {
    let r = &var["valueFrom"]["secretKeyRef"];
    (
        r["name"].as_str().expect("secretKeyRef.name"),
        r["key"].as_str().expect("secretKeyRef.key"),
        r["optional"].as_bool().unwrap_or(false),
    )
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The RBAC kinds and the namespaces of the Roles.
fn rbac(objects: &[Value]) -> (Vec<String>, Vec<String>) {
    let kinds = kinds(objects)
        .into_iter()
        .filter(|k| k.contains("Role"))
        .collect();
    let mut role_namespaces: Vec<String> = of_kind(objects, "Role")
        .iter()
        .map(|r| {
            r["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    role_namespaces.sort();
    (kinds, role_namespaces)
}

// ---------------------------------------------------------------------------------------------
// lint, CRDs, rendering (no control plane needed)

/// `helm lint --strict charts/kestra-operator ARGS`: whether it passed, and its output.
fn lint(args: &[&str]) -> (bool, String) {
    let chart = chart();
    let mut all = vec!["lint", "--strict", chart.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = helm(&all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `helm lint --strict ARGS` passes without a warning or an error.
fn assert_lints_clean(args: &[&str]) {
    let (passed, text) = lint(args);
    assert!(passed, "helm lint {args:?} failed:\n{text}");
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ERROR]"),
        "helm lint {args:?} is not clean:\n{text}"
    );
    assert!(text.contains("0 chart(s) failed"), "{text}");
}

/// The values of every rendering below, and of the README's install commands: each lints clean
/// (the values schema accepts it).
const DOCUMENTED_VALUES: &[&[&str]] = &[
    &[],
    &["--set", "operator.apiKey=token"],
    &["--set", "operator.basicAuth=admin@kestra.io:pa55"],
    &["--set", "operator.existingSecret=kestra-credentials"],
    &[
        "--set",
        "operator.existingSecret=kestra-credentials",
        "--set",
        "operator.existingSecretKeys.apiKey=token",
        "--set",
        "operator.existingSecretKeys.basicAuth=kestra-basic-auth",
    ],
    &[
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "replicas=2",
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "kestra.caSecret.name=kestra-ca",
    ],
    &[
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "kestra.url=https://kestra.example:8443",
        "--set",
        "kestra.tenant=acme",
        "--set",
        "resyncPeriod=2m",
        "--set",
        "logLevel=debug",
        "--set",
        "logFormat=text",
    ],
    &[
        "--set",
        "replicas=3",
        "--set",
        "leaderElection.enabled=false",
    ],
    &["--set", "leaderElection.enabled=false"],
    &[
        "--set",
        "kestra.legacyApiRoot=true",
        "--set",
        "kestra.timeout=1m30s",
    ],
    &["--set", "operator.enabled=false"],
    &[
        "--set",
        "metrics.port=9090",
        "--set",
        "serviceMonitor.enabled=true",
    ],
    &["--set", "crds.templated=true"],
    &[
        "--set",
        "crds.templated=true",
        "--set",
        "operator.enabled=false",
    ],
    &[
        "--set",
        r"logLevel=info\,kestra_operator=debug",
        "--set",
        "extraEnv[0].name=MIN_BACKOFF",
        "--set",
        "extraEnv[0].value=2s",
        "--set",
        "image.repository=registry.example:5000/ops/kestra-operator",
        "--set",
        "image.tag=0.1.0",
    ],
];

#[test]
fn chart_lints_clean() {
    for args in DOCUMENTED_VALUES {
        assert_lints_clean(args);
    }
}

/// Wrong values, each with the schema's complaint (`at '<path>': ...`): refused by `helm lint`
/// and by `helm template` (and so by install and upgrade) before anything is rendered.
const REFUSED_VALUES: &[(&str, &str)] = &[
    ("replicas=two", "at '/replicas': got string, want integer"),
    ("replicas=0", "at '/replicas'"),
    (
        "logFormat=xml",
        "at '/logFormat': value must be one of 'text', 'json'",
    ),
    ("logLevel=loud", "at '/logLevel'"),
    ("kestra.url=ftp://x", "at '/kestra/url'"),
    ("kestra.url=http://admin:pw@kestra:8080", "at '/kestra/url'"),
    ("kestra.url=", "at '/kestra/url'"),
    (
        "kestra.timeout=30",
        "at '/kestra/timeout': got number, want string",
    ),
    ("kestra.timeout=30 seconds", "at '/kestra/timeout'"),
    ("resyncPeriod=0s", "at '/resyncPeriod'"),
    ("kestra.tenant=Acme", "at '/kestra/tenant'"),
    ("concurrency=eight", "at '/concurrency'"),
    ("image.pullPolicy=Sometimes", "at '/image/pullPolicy'"),
    ("metrics.port=70000", "at '/metrics/port'"),
    ("metrics.port=metrics", "at '/metrics/port'"),
    ("service.type=ExternalName", "at '/service/type'"),
    (
        "serviceMonitor.interval=30",
        "at '/serviceMonitor/interval'",
    ),
    (
        "crds.templated=yes",
        "at '/crds/templated': got string, want boolean",
    ),
    ("operator.enabled=maybe", "at '/operator/enabled'"),
    ("operator.basicAuth=no-colon", "at '/operator/basicAuth'"),
    ("watchNamespaces=team-a", "at '/watchNamespaces'"),
    ("watchNamespaces={Team_A}", "at '/watchNamespaces/0'"),
    // unknown keys, at the top and inside a structure the chart owns: typos fail loudly
    (
        "replica=2",
        "at '': additional properties 'replica' not allowed",
    ),
    (
        "kestra.tennant=acme",
        "at '/kestra': additional properties 'tennant' not allowed",
    ),
    (
        "metrics.enabled=true",
        "at '/metrics': additional properties 'enabled' not allowed",
    ),
];

const SCHEMA_ERROR: &str = "values don't meet the specifications of the schema";

#[test]
fn values_schema_refuses_wrong_values() {
    for (value, complaint) in REFUSED_VALUES {
        let (passed, text) = lint(&["--set", value]);
        assert!(!passed, "helm lint --set {value} passed:\n{text}");
        assert!(
            text.contains("[ERROR]") && text.contains(complaint),
            "helm lint --set {value}: want {complaint:?} in:\n{text}"
        );
        let err = render_refused(&["--set", value]);
        assert!(
            err.contains(SCHEMA_ERROR) && err.contains(complaint),
            "helm template --set {value}: want {complaint:?} in:\n{err}"
        );
    }
}

/// `values.schema.json` describes every value of `values.yaml` (a type and a description for each
/// key, nested keys under an object schema) and nothing that `values.yaml` lacks.
#[test]
fn values_schema_covers_every_value() {
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml parses");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart().join("values.schema.json")).expect("values.schema.json"),
    )
    .expect("values.schema.json parses");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys"
    );
    let mut problems = Vec::new();
    covers(&schema, &schema, &values, "", &mut problems);
    // and the other way: no schema property without a value (but `global`, Helm's own)
    unused(&schema, &schema, &values, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A schema with its `$ref` (to `#/definitions/...`) resolved.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            &root["definitions"][name]
        }
        None => schema,
    }
}

fn covers(root: &Value, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = value.as_object() else { return };
    for (key, child) in map {
        let at = format!("{path}.{key}");
        let property = &schema["properties"][key];
        if property.is_null() {
            problems.push(format!("{at}: no schema"));
            continue;
        }
        if property["description"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            problems.push(format!("{at}: no description"));
        }
        let resolved = resolve(root, property);
        if !resolved["type"].is_string() {
            problems.push(format!("{at}: no type"));
        }
        if resolved["type"] == "object" && resolved["properties"].is_object() {
            if resolved["additionalProperties"] != false {
                problems.push(format!("{at}: the chart's structure allows unknown keys"));
            }
            covers(root, resolved, child, &at, problems);
        }
    }
}

fn unused(root: &Value, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (key, property) in properties {
        let at = format!("{path}.{key}");
        match value.get(key) {
            None if at == ".global" => {}
            None => problems.push(format!("{at}: in the schema, not in values.yaml")),
            Some(child) => unused(root, resolve(root, property), child, &at, problems),
        }
    }
}

#[test]
fn chart_crds_equal_deploy_crds() {
    let deploy = root().join("deploy/crds/kestra-operator.crds.yaml");
    let expected = std::fs::read_to_string(&deploy).expect("deploy/crds is committed");
    let dir = chart().join("crds");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("charts/kestra-operator/crds")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(
        files,
        vec![dir.join("kestra-operator.crds.yaml")],
        "the chart's crds/ holds exactly the one file of deploy/crds/"
    );
    let actual = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        actual == expected,
        "charts/kestra-operator/crds/kestra-operator.crds.yaml differs from deploy/crds/: \
         cp deploy/crds/kestra-operator.crds.yaml charts/kestra-operator/crds/"
    );
}

/// The CRDs of `deploy/crds/`, each as the text of its document (without the `---` line).
fn deploy_crd_texts() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/crds/kestra-operator.crds.yaml"))
        .expect("deploy/crds is committed");
    let docs: Vec<String> = text
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(docs.len(), 5, "five CRDs in deploy/crds");
    docs
}

const KEEP: &str = "  annotations:\n    helm.sh/resource-policy: keep\n";

/// `crds.templated=true`: the five CRDs come from `templates/` too, each the text of
/// `deploy/crds/` byte for byte but for the `helm.sh/resource-policy: keep` annotation (so that
/// `helm uninstall` keeps them); by default no CRD is rendered from `templates/` (Helm installs
/// `crds/` alone), and the templated CRDs do not depend on `operator.enabled`.
#[test]
fn templated_crds_equal_deploy_crds() {
    let chart = chart();
    let output = helm(&[
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--set",
        "crds.templated=true",
        "--show-only",
        "templates/crds.yaml",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let rendered: Vec<&str> = text
        .split("---\n# Source: kestra-operator/templates/crds.yaml\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    let expected = deploy_crd_texts();
    assert_eq!(rendered.len(), expected.len(), "{text}");
    for (rendered, expected) in rendered.iter().zip(&expected) {
        assert_eq!(
            rendered.matches(KEEP).count(),
            1,
            "one keep annotation:\n{rendered}"
        );
        let (head, rest) = rendered.split_once(KEEP).unwrap();
        assert!(head.ends_with("\nmetadata:\n"), "{head}");
        let without = format!("{head}{rest}");
        assert!(
            without.trim_end() == expected.trim_end(),
            "the templated CRD differs from deploy/crds/ (other than the annotation):\n{rendered}"
        );
    }
    // parsed: the same objects, with the annotation
    let objects = render("ops", &["--set", "crds.templated=true"]).unwrap();
    let crds = of_kind(&objects, "CustomResourceDefinition");
    assert_eq!(crds.len(), 5);
    for (crd, expected) in crds.iter().zip(&expected) {
        let mut expected: Value = serde_saphyr::from_str(expected).unwrap();
        expected["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
        assert_eq!(**crd, expected);
    }
    // default: none from templates/
    let objects = render("ops", &[]).unwrap();
    assert!(of_kind(&objects, "CustomResourceDefinition").is_empty());
    // the CRDs alone with operator.enabled=false, as crds/ would be
    let objects = render(
        "ops",
        &[
            "--set",
            "crds.templated=true",
            "--set",
            "operator.enabled=false",
        ],
    )
    .unwrap();
    assert_eq!(
        kinds(&objects),
        ["CustomResourceDefinition"; 5],
        "only the CRDs"
    );
}

/// `metrics.port`: one value moves the listen address, the container port, the probes, the
/// Service's target and the ServiceMonitor's endpoint together (the default, 8080, is checked by
/// `assert_common`).
#[test]
fn renders_a_configured_metrics_port() {
    let objects = render(
        "ops",
        &[
            "--set",
            "metrics.port=9464",
            "--set",
            "serviceMonitor.enabled=true",
        ],
    )
    .unwrap();
    let c = container(&objects);
    assert_eq!(env_of(&objects)["METRICS_ADDR"]["value"], "0.0.0.0:9464");
    let ports = c["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 2, "metrics and webhook");
    assert_eq!(ports[0]["containerPort"], 9464);
    assert_eq!(ports[1]["name"], "webhook");
    // a named port resolves to the container port of that name
    let container_port = |port: &Value| -> Value {
        match port.as_str() {
            Some(name) => ports
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["containerPort"].clone())
                .unwrap_or_else(|| panic!("no container port named {name}")),
            None => port.clone(),
        }
    };
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container_port(&c[probe]["httpGet"]["port"]),
            9464,
            "{probe}"
        );
    }
    let service = metrics_service(&objects);
    let service_ports = service["spec"]["ports"].as_array().expect("Service ports");
    assert_eq!(service_ports.len(), 1);
    assert_eq!(container_port(&service_ports[0]["targetPort"]), 9464);
    assert_eq!(
        service_ports[0]["port"], 8080,
        "service.port is the Service's own"
    );
    // the ServiceMonitor names a port of the Service, which targets the metrics port
    let monitor = one(&objects, "ServiceMonitor");
    let endpoint = &monitor["spec"]["endpoints"][0];
    let scraped = service_ports
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the ServiceMonitor's port is a port of the Service");
    assert_eq!(container_port(&scraped["targetPort"]), 9464);
    // nothing left at the old fixed address
    assert!(
        !serde_json::to_string(&objects)
            .unwrap()
            .contains("0.0.0.0:8080")
    );
}

/// Chart.yaml carries only keys Helm defines and annotations Artifact Hub reads, and those
/// agree with the repository: the license of the workspace, the three CRDs of `deploy/crds/`, the
/// manifests of `examples/quickstart.yaml` as the CRD examples.
#[test]
fn chart_yaml_has_artifact_hub_metadata() {
    let chart_yaml: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    const HELM_KEYS: &[&str] = &[
        "apiVersion",
        "name",
        "version",
        "kubeVersion",
        "description",
        "type",
        "keywords",
        "home",
        "sources",
        "dependencies",
        "maintainers",
        "icon",
        "appVersion",
        "deprecated",
        "annotations",
    ];
    for key in chart_yaml.as_object().unwrap().keys() {
        assert!(HELM_KEYS.contains(&key.as_str()), "Chart.yaml key {key}");
    }
    let annotations = chart_yaml["annotations"].as_object().expect("annotations");
    for key in annotations.keys() {
        assert!(
            key.starts_with("artifacthub.io/"),
            "{key}: an annotation Artifact Hub does not read"
        );
    }
    let annotation = |key: &str| -> &str {
        annotations[&format!("artifacthub.io/{key}")]
            .as_str()
            .unwrap_or_else(|| panic!("artifacthub.io/{key}"))
    };
    let yaml = |key: &str| -> Value {
        serde_saphyr::from_str(annotation(key))
            .unwrap_or_else(|e| panic!("artifacthub.io/{key} is not YAML: {e}"))
    };
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains(&format!("license = \"{}\"", annotation("license"))),
        "the workspace's license"
    );
    assert_eq!(annotation("category"), "integration-delivery");
    for flag in ["prerelease", "operator", "containsSecurityUpdates"] {
        assert!(
            ["true", "false"].contains(&annotation(flag)),
            "artifacthub.io/{flag}"
        );
    }
    assert!(
        [
            "Basic Install",
            "Seamless Upgrades",
            "Full Lifecycle",
            "Deep Insights",
            "Auto Pilot"
        ]
        .contains(&annotation("operatorCapabilities"))
    );
    let links = yaml("links");
    for link in links.as_array().expect("links is a list") {
        assert!(link["name"].is_string(), "{link}");
        assert!(
            link["url"]
                .as_str()
                .unwrap_or_default()
                .starts_with("https://"),
            "{link}"
        );
    }
    let changes = yaml("changes");
    let changes = changes.as_array().expect("changes is a list");
    assert!(!changes.is_empty());
    for change in changes {
        assert!(
            [
                "added",
                "changed",
                "deprecated",
                "removed",
                "fixed",
                "security"
            ]
            .contains(&change["kind"].as_str().unwrap_or_default()),
            "{change}"
        );
        assert!(change["description"].is_string(), "{change}");
    }
    // the CRDs as deploy/crds/ defines them
    let crds = yaml("crds");
    let crds = crds.as_array().expect("crds is a list");
    let defined: Vec<Value> = deploy_crd_texts()
        .iter()
        .map(|t| serde_saphyr::from_str(t).unwrap())
        .collect();
    assert_eq!(crds.len(), defined.len());
    for (listed, crd) in crds.iter().zip(&defined) {
        assert_eq!(listed["kind"], crd["spec"]["names"]["kind"]);
        assert_eq!(listed["name"], crd["metadata"]["name"]);
        assert_eq!(listed["version"], crd["spec"]["versions"][0]["name"]);
        assert!(listed["displayName"].is_string() && listed["description"].is_string());
    }
    // the examples are the quick start's (manifests real Kestra accepts as written)
    let quickstart: Vec<Value> = serde_saphyr::from_multiple(
        &std::fs::read_to_string(root().join("examples/quickstart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(yaml("crdsExamples"), Value::Array(quickstart));
}

/// What every rendering shares: the hardened pod, probes, resources, identity and the metrics
/// Service, and the Kestra URL.
fn assert_common(objects: &[Value]) {
    let c = container(objects);
    assert_eq!(c["image"], "registry.example/kestra-operator:e2e");
    assert_eq!(c["args"], json!(["run"]));
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    let pod = &one(objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(c["resources"]["requests"]["cpu"], "10m");
    assert_eq!(c["resources"]["requests"]["memory"], "32Mi");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let env = env_of(objects);
    assert_eq!(env["METRICS_ADDR"]["value"], "0.0.0.0:8080");
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert!(env["KESTRA_API_URL"]["value"].is_string());
    let service = metrics_service(objects);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(
        service["spec"]["selector"],
        one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(one(objects, "ServiceAccount")["metadata"]["name"], FULLNAME);
}

/// (a) the documented `operator.apiKey`: a chart-made Secret, passed as KESTRA_API_API_KEY.
#[test]
fn renders_the_documented_api_key() {
    let objects = render("ops", &["--set", "operator.apiKey=s3cr3t-token"]).unwrap();
    assert_common(&objects);
    let secret = one(&objects, "Secret");
    assert_eq!(secret["metadata"]["name"], FULLNAME);
    assert_eq!(secret["metadata"]["namespace"], "ops");
    assert_eq!(secret["data"], json!({"apiKey": b64("s3cr3t-token")}));
    let env = env_of(&objects);
    assert_eq!(
        secret_ref(&env["KESTRA_API_API_KEY"]),
        (FULLNAME, "apiKey", false)
    );
    assert!(!env.contains_key("KESTRA_API_BASIC_AUTH"));
    // the credential is never in the Deployment itself
    assert!(
        !serde_json::to_string(one(&objects, "Deployment"))
            .unwrap()
            .contains("s3cr3t")
    );
    let (kinds, role_namespaces) = rbac(&objects);
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding"
        ],
        "cluster-wide, the webhook's configuration and the ClusterKestraInstances, plus the \
         leader-election Role"
    );
    assert_eq!(role_namespaces, ["ops"]);
    assert!(!env.contains_key("WATCH_NAMESPACES"));
    // leader election is on by default, on a Lease in the release namespace
    assert_eq!(env["LEADER_ELECTION"]["value"], "true");
    assert_eq!(
        env["LEADER_ELECTION_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(env["LEADER_ELECTION_LEASE"]["value"], FULLNAME);
}

/// (b) the documented `operator.basicAuth`: a chart-made Secret, passed as KESTRA_API_BASIC_AUTH.
#[test]
fn renders_the_documented_basic_auth() {
    let objects = render("ops", &["--set", "operator.basicAuth=admin@kestra.io:pa55"]).unwrap();
    assert_common(&objects);
    let secret = one(&objects, "Secret");
    assert_eq!(
        secret["data"],
        json!({"basicAuth": b64("admin@kestra.io:pa55")})
    );
    let env = env_of(&objects);
    assert_eq!(
        secret_ref(&env["KESTRA_API_BASIC_AUTH"]),
        (FULLNAME, "basicAuth", false)
    );
    assert!(!env.contains_key("KESTRA_API_API_KEY"));
    assert!(
        !serde_json::to_string(one(&objects, "Deployment"))
            .unwrap()
            .contains("pa55")
    );
}

/// (c) `operator.existingSecret`: no Secret from the chart; both keys referenced, optional,
/// with configurable key names.
#[test]
fn renders_an_existing_secret() {
    let objects = render(
        "ops",
        &[
            "--set",
            "operator.existingSecret=kestra-credentials",
            "--set",
            "operator.existingSecretKeys.apiKey=token",
        ],
    )
    .unwrap();
    assert_common(&objects);
    assert!(of_kind(&objects, "Secret").is_empty(), "no chart Secret");
    let env = env_of(&objects);
    assert_eq!(
        secret_ref(&env["KESTRA_API_API_KEY"]),
        ("kestra-credentials", "token", true)
    );
    assert_eq!(
        secret_ref(&env["KESTRA_API_BASIC_AUTH"]),
        ("kestra-credentials", "basicAuth", true)
    );
    // and nothing at all when Kestra has no authentication
    let objects = render("ops", &[]).unwrap();
    assert!(of_kind(&objects, "Secret").is_empty());
    let env = env_of(&objects);
    assert!(!env.contains_key("KESTRA_API_API_KEY") && !env.contains_key("KESTRA_API_BASIC_AUTH"));
}

/// (d) `watchNamespaces`: a Role and RoleBinding per namespace, no ClusterRole, WATCH_NAMESPACES.
#[test]
fn renders_roles_per_watched_namespace() {
    let objects = render(
        "ops",
        &[
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "kestra.url=https://kestra.example:8443",
            "--set",
            "kestra.tenant=acme",
            "--set",
            "resyncPeriod=2m",
            "--set",
            "logLevel=debug",
            "--set",
            "logFormat=text",
        ],
    )
    .unwrap();
    assert_common(&objects);
    let (kinds, role_namespaces) = rbac(&objects);
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Role",
            "Role",
            "Role",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding"
        ],
        "the ClusterRoles are the webhook configuration's and the ClusterKestraInstances'"
    );
    assert_webhook_role_only(&objects, "ops");
    // the watched namespaces; the release namespace for the Lease and for the Secrets of
    // ClusterKestraInstances; `default` for the Events about ClusterKestraInstances
    assert_eq!(
        role_namespaces,
        ["default", "ops", "ops", "team-a", "team-b"]
    );
    for binding in of_kind(&objects, "RoleBinding") {
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "ops"}])
        );
    }
    let env = env_of(&objects);
    assert_eq!(env["WATCH_NAMESPACES"]["value"], "team-a,team-b");
    assert_eq!(
        env["KESTRA_API_URL"]["value"],
        "https://kestra.example:8443"
    );
    assert_eq!(env["KESTRA_TENANT"]["value"], "acme");
    assert_eq!(env["RESYNC_PERIOD"]["value"], "2m");
    assert_eq!(env["LOG_LEVEL"]["value"], "debug");
    assert_eq!(env["LOG_FORMAT"]["value"], "text");
}

/// Replicas, leader election, the ServiceMonitor, the CA, the legacy root, `operator.enabled`,
/// and values that contradict each other.
#[test]
fn renders_the_other_options() {
    // more than one replica forces leader election
    let objects = render(
        "ops",
        &[
            "--set",
            "replicas=3",
            "--set",
            "leaderElection.enabled=false",
        ],
    )
    .unwrap();
    assert_eq!(one(&objects, "Deployment")["spec"]["replicas"], 3);
    assert_eq!(env_of(&objects)["LEADER_ELECTION"]["value"], "true");
    // one replica without leader election: no Lease RBAC, and no overlap during a rollout
    let objects = render("ops", &["--set", "leaderElection.enabled=false"]).unwrap();
    assert!(!env_of(&objects).contains_key("LEADER_ELECTION"));
    assert_eq!(
        rbac(&objects).0,
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding"
        ]
    );
    assert_eq!(
        one(&objects, "Deployment")["spec"]["strategy"]["type"],
        "Recreate"
    );
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());
    // ServiceMonitor, CA bundle, legacy API root
    let objects = render(
        "ops",
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "kestra.caSecret.name=kestra-ca",
            "--set",
            "kestra.legacyApiRoot=true",
        ],
    )
    .unwrap();
    let monitor = one(&objects, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let env = env_of(&objects);
    assert_eq!(
        env["KESTRA_CA_FILE"]["value"],
        "/etc/kestra-operator/ca/ca.crt"
    );
    assert_eq!(env["KESTRA_LEGACY_API_ROOT"]["value"], "true");
    assert!(!env.contains_key("KESTRA_TENANT"));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["secret"]["secretName"], "kestra-ca");
    assert_eq!(container(&objects)["volumeMounts"][0]["readOnly"], true);
    // operator.enabled=false renders nothing
    assert!(
        render("ops", &["--set", "operator.enabled=false"])
            .unwrap()
            .is_empty()
    );
    // contradictions are refused with a message
    let err = render_refused(&[
        "--set",
        "operator.apiKey=a",
        "--set",
        "operator.basicAuth=u:p",
    ]);
    assert!(err.contains("set one of them"), "{err}");
    let err = render_refused(&[
        "--set",
        "operator.apiKey=a",
        "--set",
        "operator.existingSecret=s",
    ]);
    assert!(err.contains("operator.existingSecret"), "{err}");
    let err = render_refused(&["--set", "logFormat=xml"]);
    assert!(err.contains("logFormat"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// on the test control plane

fn env() -> &'static TestEnv {
    TestEnv::get().expect("the test environment")
}

/// `kubectl apply -f -` of `objects` as one List; with `--dry-run=server` when `dry_run`.
/// Returns stderr (warnings).
fn kubectl_apply(env: &TestEnv, objects: &[&Value], dry_run: bool) -> anyhow::Result<String> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let mut args = vec!["apply", "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let output = env.kubectl_stdin(&args, &list.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(
        output.status.success(),
        "kubectl {} failed: {stderr}",
        args.join(" ")
    );
    Ok(stderr)
}

/// Cluster-scoped objects a test applied, deleted when it ends (namespaces stay, as testenv does).
struct ClusterScoped(Vec<(String, String)>);

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        for (kind, name) in &self.0 {
            let _ = env().kubectl(["delete", kind.as_str(), name.as_str(), "--ignore-not-found"]);
        }
    }
}

/// Applies every rendered object but the Deployment (and the ServiceMonitor, whose CRD the
/// test control plane lacks); the Deployment is checked by the apiserver with a server-side dry
/// run, in a namespace that warns on pods violating the `restricted` Pod Security Standard.
fn install(env: &TestEnv, release_ns: &str, objects: &[Value]) -> anyhow::Result<ClusterScoped> {
    env.kubectl_ok([
        "label",
        "namespace",
        release_ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
        "--overwrite",
    ])?;
    let rest: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] != "Deployment" && o["kind"] != "ServiceMonitor")
        .collect();
    let cluster_scoped = ClusterScoped(
        rest.iter()
            .filter(|o| o["metadata"]["namespace"].is_null())
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or_default().to_string(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect(),
    );
    kubectl_apply(env, &rest, false)?;
    let deployment = one(objects, "Deployment");
    let warnings = kubectl_apply(env, &[deployment], true)?;
    ensure!(
        !warnings.contains("PodSecurity"),
        "the Deployment's pod violates the restricted Pod Security Standard: {warnings}"
    );
    Ok(cluster_scoped)
}

/// The environment the Deployment gives its container, resolved as the kubelet would: values,
/// Secret keys (read from the control plane; an optional missing key is left out) and the pod's
/// name and namespace.
fn resolve_env(
    env: &TestEnv,
    objects: &[Value],
    pod_name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let deployment = one(objects, "Deployment");
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .context("Deployment namespace")?;
    let mut resolved = Vec::new();
    for (name, var) in env_of(objects) {
        if let Some(value) = var["value"].as_str() {
            resolved.push((name, value.to_string()));
            continue;
        }
        let from = &var["valueFrom"];
        if from["secretKeyRef"].is_object() {
            let (secret, key, optional) = secret_ref(&var);
            let json: Value = serde_json::from_str(
                &env.kubectl_ok(["get", "secret", secret, "-n", namespace, "-o", "json"])?,
            )?;
            match json["data"][key].as_str() {
                Some(data) => {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
                    resolved.push((name, String::from_utf8(bytes)?));
                }
                None if optional => {}
                None => bail!("{name}: Secret {secret} has no key {key} and it is not optional"),
            }
        } else {
            match from["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => resolved.push((name, pod_name.to_string())),
                Some("metadata.namespace") => resolved.push((name, namespace.to_string())),
                other => bail!("{name}: unsupported valueFrom {other:?}"),
            }
        }
    }
    Ok(resolved)
}

/// A kubeconfig for the chart's ServiceAccount: the test apiserver and CA, and a token from the
/// TokenRequest API.
fn service_account_kubeconfig(env: &TestEnv, namespace: &str) -> anyhow::Result<PathBuf> {
    let token = env.kubectl_ok([
        "create",
        "token",
        FULLNAME,
        "-n",
        namespace,
        "--duration=2h",
    ])?;
    let admin: Value = serde_json::from_str(
        &env.kubectl_ok(["config", "view", "--raw", "--minify", "-o", "json"])?,
    )?;
    let cluster = admin["clusters"][0]["cluster"].clone();
    ensure!(
        cluster["server"].is_string(),
        "no server in the admin kubeconfig"
    );
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": cluster}],
        "users": [{"name": FULLNAME, "user": {"token": token.trim()}}],
        "contexts": [{"name": "chart", "context": {
            "cluster": "testenv", "user": FULLNAME, "namespace": namespace}}],
        "current-context": "chart",
    });
    let dir = env.dir.join("helm");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("kubeconfig-{namespace}"));
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    Ok(path)
}

fn can_i(env: &TestEnv, sa_ns: &str, args: &[&str]) -> anyhow::Result<bool> {
    let user = format!("--as=system:serviceaccount:{sa_ns}:{FULLNAME}");
    let mut all = vec!["auth", "can-i", user.as_str()];
    all.extend_from_slice(args);
    let output = env.kubectl(&all)?;
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match answer.as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bail!(
            "kubectl {} answered {answer:?}: {}",
            all.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn assert_can(env: &TestEnv, sa_ns: &str, cases: &[&[&str]], want: bool) -> anyhow::Result<()> {
    let mut wrong = Vec::new();
    for args in cases {
        if can_i(env, sa_ns, args)? != want {
            wrong.push(args.join(" "));
        }
    }
    ensure!(
        wrong.is_empty(),
        "the chart's ServiceAccount should {}be allowed to: {wrong:#?}",
        if want { "" } else { "NOT " }
    );
    Ok(())
}

/// The quick start's manifests (one of each kind, accepted by Kestra 1.3 and 2.0 as written).
fn documented_manifests(kestra_namespace: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(root().join("examples/quickstart.yaml"))?;
    Ok(text.replace("company.team", kestra_namespace))
}

const DOCUMENTED: [&str; 3] = [
    "kestraflow/hello",
    "kestrakeyvalue/greeting",
    "kestranamespacefile/readme",
];

async fn wait_all_ready(env: &TestEnv, ns: &str) -> anyhow::Result<()> {
    for resource in DOCUMENTED {
        wait_until(READY_TIMEOUT, POLL, || async {
            let obj: Value =
                serde_json::from_str(&env.kubectl_ok(["get", resource, "-n", ns, "-o", "json"])?)?;
            let ready = obj["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .cloned()
                .unwrap_or(Value::Null);
            ensure!(
                ready["status"] == "True",
                "{resource}: Ready is {ready}, status.reason {}",
                obj["status"]["reason"]
            );
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Runs the operator as the chart's Deployment would (its resolved environment), with the
/// chart's ServiceAccount token, plus `overrides` (applied last).
fn start_as_chart(
    env: &TestEnv,
    release_ns: &str,
    objects: &[Value],
    overrides: &[(&str, &str)],
) -> anyhow::Result<(Operator, String)> {
    let pod = format!("{FULLNAME}-{}-0", std::process::id());
    let kubeconfig = service_account_kubeconfig(env, release_ns)?;
    let resolved = resolve_env(env, objects, &pod)?;
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    // Operator::start sets the double's basic auth by default: start from no credentials.
    let mut vars: Vec<(&str, &str)> =
        vec![("KESTRA_API_BASIC_AUTH", ""), ("KESTRA_API_API_KEY", "")];
    vars.extend(resolved.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // the chart's 0.0.0.0:8080 and 0.0.0.0:9443 would collide between tests running at once
    vars.push(("METRICS_ADDR", "127.0.0.1:0"));
    vars.push(("WEBHOOK_ADDR", "127.0.0.1:0"));
    vars.push(("KUBECONFIG", &kubeconfig));
    vars.extend_from_slice(overrides);
    let args: Vec<&str> = container(objects)["args"]
        .as_array()
        .context("container args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let op = Operator::start(env, env!("CARGO_BIN_EXE_kestra-operator"), &args, &vars)?;
    Ok((op, pod))
}

/// Nothing in the operator's log says a request was forbidden (an Event or a Lease update
/// refused by RBAC would not stop resources from becoming Ready).
fn assert_nothing_forbidden(op: &Operator) -> anyhow::Result<()> {
    let logs = op.logs();
    ensure!(
        !logs.to_lowercase().contains("forbidden"),
        "the operator was refused something:\n{}",
        op.tail(60)
    );
    Ok(())
}

async fn wait_events(env: &TestEnv, ns: &str) -> anyhow::Result<()> {
    wait_until(Duration::from_secs(30), POLL, || async {
        let list: Value = serde_json::from_str(&env.kubectl_ok([
            "get",
            "events.events.k8s.io",
            "-n",
            ns,
            "-o",
            "json",
        ])?)?;
        let mut regarding: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reportingController"] == "kestra-operator")
            .map(|e| {
                e["regarding"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        regarding.sort();
        regarding.dedup();
        ensure!(
            regarding == ["greeting", "hello", "readme"],
            "Events from kestra-operator about {regarding:?}"
        );
        Ok(())
    })
    .await
}

/// Cluster-wide install with the documented `operator.apiKey`: the chart's objects applied, the
/// operator run with the chart's ServiceAccount token, leader election on (the chart's default),
/// and the quick-start manifests Ready.
///
/// The operator is given WATCH_NAMESPACES for the test namespace only: a cluster-wide operator
/// would reconcile the resources of other tests sharing the control plane. The ClusterRole's
/// all-namespaces list and watch are checked with `kubectl auth can-i` instead
/// (`chart_identity_is_refused_what_it_does_not_need`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_identity_syncs_the_documented_manifests() -> anyhow::Result<()> {
    let _serial = OPERATOR_RUNS.lock().await;
    let env = env();
    let release = env.namespace("helm-rel")?;
    let app = env.namespace("helm-app")?;
    let objects = render(
        &release.name,
        &[
            "--set",
            &format!("operator.apiKey={}", env.api_key),
            "--set",
            &format!("kestra.url={}", env.kestra_url),
        ],
    )?;
    let _cleanup = install(env, &release.name, &objects)?;
    let (mut op, pod) = start_as_chart(
        env,
        &release.name,
        &objects,
        &[("WATCH_NAMESPACES", &app.name)],
    )?;
    assert_running(&mut op).await?;
    app.apply(&documented_manifests(&app.kestra)?)?;
    wait_all_ready(env, &app.name).await?;
    wait_events(env, &app.name).await?;
    // the Lease in the release namespace, held by this "pod"
    let holder = env.kubectl_ok([
        "get",
        "lease",
        FULLNAME,
        "-n",
        &release.name,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])?;
    ensure!(
        holder.trim() == pod,
        "the Lease is held by {holder:?}, want {pod:?}"
    );
    // the webhook's CA in the chart's ValidatingWebhookConfiguration, written with the chart's RBAC
    let configuration = format!("{}-{FULLNAME}", release.name);
    wait_until(READY_TIMEOUT, POLL, || async {
        let bundle = env.kubectl_ok([
            "get",
            "validatingwebhookconfiguration",
            &configuration,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])?;
        ensure!(!bundle.trim().is_empty(), "no caBundle yet");
        Ok(())
    })
    .await?;
    // deletion (the Kestra objects, then the finalizers) works under the same identity
    app.kubectl_ok(["delete", "--wait=false"].into_iter().chain(DOCUMENTED))?;
    wait_until(READY_TIMEOUT, POLL, || async {
        let left = app.kubectl_ok(["get", "kestra", "-o", "name"])?;
        ensure!(left.trim().is_empty(), "still there: {left}");
        Ok(())
    })
    .await?;
    assert_nothing_forbidden(&op)?;
    // a graceful stop (SIGTERM) works under the same identity
    let status = op.stop()?;
    ensure!(
        status.success(),
        "the operator exited with {status}:\n{}",
        op.tail(40)
    );
    assert_nothing_forbidden(&op)?;
    Ok(())
}

/// `helm ARGS` against the test control plane; fails with helm's output unless it succeeds.
fn helm_ok(env: &TestEnv, args: &[&str]) -> anyhow::Result<String> {
    let output = helm_on(env, args);
    ensure!(
        output.status.success(),
        "helm {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn helm_on(env: &TestEnv, args: &[&str]) -> Output {
    let kubeconfig = env.kubeconfig.to_string_lossy();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--kubeconfig", &kubeconfig]);
    helm(&all)
}

/// Puts the CRDs back as the test environment applies them, whatever the test did to them.
struct RestoreCrds;

impl Drop for RestoreCrds {
    fn drop(&mut self) {
        let dir = root().join("deploy/crds");
        let _ = env().kubectl([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=testenv",
            "-f",
            dir.to_str().unwrap_or_default(),
        ]);
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The live KestraFlow CRD's description and annotations.
fn live_flow_crd(env: &TestEnv) -> anyhow::Result<(String, Value)> {
    let crd: Value = serde_json::from_str(&env.kubectl_ok([
        "get",
        "crd",
        "kestraflows.model.kestra.io",
        "-o",
        "json",
    ])?)?;
    let description = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"]
        .as_str()
        .context("the CRD's description")?
        .to_string();
    Ok((description, crd["metadata"]["annotations"].clone()))
}

/// The README's upgrade story with `crds.templated=true`, for real: over CRDs Helm does not own
/// (installed from `crds/` or with kubectl) the install is refused unless they are adopted
/// (`--take-ownership`); an older chart's CRDs are then brought up to date by `helm upgrade`; and
/// `helm uninstall` keeps them. The release holds only the CRDs (`operator.enabled=false`).
#[test]
fn templated_crds_upgrade_with_the_release_and_outlive_it() -> anyhow::Result<()> {
    let env = env();
    let _restore = RestoreCrds;
    let ns = env.namespace("helm-crds")?;
    let release = "crds";
    let current = chart();
    let current = current.to_str().context("chart path")?;
    // an older chart: its KestraFlow CRD has another description
    const DESCRIPTION: &str = "A Kestra flow, kept equal to its YAML source by kestra-operator";
    let old = env
        .dir
        .join("helm")
        .join(format!("old-chart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&old);
    copy_dir(&chart(), &old)?;
    let crds_file = old.join("crds/kestra-operator.crds.yaml");
    let text = std::fs::read_to_string(&crds_file)?;
    ensure!(text.contains(DESCRIPTION), "the flow CRD's description");
    std::fs::write(
        &crds_file,
        text.replace(DESCRIPTION, "A Kestra flow (an older chart)"),
    )?;
    let old = old.to_str().context("old chart path")?;
    let values = [
        "--namespace",
        &ns.name,
        "--set",
        "crds.templated=true",
        "--set",
        "operator.enabled=false",
        "--skip-crds",
    ];

    // the CRDs exist, without Helm's ownership: refused, nothing changed
    let mut args = vec!["install", release, old, "--dry-run=server"];
    args.extend_from_slice(&values);
    let output = helm_on(env, &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("cannot be imported into the current release"),
        "installing over CRDs Helm does not own should be refused: {stderr}"
    );
    // adopted
    let mut args = vec!["install", release, old, "--take-ownership"];
    args.extend_from_slice(&values);
    helm_ok(env, &args)?;
    let (description, annotations) = live_flow_crd(env)?;
    ensure!(
        description == "A Kestra flow (an older chart)",
        "{description}"
    );
    ensure!(
        annotations["helm.sh/resource-policy"] == "keep"
            && annotations["meta.helm.sh/release-name"] == release
            && annotations["meta.helm.sh/release-namespace"] == ns.name.as_str(),
        "{annotations}"
    );
    // helm upgrade updates them
    let mut args = vec!["upgrade", release, current];
    args.extend_from_slice(&values[..values.len() - 1]);
    helm_ok(env, &args)?;
    let (description, _) = live_flow_crd(env)?;
    ensure!(
        description == DESCRIPTION,
        "after the upgrade: {description}"
    );
    // helm uninstall keeps them (and so every resource of the three kinds)
    let out = helm_ok(env, &["uninstall", release, "--namespace", &ns.name])?;
    ensure!(out.contains("kept due to the resource policy"), "{out}");
    assert_crds_established(env)?;
    // and so does turning crds.templated off again (the CRDs leave the release, not the cluster)
    let mut args = vec!["install", release, current, "--take-ownership"];
    args.extend_from_slice(&values);
    helm_ok(env, &args)?;
    helm_ok(
        env,
        &[
            "upgrade",
            release,
            current,
            "--namespace",
            &ns.name,
            "--reuse-values",
            "--set",
            "crds.templated=false",
        ],
    )?;
    assert_crds_established(env)?;
    helm_ok(env, &["uninstall", release, "--namespace", &ns.name])?;
    assert_crds_established(env)?;
    let _ = std::fs::remove_dir_all(old);
    Ok(())
}

/// The five CRDs are there, established and not being deleted.
fn assert_crds_established(env: &TestEnv) -> anyhow::Result<()> {
    for crd in [
        "kestraflows.model.kestra.io",
        "kestrakeyvalues.model.kestra.io",
        "kestranamespacefiles.model.kestra.io",
        "kestrainstances.model.kestra.io",
        "clusterkestrainstances.model.kestra.io",
    ] {
        let state = env.kubectl_ok([
            "get",
            "crd",
            crd,
            "-o",
            "jsonpath={.metadata.deletionTimestamp}|\
             {.status.conditions[?(@.type==\"Established\")].status}",
        ])?;
        ensure!(
            state.trim() == "|True",
            "{crd}: deletion|Established {state}"
        );
    }
    Ok(())
}

/// The process runs, rather than failing at start (bad flags or environment).
async fn assert_running(op: &mut Operator) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(status) = op.exit_status()? {
        bail!("the operator exited at start ({status}):\n{}", op.tail(40));
    }
    Ok(())
}

/// `watchNamespaces` with `operator.existingSecret` holding basic auth under a custom key: Roles
/// in the watched namespace (and, for ClusterKestraInstances, in the release namespace and
/// `default`), credentials from the user's Secret, the quick-start manifests Ready; nothing
/// outside the watched namespace is allowed but what ClusterKestraInstances need (those, the
/// namespaces, the Secrets of the release namespace, Events in `default`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_identity_with_watched_namespaces_and_existing_secret() -> anyhow::Result<()> {
    let _serial = OPERATOR_RUNS.lock().await;
    let env = env();
    let release = env.namespace("helm-rel")?;
    let app = env.namespace("helm-app")?;
    let other = env.namespace("helm-other")?;
    release.kubectl_ok([
        "create",
        "secret",
        "generic",
        "kestra-credentials",
        &format!("--from-literal=kestra-basic-auth={}", env.basic_auth),
    ])?;
    let objects = render(
        &release.name,
        &[
            "--set",
            &format!("kestra.url={}", env.kestra_url),
            "--set",
            &format!("watchNamespaces={{{}}}", app.name),
            "--set",
            "operator.existingSecret=kestra-credentials",
            "--set",
            "operator.existingSecretKeys.basicAuth=kestra-basic-auth",
            "--set",
            "leaderElection.enabled=false",
        ],
    )?;
    assert_webhook_role_only(&objects, &release.name);
    let _cleanup = install(env, &release.name, &objects)?;
    let (mut op, _pod) = start_as_chart(env, &release.name, &objects, &[])?;
    assert_running(&mut op).await?;
    let resolved = resolve_env(env, &objects, "p")?;
    ensure!(
        resolved
            .iter()
            .any(|(k, v)| k == "KESTRA_API_BASIC_AUTH" && *v == env.basic_auth)
            && !resolved.iter().any(|(k, _)| k == "KESTRA_API_API_KEY"),
        "basic auth from the existing Secret, no API key"
    );
    ensure!(
        resolved
            .iter()
            .any(|(k, v)| k == "WATCH_NAMESPACES" && *v == app.name),
        "WATCH_NAMESPACES from the chart"
    );
    app.apply(&documented_manifests(&app.kestra)?)?;
    wait_all_ready(env, &app.name).await?;
    wait_events(env, &app.name).await?;
    assert_nothing_forbidden(&op)?;

    let app_ns = format!("--namespace={}", app.name);
    let other_ns = format!("--namespace={}", other.name);
    let release_ns = format!("--namespace={}", release.name);
    assert_can(
        env,
        &release.name,
        &[
            &["list", "kestraflows.model.kestra.io", &app_ns],
            &["watch", "secrets", &app_ns],
            &["create", "events.events.k8s.io", &app_ns],
            &["list", "kestrainstances.model.kestra.io", &app_ns],
            // ClusterKestraInstances: cluster-wide; their Secrets in the release namespace,
            // their Events in `default`
            &["list", "clusterkestrainstances.model.kestra.io"],
            &["list", "namespaces"],
            &["get", "secrets", &release_ns],
            &["create", "events.events.k8s.io", "--namespace=default"],
        ],
        true,
    )?;
    assert_can(
        env,
        &release.name,
        &[
            &["list", "kestraflows.model.kestra.io", "--all-namespaces"],
            &["list", "kestraflows.model.kestra.io", &other_ns],
            &["get", "secrets", &other_ns],
            &["create", "secrets", &release_ns],
            &["list", "kestrainstances.model.kestra.io", &other_ns],
            &[
                "list",
                "kestrainstances.model.kestra.io",
                "--all-namespaces",
            ],
            &["create", "events.events.k8s.io", &other_ns],
            // no leader election asked for: no Lease access either
            &["create", "leases.coordination.k8s.io", &release_ns],
        ],
        false,
    )?;
    Ok(())
}

/// The chart's identity can do what the operator does and nothing else: no deleting or writing
/// Secrets, no pods, nodes or Deployments, no creating or deleting the resources it manages, no
/// core Events, Leases only in the release namespace and only its own.
#[test]
fn chart_identity_is_refused_what_it_does_not_need() -> anyhow::Result<()> {
    let env = env();
    let release = env.namespace("helm-rbac")?;
    let app = env.namespace("helm-app")?;
    let objects = render(&release.name, &["--set", "operator.apiKey=x"])?;
    let _cleanup = install(env, &release.name, &objects)?;
    let r = format!("--namespace={}", release.name);
    let a = format!("--namespace={}", app.name);
    let all = "--all-namespaces";
    let mut allowed: Vec<Vec<String>> = Vec::new();
    for kind in ["kestraflows", "kestrakeyvalues", "kestranamespacefiles"] {
        let resource = format!("{kind}.model.kestra.io");
        for verb in ["get", "list", "watch", "patch"] {
            allowed.push(vec![verb.into(), resource.clone(), all.into()]);
        }
        allowed.push(vec![
            "patch".into(),
            resource.clone(),
            "--subresource=status".into(),
            a.clone(),
        ]);
    }
    for resource in ["secrets", "configmaps"] {
        for verb in ["get", "list", "watch"] {
            allowed.push(vec![verb.into(), resource.into(), all.into()]);
        }
    }
    for verb in ["create", "patch"] {
        allowed.push(vec![verb.into(), "events.events.k8s.io".into(), a.clone()]);
        // about ClusterKestraInstances
        allowed.push(vec![
            verb.into(),
            "events.events.k8s.io".into(),
            "--namespace=default".into(),
        ]);
    }
    for verb in ["list", "watch", "patch"] {
        for resource in ["kestrainstances", "clusterkestrainstances"] {
            allowed.push(vec![
                verb.into(),
                format!("{resource}.model.kestra.io"),
                all.into(),
            ]);
        }
    }
    allowed.push(vec![
        "patch".into(),
        "kestrainstances.model.kestra.io".into(),
        "--subresource=status".into(),
        a.clone(),
    ]);
    allowed.push(vec![
        "patch".into(),
        "clusterkestrainstances.model.kestra.io".into(),
        "--subresource=status".into(),
    ]);
    for verb in ["list", "watch"] {
        allowed.push(vec![verb.into(), "namespaces".into()]);
    }
    allowed.push(vec![
        "create".into(),
        "leases.coordination.k8s.io".into(),
        r.clone(),
    ]);
    for verb in ["get", "patch"] {
        allowed.push(vec![
            verb.into(),
            format!("leases.coordination.k8s.io/{FULLNAME}"),
            r.clone(),
        ]);
    }
    // the webhook's CA bundle: that one configuration
    let own_configuration = format!(
        "validatingwebhookconfigurations.admissionregistration.k8s.io/{}-{FULLNAME}",
        release.name
    );
    for verb in ["get", "update"] {
        allowed.push(vec![verb.into(), own_configuration.clone()]);
    }
    let allowed: Vec<Vec<&str>> = allowed
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let allowed: Vec<&[&str]> = allowed.iter().map(Vec::as_slice).collect();
    assert_can(env, &release.name, &allowed, true)?;

    let lease_other = "leases.coordination.k8s.io/someone-elses-lease";
    let own_lease = format!("leases.coordination.k8s.io/{FULLNAME}");
    let other_configuration =
        "validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses";
    let refused: &[&[&str]] = &[
        &["update", other_configuration],
        &[
            "create",
            "validatingwebhookconfigurations.admissionregistration.k8s.io",
        ],
        &["delete", &own_configuration],
        &[
            "patch",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        ],
        &["delete", "secrets", &a],
        &["create", "secrets", &a],
        &["update", "secrets", &a],
        &["patch", "configmaps", &a],
        &["create", "pods", &a],
        &["create", "pods/exec", &a],
        &["get", "nodes"],
        &["patch", "deployments.apps", &r],
        &["create", "kestraflows.model.kestra.io", &a],
        &["delete", "kestraflows.model.kestra.io", &a],
        // everything is written with PATCH: no PUT
        &["update", "kestraflows.model.kestra.io", &a],
        &[
            "update",
            "kestrakeyvalues.model.kestra.io",
            "--subresource=status",
            &a,
        ],
        &["update", &own_lease, &r],
        &["delete", "kestrakeyvalues.model.kestra.io", &a],
        &["create", "kestranamespacefiles.model.kestra.io", &a],
        // instances: watched, never read one by one, never created, deleted or PUT
        &["get", "kestrainstances.model.kestra.io", &a],
        &["create", "kestrainstances.model.kestra.io", &a],
        &["delete", "kestrainstances.model.kestra.io", &a],
        &["update", "kestrainstances.model.kestra.io", &a],
        &[
            "update",
            "kestrainstances.model.kestra.io",
            "--subresource=status",
            &a,
        ],
        &["get", "clusterkestrainstances.model.kestra.io"],
        &["create", "clusterkestrainstances.model.kestra.io"],
        &["delete", "clusterkestrainstances.model.kestra.io"],
        &["update", "clusterkestrainstances.model.kestra.io"],
        &[
            "update",
            "clusterkestrainstances.model.kestra.io",
            "--subresource=status",
        ],
        // namespaces: their labels only
        &["get", "namespaces"],
        &["patch", "namespaces"],
        &["create", "namespaces"],
        &["delete", "namespaces"],
        &["create", "events", "--namespace=default"],
        &["delete", "events.events.k8s.io", &a],
        &["create", "events", &a],
        &["list", "leases.coordination.k8s.io", &r],
        &["delete", "leases.coordination.k8s.io", &r],
        &["get", lease_other, &r],
        &["update", lease_other, &r],
        &["create", "leases.coordination.k8s.io", &a],
        &["get", "customresourcedefinitions.apiextensions.k8s.io"],
        &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
        &["impersonate", "serviceaccounts", &r],
        &["create", "serviceaccounts/token", &r],
        &["*", "*", all],
    ];
    assert_can(env, &release.name, refused, false)?;
    Ok(())
}

#[path = "helm/webhook.rs"]
mod webhook;
use webhook::assert_webhook_role_only;

#[path = "helm/instances.rs"]
mod instances;
