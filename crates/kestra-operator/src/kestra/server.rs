//! What Kestra says about itself (`GET /api/v1/configs`, open without credentials).

use reqwest::Method;
use serde::Deserialize;

use super::error::KestraError;
use super::transport::{Call, KestraClient, decode};

/// The server's version and edition.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: String,
    /// `OSS` or `EE`.
    #[serde(default)]
    pub edition: Option<String>,
}

impl KestraClient {
    pub async fn server_info(&self) -> Result<ServerInfo, KestraError> {
        let call = Call {
            route: "/api/v1/configs",
            method: Method::GET,
            tenant: None,
            segments: &["configs"],
        };
        let body = self.expect_ok(call, |r| r).await?;
        decode(&body)
    }

    /// Whether the credentials open the default tenant's API, with the cheapest read there is:
    /// at most one flow of `flows/search` (a literal route). Recorded: 401 without or with wrong
    /// credentials, 400 for a tenant Kestra OSS does not have (`auth-errors.jsonl`).
    pub async fn check_access(&self) -> Result<(), KestraError> {
        let tenant = self.tenant_for(None)?;
        let call = Call {
            route: "/api/v1/{tenant}/flows/search",
            method: Method::GET,
            tenant: tenant.as_deref(),
            segments: &["flows", "search"],
        };
        let body = self.expect_ok(call, |r| r.query(&[("size", "1")])).await?;
        let _page: SearchPage = decode(&body)?;
        Ok(())
    }
}

/// The shape of a `flows/search` answer (its rows are not read).
#[derive(Deserialize)]
struct SearchPage {
    #[serde(rename = "results")]
    _results: Vec<serde_json::Value>,
    #[serde(rename = "total")]
    _total: u64,
}

/// How the Kestra the operator talks to names and routes things, from its version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dialect {
    /// `major.minor`, when Kestra said it.
    pub version: Option<(u32, u32)>,
}

impl Dialect {
    pub fn of(info: Option<&ServerInfo>) -> Self {
        let version = info.and_then(|i| {
            let mut parts = i.version.split(['.', '-']);
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            Some((major, minor))
        });
        Self { version }
    }

    /// Kestra 1.x stores a space in a file name as `+`, so `a b` and `a+b` are one file there;
    /// 2.0 keeps them apart. An unknown version is taken to fold them (the safe side: two
    /// resources are then a Conflict rather than two writers of one file).
    pub fn folds_space_and_plus_in_file_names(&self) -> bool {
        self.version.is_none_or(|(major, _)| major < 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str) -> ServerInfo {
        ServerInfo {
            version: version.into(),
            edition: Some("OSS".into()),
        }
    }

    #[test]
    fn versions_and_what_they_fold() {
        assert_eq!(Dialect::of(Some(&info("1.3.31"))).version, Some((1, 3)));
        assert_eq!(
            Dialect::of(Some(&info("2.0.0-SNAPSHOT"))).version,
            Some((2, 0))
        );
        assert_eq!(Dialect::of(Some(&info("garbage"))).version, None);
        assert!(Dialect::of(Some(&info("1.3.31"))).folds_space_and_plus_in_file_names());
        assert!(!Dialect::of(Some(&info("2.0.0"))).folds_space_and_plus_in_file_names());
        assert!(Dialect::of(None).folds_space_and_plus_in_file_names());
    }
}
