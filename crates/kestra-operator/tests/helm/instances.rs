//! `KestraInstance` and `ClusterKestraInstance` in the chart: the `instances` and
//! `clusterInstances` values render the objects, the RBAC grows by exactly what the instance
//! controller does (and nothing broader), the operator learns its namespace (`POD_NAMESPACE`), the
//! schema refuses a wrong instance, and on the test control plane the operator, run with the
//! chart's ServiceAccount token, checks both kinds, writes their status, finalizers and Events,
//! serves a flow through each, and lets them go once unused.

use std::collections::BTreeSet;

use super::*;

/// Values with every spec field of both kinds, and entries with only what is required.
const VALUES: &str = r#"
instances:
  - name: team-kestra
    namespace: team-a
    url: https://kestra.team-a.example
    tenant: acme
    auth:
      apiKeySecretRef: {name: kestra-team-a, key: token}
    caBundleRef:
      configMapKeyRef: {name: kestra-ca, key: ca.crt}
    legacyApiRoot: false
    rateLimit: 50
    timeout: 45s
  - name: local
    url: http://kestra:8080
clusterInstances:
  - name: shared
    url: http://kestra.kestra:8080/api/v1
    auth:
      basicAuthSecretRef: {name: kestra-shared, key: basicAuth}
    caBundleRef:
      secretKeyRef: {name: kestra-shared, key: ca.crt}
    tenant: main
    rateLimit: 0
    allowedNamespaces:
      matchLabels: {kestra.io/shared: "true"}
      matchExpressions:
        - {key: team, operator: In, values: [a, b]}
  - name: everyone
    url: http://kestra.kestra:8080
    legacyApiRoot: true
    allowedNamespaces: {}
"#;

/// Writes `text` as a values file under the target directory and returns its path.
fn values_file(name: &str, text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-values");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn renders_instances_and_cluster_instances() {
    let values = values_file("instances", VALUES);
    let objects = render("ops", &["-f", &values]).unwrap();
    assert_eq!(of_kind(&objects, "KestraInstance").len(), 2);
    assert_eq!(of_kind(&objects, "ClusterKestraInstance").len(), 2);
    for kind in ["KestraInstance", "ClusterKestraInstance"] {
        for o in of_kind(&objects, kind) {
            assert_eq!(o["apiVersion"], "model.kestra.io/v1alpha1");
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/instance"],
                RELEASE
            );
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "Helm"
            );
        }
    }
    let team = named(&objects, "KestraInstance", "team-kestra");
    assert_eq!(team["metadata"]["namespace"], "team-a");
    assert_eq!(
        team["spec"],
        json!({
            "url": "https://kestra.team-a.example",
            "tenant": "acme",
            "auth": {"apiKeySecretRef": {"name": "kestra-team-a", "key": "token"}},
            "caBundleRef": {"configMapKeyRef": {"name": "kestra-ca", "key": "ca.crt"}},
            "legacyApiRoot": false,
            "rateLimit": 50,
            "timeout": "45s",
        })
    );
    let local = named(&objects, "KestraInstance", "local");
    assert_eq!(
        local["metadata"]["namespace"], "ops",
        "default: the release namespace"
    );
    assert_eq!(local["spec"], json!({"url": "http://kestra:8080"}));
    let shared = named(&objects, "ClusterKestraInstance", "shared");
    assert!(shared["metadata"]["namespace"].is_null(), "cluster-scoped");
    assert_eq!(
        shared["spec"],
        json!({
            "url": "http://kestra.kestra:8080/api/v1",
            "auth": {"basicAuthSecretRef": {"name": "kestra-shared", "key": "basicAuth"}},
            "caBundleRef": {"secretKeyRef": {"name": "kestra-shared", "key": "ca.crt"}},
            "tenant": "main",
            "rateLimit": 0,
            "allowedNamespaces": {
                "matchLabels": {"kestra.io/shared": "true"},
                "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}],
            },
        })
    );
    let everyone = named(&objects, "ClusterKestraInstance", "everyone");
    assert_eq!(
        everyone["spec"],
        json!({"url": "http://kestra.kestra:8080", "legacyApiRoot": true, "allowedNamespaces": {}})
    );
    // --set works too
    let objects = render(
        "ops",
        &[
            "--set",
            "clusterInstances[0].name=c",
            "--set",
            "clusterInstances[0].url=http://k:8080",
            "--set",
            "clusterInstances[0].rateLimit=5",
        ],
    )
    .unwrap();
    assert_eq!(
        one(&objects, "ClusterKestraInstance")["spec"],
        json!({"url": "http://k:8080", "rateLimit": 5})
    );
    // none by default
    let objects = render("ops", &[]).unwrap();
    assert!(of_kind(&objects, "KestraInstance").is_empty());
    assert!(of_kind(&objects, "ClusterKestraInstance").is_empty());
    // a release without the operator may still hold instances (like the CRDs)
    let objects = render("ops", &["-f", &values, "--set", "operator.enabled=false"]).unwrap();
    assert_eq!(
        kinds(&objects),
        [
            "ClusterKestraInstance",
            "ClusterKestraInstance",
            "KestraInstance",
            "KestraInstance"
        ]
    );
}

/// `POD_NAMESPACE` from the downward API, always; `INSTANCE_CHECK_PERIOD` only when given.
#[test]
fn renders_the_operator_namespace_and_the_check_period() {
    let objects = render("ops", &[]).unwrap();
    let env = env_of(&objects);
    assert_eq!(
        env["POD_NAMESPACE"],
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    );
    assert!(!env.contains_key("INSTANCE_CHECK_PERIOD"));
    let objects = render("ops", &["--set", "instanceCheckPeriod=2m30s"]).unwrap();
    assert_eq!(env_of(&objects)["INSTANCE_CHECK_PERIOD"]["value"], "2m30s");
    // without leader election too (LEADER_ELECTION_NAMESPACE is then not set)
    let objects = render("ops", &["--set", "leaderElection.enabled=false"]).unwrap();
    let env = env_of(&objects);
    assert!(!env.contains_key("LEADER_ELECTION_NAMESPACE"));
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
}

/// One permission: (namespace, or "" cluster-wide; API group; resource; verb; resource name or "").
type Grant = (String, String, String, String, String);

/// Every permission the rendered Roles and ClusterRoles grant, each role bound to the chart's
/// ServiceAccount by a binding of the same name.
fn grants(objects: &[Value]) -> BTreeSet<Grant> {
    let mut all = BTreeSet::new();
    for (kind, binding) in [
        ("Role", "RoleBinding"),
        ("ClusterRole", "ClusterRoleBinding"),
    ] {
        for role in of_kind(objects, kind) {
            let namespace = role["metadata"]["namespace"].as_str().unwrap_or("");
            let name = &role["metadata"]["name"];
            let bound = of_kind(objects, binding).into_iter().find(|b| {
                b["metadata"]["name"] == *name
                    && b["metadata"]["namespace"].as_str().unwrap_or("") == namespace
            });
            let bound = bound.unwrap_or_else(|| panic!("{kind} {name} has no {binding}"));
            assert_eq!(bound["roleRef"]["kind"], kind);
            assert_eq!(bound["roleRef"]["name"], *name);
            assert_eq!(bound["subjects"][0]["kind"], "ServiceAccount");
            assert_eq!(bound["subjects"][0]["name"], FULLNAME);
            let list = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .map(|s| s.as_str().expect("a string").to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for rule in role["rules"].as_array().expect("rules") {
                let names = match list(&rule["resourceNames"]) {
                    n if n.is_empty() => vec![String::new()],
                    n => n,
                };
                for group in list(&rule["apiGroups"]) {
                    for resource in list(&rule["resources"]) {
                        for verb in list(&rule["verbs"]) {
                            assert!(
                                group != "*" && resource != "*" && verb != "*",
                                "a wildcard in {kind} {name}"
                            );
                            for n in &names {
                                all.insert((
                                    namespace.to_string(),
                                    group.clone(),
                                    resource.clone(),
                                    verb.clone(),
                                    n.clone(),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    all
}

fn grant(namespace: &str, group: &str, resource: &str, verbs: &[&str]) -> Vec<Grant> {
    verbs
        .iter()
        .map(|verb| {
            (
                namespace.to_string(),
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
                String::new(),
            )
        })
        .collect()
}

/// What the instance controller needs in a namespace it watches (or cluster-wide, "").
fn kestra_instance_grants(namespace: &str) -> Vec<Grant> {
    let mut all = grant(
        namespace,
        "model.kestra.io",
        "kestrainstances",
        &["list", "watch", "patch"],
    );
    all.extend(grant(
        namespace,
        "model.kestra.io",
        "kestrainstances/status",
        &["patch"],
    ));
    all
}

/// What the ClusterKestraInstance controller needs cluster-wide.
fn cluster_instance_grants() -> Vec<Grant> {
    let mut all = grant(
        "",
        "model.kestra.io",
        "clusterkestrainstances",
        &["list", "watch", "patch"],
    );
    all.extend(grant(
        "",
        "model.kestra.io",
        "clusterkestrainstances/status",
        &["patch"],
    ));
    all.extend(grant("", "", "namespaces", &["list", "watch"]));
    all
}

/// The grants on the instance kinds (any subresource) and on namespaces.
fn instance_grants(all: &BTreeSet<Grant>) -> BTreeSet<Grant> {
    all.iter()
        .filter(|g| g.2.contains("kestrainstances") || g.2 == "namespaces")
        .cloned()
        .collect()
}

/// The ClusterRole of the ClusterKestraInstances (a release in `release_ns`), rendered whatever
/// namespaces are watched.
pub fn assert_cluster_instance_role(objects: &[Value], release_ns: &str) {
    let role = named(
        objects,
        "ClusterRole",
        &format!("{release_ns}-{FULLNAME}-instances"),
    );
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["model.kestra.io"], "resources": ["clusterkestrainstances"],
             "verbs": ["list", "watch", "patch"]},
            {"apiGroups": ["model.kestra.io"], "resources": ["clusterkestrainstances/status"],
             "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        ])
    );
}

#[test]
fn renders_the_instance_rbac() {
    // all namespaces: the ClusterRole covers KestraInstances, Secrets and Events everywhere
    let objects = render("ops", &[]).unwrap();
    let all = grants(&objects);
    let mut want: BTreeSet<Grant> = kestra_instance_grants("").into_iter().collect();
    want.extend(cluster_instance_grants());
    assert_eq!(instance_grants(&all), want);
    assert_cluster_instance_role(&objects, "ops");
    for covered in [
        grant("", "", "secrets", &["get", "list", "watch"]),
        grant("", "", "configmaps", &["get", "list", "watch"]),
        grant("", "events.k8s.io", "events", &["create", "patch"]),
    ] {
        for g in covered {
            assert!(all.contains(&g), "{g:?}");
        }
    }
    assert!(
        !all.iter().any(|g| g.0 == "default"),
        "nothing more in default"
    );
    assert!(
        !all.iter().any(|g| g.0 == "ops" && g.2 != "leases"),
        "the release namespace: only the Lease"
    );

    // watched namespaces: KestraInstances there; the release namespace's Secrets and ConfigMaps,
    // and Events in `default`, each in a Role of their own; nothing else outside them
    let objects = render("ops", &["--set", "watchNamespaces={team-a,team-b}"]).unwrap();
    let all = grants(&objects);
    let mut want: BTreeSet<Grant> = kestra_instance_grants("team-a").into_iter().collect();
    want.extend(kestra_instance_grants("team-b"));
    want.extend(cluster_instance_grants());
    assert_eq!(instance_grants(&all), want);
    assert_cluster_instance_role(&objects, "ops");
    let outside: BTreeSet<Grant> = all
        .iter()
        .filter(|g| g.0 != "team-a" && g.0 != "team-b")
        .cloned()
        .collect();
    let mut want: BTreeSet<Grant> = cluster_instance_grants().into_iter().collect();
    want.extend(grant("ops", "", "secrets", &["get", "list", "watch"]));
    want.extend(grant("ops", "", "configmaps", &["get", "list", "watch"]));
    want.extend(grant(
        "default",
        "events.k8s.io",
        "events",
        &["create", "patch"],
    ));
    // leader election and the webhook's configuration, as before
    want.extend(grant("ops", "coordination.k8s.io", "leases", &["create"]));
    for verb in ["get", "patch"] {
        want.insert((
            "ops".into(),
            "coordination.k8s.io".into(),
            "leases".into(),
            verb.into(),
            FULLNAME.into(),
        ));
    }
    for verb in ["get", "update"] {
        want.insert((
            String::new(),
            "admissionregistration.k8s.io".into(),
            "validatingwebhookconfigurations".into(),
            verb.into(),
            format!("ops-{FULLNAME}"),
        ));
    }
    assert_eq!(outside, want);
    let secrets_role = named(&objects, "Role", &format!("{FULLNAME}-cluster-instances"));
    assert_eq!(secrets_role["metadata"]["namespace"], "ops");
    let events_role = named(&objects, "Role", &format!("ops-{FULLNAME}-instance-events"));
    assert_eq!(events_role["metadata"]["namespace"], "default");

    // the release namespace and `default` watched: their Roles already cover both
    let objects = render("ops", &["--set", "watchNamespaces={team-a,ops,default}"]).unwrap();
    let all = grants(&objects);
    let mut want: BTreeSet<Grant> = kestra_instance_grants("team-a").into_iter().collect();
    want.extend(kestra_instance_grants("ops"));
    want.extend(kestra_instance_grants("default"));
    want.extend(cluster_instance_grants());
    assert_eq!(instance_grants(&all), want);
    let roles: Vec<&str> = of_kind(&objects, "Role")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        !roles
            .iter()
            .any(|r| r.ends_with("-cluster-instances") || r.ends_with("-instance-events")),
        "{roles:?}"
    );
    assert!(all.contains(&grant("default", "events.k8s.io", "events", &["create"])[0]));
    assert!(all.contains(&grant("ops", "", "secrets", &["get"])[0]));

    // rbac.create=false or operator.enabled=false: none of it
    for off in ["rbac.create=false", "operator.enabled=false"] {
        let objects = render("ops", &["--set", off]).unwrap();
        assert!(grants(&objects).is_empty(), "{off}");
        assert!(rbac(&objects).0.is_empty(), "{off}");
    }
}

/// Wrong instance values, refused by the schema before anything is rendered.
const REFUSED_INSTANCES: &[(&str, &str)] = &[
    (
        "instances:\n  - name: no-url\n",
        "at '/instances/0': missing property 'url'",
    ),
    (
        "instances:\n  - url: http://kestra:8080\n",
        "at '/instances/0': missing property 'name'",
    ),
    (
        "clusterInstances:\n  - name: c\n",
        "at '/clusterInstances/0': missing property 'url'",
    ),
    (
        "instances:\n  - {name: a, url: 'ftp://kestra'}\n",
        "at '/instances/0/url'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://admin:pw@kestra:8080'}\n",
        "at '/instances/0/url'",
    ),
    (
        "instances:\n  - {name: A_b, url: 'http://kestra:8080'}\n",
        "at '/instances/0/name'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', tenant: Acme}\n",
        "at '/instances/0/tenant'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', timeout: 30}\n",
        "at '/instances/0/timeout'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', rateLimit: -1}\n",
        "at '/instances/0/rateLimit'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', auth: {}}\n",
        "at '/instances/0/auth'",
    ),
    (
        "instances:\n  - name: a\n    url: http://kestra:8080\n    auth:\n      apiKeySecretRef: {name: s, key: k}\n      basicAuthSecretRef: {name: s, key: b}\n",
        "at '/instances/0/auth'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', auth: {apiKeySecretRef: {name: s}}}\n",
        "at '/instances/0/auth/apiKeySecretRef': missing property 'key'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', caBundleRef: {configMapKeyRef: {name: c, key: k}, secretKeyRef: {name: s, key: k}}}\n",
        "at '/instances/0/caBundleRef'",
    ),
    (
        "instances:\n  - {name: a, url: 'http://kestra:8080', allowedNamespaces: {}}\n",
        "at '/instances/0': additional properties 'allowedNamespaces' not allowed",
    ),
    (
        "clusterInstances:\n  - {name: a, url: 'http://kestra:8080', namespace: team-a}\n",
        "at '/clusterInstances/0': additional properties 'namespace' not allowed",
    ),
    (
        "clusterInstances:\n  - {name: a, url: 'http://kestra:8080', allowedNamespaces: {matchLabel: {a: b}}}\n",
        "at '/clusterInstances/0/allowedNamespaces'",
    ),
    (
        "clusterInstances:\n  - {name: a, url: 'http://kestra:8080', allowedNamespaces: {matchExpressions: [{key: a, operator: Is}]}}\n",
        "at '/clusterInstances/0/allowedNamespaces/matchExpressions/0/operator'",
    ),
    ("instances: {name: a}\n", "at '/instances'"),
    ("instanceCheckPeriod: 0s\n", "at '/instanceCheckPeriod'"),
    (
        "instanceCheckPeriod: 1 minute\n",
        "at '/instanceCheckPeriod'",
    ),
];

#[test]
fn values_schema_refuses_wrong_instances() {
    for (i, (values, complaint)) in REFUSED_INSTANCES.iter().enumerate() {
        let file = values_file(&format!("refused-{i}"), values);
        let (passed, text) = lint(&["-f", &file]);
        assert!(!passed, "helm lint with {values:?} passed:\n{text}");
        assert!(
            text.contains("[ERROR]") && text.contains(complaint),
            "helm lint with {values:?}: want {complaint:?} in:\n{text}"
        );
        let err = render_refused(&["-f", &file]);
        assert!(
            err.contains(SCHEMA_ERROR) && err.contains(complaint),
            "helm template with {values:?}: want {complaint:?} in:\n{err}"
        );
    }
}

#[test]
fn chart_lints_clean_with_instances() {
    let values = values_file("lint-instances", VALUES);
    assert_lints_clean(&["-f", &values]);
    assert_lints_clean(&[
        "-f",
        &values,
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "instanceCheckPeriod=30s",
    ]);
    assert_lints_clean(&["-f", &values, "--set", "operator.enabled=false"]);
}

// ---------------------------------------------------------------------------------------------
// on the test control plane

/// The Ready condition and `status.reason` of an instance (`-n NS` for a KestraInstance).
fn ready_of(env: &TestEnv, resource: &str, ns: Option<&str>) -> anyhow::Result<(Value, Value)> {
    let mut args = vec!["get", resource, "-o", "json"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let obj: Value = serde_json::from_str(&env.kubectl_ok(&args)?)?;
    let ready = obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok((ready, obj))
}

async fn wait_instance(
    env: &TestEnv,
    resource: &str,
    ns: Option<&str>,
    want: (&str, &str),
) -> anyhow::Result<Value> {
    wait_until(READY_TIMEOUT, POLL, || async {
        let (ready, obj) = ready_of(env, resource, ns)?;
        ensure!(
            ready["status"] == want.0 && ready["reason"] == want.1,
            "{resource}: Ready is {ready}, want {want:?}; status.reason {}",
            obj["status"]["reason"]
        );
        Ok(obj)
    })
    .await
}

/// Events from kestra-operator in `ns` about `name` (of `kind`).
fn events_about(env: &TestEnv, ns: &str, kind: &str, name: &str) -> anyhow::Result<Vec<Value>> {
    let list: Value = serde_json::from_str(&env.kubectl_ok([
        "get",
        "events.events.k8s.io",
        "-n",
        ns,
        "-o",
        "json",
    ])?)?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["reportingController"] == "kestra-operator"
                && e["regarding"]["kind"] == kind
                && e["regarding"]["name"] == name
        })
        .cloned()
        .collect())
}

/// A ClusterKestraInstance of a test: on drop (a failed test), its finalizer is taken off so
/// that it does not stay Terminating without an operator, and it is deleted.
fn flow_via(name: &str, kestra_ns: &str, instance_kind: &str, instance: &str) -> String {
    format!(
        r#"apiVersion: model.kestra.io/v1alpha1
kind: KestraFlow
metadata: {{name: {name}}}
spec:
  id: {name}
  namespace: {kestra_ns}
  instanceRef: {{kind: {instance_kind}, name: {instance}}}
  source: |
    id: {name}
    namespace: {kestra_ns}
    tasks:
    - id: hello
      type: io.kestra.plugin.core.log.Log
      message: Hello through an instance
"#
    )
}

/// `watchNamespaces` with one KestraInstance (API token from a Secret of its namespace) and one
/// ClusterKestraInstance (basic auth from a Secret of the release namespace, which is not
/// watched), both from the chart's values, the operator run with the chart's ServiceAccount
/// token: both Ready with their version in status, a finalizer on each, Events in the instance's
/// namespace and in `default`, a flow synced through each; a deletion held while a flow uses the
/// instance, then done; nothing forbidden. The ServiceAccount's rights are then checked with
/// `kubectl auth can-i`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_identity_checks_instances() -> anyhow::Result<()> {
    let _serial = OPERATOR_RUNS.lock().await;
    let env = env();
    let release = env.namespace("helm-rel")?;
    let app = env.namespace("helm-app")?;
    let other = env.namespace("helm-other")?;
    let cluster_name = format!("{}-shared", app.name);
    app.kubectl_ok([
        "create",
        "secret",
        "generic",
        "kestra-token",
        &format!("--from-literal=token={}", env.api_key),
    ])?;
    release.kubectl_ok([
        "create",
        "secret",
        "generic",
        "kestra-shared",
        &format!("--from-literal=basicAuth={}", env.basic_auth),
    ])?;
    let values = values_file(
        "live-instances",
        &format!(
            r#"
instances:
  - name: team
    namespace: {app}
    url: {url}
    auth:
      apiKeySecretRef: {{name: kestra-token, key: token}}
clusterInstances:
  - name: {cluster_name}
    url: {url}
    auth:
      basicAuthSecretRef: {{name: kestra-shared, key: basicAuth}}
    allowedNamespaces:
      matchLabels: {{kubernetes.io/metadata.name: {app}}}
"#,
            app = app.name,
            url = env.kestra_url,
        ),
    );
    let objects = render(
        &release.name,
        &[
            "-f",
            &values,
            "--set",
            &format!("kestra.url={}", env.kestra_url),
            "--set",
            &format!("watchNamespaces={{{}}}", app.name),
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "instanceCheckPeriod=5s",
            // one namespace watched: this install keeps the cluster instance's status all the same
            "--set-string",
            "manageClusterInstances=true",
        ],
    )?;
    // the rendered instances pass the CRDs' own validation
    let instances: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["kind"]
                .as_str()
                .is_some_and(|k| k.contains("KestraInstance"))
        })
        .collect();
    ensure!(instances.len() == 2);
    kubectl_apply(env, &instances, true)?;
    let _cleanup = install(env, &release.name, &objects)?;
    let _cluster = env.cluster_object("clusterkestrainstance", &cluster_name);
    let (mut op, _pod) = start_as_chart(env, &release.name, &objects, &[])?;
    assert_running(&mut op).await?;
    let resolved = resolve_env(env, &objects, "p")?;
    ensure!(
        resolved
            .iter()
            .any(|(k, v)| k == "POD_NAMESPACE" && *v == release.name),
        "POD_NAMESPACE is the release namespace"
    );

    let cluster_ref = format!("clusterkestrainstance/{cluster_name}");
    for (resource, ns) in [
        ("kestrainstance/team", Some(app.name.as_str())),
        (cluster_ref.as_str(), None),
    ] {
        let obj = wait_instance(env, resource, ns, ("True", "Connected")).await?;
        ensure!(
            obj["status"]["version"].is_string(),
            "{resource}: no version in {}",
            obj["status"]
        );
        ensure!(
            obj["metadata"]["finalizers"] == json!(["model.kestra.io/finalizer"]),
            "{resource}: finalizers {}",
            obj["metadata"]["finalizers"]
        );
    }
    // the Events: the KestraInstance's in its namespace, the cluster instance's in `default`
    wait_until(Duration::from_secs(30), POLL, || async {
        ensure!(
            !events_about(env, &app.name, "KestraInstance", "team")?.is_empty(),
            "no Event about KestraInstance team"
        );
        ensure!(
            !events_about(env, "default", "ClusterKestraInstance", &cluster_name)?.is_empty(),
            "no Event in default about ClusterKestraInstance {cluster_name}"
        );
        Ok(())
    })
    .await?;

    // a flow through each
    app.apply(&flow_via("via-team", &app.kestra, "KestraInstance", "team"))?;
    app.apply(&flow_via(
        "via-cluster",
        &app.kestra,
        "ClusterKestraInstance",
        &cluster_name,
    ))?;
    for flow in ["kestraflow/via-team", "kestraflow/via-cluster"] {
        wait_until(READY_TIMEOUT, POLL, || async {
            let (ready, obj) = ready_of(env, flow, Some(&app.name))?;
            ensure!(
                ready["status"] == "True",
                "{flow}: Ready is {ready}, status.reason {}",
                obj["status"]["reason"]
            );
            Ok(())
        })
        .await?;
    }

    // deleting the cluster instance is held while the flow uses it (listed in watched namespaces)
    env.kubectl_ok(["delete", &cluster_ref, "--wait=false"])?;
    wait_instance(env, &cluster_ref, None, ("False", "InstanceInUse")).await?;
    app.kubectl_ok([
        "delete",
        "kestraflow/via-cluster",
        "kestraflow/via-team",
        "--wait=false",
    ])?;
    app.kubectl_ok(["delete", "kestrainstance/team", "--wait=false"])?;
    wait_until(READY_TIMEOUT, POLL, || async {
        let left = app.kubectl_ok(["get", "kestraflows,kestrainstances", "-o", "name"])?;
        let cluster = env.kubectl_ok(["get", &cluster_ref, "--ignore-not-found", "-o", "name"])?;
        ensure!(
            left.trim().is_empty() && cluster.trim().is_empty(),
            "still there: {left} {cluster}"
        );
        Ok(())
    })
    .await?;
    assert_nothing_forbidden(&op)?;
    let status = op.stop()?;
    ensure!(
        status.success(),
        "the operator exited with {status}:\n{}",
        op.tail(40)
    );
    assert_nothing_forbidden(&op)?;

    // what that identity may do, and what not
    let a = format!("--namespace={}", app.name);
    let o = format!("--namespace={}", other.name);
    let r = format!("--namespace={}", release.name);
    let d = "--namespace=default";
    let all = "--all-namespaces";
    assert_can(
        env,
        &release.name,
        &[
            &["list", "kestrainstances.model.kestra.io", &a],
            &["watch", "kestrainstances.model.kestra.io", &a],
            &["patch", "kestrainstances.model.kestra.io", &a],
            &[
                "patch",
                "kestrainstances.model.kestra.io",
                "--subresource=status",
                &a,
            ],
            &["list", "clusterkestrainstances.model.kestra.io"],
            &["watch", "clusterkestrainstances.model.kestra.io"],
            &["patch", "clusterkestrainstances.model.kestra.io"],
            &[
                "patch",
                "clusterkestrainstances.model.kestra.io",
                "--subresource=status",
            ],
            &["list", "namespaces"],
            &["watch", "namespaces"],
            &["get", "secrets", &r],
            &["watch", "secrets", &r],
            &["list", "configmaps", &r],
            &["create", "events.events.k8s.io", d],
            &["patch", "events.events.k8s.io", d],
        ],
        true,
    )?;
    assert_can(
        env,
        &release.name,
        &[
            &["list", "kestrainstances.model.kestra.io", all],
            &["list", "kestrainstances.model.kestra.io", &o],
            &["patch", "kestrainstances.model.kestra.io", &o],
            &["create", "kestrainstances.model.kestra.io", &a],
            &["delete", "kestrainstances.model.kestra.io", &a],
            &["update", "kestrainstances.model.kestra.io", &a],
            &[
                "update",
                "kestrainstances.model.kestra.io",
                "--subresource=status",
                &a,
            ],
            &["create", "clusterkestrainstances.model.kestra.io"],
            &["delete", "clusterkestrainstances.model.kestra.io"],
            &["update", "clusterkestrainstances.model.kestra.io"],
            &[
                "update",
                "clusterkestrainstances.model.kestra.io",
                "--subresource=status",
            ],
            &["create", "namespaces"],
            &["patch", "namespaces"],
            &["delete", "namespaces"],
            &["get", "secrets", &o],
            &["create", "secrets", &r],
            &["update", "secrets", &r],
            &["delete", "secrets", &r],
            &["patch", "configmaps", &r],
            &["get", "secrets", d],
            &["create", "events", d],
            &["delete", "events.events.k8s.io", d],
            &["create", "events.events.k8s.io", &o],
            &["create", "events.events.k8s.io", &r],
        ],
        false,
    )?;
    Ok(())
}

/// `helm install` with instances in the values, for real: Helm handles crds/ first (here they
/// exist already, as after any first install), then creates the instances with the rest of the
/// release, each labelled as the release's; `helm uninstall` removes them again (no operator runs
/// here, so no finalizer holds them). The webhook is off: no other test's apply goes through a
/// webhook without a server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_instances_with_the_release() -> anyhow::Result<()> {
    let _serial = OPERATOR_RUNS.lock().await;
    let env = env();
    let release = env.namespace("helm-inst")?;
    let app = env.namespace("helm-app")?;
    let cluster_name = format!("{}-cluster", release.name);
    let _cluster = env.cluster_object("clusterkestrainstance", &cluster_name);
    let values = values_file(
        "install-instances",
        &format!(
            r#"
instances:
  - name: here
    url: {url}
  - name: there
    namespace: {app}
    url: {url}
    auth:
      basicAuthSecretRef: {{name: kestra, key: basicAuth}}
clusterInstances:
  - name: {cluster_name}
    url: {url}
    allowedNamespaces: {{}}
"#,
            app = app.name,
            url = env.kestra_url,
        ),
    );
    let chart = chart();
    let chart = chart.to_str().context("chart path")?;
    let watched = format!("watchNamespaces={{{},{}}}", release.name, app.name);
    let install = [
        "install",
        "inst",
        chart,
        "--namespace",
        &release.name,
        "-f",
        &values,
        "--set",
        &watched,
        "--set",
        "webhook.enabled=false",
    ];
    helm_ok(env, &install)?;
    let labels = |resource: &str, ns: Option<&str>| -> anyhow::Result<Value> {
        let mut args = vec!["get", resource, "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let obj: Value = serde_json::from_str(&env.kubectl_ok(&args)?)?;
        Ok(obj["metadata"]["labels"].clone())
    };
    let cluster_ref = format!("clusterkestrainstance/{cluster_name}");
    for (resource, ns) in [
        ("kestrainstance/here", Some(release.name.as_str())),
        ("kestrainstance/there", Some(app.name.as_str())),
        (cluster_ref.as_str(), None),
    ] {
        let labels = labels(resource, ns)?;
        ensure!(
            labels["app.kubernetes.io/instance"] == "inst"
                && labels["app.kubernetes.io/managed-by"] == "Helm"
                && labels["app.kubernetes.io/component"] == "instance",
            "{resource}: labels {labels}"
        );
    }
    let manifest = helm_ok(
        env,
        &["get", "manifest", "inst", "--namespace", &release.name],
    )?;
    ensure!(
        manifest.contains("kind: KestraInstance")
            && manifest.contains("kind: ClusterKestraInstance"),
        "the instances are part of the release"
    );
    helm_ok(
        env,
        &[
            "uninstall",
            "inst",
            "--namespace",
            &release.name,
            "--wait",
            "--timeout=60s",
        ],
    )?;
    let left = env.kubectl_ok(["get", &cluster_ref, "--ignore-not-found", "-o", "name"])?;
    let left_here = release.kubectl_ok(["get", "kestrainstances", "-o", "name"])?;
    let left_there = app.kubectl_ok(["get", "kestrainstances", "-o", "name"])?;
    ensure!(
        left.trim().is_empty() && left_here.trim().is_empty() && left_there.trim().is_empty(),
        "left after uninstall: {left} {left_here} {left_there}"
    );
    Ok(())
}
