//! Keeps the `caBundle` of the ValidatingWebhookConfiguration trusting this replica's CA.
//!
//! Every replica serves the webhook with a certificate of its own CA, so the bundle holds the
//! CAs of several replicas: this replica's goes first, the others' stay (at most
//! [`MAX_CAS`] in all, the oldest dropped), so replicas never take each other's out.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::PostParams;

/// CAs kept in a bundle: a few replicas, each with its previous CA during a rotation.
pub const MAX_CAS: usize = 6;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The PEM certificate blocks of a bundle, normalised (trimmed, `\n` line ends).
fn blocks(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bundle;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        out.push(rest[start..end].replace("\r\n", "\n").trim().to_string());
        rest = &rest[end..];
    }
    out
}

/// The bundle trusting `ours` first, then `previous` (our CA before a rotation), then the
/// other CAs already there, at most [`MAX_CAS`].
pub fn merged(existing: &[u8], ours: &str, previous: Option<&str>) -> Vec<u8> {
    let existing = String::from_utf8_lossy(existing);
    let mut kept: Vec<String> = Vec::new();
    let first = blocks(ours);
    let before = previous.map(blocks).unwrap_or_default();
    for block in first.into_iter().chain(before).chain(blocks(&existing)) {
        if !kept.contains(&block) && kept.len() < MAX_CAS {
            kept.push(block);
        }
    }
    let mut out = kept.join("\n");
    out.push('\n');
    out.into_bytes()
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("ValidatingWebhookConfiguration {0} not found")]
    NotFound(String),
    #[error("updating ValidatingWebhookConfiguration {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Make every webhook of configuration `name` trust `ours`; true when it was changed.
pub async fn ensure(
    client: &kube::Client,
    name: &str,
    ours: &str,
    previous: Option<&str>,
) -> Result<bool, BundleError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let api_error = |source| BundleError::Api {
        name: name.to_string(),
        source,
    };
    let Some(mut config) = api.get_opt(name).await.map_err(api_error)? else {
        return Err(BundleError::NotFound(name.to_string()));
    };
    let mut changed = false;
    for webhook in config.webhooks.iter_mut().flatten() {
        let current = webhook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.clone())
            .unwrap_or_default();
        let bundle = merged(&current, ours, previous);
        if bundle != current {
            webhook.client_config.ca_bundle = Some(ByteString(bundle));
            changed = true;
        }
    }
    if changed {
        // Replaced at the version read: a concurrent change makes this fail, and the next
        // round reads again.
        api.replace(name, &PostParams::default(), &config)
            .await
            .map_err(api_error)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(body: &str) -> String {
        format!("{BEGIN}\n{body}\n{END}\n")
    }

    #[test]
    fn ours_goes_first_and_the_others_stay() {
        let bundle = merged(pem("B").as_bytes(), &pem("A"), None);
        assert_eq!(
            String::from_utf8(bundle.clone()).unwrap(),
            pem("A") + &pem("B")
        );
        // Already current: nothing changes.
        assert_eq!(merged(&bundle, &pem("A"), None), bundle);
        let rotated = merged(&bundle, &pem("C"), Some(&pem("A")));
        assert_eq!(
            String::from_utf8(rotated).unwrap(),
            pem("C") + &pem("A") + &pem("B")
        );
    }

    #[test]
    fn a_bundle_is_capped_and_garbage_dropped() {
        let many: String = (0..10).map(|i| pem(&i.to_string())).collect();
        let bundle = merged(format!("junk{many}").as_bytes(), &pem("A"), None);
        let text = String::from_utf8(bundle).unwrap();
        assert_eq!(text.matches(BEGIN).count(), MAX_CAS);
        assert!(text.starts_with(&pem("A")) && !text.contains("junk"));
        assert_eq!(merged(b"", &pem("A"), None), pem("A").into_bytes());
    }
}
