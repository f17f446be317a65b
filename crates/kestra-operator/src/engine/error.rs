//! Why a reconcile did not reach Kestra, and what each cause means for status and retries.

use super::reason::Reason;
use crate::instances::InstanceError;
use crate::kestra::{KestraError, Unavailability};

/// Everything that can stop a reconcile. Each variant knows its status reason, whether the
/// spec must change before anything can progress (`Stalled`), and how to retry.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The spec cannot be applied as written (admission could not see it).
    #[error("{0}")]
    InvalidSpec(String),
    /// A referenced Secret or ConfigMap, or its key, does not exist (yet).
    #[error("{0}")]
    ReferenceNotFound(String),
    #[error(transparent)]
    Kestra(#[from] KestraError),
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    StatusWrite(#[from] super::StatusWriteError),
    /// `spec.instanceRef` cannot be used.
    #[error(transparent)]
    Instance(#[from] crate::instances::InstanceError),
}

/// How the engine follows up on an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Exponential backoff per object: the cause may go away by itself.
    Backoff,
    /// Wait for a change of the spec (or a referenced object, or the resync period).
    AwaitChange,
}

impl ReconcileError {
    /// The CamelCase reason shown in status, Events and the metric label.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidSpec(_) => Reason::InvalidSpec,
            Self::ReferenceNotFound(_) => Reason::ReferenceNotFound,
            Self::Kestra(KestraError::Unavailable {
                what: Unavailability::Tls,
                ..
            }) => Reason::TlsFailed,
            Self::Kestra(KestraError::Unavailable { .. }) => Reason::KestraUnavailable,
            Self::Kestra(KestraError::Fenced) => Reason::LeadershipLost,
            Self::Kestra(KestraError::Unauthorized { .. }) => Reason::Unauthorized,
            Self::Kestra(KestraError::Rejected { .. }) => Reason::Rejected,
            Self::Kestra(KestraError::Config(_)) => Reason::InvalidSpec,
            Self::Kestra(
                KestraError::Unexpected { .. } | KestraError::Decode(_) | KestraError::Json(_),
            ) => Reason::UnexpectedResponse,
            Self::Kube(_) | Self::StatusWrite(_) => Reason::KubernetesError,
            Self::Instance(InstanceError::NotFound(_)) => Reason::InstanceNotFound,
            Self::Instance(InstanceError::NotAllowed { .. }) => Reason::InstanceNotAllowed,
            Self::Instance(InstanceError::NotReady { .. }) => Reason::InstanceNotReady,
        }
    }

    /// True when nothing will progress until the spec changes.
    pub fn stalled(&self) -> bool {
        matches!(
            self,
            Self::InvalidSpec(_)
                | Self::Kestra(KestraError::Rejected { .. } | KestraError::Config(_))
                | Self::Instance(InstanceError::NotAllowed { .. })
        )
    }

    pub fn retry(&self) -> Retry {
        if self.stalled() {
            Retry::AwaitChange
        } else {
            Retry::Backoff
        }
    }

    /// What the user should do, appended to the message in status and Events.
    pub fn advice(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) | Self::Kestra(KestraError::Config(_)) => {
                "fix the spec; nothing is written to Kestra until then"
            }
            Self::ReferenceNotFound(_) => {
                "create the referenced object or key; the resource syncs as soon as it exists"
            }
            Self::Kestra(KestraError::Unavailable {
                what: Unavailability::Tls,
                ..
            }) => {
                "check the CA the operator trusts for Kestra (KESTRA_CA_FILE, or spec.caBundleRef of the instance) and the certificate's host name; retrying with backoff"
            }
            Self::Kestra(KestraError::Unavailable { .. }) => "retrying with backoff",
            Self::Kestra(KestraError::Fenced) => "the new leader takes over",
            Self::Kestra(KestraError::Unauthorized { .. }) => {
                "check the operator's Kestra credentials (KESTRA_API_API_KEY or KESTRA_API_BASIC_AUTH, or the Secret in spec.auth of the instance named by spec.instanceRef) and their permissions; retrying with backoff"
            }
            Self::Kestra(KestraError::Rejected { .. }) => "fix the spec so that Kestra accepts it",
            Self::Kestra(
                KestraError::Unexpected { .. } | KestraError::Decode(_) | KestraError::Json(_),
            ) => "retrying with backoff; check the Kestra URL and version",
            Self::Kube(_) | Self::StatusWrite(_) => "retrying with backoff",
            Self::Instance(InstanceError::NotFound(_)) => {
                "create the instance; nothing is written to Kestra until then, and the resource syncs as soon as it exists"
            }
            Self::Instance(InstanceError::NotAllowed { .. }) => {
                "label this namespace to match the instance's spec.allowedNamespaces, or use another instance; nothing is written to Kestra until then"
            }
            Self::Instance(InstanceError::NotReady { .. }) => {
                "see the instance's status; the resource syncs as soon as the instance can be used"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases: Vec<(ReconcileError, &str, bool)> = vec![
            (ReconcileError::InvalidSpec("x".into()), "InvalidSpec", true),
            (
                ReconcileError::ReferenceNotFound("x".into()),
                "ReferenceNotFound",
                false,
            ),
            (
                KestraError::from_status(503, b"").into(),
                "KestraUnavailable",
                false,
            ),
            (
                KestraError::from_status(401, b"").into(),
                "Unauthorized",
                false,
            ),
            (KestraError::from_status(422, b"").into(), "Rejected", true),
            (
                KestraError::from_status(418, b"").into(),
                "UnexpectedResponse",
                false,
            ),
            (KestraError::Config("x".into()).into(), "InvalidSpec", true),
        ];
        for (err, reason, stalled) in cases {
            assert_eq!(err.reason().as_str(), reason, "{err:?}");
            assert!(
                err.reason().is_error(),
                "{reason} has a zeroed metric series"
            );
            assert_eq!(err.stalled(), stalled, "{err:?}");
            assert_eq!(err.retry() == Retry::AwaitChange, stalled);
        }
    }
}
