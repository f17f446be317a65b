//! An instance's spec and the values of the Secrets and ConfigMaps it names, as client settings:
//! pure, so that every rule is unit-tested.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use crate::crd::Connection;
use crate::kestra::{Auth, CaBundle, ClientConfig};

/// The timeout of one request when the spec gives none (the operator's own default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A credential read from the Secret the spec names.
pub enum Credential {
    /// `user:password`.
    Basic(Vec<u8>),
    /// An API token.
    ApiKey(Vec<u8>),
}

/// What an instance's client is built from.
#[derive(Debug)]
pub struct Settings {
    pub config: ClientConfig,
    /// Hash of every setting and secret value: a new one means a new client.
    pub fingerprint: u64,
}

/// The client settings of an instance, or why the spec (or a value it names) cannot be used.
pub fn settings(
    connection: &Connection,
    credential: Option<Credential>,
    ca: Option<CaBundle>,
) -> Result<Settings, String> {
    let mut hasher = DefaultHasher::new();
    let url = connection.url.trim();
    let parsed = url::Url::parse(url).map_err(|e| format!("spec.url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("spec.url {url:?} must be http(s)://host[:port]"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("spec.url holds credentials: give them in spec.auth (a Secret) instead".into());
    }
    url.hash(&mut hasher);
    let legacy = connection.legacy_api_root.unwrap_or(false);
    let tenant = match (&connection.tenant, legacy) {
        (Some(_), true) => {
            return Err(
                "spec.tenant and spec.legacyApiRoot exclude each other: the legacy root has no tenant"
                    .into(),
            );
        }
        (_, true) => None,
        (Some(tenant), false) => Some(tenant.clone()),
        (None, false) => Some("main".to_string()),
    };
    tenant.hash(&mut hasher);
    let timeout = match &connection.timeout {
        Some(text) => crate::engine::read_period(text)
            .map_err(|why| format!("spec.timeout {text:?} is not a duration such as 30s: {why}"))?,
        None => DEFAULT_TIMEOUT,
    };
    timeout.hash(&mut hasher);
    let rate_limit = connection.rate_limit.and_then(std::num::NonZeroU32::new);
    rate_limit.hash(&mut hasher);
    let auth = match credential {
        None => Auth::None,
        Some(Credential::Basic(bytes)) => {
            bytes.hash(&mut hasher);
            let text = secret_text(bytes, "auth.basicAuthSecretRef")?;
            Auth::basic(&text).map_err(|_| {
                "the Secret key of auth.basicAuthSecretRef must hold user:password".to_string()
            })?
        }
        Some(Credential::ApiKey(bytes)) => {
            (1u8, &bytes).hash(&mut hasher);
            let text = secret_text(bytes, "auth.apiKeySecretRef")?;
            if text.is_empty() {
                return Err("the Secret key of auth.apiKeySecretRef is empty".into());
            }
            Auth::Bearer(text.into())
        }
    };
    if let Some(ca) = &ca {
        ca.pem.hash(&mut hasher);
    }
    Ok(Settings {
        config: ClientConfig {
            url: url.to_string(),
            tenant,
            auth,
            timeout,
            ca,
            attempts: 3,
            rate_limit,
        },
        fingerprint: hasher.finish(),
    })
}

/// A credential as text, without the line end a file-made Secret often carries.
fn secret_text(bytes: Vec<u8>, field: &str) -> Result<String, String> {
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("the Secret key of {field} is not UTF-8 text"))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(url: &str) -> Connection {
        Connection {
            url: url.into(),
            tenant: None,
            auth: None,
            ca_bundle_ref: None,
            legacy_api_root: None,
            rate_limit: None,
            timeout: None,
        }
    }

    #[test]
    fn defaults_are_the_operators() {
        let s = settings(&connection("http://kestra:8080"), None, None).unwrap();
        assert_eq!(s.config.tenant.as_deref(), Some("main"));
        assert_eq!(s.config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.config.auth, Auth::None);
        assert!(s.config.rate_limit.is_none());
    }

    #[test]
    fn bad_settings_say_which_field() {
        for (url, expected) in [
            ("kestra:8080", "must be http(s)"),
            ("ftp://kestra", "must be http(s)"),
            ("http://u:p@kestra", "holds credentials"),
            ("not a url", "is not a URL"),
        ] {
            let error = settings(&connection(url), None, None).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
        let mut both = connection("http://k");
        both.tenant = Some("t".into());
        both.legacy_api_root = Some(true);
        assert!(
            settings(&both, None, None)
                .unwrap_err()
                .contains("legacyApiRoot")
        );
        let mut slow = connection("http://k");
        slow.timeout = Some("-1s".into());
        assert!(
            settings(&slow, None, None)
                .unwrap_err()
                .contains("spec.timeout")
        );
        let basic = settings(
            &connection("http://k"),
            Some(Credential::Basic(b"no-colon".to_vec())),
            None,
        )
        .unwrap_err();
        assert!(basic.contains("user:password"), "{basic}");
        // The error never quotes the secret.
        assert!(!basic.contains("no-colon"), "{basic}");
    }

    #[test]
    fn a_rotated_secret_is_a_new_fingerprint() {
        let c = connection("http://k");
        let basic = |v: &[u8]| Some(Credential::Basic(v.to_vec()));
        let first = settings(&c, basic(b"admin:one\n"), None).unwrap();
        let same = settings(&c, basic(b"admin:one\n"), None).unwrap();
        let rotated = settings(&c, basic(b"admin:two\n"), None).unwrap();
        assert_eq!(first.fingerprint, same.fingerprint);
        assert_ne!(first.fingerprint, rotated.fingerprint);
        assert_eq!(first.config.auth, Auth::basic("admin:one").unwrap());
        let token = settings(&c, Some(Credential::ApiKey(b"admin:one\n".to_vec())), None).unwrap();
        assert_ne!(
            token.fingerprint, first.fingerprint,
            "a token is not a password"
        );
        let mut moved = c.clone();
        moved.url = "http://other:8080".into();
        assert_ne!(
            settings(&moved, basic(b"admin:one\n"), None)
                .unwrap()
                .fingerprint,
            first.fingerprint
        );
    }
}
