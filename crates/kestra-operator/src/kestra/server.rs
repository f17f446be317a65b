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
