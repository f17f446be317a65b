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
    // kv-list#10: H2's SQL text; #22, #23: the list of every filter field of Kestra;
    // #27: the 401 body (auth is outside this test).
    let (listing, legacy): (Vec<_>, Vec<_>) =
        steps.into_iter().partition(|s| s.scenario != "kv-types");
    assert_steps(&legacy, &[], &[]);
    assert_steps(&listing, &[10, 22, 23, 27], &[]);
}

#[tokio::test]
async fn kv_key_names_and_inheritance_1_3() {
    let Some(steps) = replay("1.3.31", "kv.jsonl", "kv-key-names").await else {
        return;
    };
    // 24: a 300-character key fails in Kestra's storage (404 with its path).
    assert_steps(&steps, &[], &[24]);
}

#[tokio::test]
async fn kv_key_names_and_inheritance_2_0() {
    let Some(steps) = replay("2.0.0", "kv.jsonl", "kv-key-names").await else {
        return;
    };
    let steps: Vec<_> = steps
        .into_iter()
        .filter(|s| !(s.scenario == "kv-key-names" && s.step == 24))
        .collect();
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
        // files-upload-read: 22 names Kestra's storage folder; 29, 40, 41: the revisions,
        // export and search routes and 36, 37: Micronaut's multipart binding errors are not
        // modelled.
        // files-mkdir-move 20-22: 1.3's mkdir quirks (over a file, unlistable parents) are not
        // modelled.
        let (status_only, skip): (&[u64], &[u64]) = match scenario {
            "files-upload-read" => (&[22], &[29, 36, 37, 40, 41]),
            "files-mkdir-move" => (&[], &[20, 21, 22]),
            _ => (&[], &[]),
        };
        assert_steps(&steps, status_only, skip);
    }
}

#[tokio::test]
async fn wrong_methods_1_3() {
    let Some(steps) = replay("1.3.31", "auth-errors.jsonl", "methods-and-params").await else {
        return;
    };
    // 2, 4: POST /flows/search and GET /flows/validate reach routes the double refuses on
    // purpose or does not have (the bulk namespace update, the namespace `validate`); 1, 3:
    // /flows/search also takes POST in Kestra (that bulk update), so its allowed methods
    // differ.
    assert_steps(&steps, &[1, 3], &[2, 4]);
}

/// `GET /api/v1/configs` answers without credentials, with the version the double plays.
#[tokio::test]
async fn configs_say_the_version_without_credentials() {
    let skip: Vec<u64> = (1..=12).filter(|step| *step != 10).collect();
    for version in ["1.3.31", "2.0.0"] {
        let Some(steps) = replay(version, "auth-errors.jsonl", "auth").await else {
            return;
        };
        assert_steps(&steps, &[], &skip);
    }
}
