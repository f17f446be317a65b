//! Pure status decisions: conditions from an outcome, and whether a status write is needed.

use crate::crd::{Condition, KestraStatus};

pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";
/// The Ready reason of a resource whose spec Kestra keeps in another form.
pub const NOT_REPRESENTABLE: &str = "NotRepresentable";

/// The result of one reconcile, as the user will read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ready: bool,
    /// CamelCase reason (`Synced`, `Conflict`, ...).
    pub reason: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// True when nothing can progress until the spec (or another resource) changes.
    pub stalled: bool,
}

impl Outcome {
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: true,
            reason,
            message: message.into(),
            stalled: false,
        }
    }
    pub fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ready: false,
            reason,
            message: message.into(),
            stalled: false,
        }
    }
    pub fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
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
    now: &str,
) -> Vec<Condition> {
    let make = |type_: &str, status: bool| {
        let status = if status { "True" } else { "False" }.to_string();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_string(),
            status,
            reason: outcome.reason.to_string(),
            message: outcome.message.clone(),
            last_transition_time,
            observed_generation: generation,
        }
    };
    let mut conditions = vec![make(READY, outcome.ready)];
    if outcome.stalled {
        conditions.push(make(STALLED, true));
    }
    conditions
}

/// The `Ready` condition of a status, if any.
pub fn ready_condition<E>(status: Option<&KestraStatus<E>>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == READY)
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
            if c.status == "True"
                && c.reason == "Synced"
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

    fn cond(type_: &str, status: &str, time: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Old".into(),
            message: "old".into(),
            last_transition_time: time.into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn ready_outcome_sets_ready_true_and_drops_stalled() {
        let previous = vec![cond(READY, "False", "t0"), cond(STALLED, "True", "t0")];
        let next = next_conditions(&previous, &Outcome::ready("Synced", "ok"), Some(2), "t1");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].status, "True");
        assert_eq!(next[0].reason, "Synced");
        assert_eq!(
            next[0].last_transition_time, "t1",
            "status flipped, so the time moves"
        );
        assert_eq!(next[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let previous = vec![cond(READY, "False", "t0")];
        let next = next_conditions(
            &previous,
            &Outcome::stalled("Rejected", "no"),
            Some(1),
            "t1",
        );
        assert_eq!(next[0].last_transition_time, "t0");
        assert_eq!(next[0].reason, "Rejected");
        assert_eq!(next[1].type_, STALLED);
        assert_eq!(next[1].status, "True");
        assert_eq!(next[1].last_transition_time, "t1");
    }

    #[test]
    fn unchanged_sync_keeps_the_last_action_at_the_same_generation() {
        let mut ready = cond(READY, "True", "t0");
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
        failed.status = "False".into();
        failed.reason = "KestraUnavailable".into();
        assert_eq!(
            unchanged_sync_message(Some(&failed), Some(1), "flow a.b/c"),
            "flow a.b/c matches the spec"
        );
    }

    #[test]
    fn summary_is_one_short_line() {
        let outcome = Outcome::not_ready(
            "KestraUnavailable",
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
            last_sync_time: Some("t0".into()),
            reason: Some("r".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.last_sync_time = Some("t1".into());
        assert!(!status_changed(Some(&a), &b, true));
        assert!(status_changed(Some(&a), &b, false));
        b.reason = Some("other".into());
        assert!(status_changed(Some(&a), &b, true));
        assert!(status_changed(None, &b, true));
    }
}
