//! Proves the test environment: the pinned control plane, CEL admission, the Kestra double
//! with its credentials, and per-test namespaces.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use testenv::{TestEnv, wait_until};

/// The Kubernetes version pinned in tools/k8s/go.mod.
fn pinned_k8s_version(env: &TestEnv) -> String {
    let go_mod =
        std::fs::read_to_string(env.root.join("tools/k8s/go.mod")).expect("tools/k8s/go.mod");
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("require k8s.io/kubernetes "))
        .map(|v| v.trim().to_string())
        .expect("a `require k8s.io/kubernetes vX` line in tools/k8s/go.mod")
}

#[test]
fn server_and_kubectl_run_the_pinned_version() {
    let env = TestEnv::get().unwrap();
    let want = pinned_k8s_version(env);
    let out = env.kubectl_ok(["version", "-o", "json"]).unwrap();
    let version: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        want.as_str(),
        "{out}"
    );
    assert_eq!(
        version["clientVersion"]["gitVersion"],
        want.as_str(),
        "{out}"
    );
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.cel.testenv.example
spec:
  group: cel.testenv.example
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer}
            x-kubernetes-validations:
            - rule: "self.size <= 10"
              message: "size must be at most 10 (testenv CEL rule)"
"#;

fn widget(name: &str, size: i64) -> String {
    format!(
        "apiVersion: cel.testenv.example/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{size: {size}}}\n"
    )
}

#[tokio::test]
async fn crd_cel_rules_are_enforced_at_admission() {
    let env = TestEnv::get().unwrap();
    let out = env
        .kubectl_stdin(
            ["apply", "--server-side", "--force-conflicts", "-f", "-"],
            WIDGET_CRD,
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.kubectl_ok([
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/widgets.cel.testenv.example",
    ])
    .unwrap();
    let ns = env.namespace("cel").unwrap();

    // discovery may lag the Established condition by a moment
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async { ns.apply(&widget("small", 3)).map(drop) },
    )
    .await
    .unwrap();

    let out = env
        .kubectl_stdin(["-n", &ns.name, "apply", "-f", "-"], &widget("big", 11))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid Widget was accepted");
    assert!(
        stderr.contains("size must be at most 10 (testenv CEL rule)"),
        "{stderr}"
    );
    let listed = ns.kubectl_ok(["get", "widgets", "-o", "name"]).unwrap();
    assert_eq!(listed.trim(), "widget.cel.testenv.example/small");
}

#[tokio::test]
async fn the_kestra_double_answers_with_the_credentials_from_env_sh() {
    let env = TestEnv::get().unwrap();
    env.fake_hooks().unwrap().health().await.unwrap();

    let ns = env.namespace("fake").unwrap();
    let url = format!("{}/api/v1/main/flows/{}", env.kestra_url, ns.kestra);
    let http = reqwest::Client::new();
    let (user, password) = env.basic_auth.split_once(':').unwrap();

    let basic = http
        .get(&url)
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let status = basic.status();
    let body = basic.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!([])
    );

    let bearer = http
        .get(&url)
        .bearer_auth(&env.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .get(&url)
        .basic_auth(user, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn test_namespaces_are_fresh_and_distinct() -> anyhow::Result<()> {
    let env = TestEnv::get()?;
    let a = env.namespace("distinct")?;
    let b = env.namespace("distinct")?;
    assert_ne!(a.name, b.name);
    assert_ne!(a.kestra, b.kestra);
    for ns in [&a, &b] {
        assert!(ns.name.starts_with("distinct-"), "{}", ns.name);
        assert!(ns.kestra.starts_with("e2e.distinct-"), "{}", ns.kestra);
        let first = ns.kestra.chars().next().context("empty")?;
        assert!(first.is_ascii_lowercase() || first.is_ascii_digit());
        assert!(
            ns.kestra
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c)),
            "{}",
            ns.kestra
        );
    }

    let client = env.kube_client().await?;
    let labelled = Api::<Namespace>::all(client)
        .list(&ListParams::default().labels("kestra-operator-test=true"))
        .await?;
    let names: Vec<_> = labelled
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(
        names.contains(&a.name) && names.contains(&b.name),
        "{names:?}"
    );
    Ok(())
}

#[tokio::test]
async fn fake_hooks_inject_failures_and_count_requests() -> anyhow::Result<()> {
    let env = TestEnv::get()?;
    let hooks = env.fake_hooks()?;
    let ns = env.namespace("hooks")?;
    let path = format!("/api/v1/main/flows/{}", ns.kestra);
    let url = format!("{}{path}", env.kestra_url);
    let http = reqwest::Client::new();
    let get = || http.get(&url).bearer_auth(&env.api_key).send();

    let before = hooks.counters().await?.count_status("GET", 503);
    hooks.fail_next(1, 503, &path).await?;
    assert_eq!(get().await?.status(), 503);
    assert_eq!(get().await?.status(), 200);
    // other tests share the counters: they can only have grown
    assert!(hooks.counters().await?.count_status("GET", 503) > before);
    Ok(())
}

#[test]
fn operator_helper_passes_the_environment_and_stops_the_process() -> anyhow::Result<()> {
    use testenv::Operator;
    let env = TestEnv::get()?;
    let script = r#"echo "kubeconfig=$KUBECONFIG url=$KESTRA_API_URL key=${KESTRA_API_API_KEY:-none} extra=$EXTRA"
trap 'echo got TERM; exit 0' TERM
echo ready
while :; do sleep 0.05; done"#;
    let mut op = Operator::start(env, "/bin/sh", &["-c", script], &[("EXTRA", "x1")])?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(op.wait_for_log("ready", Duration::from_secs(10)))?;
    let logs = op.logs();
    assert!(
        logs.contains(&format!("kubeconfig={}", env.kubeconfig.display())),
        "{logs}"
    );
    assert!(logs.contains(&format!("url={}", env.kestra_url)), "{logs}");
    assert!(logs.contains("key=none extra=x1"), "{logs}");
    assert!(op.log_path().starts_with(env.logs_dir()));
    let status = op.stop()?;
    assert!(status.success(), "{status:?}");
    assert!(op.logs().contains("got TERM"));

    let mut op = Operator::start(
        env,
        "/bin/sh",
        &["-c", "trap '' TERM; while :; do sleep 0.05; done"],
        &[],
    )?;
    let status = op.stop_within(Duration::from_millis(300))?; // ignores SIGTERM: killed
    assert!(!status.success());
    Ok(())
}
