//! kestra-api.md section 2: flows.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "company.team";

fn created_body(yaml: &str, id: &str, message: &str, revision: u32) -> Value {
    json!({
        "id": id,
        "namespace": NS,
        "revision": revision,
        "disabled": false,
        "deleted": false,
        "source": yaml,
        "tasks": [{ "id": "hello", "type": "io.kestra.plugin.core.log.Log", "message": message }],
    })
}

#[tokio::test]
async fn create_returns_200_flow_with_source_at_revision_1() {
    let f = start().await;
    let yaml = format!(
        "{}description: greets\nlabels:\n  team: data\n",
        flow(NS, "hello", "hi")
    );
    // Kestra's create answer has neither `updated` nor `triggers`.
    let body = json(f.post_flow(&yaml).await, StatusCode::OK).await;
    let mut expected = created_body(&yaml, "hello", "hi", 1);
    expected["description"] = json!("greets");
    expected["labels"] = json!([{ "key": "team", "value": "data" }]);
    assert_eq!(body, expected);
}

#[tokio::test]
async fn create_of_an_existing_flow_is_422_flow_id_already_exists() {
    let f = start().await;
    let yaml = flow(NS, "hello", "hi");
    json(f.post_flow(&yaml).await, StatusCode::OK).await;
    let body = json(
        f.post_flow(&flow(NS, "hello", "changed")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body,
        violation_error(
            "/api/v1/main/flows",
            &[("flow.id", "Flow id already exists")]
        )
    );
}

#[tokio::test]
async fn create_with_invalid_yaml_is_422() {
    let f = start().await;
    let body = json(
        f.post_flow("id: [unclosed\nnamespace: a\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Invalid entity: Illegal genericflow source: YAML parsing error: "),
        "{message}"
    );
    assert_eq!(body["_embedded"]["errors"][0]["path"], "yaml");
}

#[tokio::test]
async fn create_with_unknown_task_type_is_422() {
    let f = start().await;
    let yaml = "id: hello\nnamespace: company.team\ntasks:\n  - id: t\n    type: Log\n";
    let body = json(f.post_flow(yaml).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Binding stops at the unknown type: Kestra's text and Jackson's, at the task's place.
    assert_eq!(body["message"], "Invalid entity: Invalid type: Log");
    let at = "io.kestra.core.models.flows.FlowWithSource[\"tasks\"]->java.util.ArrayList[0]";
    assert_eq!(body["_embedded"]["errors"][0]["path"], at);
    assert_eq!(
        body["_embedded"]["errors"][0]["message"],
        "Invalid type: Log"
    );
    assert_eq!(body["_embedded"]["errors"][1]["path"], at);
}

#[tokio::test]
async fn create_without_id_namespace_or_tasks_is_422() {
    let f = start().await;
    let body = json(
        f.post_flow("description: nothing\n").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body,
        flow_violation_error(
            "/api/v1/main/flows",
            &[
                ("id", "id", "must not be null"),
                ("id", "id", "must not be blank"),
                ("namespace", "namespace", "must not be null"),
                ("tasks", "tasks", "must not be empty"),
            ]
        )
    );
}

#[tokio::test]
async fn create_with_ids_off_pattern_is_422() {
    let f = start().await;
    let yaml = flow("Company Team", "-bad", "x");
    let body = json(f.post_flow(&yaml).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        body,
        flow_violation_error(
            "/api/v1/main/flows",
            &[
                ("id", "id", "must match \"^[a-zA-Z0-9][a-zA-Z0-9._-]*\""),
                (
                    "namespace",
                    "namespace",
                    "must match \"^[a-z0-9][a-z0-9._-]*\""
                ),
            ]
        )
    );
}

#[tokio::test]
async fn create_with_a_reserved_id_is_422() {
    let f = start().await;
    for id in ["pause", "search", "executions"] {
        let body = json(
            f.post_flow(&flow(NS, id, "x")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(
            body["message"],
            format!(
                "Invalid entity: : Invalid Flow: Flow id is a reserved keyword: {id}. List of \
                 reserved keywords: pause, resume, force-run, change-status, kill, executions, \
                 search, source, disable, enable\n"
            )
        );
    }
}

#[tokio::test]
async fn create_needs_the_yaml_content_type() {
    // Kestra 1.3 reads application/json as a JSON flow: YAML sent so is a 500 (Jackson);
    // Kestra 2.0 takes YAML only (content-types#2 of the recordings).
    let f = start().await;
    let response = f
        .client
        .post(f.url("/flows"))
        .header("content-type", "application/json")
        .body(flow(NS, "hello", "x"))
        .send()
        .await
        .unwrap();
    let body = json(response, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Internal server error: Unrecognized token 'id'"),
        "{body}"
    );
    let f2 = start_with(kestra_fake::FakeConfig {
        kestra_version: kestra_fake::KestraVersion::V2_0,
        ..kestra_fake::FakeConfig::default()
    })
    .await;
    let response = f2
        .client
        .post(f2.url("/flows"))
        .header("content-type", "application/json")
        .body(flow(NS, "hello", "x"))
        .send()
        .await
        .unwrap();
    let body = json(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(
        body["message"],
        "Unsupported Media Type: Content Type [application/json] not allowed. Allowed types: \
         [application/x-yaml]"
    );
}

/// Kestra 1.3's deprecated JSON route: the flow is stored with YAML generated from it.
#[tokio::test]
async fn a_json_flow_is_stored_as_generated_yaml_in_1_3() {
    let f = start().await;
    let response = f
        .client
        .post(f.url("/flows"))
        .header("content-type", "application/json")
        .body(r#"{"id": "j", "namespace": "company.team", "tasks": [{"id": "t", "type": "io.kestra.plugin.core.log.Log", "message": "hi"}]}"#)
        .send()
        .await
        .unwrap();
    let body = json(response, StatusCode::OK).await;
    assert!(body.get("source").is_none(), "{body}");
    let stored = json(
        f.get("/flows/company.team/j?source=true").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        stored["source"],
        "id: j\nnamespace: company.team\ntasks:\n- id: t\n  type: io.kestra.plugin.core.log.Log\n  message: hi\n"
    );
}

#[tokio::test]
async fn get_returns_source_only_when_asked() {
    let f = start().await;
    let yaml = flow(NS, "hello", "hi");
    json(f.post_flow(&yaml).await, StatusCode::OK).await;

    let mut with = json(
        f.get("/flows/company.team/hello?source=true").await,
        StatusCode::OK,
    )
    .await;
    take_timestamp(&mut with, "updated");
    // A GET shows `updated` and the (empty) `triggers`.
    let mut expected = created_body(&yaml, "hello", "hi", 1);
    expected["triggers"] = json!([]);
    assert_eq!(with, expected);

    let mut without = json(f.get("/flows/company.team/hello").await, StatusCode::OK).await;
    take_timestamp(&mut without, "updated");
    expected.as_object_mut().unwrap().remove("source");
    assert_eq!(without, expected);
}

#[tokio::test]
async fn get_of_a_missing_flow_is_404() {
    let f = start().await;
    let body = json(
        f.get("/flows/company.team/nope").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        body,
        json_error("Not Found", "/api/v1/main/flows/company.team/nope")
    );
}

#[tokio::test]
async fn get_by_revision_keeps_every_revision() {
    let f = start().await;
    json(f.post_flow(&flow(NS, "hello", "one")).await, StatusCode::OK).await;
    json(
        f.put_flow(NS, "hello", &flow(NS, "hello", "two")).await,
        StatusCode::OK,
    )
    .await;
    let first = json(
        f.get("/flows/company.team/hello?revision=1&source=true")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["revision"], 1);
    assert_eq!(first["source"], flow(NS, "hello", "one"));
    let latest = json(f.get("/flows/company.team/hello").await, StatusCode::OK).await;
    assert_eq!(latest["revision"], 2);
    assert_eq!(latest["tasks"][0]["message"], "two");
    json(
        f.get("/flows/company.team/hello?revision=9").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn update_returns_200_with_a_new_revision() {
    let f = start().await;
    json(f.post_flow(&flow(NS, "hello", "one")).await, StatusCode::OK).await;
    let yaml = flow(NS, "hello", "two");
    let body = json(f.put_flow(NS, "hello", &yaml).await, StatusCode::OK).await;
    assert_eq!(body, created_body(&yaml, "hello", "two", 2));
}

#[tokio::test]
async fn saving_identical_source_makes_no_new_revision() {
    let f = start().await;
    let yaml = flow(NS, "hello", "one");
    json(f.post_flow(&yaml).await, StatusCode::OK).await;
    let stored = json(
        f.get("/flows/company.team/hello?source=true").await,
        StatusCode::OK,
    )
    .await;
    let same = json(f.put_flow(NS, "hello", &yaml).await, StatusCode::OK).await;
    assert_eq!(
        same, stored,
        "the stored flow comes back unchanged, as a GET shows it (timestamp included)"
    );
    // Any byte of difference is a change.
    let changed = json(
        f.put_flow(NS, "hello", &format!("{yaml}\n")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["revision"], 2);
}

#[tokio::test]
async fn update_of_a_missing_flow_is_404() {
    let f = start().await;
    let body = json(
        f.put_flow(NS, "ghost", &flow(NS, "ghost", "x")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        body,
        json_error("Not Found", "/api/v1/main/flows/company.team/ghost")
    );
}

#[tokio::test]
async fn update_changing_id_or_namespace_is_422() {
    let f = start().await;
    json(f.post_flow(&flow(NS, "hello", "x")).await, StatusCode::OK).await;
    let href = "/api/v1/main/flows/company.team/hello";
    let body = json(
        f.put_flow(NS, "hello", &flow(NS, "other", "x")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body,
        violation_error(href, &[("flow.id", "Illegal flow id update")])
    );
    let body = json(
        f.put_flow(NS, "hello", &flow("company.other", "hello", "x"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body,
        violation_error(href, &[("flow.namespace", "Illegal namespace update")])
    );
}

#[tokio::test]
async fn delete_is_204_then_get_is_404() {
    let f = start().await;
    json(f.post_flow(&flow(NS, "hello", "x")).await, StatusCode::OK).await;
    let response = f
        .client
        .delete(f.url("/flows/company.team/hello"))
        .send()
        .await
        .unwrap();
    empty(response, StatusCode::NO_CONTENT).await;
    json(
        f.get("/flows/company.team/hello").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The soft delete is a revision of its own.
    let deleted = json(
        f.get("/flows/company.team/hello?allowDeleted=true").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (deleted["revision"].clone(), deleted["deleted"].clone()),
        (json!(2), json!(true))
    );
    // Older revisions stay readable.
    let first = json(
        f.get("/flows/company.team/hello?revision=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["deleted"], false);
}

#[tokio::test]
async fn delete_of_an_absent_flow_is_404() {
    let f = start().await;
    let response = f
        .client
        .delete(f.url("/flows/company.team/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(response, StatusCode::NOT_FOUND).await,
        json_error("Not Found", "/api/v1/main/flows/company.team/nope")
    );
}

#[tokio::test]
async fn recreate_after_delete_continues_numbering() {
    let f = start().await;
    let yaml = flow(NS, "hello", "x");
    json(f.post_flow(&yaml).await, StatusCode::OK).await;
    f.client
        .delete(f.url("/flows/company.team/hello"))
        .send()
        .await
        .unwrap();
    // PUT needs a live flow.
    json(f.put_flow(NS, "hello", &yaml).await, StatusCode::NOT_FOUND).await;
    // The same source as the deleted revision still makes a new one.
    let body = json(f.post_flow(&yaml).await, StatusCode::OK).await;
    assert_eq!(
        (body["revision"].clone(), body["deleted"].clone()),
        (json!(3), json!(false))
    );
}

#[tokio::test]
async fn validate_returns_200_with_one_result_per_document() {
    let f = start().await;
    let body = format!(
        "{}---\nid: broken\nnamespace: company.team\ntasks:\n  - id: t\n    type: Nope\n",
        flow(NS, "good", "x")
    );
    let response = f
        .client
        .post(f.url("/flows/validate"))
        .header("content-type", "application/x-yaml")
        .body(body)
        .send()
        .await
        .unwrap();
    let results = json(response, StatusCode::OK).await;
    assert_eq!(
        results,
        json!([
            { "index": 0, "namespace": NS, "flow": "good", "outdated": false,
              "deprecationPaths": [], "warnings": [], "infos": [] },
            { "index": 1, "outdated": false,
              "constraints": "Validation error: Invalid type: Nope" },
        ])
    );
    // Validation stores nothing.
    assert_eq!(
        json(f.get("/flows/company.team").await, StatusCode::OK).await,
        json!([])
    );
}

#[tokio::test]
async fn validate_accepts_a_multipart_flows_part() {
    let f = start().await;
    let form = reqwest::multipart::Form::new().text("flows", flow(NS, "good", "x"));
    let response = f
        .client
        .post(f.url("/flows/validate"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let results = json(response, StatusCode::OK).await;
    assert_eq!(results.as_array().unwrap().len(), 1);
    assert_eq!(results[0]["flow"], "good");
    assert!(results[0].get("constraints").is_none());
}

#[tokio::test]
async fn list_in_namespace_returns_live_flows_without_source() {
    let f = start().await;
    json(f.post_flow(&flow(NS, "b", "x")).await, StatusCode::OK).await;
    json(f.post_flow(&flow(NS, "a", "x")).await, StatusCode::OK).await;
    json(f.post_flow(&flow(NS, "gone", "x")).await, StatusCode::OK).await;
    json(
        f.post_flow(&flow("company.team.sub", "child", "x")).await,
        StatusCode::OK,
    )
    .await;
    f.client
        .delete(f.url("/flows/company.team/gone"))
        .send()
        .await
        .unwrap();

    let list = json(f.get("/flows/company.team").await, StatusCode::OK).await;
    let summary: Vec<(String, u64, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["revision"].as_u64().unwrap(),
                f.get("source").is_some(),
            )
        })
        .collect();
    // Creation order, as Kestra lists them (flow-list-search#6 of the recordings).
    assert_eq!(
        summary,
        vec![("b".into(), 1, false), ("a".into(), 1, false)]
    );
    assert_eq!(
        json(f.get("/flows/unknown.ns").await, StatusCode::OK).await,
        json!([])
    );
}

#[tokio::test]
async fn search_pages_and_filters() {
    let f = start().await;
    for (ns, id) in [
        (NS, "a"),
        (NS, "b"),
        (NS, "c"),
        ("company.team.sub", "d"),
        ("other", "e"),
    ] {
        json(f.post_flow(&flow(ns, id, "x")).await, StatusCode::OK).await;
    }
    let ids = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = json(
        f.get("/flows/search?page=1&size=2&filters[namespace][EQUALS]=company.team")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (ids(&page), page["total"].clone()),
        (vec!["a".into(), "b".into()], json!(3))
    );
    assert!(page["results"][0].get("source").is_none());

    let page2 = json(
        f.get("/flows/search?page=2&size=2&filters%5Bnamespace%5D%5BEQUALS%5D=company.team")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&page2), vec!["c".to_owned()]);

    let prefix = json(
        f.get("/flows/search?size=50&filters[namespace][PREFIX]=company")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&prefix), vec!["a", "b", "c", "d"]);

    let legacy = json(
        f.get("/flows/search?namespace=company.team").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!((ids(&legacy).len(), legacy["total"].clone()), (4, json!(4)));

    let bad = json(
        f.get("/flows/search?filters[state][EQUALS]=x").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request: ")
    );
}

#[tokio::test]
async fn bulk_namespace_update_is_refused_loudly() {
    let f = start().await;
    json(f.post_flow(&flow(NS, "keep", "x")).await, StatusCode::OK).await;
    let response = f
        .client
        .post(f.url("/flows/company.team"))
        .header("content-type", "application/x-yaml")
        .body(flow(NS, "other", "x"))
        .send()
        .await
        .unwrap();
    let body = json(response, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("refuses POST /flows/{namespace}")
    );
    // Nothing was deleted.
    json(f.get("/flows/company.team/keep").await, StatusCode::OK).await;
}

/// `DELETE /flows/delete/by-query?namespace=..`: 1.3 filters on the namespace and its children;
/// 2.0 ignores the legacy parameter and deletes every flow of the tenant (2.0.0-vs-1.3.31.md #4).
#[tokio::test]
async fn delete_by_query_legacy_namespace_filters_in_1_3_and_is_ignored_in_2_0() {
    for (version, expected_count, left) in [
        (kestra_fake::KestraVersion::V1_3, 2, 1),
        (kestra_fake::KestraVersion::V2_0, 3, 0),
    ] {
        let f = start_with(kestra_fake::FakeConfig {
            kestra_version: version,
            ..kestra_fake::FakeConfig::default()
        })
        .await;
        for (namespace, id) in [("a.x", "f1"), ("a.x.child", "f2"), ("b", "f3")] {
            json(
                f.post_flow(&flow(namespace, id, "hi")).await,
                StatusCode::OK,
            )
            .await;
        }
        let response = f
            .client
            .delete(f.url("/flows/delete/by-query?namespace=a.x"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            json(response, StatusCode::OK).await,
            json!({ "count": expected_count }),
            "{version:?}"
        );
        let search = json(f.get("/flows/search").await, StatusCode::OK).await;
        assert_eq!(search["total"], left, "{version:?}");
        // Soft delete: the deleted revision is kept and consumed a revision number.
        let deleted = json(
            f.get("/flows/a.x/f1?allowDeleted=true").await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (deleted["revision"].clone(), deleted["deleted"].clone()),
            (json!(2), json!(true))
        );
    }
}

/// What the operator's tests rely on, in both lines: a `Log` with a message is valid; the
/// legacy `io.kestra.core.tasks.log.Log` with a message is valid in 1.3 (validate notes it in
/// `infos`) and refused in 2.0; a `Log` without message is refused in both
/// (flow-create-invalid#2-3, flow-validate#1, #3, #6 of the recordings).
#[tokio::test]
async fn log_tasks_as_each_line_validates_them() {
    let log = "id: hello\nnamespace: company.team\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n";
    let legacy = log.replace(
        "io.kestra.plugin.core.log.Log",
        "io.kestra.core.tasks.log.Log",
    );
    let no_message = "id: hello\nnamespace: company.team\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n";
    for version in [
        kestra_fake::KestraVersion::V1_3,
        kestra_fake::KestraVersion::V2_0,
    ] {
        let v2 = version.is_v2();
        let f = start_with(kestra_fake::FakeConfig {
            kestra_version: version,
            ..kestra_fake::FakeConfig::default()
        })
        .await;
        let validate = |body: String| {
            let request = f
                .client
                .post(f.url("/flows/validate"))
                .header("content-type", "application/x-yaml")
                .body(body);
            async move { json(request.send().await.unwrap(), StatusCode::OK).await }
        };

        let results = validate(log.to_owned()).await;
        assert_eq!(results[0]["infos"], json!([]), "{results}");
        assert!(results[0].get("constraints").is_none(), "{results}");
        json(f.post_flow(log).await, StatusCode::OK).await;

        let results = validate(legacy.clone()).await;
        let refused = json(
            f.post_flow(&legacy.replace("hello", "legacy")).await,
            if v2 {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            },
        )
        .await;
        if v2 {
            assert_eq!(
                results,
                json!([{ "index": 0, "outdated": false,
                    "constraints": "Validation error: Invalid type: io.kestra.core.tasks.log.Log" }])
            );
            assert_eq!(
                refused["message"],
                "Invalid entity: Invalid type: io.kestra.core.tasks.log.Log"
            );
        } else {
            assert_eq!(
                results[0]["infos"],
                json!([
                    "io.kestra.core.tasks.log.Log is replaced by io.kestra.plugin.core.log.Log"
                ])
            );
            assert!(results[0].get("constraints").is_none(), "{results}");
        }

        let shown = if v2 { "tasks[t].message" } else { "t.message" };
        let results = validate(no_message.to_owned()).await;
        assert_eq!(
            results[0]["constraints"],
            format!("Validation error: {shown}: must not be null\n")
        );
        let refused = json(
            f.post_flow(&no_message.replace("hello", "nomsg")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(
            refused,
            flow_violation_error(
                "/api/v1/main/flows",
                &[("tasks[0].message", shown, "must not be null")]
            )
        );
    }
}

/// Other schema rules: unknown top-level properties, duplicate task ids, property types that
/// Jackson would not coerce.
#[tokio::test]
async fn the_flow_schema_refuses_what_kestra_refuses() {
    let f = start().await;
    let unknown = format!("{}unknownProp: 1\n", flow(NS, "u", "x"));
    let body = json(
        f.post_flow(&unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid entity: Unrecognized field \"unknownProp\""),
        "{body}"
    );
    let duplicate = "id: dup\nnamespace: company.team\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: y\n";
    let body = json(
        f.post_flow(duplicate).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body["message"],
        "Invalid entity: : Invalid Flow: Duplicate task id with name [a]\n"
    );
    // A scalar where a string is expected is read by Jackson, so it is valid.
    json(f.post_flow(&flow(NS, "scalar", "42")).await, StatusCode::OK).await;
    // A level outside the enum is refused.
    let bad_level = format!("{}    level: LOUD\n", flow(NS, "lvl", "x"));
    json(
        f.post_flow(&bad_level).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}
