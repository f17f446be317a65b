//! The double against the recordings of real Kestra 1.3.31 and 2.0.0
//! (`shared/kestra-transcripts`), scenario by scenario, with [`crate::replay::replay`].
//! `replay_all.rs` replays every exchange; these tests name the scenarios one by one, so that a
//! failure points at a behaviour.

use crate::replay::{assert_steps, replay};

#[tokio::test]
async fn flow_literal_routes_1_3() {
    let Some(steps) = replay("1.3.31", "flows.jsonl", "flow-literal-routes").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn flow_literal_routes_2_0() {
    let Some(steps) = replay("2.0.0", "flows.jsonl", "flow-literal-routes").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn flow_delete_all_by_query_1_3() {
    let Some(steps) = replay("1.3.31", "flows.jsonl", "flow-delete-all-by-query").await else {
        return;
    };
    // 1: the count includes the flows of every earlier scenario.
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn flow_delete_all_by_query_2_0() {
    let Some(steps) = replay("2.0.0", "flows.jsonl", "flow-delete-all-by-query").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn kv_types_1_3() {
    let Some(steps) = replay("1.3.31", "kv.jsonl", "kv-types").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn kv_types_and_listing_2_0() {
    let Some(steps) = replay("2.0.0", "kv.jsonl", "kv-types").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn kv_key_names_and_inheritance_1_3() {
    let Some(steps) = replay("1.3.31", "kv.jsonl", "kv-key-names").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn kv_key_names_and_inheritance_2_0() {
    let Some(steps) = replay("2.0.0", "kv.jsonl", "kv-key-names").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn kv_revisions_expiry_and_delete_1_3() {
    for scenario in ["kv-overwrite-revision", "kv-expired", "kv-delete"] {
        let Some(steps) = replay("1.3.31", "kv.jsonl", scenario).await else {
            return;
        };
        assert_steps(&steps, &[], &[]);
    }
}

#[tokio::test]
async fn kv_revisions_expiry_and_delete_2_0() {
    for scenario in ["kv-overwrite-revision", "kv-expired", "kv-delete"] {
        let Some(steps) = replay("2.0.0", "kv.jsonl", scenario).await else {
            return;
        };
        assert_steps(&steps, &[], &[]);
    }
}

#[tokio::test]
async fn files_special_names_1_3() {
    let Some(steps) = replay("1.3.31", "files.jsonl", "files-special-names").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn files_special_names_2_0() {
    let Some(steps) = replay("2.0.0", "files.jsonl", "files-special-names").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

#[tokio::test]
async fn files_scenarios_1_3() {
    for scenario in ["files-upload-read", "files-mkdir-move", "files-delete"] {
        let Some(steps) = replay("1.3.31", "files.jsonl", scenario).await else {
            return;
        };
        assert_steps(&steps, &[], &[]);
    }
}

#[tokio::test]
async fn wrong_methods_1_3() {
    let Some(steps) = replay("1.3.31", "auth-errors.jsonl", "methods-and-params").await else {
        return;
    };
    assert_steps(&steps, &[], &[]);
}

/// Auth as recorded: 401 without body, `/api/v1/configs` and `/ping` open, 1.3's 422 for a
/// Basic header that is not base64.
#[tokio::test]
async fn auth_as_recorded() {
    for version in ["1.3.31", "2.0.0"] {
        let Some(steps) = replay(version, "auth-errors.jsonl", "auth").await else {
            return;
        };
        // 12 lists the flows left by flows.jsonl, which this test does not replay.
        assert_steps(&steps, &[12], &[]);
    }
}

/// Flow validation and its refusals, both lines (flow-create-invalid, flow-validate).
#[tokio::test]
async fn flow_validation_as_recorded() {
    for version in ["1.3.31", "2.0.0"] {
        for scenario in ["flow-create-invalid", "flow-validate"] {
            let Some(steps) = replay(version, "flows.jsonl", scenario).await else {
                return;
            };
            assert_steps(&steps, &[], &[]);
        }
    }
}
