//! The validating admission webhook: HTTPS on `--webhook-addr`, served by every replica
//! (leader or not). Refuses what the reconcile would refuse: invalid flows (Kestra's own
//! validation), KV values that do not parse as their type, bad file paths.

pub mod ca_bundle;
pub mod decide;
pub mod review;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use decide::{Checker, Verdict};

/// The API server's timeout for the webhook (the configuration's `timeoutSeconds`).
pub const API_SERVER_TIMEOUT: Duration = Duration::from_secs(5);
/// The webhook answers within this, whatever Kestra or Kubernetes do.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(4000);

/// Where the serving certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSource {
    /// Generated at start and rotated by the operator, for these DNS names or IP addresses.
    Generated { names: Vec<String> },
    /// `tls.crt` and `tls.key` in a directory (e.g. cert-manager's Secret), re-read on change.
    Directory(PathBuf),
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub addr: SocketAddr,
    pub cert: CertSource,
    /// ValidatingWebhookConfiguration whose `caBundle` the operator keeps current (generated
    /// certificates only).
    pub configuration: Option<String>,
    /// Bound of Kestra's validation of a flow.
    pub kestra_timeout: Duration,
}
