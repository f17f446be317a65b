//! How one instance of the double behaves.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Which generation of error bodies to answer with (kestra-api.md section 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorFormat {
    /// Micronaut `JsonError` of released 0.x/1.x.
    #[default]
    Json,
    /// RFC 9457 `application/problem+json` of the newest develop.
    Problem,
}

/// Which Kestra release line the double answers like, where the recorded servers differ
/// (`shared/kestra-transcripts/2.0.0-vs-1.3.31.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KestraVersion {
    /// Kestra 1.3 (recorded against 1.3.31): the released line users run.
    #[default]
    #[value(name = "1.3")]
    V1_3,
    /// Kestra 2.0 (recorded against 2.0.0, web layer from pre-release source).
    #[value(name = "2.0")]
    V2_0,
}

impl KestraVersion {
    pub fn is_v2(self) -> bool {
        self == Self::V2_0
    }
}

/// A `user:password` login.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    // Keeps the password out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("basic auth must be `user:password`")]
pub struct BasicAuthParseError;

impl FromStr for BasicAuth {
    type Err = BasicAuthParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, password) = s.split_once(':').ok_or(BasicAuthParseError)?;
        if user.is_empty() {
            return Err(BasicAuthParseError);
        }
        Ok(Self {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Configuration of one double. `Default` is what in-process tests want: an ephemeral loopback
/// port, no auth, the tenant root, `JsonError` bodies, no persistence, hooks on, Kestra 1.3.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    pub basic_auth: Option<BasicAuth>,
    /// Accepted as `Authorization: Bearer <api_key>`.
    pub api_key: Option<String>,
    /// Serve the tenant-less `/api/v1/...` root (tenant `main`) instead of `/api/v1/{tenant}/...`.
    pub legacy_root: bool,
    pub error_format: ErrorFormat,
    /// Load state from this file at start and save it after each write.
    pub state_file: Option<PathBuf>,
    /// Serve the `/__fake/**` hooks.
    pub test_hooks: bool,
    /// The Kestra line to answer like; 1.3 by default.
    pub kestra_version: KestraVersion,
    /// Answer like Kestra OSS about tenants: any tenant but `main` is refused (400 `Tenant
    /// must be 'main' for OSS version`) and the tenant-less `/api/v1/...` root is served as
    /// tenant `main` besides `/api/v1/main/...`. Off by default: the double serves any tenant,
    /// as Kestra EE does.
    pub only_main_tenant: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            basic_auth: None,
            api_key: None,
            legacy_root: false,
            error_format: ErrorFormat::Json,
            state_file: None,
            test_hooks: true,
            kestra_version: KestraVersion::V1_3,
            only_main_tenant: false,
        }
    }
}

impl FakeConfig {
    pub fn auth_enabled(&self) -> bool {
        self.basic_auth.is_some() || self.api_key.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_splits_on_the_first_colon() {
        let auth: BasicAuth = "admin:pa:ss".parse().unwrap();
        assert_eq!(auth.user, "admin");
        assert_eq!(auth.password, "pa:ss");
        assert!("nocolon".parse::<BasicAuth>().is_err());
        assert!(":pw".parse::<BasicAuth>().is_err());
    }
}
