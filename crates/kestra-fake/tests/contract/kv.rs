//! kestra-api.md section 3: the key-value store, with one test per row of the typing table.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "company.team";
const KEY_RULE: &str = "Illegal argument: Key must start with an alphanumeric character \
    (uppercase or lowercase) and can contain alphanumeric characters (uppercase or lowercase), \
    dots (.), underscores (_), and hyphens (-) only.";

async fn get_kv(f: &Fake, key: &str) -> reqwest::Response {
    f.get(&format!("/namespaces/{NS}/kv/{key}")).await
}

/// PUTs `body` and checks the typed value that comes back.
async fn assert_typed(body: &str, kind: &str, value: Value) {
    let f = start().await;
    empty(f.put_kv(NS, "k", body).await, StatusCode::OK).await;
    let mut got = json(get_kv(&f, "k").await, StatusCode::OK).await;
    take_timestamp(&mut got, "updated");
    assert_eq!(
        got,
        json!({ "type": kind, "value": value, "revision": 1 }),
        "body {body}"
    );
}

#[tokio::test]
async fn typing_quoted_text_is_string() {
    assert_typed(r#""some text""#, "STRING", json!("some text")).await;
    assert_typed(r#""123""#, "STRING", json!("123")).await;
}

#[tokio::test]
async fn typing_numbers_are_number() {
    assert_typed("42", "NUMBER", json!(42)).await;
    assert_typed("1.5", "NUMBER", json!(1.5)).await;
}

#[tokio::test]
async fn typing_true_false_are_boolean() {
    assert_typed("true", "BOOLEAN", json!(true)).await;
    assert_typed("false", "BOOLEAN", json!(false)).await;
}

#[tokio::test]
async fn typing_unquoted_date_is_date() {
    assert_typed("2021-09-01", "DATE", json!("2021-09-01")).await;
}

#[tokio::test]
async fn typing_unquoted_date_time_with_offset_is_datetime() {
    assert_typed(
        "2021-09-01T01:02:03Z",
        "DATETIME",
        json!("2021-09-01T01:02:03Z"),
    )
    .await;
    // Without an offset it is not a date-time.
    assert_typed(
        "2021-09-01T01:02:03",
        "STRING",
        json!("2021-09-01T01:02:03"),
    )
    .await;
}

#[tokio::test]
async fn typing_quoted_iso_duration_is_duration() {
    assert_typed(r#""PT5S""#, "DURATION", json!("PT5S")).await;
    // kv-types#39-44: re-printed as java.time.Duration does; bare durations too.
    assert_typed(r#""P1D""#, "DURATION", json!("PT24H")).await;
    assert_typed("PT5M", "DURATION", json!("PT5M")).await;
}

#[tokio::test]
async fn typing_objects_and_arrays_are_json() {
    assert_typed(
        r#"{"a": {"b": [1, "x"]}}"#,
        "JSON",
        json!({ "a": { "b": [1, "x"] } }),
    )
    .await;
    assert_typed("[1, 2]", "JSON", json!([1, 2])).await;
}

#[tokio::test]
async fn typing_unquoted_text_keeps_the_first_ion_value() {
    // kv-types#5-6, #49-52: Kestra parses the body as Ion and keeps the first value.
    assert_typed("hello world", "STRING", json!("hello")).await;
    assert_typed("line1\nline2\n", "STRING", json!("line1")).await;
    assert_typed("'sym'", "STRING", json!("sym")).await;
}

#[tokio::test]
async fn put_returns_200_empty_and_get_returns_typed_value_with_metadata() {
    let f = start().await;
    let response = f
        .client
        .put(f.url(&format!("/namespaces/{NS}/kv/greeting")))
        .header("content-type", "text/plain")
        .header("ttl", "PT5M")
        .header("description", "a greeting")
        .body(r#""hi""#)
        .send()
        .await
        .unwrap();
    empty(response, StatusCode::OK).await;
    let mut got = json(get_kv(&f, "greeting").await, StatusCode::OK).await;
    take_timestamp(&mut got, "updated");
    // Exactly {type, value, revision, updated}: ttl and description only show in listings.
    assert_eq!(
        got,
        json!({ "type": "STRING", "value": "hi", "revision": 1 })
    );
}

#[tokio::test]
async fn put_overwrites_and_counts_versions() {
    let f = start().await;
    empty(f.put_kv(NS, "k", "1").await, StatusCode::OK).await;
    empty(f.put_kv(NS, "k", r#""two""#).await, StatusCode::OK).await;
    let got = json(get_kv(&f, "k").await, StatusCode::OK).await;
    assert_eq!(
        (
            got["type"].clone(),
            got["value"].clone(),
            got["revision"].clone(),
        ),
        (json!("STRING"), json!("two"), json!(2))
    );
}

#[tokio::test]
async fn put_without_ttl_stores_no_expiration() {
    let f = start().await;
    empty(f.put_kv(NS, "k", "1").await, StatusCode::OK).await;
    let got = json(get_kv(&f, "k").await, StatusCode::OK).await;
    assert!(got.get("expirationDate").is_none(), "{got}");
}

#[tokio::test]
async fn put_with_a_bad_key_is_422() {
    let f = start().await;
    let body = json(
        f.put_kv(NS, "_bad", "1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        body,
        json_error(KEY_RULE, "/api/v1/main/namespaces/company.team/kv/_bad")
    );
}

#[tokio::test]
async fn put_with_a_bad_ttl_is_500() {
    let f = start().await;
    let response = f
        .client
        .put(f.url(&format!("/namespaces/{NS}/kv/k")))
        .header("content-type", "text/plain")
        .header("ttl", "5 minutes")
        .body("1")
        .send()
        .await
        .unwrap();
    // kv-expired#12: released Kestra lets the parse failure through as a 500.
    let body = json(response, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(
        body,
        json_error(
            "Internal server error: Text cannot be parsed to a Duration",
            "/api/v1/main/namespaces/company.team/kv/k"
        )
    );
    json(get_kv(&f, "k").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn get_of_a_missing_key_is_404() {
    let f = start().await;
    let body = json(get_kv(&f, "nope").await, StatusCode::NOT_FOUND).await;
    assert_eq!(
        body,
        json_error(
            "Not Found: No value found for key 'nope' in namespace 'company.team'",
            "/api/v1/main/namespaces/company.team/kv/nope"
        )
    );
}

#[tokio::test]
async fn get_after_expiry_is_410() {
    let f = start().await;
    let response = f
        .client
        .put(f.url(&format!("/namespaces/{NS}/kv/short")))
        .header("content-type", "text/plain")
        .header("ttl", "PT0.2S")
        .body("1")
        .send()
        .await
        .unwrap();
    empty(response, StatusCode::OK).await;
    json(get_kv(&f, "short").await, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json(get_kv(&f, "short").await, StatusCode::GONE).await;
    assert_eq!(
        body,
        json_error(
            "Resource has expired: The requested value has expired",
            "/api/v1/main/namespaces/company.team/kv/short"
        )
    );
}

#[tokio::test]
async fn delete_returns_true_then_false_never_404() {
    let f = start().await;
    empty(f.put_kv(NS, "k", "1").await, StatusCode::OK).await;
    let url = f.url(&format!("/namespaces/{NS}/kv/k"));
    let first = f.client.delete(&url).send().await.unwrap();
    assert_eq!(json(first, StatusCode::OK).await, json!(true));
    let second = f.client.delete(&url).send().await.unwrap();
    assert_eq!(json(second, StatusCode::OK).await, json!(false));
    json(get_kv(&f, "k").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn list_returns_live_entries_with_dates() {
    let f = start().await;
    let put = |key: &'static str, ttl: Option<&'static str>| {
        let mut request = f
            .client
            .put(f.url(&format!("/namespaces/{NS}/kv/{key}")))
            .header("content-type", "text/plain")
            .header("description", format!("about {key}"))
            .body("1");
        if let Some(ttl) = ttl {
            request = request.header("ttl", ttl);
        }
        request.send()
    };
    empty(put("b", None).await.unwrap(), StatusCode::OK).await;
    empty(put("a", Some("PT1H")).await.unwrap(), StatusCode::OK).await;
    empty(put("gone", Some("PT0.05S")).await.unwrap(), StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut list = json(f.get(&format!("/namespaces/{NS}/kv")).await, StatusCode::OK).await;
    let items = list.as_array_mut().unwrap();
    for item in items.iter_mut() {
        take_timestamp(item, "creationDate");
        take_timestamp(item, "updateDate");
    }
    take_timestamp(&mut items[0], "expirationDate");
    assert_eq!(
        list,
        json!([
            { "namespace": NS, "key": "a", "version": 1, "description": "about a" },
            { "namespace": NS, "key": "b", "version": 1, "description": "about b" },
        ])
    );
    assert_eq!(
        json(f.get("/namespaces/empty.ns/kv").await, StatusCode::OK).await,
        json!([])
    );
}

#[tokio::test]
async fn a_date_outside_the_ion_years_is_500() {
    // Ion timestamps hold the years 1 to 9999; Kestra lets the failure through as a 500.
    let f = start().await;
    for (key, body) in [("d", "0000-01-01"), ("dt", "0000-01-01T00:00:00Z")] {
        let response = f.put_kv(NS, key, body).await;
        let got = json(response, StatusCode::INTERNAL_SERVER_ERROR).await;
        assert_eq!(
            got,
            json_error(
                "Internal server error: Year 0 must be between 1 and 9999 inclusive",
                &format!("/api/v1/main/namespaces/{NS}/kv/{key}")
            )
        );
        json(get_kv(&f, key).await, StatusCode::NOT_FOUND).await;
    }
}
