//! The webhook tests' set-up: a ValidatingWebhookConfiguration with a URL client config on
//! 127.0.0.1 for one test namespace, flows valid or not, applies that keep kubectl's stderr
//! (admission messages and warnings).

use anyhow::ensure;

use super::{env, flow_manifest, kubectl_stdin};

/// Kestra 1.3's message for a Log task without `message` (as recorded from Kestra 1.3.31).
pub const KESTRA_MESSAGE: &str = "Validation error: t.message: must not be null";

/// An operator for `namespace` serving the webhook on `addr` with generated certificates, keeping
/// the CA bundle of the configuration `registration`.
pub fn serving_spec<'a>(
    namespace: &'a str,
    resync: &'a str,
    addr: &'a str,
    registration: &'a str,
) -> super::OpSpec<'a> {
    super::OpSpec::new(&[namespace], resync)
        .arg("--webhook-addr")
        .arg(addr)
        .arg("--webhook-cert-names")
        .arg("127.0.0.1")
        .arg("--webhook-configuration")
        .arg(registration)
}

pub fn source(id: &str, kestra_ns: &str, valid: bool) -> String {
    let message = if valid { "    message: hi\n" } else { "" };
    format!(
        "id: {id}\nnamespace: {kestra_ns}\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n{message}"
    )
}

pub fn flow(name: &str, kestra_ns: &str, valid: bool) -> String {
    flow_manifest(name, name, kestra_ns, &source(name, kestra_ns, valid), "")
}

/// A ValidatingWebhookConfiguration for the test's namespace only, removed when dropped.
pub struct Registration {
    name: String,
}

impl Registration {
    /// With `ca_bundle` (PEM) set, or left for the operator to fill; failurePolicy Ignore.
    pub async fn create(
        name: &str,
        ns: &str,
        port: u16,
        ca_bundle: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::create_with(name, ns, port, ca_bundle, "Ignore").await
    }

    pub async fn create_with(
        name: &str,
        ns: &str,
        port: u16,
        ca_bundle: Option<&str>,
        failure_policy: &str,
    ) -> anyhow::Result<Self> {
        use base64::Engine as _;
        let ca_bundle = ca_bundle
            .map(|pem| {
                format!(
                    "\n      caBundle: {}",
                    base64::engine::general_purpose::STANDARD.encode(pem)
                )
            })
            .unwrap_or_default();
        let yaml = format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
  - name: validate.model.kestra.io
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: {failure_policy}
    timeoutSeconds: 5
    clientConfig:
      url: https://127.0.0.1:{port}/validate{ca_bundle}
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {ns}
    rules:
      - apiGroups: ["model.kestra.io"]
        apiVersions: ["v1alpha1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["kestraflows", "kestrakeyvalues", "kestranamespacefiles"]
"#
        );
        let args = ["apply", "-f", "-"];
        let output = kubectl_stdin(&args, &yaml).await?;
        ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Self {
            name: name.to_string(),
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = env().kubectl([
            "delete",
            "validatingwebhookconfiguration",
            &self.name,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub async fn apply_with_stderr(
    ns: &str,
    yaml: &str,
    extra: &[&str],
) -> anyhow::Result<(bool, String)> {
    let mut args = vec!["-n", ns, "apply", "-f", "-"];
    args.extend_from_slice(extra);
    let output = kubectl_stdin(&args, yaml).await?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A serving certificate for 127.0.0.1 signed by a CA of its own: (CA PEM, certificate, its key).
pub fn server_cert_for_localhost() -> (String, rcgen::Certificate, rcgen::KeyPair) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert, key)
}
