//! End to end: one operator, several Kestras. The same manifests reach the operator's default
//! Kestra, a `KestraInstance` (a double answering like 1.3, with basic auth) and a
//! `ClusterKestraInstance` (a double answering like 2.0) by `spec.instanceRef`; claims, drift,
//! deletion and name rules are per instance; a namespace the cluster instance does not allow is
//! refused; a rotated credential is picked up without a restart; an instance in use is not let
//! go.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use anyhow::ensure;
use common::*;
use kestra_fake::{FakeConfig, KestraVersion};
use testenv::wait_until;

/// Within this, an instance check or a resync has happened (check period 2 s, resync 3 s).
const SOON: Duration = Duration::from_secs(30);

fn staging_fake() -> FakeConfig {
    FakeConfig {
        basic_auth: Some("admin:one".parse().unwrap()),
        kestra_version: KestraVersion::V1_3,
        ..FakeConfig::default()
    }
}

fn production_fake() -> FakeConfig {
    FakeConfig {
        kestra_version: KestraVersion::V2_0,
        ..FakeConfig::default()
    }
}

fn instance_manifest(name: &str, url: &str, auth_secret: Option<&str>) -> String {
    let auth = auth_secret.map_or_else(String::new, |secret| {
        format!("  auth:\n    basicAuthSecretRef: {{name: {secret}, key: basicAuth}}\n")
    });
    format!(
        "apiVersion: model.kestra.io/v1alpha1\nkind: KestraInstance\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n{auth}"
    )
}

fn cluster_instance_manifest(name: &str, url: &str, label: &str) -> String {
    format!(
        "apiVersion: model.kestra.io/v1alpha1\nkind: ClusterKestraInstance\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  allowedNamespaces:\n    matchLabels: {{{label}: \"yes\"}}\n"
    )
}

fn secret_manifest(name: &str, basic_auth: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  basicAuth: \"{basic_auth}\"\n"
    )
}

/// `  instanceRef: ...` spec lines.
fn instance_ref(kind: &str, name: &str) -> String {
    format!("  instanceRef:\n    kind: {kind}\n    name: {name}\n")
}

/// A flow both Kestra lines accept (2.0 no longer knows the legacy `io.kestra.core` Log type).
fn flow_source(id: &str, kestra_ns: &str, extra: &str) -> String {
    format!(
        "id: {id}\nnamespace: {kestra_ns}\n{extra}tasks:\n- id: hello\n  type: io.kestra.plugin.core.log.Log\n  message: hi\n"
    )
}

/// An operator watching `namespace`, checking its instances every 2 s. It keeps the status of
/// cluster instances although it watches one namespace only: each test's cluster instance has
/// a name of its own, and none of them is deleted while in use.
fn operator(namespace: &str) -> OpSpec<'_> {
    OpSpec::new(&[namespace], "3s")
        .env("INSTANCE_CHECK_PERIOD", "2s")
        .env("MANAGE_CLUSTER_INSTANCES", "true")
}

/// Deleted when the test ends, passed or not (its finalizer first): nothing is left on the
/// shared API server.
fn cluster_instance_guard(name: &str) -> testenv::ClusterObject {
    env().cluster_object("clusterkestrainstance", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manifests_reach_each_instance_by_instance_ref() {
    let ns = namespace("inst-route");
    let kn = ns.kestra.clone();
    let staging = private_fake(staging_fake()).await.unwrap();
    let production = private_fake(production_fake()).await.unwrap();
    let prod_name = format!("prod-{}", ns.name);
    let _cluster = cluster_instance_guard(&prod_name);
    let label = format!("prod-{}", ns.name);
    k(
        &ns.name,
        &["label", "namespace", &ns.name, &format!("{label}=yes")],
    )
    .await
    .unwrap();
    let op = start_operator(operator(&ns.name)).await.unwrap();

    apply(
        &ns.name,
        &[
            secret_manifest("staging-kestra", "admin:one"),
            instance_manifest("staging", &staging.url(), Some("staging-kestra")),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    apply(
        &ns.name,
        &cluster_instance_manifest(&prod_name, &production.url(), &label),
    )
    .await
    .unwrap();
    let inst = wait_ready(&ns.name, "kestrainstance/staging")
        .await
        .unwrap();
    assert_eq!(inst["status"]["version"], "1.3.31", "{}", inst["status"]);
    let cluster = wait_ready(&ns.name, &format!("clusterkestrainstance/{prod_name}"))
        .await
        .unwrap();
    assert_eq!(
        cluster["status"]["version"], "2.0.0",
        "{}",
        cluster["status"]
    );
    // What `kubectl get` prints.
    let listed = k(&ns.name, &["get", "kestrainstance"]).await.unwrap();
    let rows = table(&listed);
    assert_eq!(cell(&rows[0], "URL"), staging.url(), "{listed}");
    assert_eq!(cell(&rows[0], "VERSION"), "1.3.31", "{listed}");
    assert_eq!(cell(&rows[0], "READY"), "True", "{listed}");

    // One flow id, one key, one file in three Kestras: not a conflict.
    let source = flow_source("hello", &kn, "");
    let mut manifests = Vec::new();
    let mut plus_files = Vec::new();
    for (suffix, reference) in [
        ("default", String::new()),
        ("staging", instance_ref("KestraInstance", "staging")),
        ("prod", instance_ref("ClusterKestraInstance", &prod_name)),
    ] {
        manifests.push(flow_manifest(
            &format!("hello-{suffix}"),
            "hello",
            &kn,
            &source,
            &reference,
        ));
        manifests.push(kv_manifest(
            &format!("kv-{suffix}"),
            &kn,
            "greeting",
            &format!("{reference}  value: {suffix}\n"),
        ));
        manifests.push(file_manifest(
            &format!("file-space-{suffix}"),
            &kn,
            "dir/a b.txt",
            &format!("{reference}  content: space\n"),
        ));
        plus_files.push(file_manifest(
            &format!("file-plus-{suffix}"),
            &kn,
            "dir/a+b.txt",
            &format!("{reference}  content: plus\n"),
        ));
    }
    apply(&ns.name, &manifests.join("---\n")).await.unwrap();
    for suffix in ["default", "staging", "prod"] {
        wait_ready(&ns.name, &format!("flow/hello-{suffix}"))
            .await
            .unwrap();
        wait_ready(&ns.name, &format!("kv/kv-{suffix}"))
            .await
            .unwrap();
        wait_ready(&ns.name, &format!("nsfile/file-space-{suffix}"))
            .await
            .unwrap();
    }
    // A `+` where there is a space: one file on 1.3 (the default double and staging), another
    // on 2.0.
    next_second().await;
    apply(&ns.name, &plus_files.join("---\n")).await.unwrap();
    wait_ready(&ns.name, "nsfile/file-plus-prod").await.unwrap();
    for suffix in ["default", "staging"] {
        wait_reason(
            &ns.name,
            &format!("nsfile/file-plus-{suffix}"),
            "False",
            "Conflict",
            READY,
        )
        .await
        .unwrap();
    }
    let shared = Kestra::shared();
    let stage = Kestra::new(
        &staging.url(),
        Some("main"),
        Some(("admin".into(), "one".into())),
    );
    let prod = Kestra::private(&production.url());
    for (kestra, value) in [(&shared, "default"), (&stage, "staging"), (&prod, "prod")] {
        assert_eq!(
            kestra.flow_source(&kn, "hello").await.unwrap().as_deref(),
            Some(source.as_str())
        );
        let (_, kv) = kestra.kv(&kn, "greeting").await.unwrap();
        assert_eq!(kv["value"], value, "{value}: {kv}");
    }
    assert_eq!(
        prod.file(&kn, "/dir/a+b.txt").await.unwrap().as_deref(),
        Some(&b"plus"[..])
    );
    assert_eq!(
        prod.file(&kn, "/dir/a b.txt").await.unwrap().as_deref(),
        Some(&b"space"[..])
    );

    // A second resource naming staging's flow conflicts there, and only there.
    apply(
        &ns.name,
        &flow_manifest(
            "hello-staging-2",
            "hello",
            &kn,
            &source,
            &instance_ref("KestraInstance", "staging"),
        ),
    )
    .await
    .unwrap();
    let conflict = wait_reason(&ns.name, "flow/hello-staging-2", "False", "Conflict", READY)
        .await
        .unwrap();
    let message = condition(&conflict, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("hello-staging"), "{message}");

    // Drift in staging is reverted there; production is not written.
    let prod_writes = writes(&production.url()).await.unwrap();
    stage
        .save_flow(
            &kn,
            "hello",
            &flow_source("hello", &kn, "description: edited\n"),
        )
        .await
        .unwrap();
    wait_until(SOON, POLL, || async {
        let now = stage.flow_source(&kn, "hello").await?;
        ensure!(
            now.as_deref() == Some(source.as_str()),
            "staging not restored yet"
        );
        Ok(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        writes(&production.url()).await.unwrap(),
        prod_writes,
        "no write to production"
    );

    // Requests are counted per instance.
    let metrics = op.metrics().await.unwrap();
    for instance in [
        format!("KestraInstance/{}/staging", ns.name),
        format!("ClusterKestraInstance/{prod_name}"),
        "default".to_string(),
    ] {
        assert!(
            metrics.contains(&format!(
                "kestra_operator_kestra_requests_total{{instance=\"{instance}\""
            )),
            "no requests counted for {instance}"
        );
    }
    assert!(
        metrics.contains(&format!(
            "kestra_operator_instance_ready{{instance=\"ClusterKestraInstance/{prod_name}\"}} 1"
        )),
        "{metrics}"
    );

    // The conflict's loser goes and deletes nothing; the owner goes and deletes staging's flow,
    // and only that one.
    k(
        &ns.name,
        &[
            "delete",
            "flow/hello-staging-2",
            "--wait=true",
            "--timeout=60s",
        ],
    )
    .await
    .unwrap();
    assert!(
        stage.flow(&kn, "hello").await.unwrap().is_some(),
        "a loser deletes nothing"
    );
    k(
        &ns.name,
        &[
            "delete",
            "flow/hello-staging",
            "--wait=true",
            "--timeout=60s",
        ],
    )
    .await
    .unwrap();
    assert!(
        stage.flow(&kn, "hello").await.unwrap().is_none(),
        "deleted in staging"
    );
    assert!(prod.flow(&kn, "hello").await.unwrap().is_some());
    assert!(shared.flow(&kn, "hello").await.unwrap().is_some());

    k(
        &ns.name,
        &[
            "delete",
            "flow,kv,nsfile",
            "--all",
            "--wait=true",
            "--timeout=60s",
        ],
    )
    .await
    .unwrap();
    drop(op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_the_cluster_instance_does_not_allow_is_refused_until_allowed() {
    let ns = namespace("inst-allow");
    let kn = ns.kestra.clone();
    let production = private_fake(production_fake()).await.unwrap();
    let prod_name = format!("prod-{}", ns.name);
    let _cluster = cluster_instance_guard(&prod_name);
    let label = format!("allow-{}", ns.name);
    let _op = start_operator(operator(&ns.name)).await.unwrap();
    apply(
        &ns.name,
        &cluster_instance_manifest(&prod_name, &production.url(), &label),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, &format!("clusterkestrainstance/{prod_name}"))
        .await
        .unwrap();

    let source = flow_source("guarded", &kn, "");
    apply(
        &ns.name,
        &[
            flow_manifest(
                "guarded",
                "guarded",
                &kn,
                &source,
                &instance_ref("ClusterKestraInstance", &prod_name),
            ),
            flow_manifest(
                "orphan",
                "orphan",
                &kn,
                &flow_source("orphan", &kn, ""),
                &instance_ref("KestraInstance", "later"),
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    let refused = wait_reason(
        &ns.name,
        "flow/guarded",
        "False",
        "InstanceNotAllowed",
        READY,
    )
    .await
    .unwrap();
    assert_stalled(&refused, "InstanceNotAllowed");
    let message = condition(&refused, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&ns.name) && message.contains("allowedNamespaces"),
        "{message}"
    );
    let missing = wait_reason(&ns.name, "flow/orphan", "False", "InstanceNotFound", READY)
        .await
        .unwrap();
    assert_transient(&missing, "InstanceNotFound");
    assert!(
        writes(&production.url()).await.unwrap().is_empty(),
        "nothing written"
    );

    // instanceRef cannot be changed.
    let moved = apply_refused(
        &ns.name,
        &flow_manifest(
            "guarded",
            "guarded",
            &kn,
            &source,
            &instance_ref("KestraInstance", "later"),
        ),
    )
    .await
    .unwrap();
    assert!(moved.contains("spec.instanceRef is immutable"), "{moved}");

    // Labelling the namespace lets it in; creating the missing instance wakes its resource.
    k(
        &ns.name,
        &["label", "namespace", &ns.name, &format!("{label}=yes")],
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/guarded").await.unwrap();
    let prod = Kestra::private(&production.url());
    assert_eq!(
        prod.flow_source(&kn, "guarded").await.unwrap().as_deref(),
        Some(source.as_str())
    );
    apply(
        &ns.name,
        &instance_manifest("later", &production.url(), None),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/orphan").await.unwrap();

    // Another URL: the resources of the instance are synced there at once.
    let other = private_fake(production_fake()).await.unwrap();
    let elsewhere = Kestra::private(&other.url());
    apply(&ns.name, &instance_manifest("later", &other.url(), None))
        .await
        .unwrap();
    wait_until(SOON, POLL, || async {
        ensure!(
            elsewhere.flow(&kn, "orphan").await?.is_some(),
            "not in the new Kestra yet"
        );
        Ok(())
    })
    .await
    .unwrap();

    // The instance goes away (deleted, its finalizer removed by hand while a resource still
    // uses it): its resource waits, and deletes nothing anywhere when it is deleted.
    k(
        &ns.name,
        &["delete", "kestrainstance/later", "--wait=false"],
    )
    .await
    .unwrap();
    k(
        &ns.name,
        &[
            "patch",
            "kestrainstance/later",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    )
    .await
    .unwrap();
    wait_reason(&ns.name, "flow/orphan", "False", "InstanceNotFound", SOON)
        .await
        .unwrap();
    k(&ns.name, &["delete", "flow/orphan", "--wait=false"])
        .await
        .unwrap();
    let pending = wait_reason(&ns.name, "flow/orphan", "False", "DeletionPending", SOON)
        .await
        .unwrap();
    let message = condition(&pending, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(
        elsewhere.flow(&kn, "orphan").await.unwrap().is_some(),
        "nothing deleted"
    );
    assert!(
        prod.flow(&kn, "orphan").await.unwrap().is_some(),
        "nothing deleted"
    );
    k(
        &ns.name,
        &[
            "patch",
            "flow/orphan",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    )
    .await
    .unwrap();

    k(
        &ns.name,
        &["delete", "flow", "--all", "--wait=true", "--timeout=60s"],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_credentials_are_picked_up_and_an_instance_in_use_is_held() {
    let ns = namespace("inst-rotate");
    let kn = ns.kestra.clone();
    let staging = private_fake(staging_fake()).await.unwrap();
    let mut op = start_operator(operator(&ns.name)).await.unwrap();
    let pid = op.process.pid();
    apply(
        &ns.name,
        &[
            secret_manifest("staging-kestra", "admin:one"),
            instance_manifest("staging", &staging.url(), Some("staging-kestra")),
            flow_manifest(
                "rotating",
                "rotating",
                &kn,
                &flow_source("rotating", &kn, ""),
                &instance_ref("KestraInstance", "staging"),
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/rotating").await.unwrap();

    // The password changes in Kestra: the instance says so.
    testenv::FakeHooks::new(&staging.url())
        .unwrap()
        .set_basic_auth("admin:two")
        .await
        .unwrap();
    let refused = wait_reason(
        &ns.name,
        "kestrainstance/staging",
        "False",
        "Unauthorized",
        SOON,
    )
    .await
    .unwrap();
    let message = condition(&refused, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("spec.auth"), "{message}");
    // The Secret follows: the same process uses the new password.
    apply(&ns.name, &secret_manifest("staging-kestra", "admin:two"))
        .await
        .unwrap();
    wait_reason(
        &ns.name,
        "kestrainstance/staging",
        "True",
        "Connected",
        SOON,
    )
    .await
    .unwrap();
    let stage = Kestra::new(
        &staging.url(),
        Some("main"),
        Some(("admin".into(), "two".into())),
    );
    stage
        .save_flow(
            &kn,
            "rotating",
            &flow_source("rotating", &kn, "description: edited\n"),
        )
        .await
        .unwrap();
    let desired = flow_source("rotating", &kn, "");
    wait_until(SOON, POLL, || async {
        ensure!(
            stage.flow_source(&kn, "rotating").await?.as_deref() == Some(desired.as_str()),
            "not restored yet"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(op.process.pid(), pid, "no restart");
    assert!(op.process.exit_status().unwrap().is_none(), "still running");

    // An instance still used is held, and says by whom.
    k(
        &ns.name,
        &["delete", "kestrainstance/staging", "--wait=false"],
    )
    .await
    .unwrap();
    let held = wait_reason(
        &ns.name,
        "kestrainstance/staging",
        "False",
        "InstanceInUse",
        SOON,
    )
    .await
    .unwrap();
    let message = condition(&held, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("KestraFlow {}/rotating", ns.name)),
        "{message}"
    );
    // The resource still deletes its flow through it, then the instance goes.
    k(
        &ns.name,
        &["delete", "flow/rotating", "--wait=true", "--timeout=60s"],
    )
    .await
    .unwrap();
    assert!(
        stage.flow(&kn, "rotating").await.unwrap().is_none(),
        "deleted through the held instance"
    );
    wait_until(SOON, POLL, || async {
        ensure!(
            !exists(&ns.name, "kestrainstance/staging").await?,
            "instance still there"
        );
        Ok(())
    })
    .await
    .unwrap();
}

/// A TLS front for `target` (`127.0.0.1:PORT`) on 127.0.0.1, its certificate signed by a CA of
/// its own; returns the front's port and the CA in PEM.
async fn tls_front(target: String) -> (u16, String) {
    use std::sync::Arc;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (ca, cert, key) = server_cert_for_localhost();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (port, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_url_an_untrusted_certificate_and_bad_specs_say_why() {
    let ns = namespace("inst-fail");
    let kn = ns.kestra.clone();
    let production = private_fake(production_fake()).await.unwrap();
    let upstream = production.url().trim_start_matches("http://").to_string();
    let (port, ca) = tls_front(upstream).await;
    let _op = start_operator(operator(&ns.name)).await.unwrap();

    // Admission: the URL's form and one credential source at most.
    for (spec, expected) in [
        ("  url: kestra:8080\n", "spec.url"),
        (
            "  url: http://kestra:8080\n  auth:\n    basicAuthSecretRef: {name: s, key: k}\n    apiKeySecretRef: {name: s, key: k}\n",
            "set exactly one of auth.basicAuthSecretRef",
        ),
        ("  url: http://admin:pw@kestra:8080\n", "spec.url"),
    ] {
        let refused = apply_refused(
            &ns.name,
            &format!("apiVersion: model.kestra.io/v1alpha1\nkind: KestraInstance\nmetadata:\n  name: bad\nspec:\n{spec}"),
        )
        .await
        .unwrap();
        assert!(refused.contains(expected), "{spec}: {refused}");
    }

    // Nothing listens there.
    apply(
        &ns.name,
        &instance_manifest("nowhere", "http://127.0.0.1:9", None),
    )
    .await
    .unwrap();
    let down = wait_reason(
        &ns.name,
        "kestrainstance/nowhere",
        "False",
        "KestraUnavailable",
        SOON,
    )
    .await
    .unwrap();
    assert!(
        down["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("http://127.0.0.1:9"),
        "{}",
        down["status"]
    );

    // A certificate from a CA nobody told the operator about; then the CA in a ConfigMap.
    let url = format!("https://127.0.0.1:{port}");
    apply(&ns.name, &instance_manifest("secure", &url, None))
        .await
        .unwrap();
    let untrusted = wait_reason(
        &ns.name,
        "kestrainstance/secure",
        "False",
        "TlsFailed",
        SOON,
    )
    .await
    .unwrap();
    let message = condition(&untrusted, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("caBundleRef") && message.contains("UnknownIssuer"),
        "{message}"
    );
    let ca_map = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kestra-ca\ndata:\n  ca.crt: |\n{}",
        indent(&ca, 4)
    );
    apply(
        &ns.name,
        &[
            ca_map,
            format!(
                "{}  caBundleRef: {{configMapKeyRef: {{name: kestra-ca, key: ca.crt}}}}\n",
                instance_manifest("secure", &url, None)
            ),
        ]
        .join("---\n"),
    )
    .await
    .unwrap();
    let trusted = wait_reason(&ns.name, "kestrainstance/secure", "True", "Connected", SOON)
        .await
        .unwrap();
    assert_eq!(trusted["status"]["version"], "2.0.0");
    apply(
        &ns.name,
        &flow_manifest(
            "secure",
            "secure",
            &kn,
            &flow_source("secure", &kn, ""),
            &instance_ref("KestraInstance", "secure"),
        ),
    )
    .await
    .unwrap();
    wait_ready(&ns.name, "flow/secure").await.unwrap();
    assert!(
        Kestra::private(&production.url())
            .flow(&kn, "secure")
            .await
            .unwrap()
            .is_some()
    );
    k(
        &ns.name,
        &["delete", "flow", "--all", "--wait=true", "--timeout=60s"],
    )
    .await
    .unwrap();
}
