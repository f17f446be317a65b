//! The double against the recordings of real Kestra 1.3.31 and 2.0.0
//! (`shared/kestra-transcripts`), scenario by scenario, with [`crate::replay::replay`].
//! Each test lists the steps that still differ for reasons outside its scope: some compared by
//! status only, some skipped (routes the double does not model).

use crate::replay::{assert_steps, replay};

#[tokio::test]
async fn flow_literal_routes_1_3() {
    let Some(steps) = replay("1.3.31", "flows.jsonl", "flow-literal-routes").await else {
        return;
    };
    // 12: the CSV export and 27: the PATCH-only sub-route are not modelled.
    assert_steps(&steps, &[], &[12, 27]);
}

#[tokio::test]
async fn flow_literal_routes_2_0() {
    let Some(steps) = replay("2.0.0", "flows.jsonl", "flow-literal-routes").await else {
        return;
    };
    // 8: the whole tenant is exported, but the double's earlier flows differ (laxer
    // validation of the earlier scenarios); 12: the CSV export is not modelled.
    assert_steps(&steps, &[8], &[12]);
}

#[tokio::test]
async fn flow_delete_all_by_query_1_3() {
    let Some(steps) = replay("1.3.31", "flows.jsonl", "flow-delete-all-by-query").await else {
        return;
    };
    // 1: the count includes flows of earlier scenarios, which the double validates less
    // strictly (it accepts flows that Kestra refuses).
    assert_steps(&steps, &[1], &[]);
}

#[tokio::test]
async fn flow_delete_all_by_query_2_0() {
    let Some(steps) = replay("2.0.0", "flows.jsonl", "flow-delete-all-by-query").await else {
        return;
    };
    assert_steps(&steps, &[1], &[]);
}
