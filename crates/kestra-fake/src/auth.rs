//! Credential checks: HTTP basic (OSS and EE) and `Bearer` API tokens (EE).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::BasicAuth;
#[cfg(test)]
use crate::config::FakeConfig;

/// The first character of a Basic credential that is not base64, as Kestra 1.3 reports it
/// (422 `Illegal base64 character 21` for `Basic !!!`); `None` when it decodes.
pub fn malformed_basic(headers: &HeaderMap) -> Option<char> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let credential = credential.trim();
    if STANDARD.decode(credential).is_ok() {
        return None;
    }
    credential
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
}

/// Whether the request carries one of the configured credentials.
#[cfg(test)]
pub fn is_authorized(config: &FakeConfig, headers: &HeaderMap) -> bool {
    is_authorized_with(
        config.basic_auth.as_ref(),
        config.api_key.as_deref(),
        headers,
    )
}

/// Whether the request carries `basic` or `api_key`.
pub fn is_authorized_with(
    basic: Option<&BasicAuth>,
    api_key: Option<&str>,
    headers: &HeaderMap,
) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credential)) = value.trim().split_once(' ') else {
        return false;
    };
    let credential = credential.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Some(expected) = basic else {
            return false;
        };
        let Ok(decoded) = STANDARD.decode(credential) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        decoded.split_once(':') == Some((expected.user.as_str(), expected.password.as_str()))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        api_key == Some(credential)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config() -> FakeConfig {
        FakeConfig {
            basic_auth: Some("admin:secret".parse().unwrap()),
            api_key: Some("tok".into()),
            ..FakeConfig::default()
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accepts_either_configured_credential() {
        let basic = format!("Basic {}", STANDARD.encode("admin:secret"));
        assert!(is_authorized(&config(), &with(&basic)));
        assert!(is_authorized(&config(), &with("Bearer tok")));
    }

    #[test]
    fn names_the_first_character_that_is_not_base64() {
        assert_eq!(malformed_basic(&with("Basic !!!")), Some('!'));
        let basic = format!("Basic {}", STANDARD.encode("admin:secret"));
        assert_eq!(malformed_basic(&with(&basic)), None);
        assert_eq!(malformed_basic(&with("Bearer !!!")), None);
    }

    #[test]
    fn refuses_wrong_or_missing_credentials() {
        let wrong = format!("Basic {}", STANDARD.encode("admin:nope"));
        assert!(!is_authorized(&config(), &with(&wrong)));
        assert!(!is_authorized(&config(), &with("Bearer other")));
        assert!(!is_authorized(&config(), &HeaderMap::new()));
        let only_basic = FakeConfig {
            api_key: None,
            ..config()
        };
        assert!(!is_authorized(&only_basic, &with("Bearer tok")));
    }
}
