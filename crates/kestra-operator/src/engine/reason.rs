//! Every reason the operator gives: in the `Ready` condition, in `status.reason`, in Events, in
//! logs and as the `reason` label of `reconcile_errors`. One list, so none of these can say a
//! word the others do not know.

/// Declares [`Reason`] from one list: the text of each reason is its variant's name, and the
/// reasons under `errors` are the ones a failed reconcile can end with.
macro_rules! reasons {
    (
        others { $( $(#[doc = $doc:literal])* $other:ident, )* }
        errors { $( $(#[doc = $error_doc:literal])* $error:ident, )* }
    ) => {
        /// A CamelCase reason, as written in status, Events and metric labels.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[doc = $doc])* $other, )*
            $( $(#[doc = $error_doc])* $error, )*
        }

        impl Reason {
            /// Every reason.
            pub const ALL: &'static [Reason] = &[$(Reason::$other,)* $(Reason::$error,)*];
            /// The reasons a failed reconcile can end with (`ReconcileError::reason`): each has a
            /// `reconcile_errors` series from the start.
            pub const ERRORS: &'static [Reason] = &[$(Reason::$error,)*];

            /// The text users see (`Synced`, `KestraUnavailable`, ...).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Reason::$other => stringify!($other), )*
                    $( Reason::$error => stringify!($error), )*
                }
            }

            /// Whether a failed reconcile ends with this reason.
            pub const fn is_error(self) -> bool {
                matches!(self, $( Reason::$error )|*)
            }
        }
    };
}

reasons! {
    others {
        // Outcomes of a sync (the Ready condition, and an Event when it is new).
        /// Kestra matches the spec.
        Synced,
        /// `spec.suspend` is true: Kestra is neither read nor written.
        Suspended,
        /// An older resource manages the same Kestra object.
        Conflict,
        /// The key value expired in Kestra after its ttl.
        Expired,
        /// Kestra keeps the object in another form than the spec.
        NotRepresentable,
        // What a sync changed in Kestra (Events only).
        /// The object did not exist and was written.
        Created,
        /// The spec changed and the object was written.
        Updated,
        /// The object was changed outside Kubernetes and restored to the spec.
        DriftCorrected,
        // How cleanup of a deleted resource ended.
        /// The object was never (or is no longer) owned by this resource and is left in Kestra.
        Released,
        /// The object is left in Kestra (`deletionPolicy: Orphan` or suspended).
        Orphaned,
        /// The object was deleted from Kestra.
        Deleted,
        /// Deleting the object failed; the resource waits until it succeeds.
        DeletionPending,
        // The Ready condition of a KestraInstance or ClusterKestraInstance.
        /// Kestra answered at the instance's URL and accepted its credentials.
        Connected,
        /// The instance is being deleted but resources still use it: held until they are gone.
        InstanceInUse,
    }
    errors {
        /// The spec cannot be applied as written.
        InvalidSpec,
        /// A referenced Secret or ConfigMap, or its key, does not exist.
        ReferenceNotFound,
        /// Kestra did not answer, or answered with a server error.
        KestraUnavailable,
        /// Kestra refused the operator's credentials.
        Unauthorized,
        /// Kestra refused the spec.
        Rejected,
        /// Kestra answered something the operator does not understand.
        UnexpectedResponse,
        /// A request to the Kubernetes API failed.
        KubernetesError,
        /// Another replica became the leader.
        LeadershipLost,
        /// Kestra's certificate is not trusted, or not for its host name.
        TlsFailed,
        /// `spec.instanceRef` names an instance that does not exist.
        InstanceNotFound,
        /// `spec.instanceRef` names a ClusterKestraInstance that does not allow this namespace.
        InstanceNotAllowed,
        /// The instance named exists but cannot be used (a Secret missing, a bad setting).
        InstanceNotReady,
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_unique_camel_case_words() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let text = reason.as_str();
            assert!(seen.insert(text), "{text} appears twice");
            assert!(
                text.starts_with(|c: char| c.is_ascii_uppercase())
                    && text.chars().all(|c| c.is_ascii_alphanumeric()),
                "{text}"
            );
            assert_eq!(reason.to_string(), text);
        }
        // The words users, dashboards and alerts already know.
        assert_eq!(Reason::Synced.as_str(), "Synced");
        assert_eq!(Reason::NotRepresentable.as_str(), "NotRepresentable");
        assert_eq!(Reason::DeletionPending.as_str(), "DeletionPending");
        assert_eq!(Reason::KestraUnavailable.as_str(), "KestraUnavailable");
    }

    #[test]
    fn error_reasons_are_the_ones_listed_as_errors() {
        let errors: Vec<_> = Reason::ALL.iter().filter(|r| r.is_error()).collect();
        assert_eq!(errors, Reason::ERRORS.iter().collect::<Vec<_>>());
        assert_eq!(
            Reason::ERRORS
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>(),
            [
                "InvalidSpec",
                "ReferenceNotFound",
                "KestraUnavailable",
                "Unauthorized",
                "Rejected",
                "UnexpectedResponse",
                "KubernetesError",
                "LeadershipLost",
                "TlsFailed",
                "InstanceNotFound",
                "InstanceNotAllowed",
                "InstanceNotReady",
            ]
        );
        assert!(!Reason::Synced.is_error() && !Reason::DeletionPending.is_error());
    }
}
