//! The finalizer: added before anything is written to Kestra, removed after cleanup.

use serde_json::json;

use super::FINALIZER;

/// What the finalizer asks of one reconcile.
#[derive(Debug, PartialEq, Eq)]
pub enum FinalizerStep {
    /// Being deleted and still holding the finalizer: clean up, then remove it.
    Cleanup,
    /// Being deleted without the finalizer: nothing left to do.
    Gone,
    /// Live without the finalizer: add it before anything is written to Kestra.
    AddThenApply,
    Apply,
}

pub fn finalizer_step(deleting: bool, has_finalizer: bool) -> FinalizerStep {
    match (deleting, has_finalizer) {
        (true, true) => FinalizerStep::Cleanup,
        (true, false) => FinalizerStep::Gone,
        (false, false) => FinalizerStep::AddThenApply,
        (false, true) => FinalizerStep::Apply,
    }
}

/// A patch that could not be built: never sent as an empty patch.
#[derive(Debug, thiserror::Error)]
#[error("building the finalizer patch: {0}")]
pub struct PatchBuildError(#[source] serde_json::Error);

fn patch(ops: Vec<serde_json::Value>) -> Result<json_patch::Patch, PatchBuildError> {
    serde_json::from_value(serde_json::Value::Array(ops)).map_err(PatchBuildError)
}

/// A JSON patch adding the finalizer, refused by the server if the list changed meanwhile.
pub fn finalizer_addition(
    current: Option<&[String]>,
) -> Result<json_patch::Patch, PatchBuildError> {
    patch(match current {
        None | Some([]) => vec![
            // An empty list is not stored: the field is absent, which a test of null matches.
            json!({"op": "test", "path": "/metadata/finalizers", "value": null}),
            json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}),
        ],
        Some(list) => vec![
            json!({"op": "test", "path": "/metadata/finalizers", "value": list}),
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}),
        ],
    })
}

/// A JSON patch removing the finalizer at the index it had, refused if the list changed.
pub fn finalizer_removal(current: &[String]) -> Result<json_patch::Patch, PatchBuildError> {
    patch(match current.iter().position(|f| f == FINALIZER) {
        Some(index) => vec![
            json!({"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER}),
            json!({"op": "remove", "path": format!("/metadata/finalizers/{index}")}),
        ],
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_is_added_before_any_write_and_removed_after_cleanup() {
        assert_eq!(finalizer_step(false, false), FinalizerStep::AddThenApply);
        assert_eq!(finalizer_step(false, true), FinalizerStep::Apply);
        assert_eq!(finalizer_step(true, true), FinalizerStep::Cleanup);
        assert_eq!(finalizer_step(true, false), FinalizerStep::Gone);
    }

    #[test]
    fn finalizer_patches_are_guarded_by_a_test_of_the_current_list() {
        let ops = |p: Result<json_patch::Patch, PatchBuildError>| {
            serde_json::to_value(p.unwrap()).unwrap()
        };
        assert_eq!(
            ops(finalizer_addition(None)),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        );
        let others = vec!["other.io/keep".to_string()];
        assert_eq!(
            ops(finalizer_addition(Some(&others))),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other.io/keep"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ])
        );
        let both = vec!["other.io/keep".to_string(), FINALIZER.to_string()];
        assert_eq!(
            ops(finalizer_removal(&both)),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        assert_eq!(ops(finalizer_removal(&others)), json!([]));
    }
}
