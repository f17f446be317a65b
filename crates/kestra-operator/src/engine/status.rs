//! Pure status decisions: conditions from an outcome, and whether a status write is needed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::reason::Reason;
use crate::crd::{Condition, ConditionStatus, ConditionType, KestraStatus};

/// The result of one reconcile, as the user will read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ready: bool,
    pub reason: Reason,
    /// What happened and what to do.
    pub message: String,
    /// True when nothing can progress until the spec (or another resource) changes.
    pub stalled: bool,
}

impl Outcome {
    pub fn ready(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason,
            message: message.into(),
            stalled: false,
        }
    }
    pub fn not_ready(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
            stalled: false,
        }
    }
    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
            stalled: true,
        }
    }
}

/// The conditions after `outcome`: `lastTransitionTime` only moves when a status flips.
pub fn next_conditions(
    previous: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let make = |type_: ConditionType, holds: bool| {
        let status = ConditionStatus::from(holds);
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        Condition {
            type_,
            status,
            reason: outcome.reason.as_str().to_string(),
            message: outcome.message.clone(),
            last_transition_time,
            observed_generation: generation,
        }
    };
    let mut conditions = vec![make(ConditionType::Ready, outcome.ready)];
    if outcome.stalled {
        conditions.push(make(ConditionType::Stalled, true));
    }
    conditions
}

/// The `Ready` condition of a status, if any.
pub fn ready_condition<E>(status: Option<&KestraStatus<E>>) -> Option<&Condition> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready)
}

/// Whether a status says Ready is true.
pub fn is_ready<E>(status: Option<&KestraStatus<E>>) -> bool {
    ready_condition(status).is_some_and(|c| c.status == ConditionStatus::True)
}

/// Whether a condition gives `reason`.
pub fn has_reason(condition: &Condition, reason: Reason) -> bool {
    condition.reason == reason.as_str()
}

/// The Ready message of a sync that wrote nothing. While the resource is Synced at the same
/// generation it keeps the message of the sync that last acted (`created ...`, `updated ...`,
/// `... restored to the spec`): that is still what happened last, and a message that flipped to
/// "matches the spec" at the next resync would cost one status write per change (and one per
/// resource after every restart) for no new information.
pub fn unchanged_sync_message(
    previous_ready: Option<&Condition>,
    generation: Option<i64>,
    description: &str,
) -> String {
    match previous_ready {
        Some(c)
            if c.status == ConditionStatus::True
                && has_reason(c, Reason::Synced)
                && c.observed_generation == generation
                && c.message.contains(description) =>
        {
            c.message.clone()
        }
        _ => format!("{description} matches the spec"),
    }
}

/// One line for the Enterprise `status.reason` field and the wide printer column.
pub fn summary(outcome: &Outcome) -> String {
    let line = outcome.message.lines().next().unwrap_or_default();
    let mut text = format!("{}: {}", outcome.reason, line);
    if let Some((cut, _)) = text.char_indices().nth(200) {
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Whether `next` says anything `previous` does not, ignoring the sync timestamp when it is fresh.
pub fn status_changed<E: PartialEq + Clone>(
    previous: Option<&KestraStatus<E>>,
    next: &KestraStatus<E>,
    sync_time_fresh: bool,
) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    if !sync_time_fresh {
        return previous != next;
    }
    let mut comparable = next.clone();
    comparable.last_sync_time = previous.last_sync_time.clone();
    *previous != comparable
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConditionStatus::{False, True};
    use ConditionType::{Ready, Stalled};

    fn time(second: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap())
    }

    fn cond(type_: ConditionType, status: ConditionStatus, at: i64) -> Condition {
        Condition {
            type_,
            status,
            reason: "Old".into(),
            message: "old".into(),
            last_transition_time: time(at),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn ready_outcome_sets_ready_true_and_drops_stalled() {
        let previous = vec![cond(Ready, False, 0), cond(Stalled, True, 0)];
        let next = next_conditions(
            &previous,
            &Outcome::ready(Reason::Synced, "ok"),
            Some(2),
            &time(1),
        );
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].status, True);
        assert_eq!(next[0].reason, "Synced");
        assert_eq!(
            next[0].last_transition_time,
            time(1),
            "status flipped, so the time moves"
        );
        assert_eq!(next[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let previous = vec![cond(Ready, False, 0)];
        let next = next_conditions(
            &previous,
            &Outcome::stalled(Reason::Rejected, "no"),
            Some(1),
            &time(1),
        );
        assert_eq!(next[0].last_transition_time, time(0));
        assert_eq!(next[0].reason, "Rejected");
        assert_eq!(next[1].type_, Stalled);
        assert_eq!(next[1].status, True);
        assert_eq!(next[1].last_transition_time, time(1));
    }

    #[test]
    fn conditions_serialize_in_the_metav1_shape() {
        let next = next_conditions(
            &[],
            &Outcome::stalled(Reason::Conflict, "taken"),
            Some(3),
            &time(1_700_000_000),
        );
        let json = serde_json::to_value(&next).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Conflict",
                    "message": "taken",
                    "lastTransitionTime": "2023-11-14T22:13:20Z",
                    "observedGeneration": 3,
                },
                {
                    "type": "Stalled",
                    "status": "True",
                    "reason": "Conflict",
                    "message": "taken",
                    "lastTransitionTime": "2023-11-14T22:13:20Z",
                    "observedGeneration": 3,
                },
            ])
        );
        let back: Vec<Condition> = serde_json::from_value(json).unwrap();
        assert_eq!(back, next);
        // A reason another version of the operator wrote still reads.
        let foreign: Condition = serde_json::from_value(serde_json::json!({
            "type": "Ready", "status": "Unknown", "reason": "SomethingNew", "message": "",
            "lastTransitionTime": "2023-11-14T22:13:20+00:00",
        }))
        .unwrap();
        assert_eq!(foreign.status, ConditionStatus::Unknown);
        assert_eq!(foreign.last_transition_time, time(1_700_000_000));
        assert!(!is_ready(Some(&KestraStatus::<()> {
            conditions: vec![foreign],
            ..Default::default()
        })));
    }

    #[test]
    fn unchanged_sync_keeps_the_last_action_at_the_same_generation() {
        let mut ready = cond(Ready, True, 0);
        ready.reason = "Synced".into();
        ready.message = "created flow a.b/c".into();
        let same = unchanged_sync_message(Some(&ready), Some(1), "flow a.b/c");
        assert_eq!(same, "created flow a.b/c");
        // A new generation, another object, a resource not Ready, or no status: say it matches.
        for (previous, generation, description) in [
            (Some(&ready), Some(2), "flow a.b/c"),
            (Some(&ready), Some(1), "flow a.b/d"),
            (None, Some(1), "flow a.b/c"),
        ] {
            assert_eq!(
                unchanged_sync_message(previous, generation, description),
                format!("{description} matches the spec")
            );
        }
        let mut failed = ready.clone();
        failed.status = False;
        failed.reason = "KestraUnavailable".into();
        assert_eq!(
            unchanged_sync_message(Some(&failed), Some(1), "flow a.b/c"),
            "flow a.b/c matches the spec"
        );
    }

    #[test]
    fn summary_is_one_short_line() {
        let outcome = Outcome::not_ready(
            Reason::KestraUnavailable,
            format!("first line {}\nsecond", "x".repeat(300)),
        );
        let line = summary(&outcome);
        assert!(line.starts_with("KestraUnavailable: first line"));
        assert!(!line.contains('\n'));
        assert!(line.chars().count() <= 203);
    }

    #[test]
    fn fresh_sync_time_alone_is_not_a_change() {
        let a = KestraStatus::<()> {
            last_sync_time: Some(time(0)),
            reason: Some("r".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.last_sync_time = Some(time(1));
        assert!(!status_changed(Some(&a), &b, true));
        assert!(status_changed(Some(&a), &b, false));
        b.reason = Some("other".into());
        assert!(status_changed(Some(&a), &b, true));
        assert!(status_changed(None, &b, true));
    }
}
