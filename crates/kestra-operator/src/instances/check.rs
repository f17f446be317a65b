//! One check of an instance: read what its spec names, make the client settings, ask Kestra.

use super::resource::InstanceResource;
use super::settings::{Credential, Settings, settings};
use super::status::Check;
use crate::crd::InstanceAuth;
use crate::engine::Reason;
use crate::engine::refs::{RefKind, read_key};
use crate::kestra::{CaBundle, KestraClient};

/// Read what the spec names and make the client settings, or say why not.
pub(super) async fn read_settings<K: InstanceResource>(
    obj: &K,
    client: &kube::Client,
    operator_namespace: &str,
) -> Result<Settings, Check> {
    let namespace = obj.references_namespace(operator_namespace);
    let connection = obj.connection();
    let failed = |error: crate::engine::ReconcileError| Check::Failed {
        reason: error.reason(),
        message: format!("{error}; {}", error.advice()),
    };
    let invalid = |message: String| Check::Failed {
        reason: Reason::InvalidSpec,
        message: format!("{message}; fix the spec"),
    };
    let credential = match &connection.auth {
        None => None,
        Some(InstanceAuth {
            basic_auth_secret_ref: Some(key_ref),
            api_key_secret_ref: None,
        }) => Some(Credential::Basic(
            read_key(client, &namespace, RefKind::Secret, key_ref)
                .await
                .map_err(failed)?,
        )),
        Some(InstanceAuth {
            basic_auth_secret_ref: None,
            api_key_secret_ref: Some(key_ref),
        }) => Some(Credential::ApiKey(
            read_key(client, &namespace, RefKind::Secret, key_ref)
                .await
                .map_err(failed)?,
        )),
        Some(_) => {
            return Err(invalid(
                "set exactly one of spec.auth.basicAuthSecretRef or spec.auth.apiKeySecretRef"
                    .into(),
            ));
        }
    };
    let ca = match &connection.ca_bundle_ref {
        None => None,
        Some(source) => match source.reference() {
            Some((kind, key_ref)) => Some(CaBundle {
                origin: format!(
                    "{kind:?} {namespace}/{} key {:?}",
                    key_ref.name, key_ref.key
                ),
                pem: read_key(client, &namespace, kind, key_ref)
                    .await
                    .map_err(failed)?,
            }),
            None => {
                return Err(invalid(
                    "set exactly one of spec.caBundleRef.configMapKeyRef or secretKeyRef".into(),
                ));
            }
        },
    };
    settings(connection, credential, ca).map_err(invalid)
}

/// The version a client knows Kestra to run.
pub(super) fn version<E>(client: &Result<KestraClient, E>) -> Option<crate::kestra::ServerInfo> {
    client.as_ref().ok().and_then(|c| c.server().cloned())
}

/// Kestra's version, then whether the credentials open the tenant.
pub(super) async fn probe(client: &KestraClient, url: &str) -> Check {
    match client.server_info().await {
        Ok(info) => match client.check_access().await {
            Ok(()) => Check::Connected(info),
            Err(error) => Check::from_kestra(&error, url),
        },
        Err(error) => Check::from_kestra(&error, url),
    }
}
