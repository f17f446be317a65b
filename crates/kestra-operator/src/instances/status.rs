//! The status of an instance from the outcome of its check: pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::InstanceStatus;
use crate::engine::Reason;
use crate::engine::status::{Outcome, next_conditions, summary};
use crate::kestra::{KestraError, ServerInfo, Unavailability};

/// What one check of an instance found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Kestra said its version and accepted the credentials.
    Connected(ServerInfo),
    /// The instance cannot be used; the reason and what to do.
    Failed { reason: Reason, message: String },
    /// Being deleted while resources still use it: held until they are gone.
    InUse { users: Vec<String> },
}

impl Check {
    /// A failed call to Kestra, with what to check on the instance.
    pub fn from_kestra(error: &KestraError, url: &str) -> Self {
        let (reason, advice) = match error {
            KestraError::Unavailable {
                what: Unavailability::Tls,
                ..
            } => (
                Reason::TlsFailed,
                "check spec.caBundleRef (the CA that signed Kestra's certificate) and that the certificate names the host of spec.url",
            ),
            KestraError::Unavailable { .. } => (
                Reason::KestraUnavailable,
                "check spec.url and that Kestra is running; checking again with backoff",
            ),
            KestraError::Unauthorized { .. } => (
                Reason::Unauthorized,
                "check the Secret named in spec.auth and the permissions of that user or token",
            ),
            KestraError::Rejected { .. } => (
                Reason::Rejected,
                "check spec.tenant (Kestra OSS has only the tenant main) and spec.legacyApiRoot",
            ),
            KestraError::Config(_) => (Reason::InvalidSpec, "fix the spec"),
            KestraError::Fenced => (Reason::LeadershipLost, "the new leader checks again"),
            KestraError::Unexpected { .. } | KestraError::Decode(_) | KestraError::Json(_) => (
                Reason::UnexpectedResponse,
                "check that spec.url is Kestra's root URL",
            ),
        };
        Self::Failed {
            reason,
            message: format!("{url}: {error}; {advice}"),
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected(_))
    }

    fn outcome(&self, url: &str) -> Outcome {
        match self {
            Self::Connected(info) => Outcome::ready(
                Reason::Connected,
                format!(
                    "Kestra {} ({}) at {url} answered and accepted the credentials",
                    info.version,
                    info.edition.as_deref().unwrap_or("edition unknown")
                ),
            ),
            Self::Failed { reason, message } => {
                if *reason == Reason::InvalidSpec {
                    Outcome::stalled(*reason, message.clone())
                } else {
                    Outcome::not_ready(*reason, message.clone())
                }
            }
            Self::InUse { users } => Outcome::not_ready(
                Reason::InstanceInUse,
                format!(
                    "deletion held: {} resource(s) still use this instance and need it to clean up their Kestra objects ({}{}); delete them first",
                    users.len(),
                    users.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    if users.len() > 5 { ", ..." } else { "" }
                ),
            ),
        }
    }
}

/// The status after `check` (version and edition kept from before when this check could not
/// read them).
pub fn instance_status(
    prior: Option<&InstanceStatus>,
    generation: Option<i64>,
    url: &str,
    check: &Check,
    now: &Time,
) -> InstanceStatus {
    let outcome = check.outcome(url);
    let previous = prior.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let (version, edition) = match check {
        Check::Connected(info) => (Some(info.version.clone()), info.edition.clone()),
        _ => (
            prior.and_then(|p| p.version.clone()),
            prior.and_then(|p| p.edition.clone()),
        ),
    };
    InstanceStatus {
        observed_generation: generation,
        conditions: next_conditions(previous, &outcome, generation, now),
        reason: Some(summary(&outcome)),
        version,
        edition,
        last_check_time: Some(now.clone()),
    }
}

/// Whether `next` must be written: it says something `prior` does not, or the stored check
/// time is older than `refresh` (a check that changes nothing does not cost a write each time).
pub fn needs_write(
    prior: Option<&InstanceStatus>,
    next: &InstanceStatus,
    now: &Time,
    refresh: std::time::Duration,
) -> bool {
    let Some(prior) = prior else {
        return true;
    };
    let without_time = |s: &InstanceStatus| InstanceStatus {
        last_check_time: None,
        ..s.clone()
    };
    if without_time(prior) != without_time(next) {
        return true;
    }
    prior.last_check_time.as_ref().is_none_or(|checked| {
        let age = now.0.duration_since(checked.0);
        std::time::Duration::try_from(age).map_or(true, |age| age >= refresh)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ConditionStatus, ConditionType};

    fn time(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + s).unwrap())
    }

    fn ready(status: &InstanceStatus) -> (ConditionStatus, String) {
        let c = status
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .unwrap();
        (c.status, c.reason.clone())
    }

    #[test]
    fn connected_then_failing_keeps_the_version_and_says_why() {
        let info = ServerInfo {
            version: "1.3.31".into(),
            edition: Some("OSS".into()),
        };
        let up = instance_status(None, Some(1), "http://k", &Check::Connected(info), &time(0));
        assert_eq!(ready(&up), (ConditionStatus::True, "Connected".into()));
        assert_eq!(up.version.as_deref(), Some("1.3.31"));
        let refused = KestraError::from_status(401, b"");
        let down = instance_status(
            Some(&up),
            Some(1),
            "http://k",
            &Check::from_kestra(&refused, "http://k"),
            &time(60),
        );
        assert_eq!(
            ready(&down),
            (ConditionStatus::False, "Unauthorized".into())
        );
        assert_eq!(down.version.as_deref(), Some("1.3.31"));
        assert!(
            down.reason.as_deref().unwrap().contains("spec.auth"),
            "{down:?}"
        );
        assert_eq!(down.last_check_time, Some(time(60)));
    }

    #[test]
    fn reasons_for_url_tls_and_tenant() {
        let tls = KestraError::Unavailable {
            what: Unavailability::Tls,
            message: "invalid peer certificate: UnknownIssuer".into(),
        };
        let Check::Failed { reason, message } = Check::from_kestra(&tls, "https://k") else {
            panic!()
        };
        assert_eq!(reason, Reason::TlsFailed);
        assert!(message.contains("spec.caBundleRef") && message.contains("UnknownIssuer"));
        let down = KestraError::Unavailable {
            what: Unavailability::Connect,
            message: "connection refused".into(),
        };
        assert!(matches!(
            Check::from_kestra(&down, "http://k"),
            Check::Failed {
                reason: Reason::KestraUnavailable,
                ..
            }
        ));
        let tenant = KestraError::from_status(
            400,
            br#"{"message":"Bad Request: Tenant must be 'main' for OSS version"}"#,
        );
        let Check::Failed { reason, message } = Check::from_kestra(&tenant, "http://k") else {
            panic!()
        };
        assert_eq!(reason, Reason::Rejected);
        assert!(message.contains("Tenant must be 'main'") && message.contains("spec.tenant"));
    }

    #[test]
    fn an_unchanged_check_is_written_only_once_the_stored_one_is_old() {
        let info = ServerInfo {
            version: "2.0.0".into(),
            edition: Some("OSS".into()),
        };
        let refresh = std::time::Duration::from_secs(600);
        let first = instance_status(
            None,
            Some(1),
            "http://k",
            &Check::Connected(info.clone()),
            &time(0),
        );
        assert!(needs_write(None, &first, &time(0), refresh));
        let again = instance_status(
            Some(&first),
            Some(1),
            "http://k",
            &Check::Connected(info.clone()),
            &time(60),
        );
        assert!(!needs_write(Some(&first), &again, &time(60), refresh));
        let later = instance_status(
            Some(&first),
            Some(1),
            "http://k",
            &Check::Connected(info),
            &time(600),
        );
        assert!(needs_write(Some(&first), &later, &time(600), refresh));
        let failed = instance_status(
            Some(&first),
            Some(1),
            "http://k",
            &Check::from_kestra(&KestraError::from_status(401, b""), "http://k"),
            &time(61),
        );
        assert!(
            needs_write(Some(&first), &failed, &time(61), refresh),
            "a change at once"
        );
        let new_generation = instance_status(
            Some(&first),
            Some(2),
            "http://k",
            &Check::InUse { users: vec![] },
            &time(62),
        );
        assert!(needs_write(
            Some(&first),
            &new_generation,
            &time(62),
            refresh
        ));
    }

    #[test]
    fn deletion_held_names_the_users() {
        let users: Vec<String> = (0..7).map(|i| format!("KestraFlow team/f{i}")).collect();
        let held = instance_status(None, Some(2), "http://k", &Check::InUse { users }, &time(0));
        assert_eq!(
            ready(&held),
            (ConditionStatus::False, "InstanceInUse".into())
        );
        let message = &held.conditions[0].message;
        assert!(
            message.contains("7 resource(s)")
                && message.contains("team/f4")
                && !message.contains("team/f5")
                && message.ends_with("delete them first"),
            "{message}"
        );
        assert!(
            held.reason
                .unwrap()
                .starts_with("InstanceInUse: deletion held")
        );
    }
}
