//! The chart's admission webhook: the Service, the ValidatingWebhookConfiguration, the
//! operator's settings and RBAC, in both certificate modes (the operator's own, cert-manager).

use super::*;

const WEBHOOK: &str = "rel-kestra-operator-webhook";
const CONFIGURATION: &str = "ops-rel-kestra-operator";

fn configuration(objects: &[Value]) -> &Value {
    one(objects, "ValidatingWebhookConfiguration")
}

/// With watched namespaces, the ClusterRoles are only the webhook's, which reads and updates its
/// own configuration (of a release in `release_ns`), and the ClusterKestraInstances' one.
pub fn assert_webhook_role_only(objects: &[Value], release_ns: &str) {
    let roles = of_kind(objects, "ClusterRole");
    assert_eq!(
        roles.len(),
        2,
        "only the webhook's and the ClusterKestraInstances' ClusterRoles"
    );
    super::instances::assert_cluster_instance_role(objects, release_ns);
    let roles: Vec<&Value> = roles
        .into_iter()
        .filter(|r| r["metadata"]["name"] != format!("{release_ns}-{FULLNAME}-instances").as_str())
        .collect();
    assert_eq!(roles.len(), 1, "the webhook's ClusterRole");
    assert_eq!(
        roles[0]["rules"],
        json!([{
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "resourceNames": [format!("{release_ns}-{FULLNAME}")],
            "verbs": ["get", "update"],
        }])
    );
}

fn webhook_role(objects: &[Value]) -> Option<&Value> {
    of_kind(objects, "ClusterRole")
        .into_iter()
        .find(|r| r["rules"][0]["resources"] == json!(["validatingwebhookconfigurations"]))
}

#[test]
fn renders_the_webhook_with_its_own_certificate() {
    let objects = render("ops", &[]).unwrap();
    let config = configuration(&objects);
    assert_eq!(config["metadata"]["name"], CONFIGURATION);
    assert!(config["metadata"]["annotations"].is_null());
    let hook = &config["webhooks"][0];
    assert_eq!(config["webhooks"].as_array().map(Vec::len), Some(1));
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(
        hook["clientConfig"],
        json!({"service": {"name": WEBHOOK, "namespace": "ops", "path": "/validate", "port": 443}})
    );
    assert!(hook["namespaceSelector"].is_null(), "every namespace");
    assert_eq!(
        hook["rules"],
        json!([{
            "apiGroups": ["model.kestra.io"],
            "apiVersions": ["v1alpha1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["kestraflows", "kestrakeyvalues", "kestranamespacefiles"],
            "scope": "Namespaced",
        }])
    );
    let service = of_kind(&objects, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == WEBHOOK)
        .expect("the webhook Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}])
    );
    let env = env_of(&objects);
    assert_eq!(env["WEBHOOK_ADDR"]["value"], "0.0.0.0:9443");
    assert_eq!(
        env["WEBHOOK_CERT_NAMES"]["value"],
        format!("{WEBHOOK}.ops.svc,{WEBHOOK}.ops.svc.cluster.local")
    );
    assert_eq!(env["WEBHOOK_CONFIGURATION"]["value"], CONFIGURATION);
    assert!(!env.contains_key("WEBHOOK_CERT_DIR"));
    let port = container(&objects)["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "webhook"))
        .expect("a webhook container port");
    assert_eq!(port["containerPort"], 9443);
    // Only the permission the CA bundle needs: that one configuration.
    let role = webhook_role(&objects).expect("the webhook's ClusterRole");
    assert_eq!(role["rules"][0]["resourceNames"], json!([CONFIGURATION]));
    assert_eq!(role["rules"][0]["verbs"], json!(["get", "update"]));
    assert!(of_kind(&objects, "Certificate").is_empty());
    assert!(of_kind(&objects, "Issuer").is_empty());
}

#[test]
fn renders_the_webhook_with_cert_manager() {
    let objects = render(
        "ops",
        &[
            "--set",
            "webhook.certManager.enabled=true",
            "--set",
            "webhook.failurePolicy=Fail",
        ],
    )
    .unwrap();
    let config = configuration(&objects);
    assert_eq!(
        config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("ops/{WEBHOOK}")
    );
    assert_eq!(config["webhooks"][0]["failurePolicy"], "Fail");
    let certificate = one(&objects, "Certificate");
    assert_eq!(certificate["spec"]["secretName"], WEBHOOK);
    assert_eq!(
        certificate["spec"]["dnsNames"],
        json!([
            format!("{WEBHOOK}.ops.svc"),
            format!("{WEBHOOK}.ops.svc.cluster.local")
        ])
    );
    assert_eq!(
        certificate["spec"]["issuerRef"],
        json!({"kind": "Issuer", "name": WEBHOOK})
    );
    assert_eq!(one(&objects, "Issuer")["spec"], json!({"selfSigned": {}}));
    let env = env_of(&objects);
    assert_eq!(
        env["WEBHOOK_CERT_DIR"]["value"],
        "/etc/kestra-operator/webhook"
    );
    assert!(!env.contains_key("WEBHOOK_CONFIGURATION"));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "webhook-cert", "secret": {"secretName": WEBHOOK}}])
    );
    assert_eq!(
        container(&objects)["volumeMounts"],
        json!([{"name": "webhook-cert", "mountPath": "/etc/kestra-operator/webhook", "readOnly": true}])
    );
    assert!(
        webhook_role(&objects).is_none(),
        "cert-manager injects the CA: no permission on the configuration"
    );
    // An issuer of the user's: no Issuer made by the chart.
    let objects = render(
        "ops",
        &[
            "--set",
            "webhook.certManager.enabled=true",
            "--set",
            "webhook.certManager.issuerRef.kind=ClusterIssuer",
            "--set",
            "webhook.certManager.issuerRef.name=corp-ca",
        ],
    )
    .unwrap();
    assert!(of_kind(&objects, "Issuer").is_empty());
    assert_eq!(
        one(&objects, "Certificate")["spec"]["issuerRef"],
        json!({"kind": "ClusterIssuer", "name": "corp-ca"})
    );
}

#[test]
fn the_webhook_follows_the_watched_namespaces_and_can_be_off() {
    let objects = render("ops", &["--set", "watchNamespaces={team-a,team-b}"]).unwrap();
    assert_eq!(
        configuration(&objects)["webhooks"][0]["namespaceSelector"],
        json!({"matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "In",
            "values": ["team-a", "team-b"],
        }]})
    );
    let objects = render("ops", &["--set", "webhook.enabled=false"]).unwrap();
    assert!(of_kind(&objects, "ValidatingWebhookConfiguration").is_empty());
    assert_eq!(
        of_kind(&objects, "Service").len(),
        1,
        "the metrics Service only"
    );
    assert!(!env_of(&objects).contains_key("WEBHOOK_ADDR"));
    assert!(webhook_role(&objects).is_none());
    let err = render_refused(&["--set", "webhook.failurePolicy=Sometimes"]);
    assert!(err.contains("failurePolicy"), "{err}");
}
