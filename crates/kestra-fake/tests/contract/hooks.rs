//! The `/__fake/` test hooks: one test per hook.

use std::time::{Duration, Instant};

use kestra_fake::{ErrorFormat, FakeConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn latency_delays_matching_requests_only() {
    let f = start().await;
    f.hook_post(
        "/latency",
        json!({ "ms": 400, "route": "/api/v1/main/flows", "method": "GET" }),
    )
    .await;
    let started = Instant::now();
    json(f.get("/flows/company.team").await, StatusCode::OK).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    json(f.get("/namespaces/company.team/kv").await, StatusCode::OK).await;
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "other routes are not delayed"
    );

    f.hook_post("/latency", json!({ "ms": 0 })).await;
    let started = Instant::now();
    json(f.get("/flows/company.team").await, StatusCode::OK).await;
    assert!(started.elapsed() < Duration::from_millis(350), "cleared");
}

#[tokio::test]
async fn fail_fails_the_next_n_matching_requests() {
    let f = start().await;
    f.hook_post(
        "/fail",
        json!({ "count": 2, "status": 503, "route": "/api/v1/main/flows" }),
    )
    .await;
    for _ in 0..2 {
        let response = f.get("/flows/company.team").await;
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(
            json(response, StatusCode::SERVICE_UNAVAILABLE).await,
            json_error(
                "Service Unavailable: injected failure",
                "/api/v1/main/flows/company.team"
            )
        );
    }
    json(f.get("/flows/company.team").await, StatusCode::OK).await;

    f.hook_post(
        "/fail",
        json!({ "count": 1, "status": 500, "method": "PUT" }),
    )
    .await;
    json(f.get("/namespaces/company.team/kv").await, StatusCode::OK).await;
    let failed = json(
        f.put_kv("company.team", "k", "1").await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert_eq!(failed["message"], "Internal server error: injected failure");
    empty(f.put_kv("company.team", "k", "1").await, StatusCode::OK).await;
}

#[tokio::test]
async fn fail_429_carries_retry_after_in_problem_format() {
    let f = start_with(FakeConfig {
        error_format: ErrorFormat::Problem,
        ..FakeConfig::default()
    })
    .await;
    f.hook_post(
        "/fail",
        json!({ "count": 1, "status": 429, "retryAfter": 7 }),
    )
    .await;
    let response = f.get("/flows/company.team").await;
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        json(response, StatusCode::TOO_MANY_REQUESTS).await,
        json!({
            "type": "https://kestra.io/docs/api-reference/problems/too-many-requests",
            "title": "Too many requests",
            "status": 429,
            "detail": "Injected failure",
            "instance": "/api/v1/main/flows/company.team",
        })
    );
}

#[tokio::test]
async fn down_refuse_refuses_connections_then_recovers() {
    let f = start().await;
    json(f.get("/flows/company.team").await, StatusCode::OK).await;
    f.hook_post("/down", json!({ "seconds": 1, "mode": "refuse" }))
        .await;
    let started = Instant::now();
    let fresh = client()
        .get(f.url("/flows/company.team"))
        .send()
        .await
        .unwrap_err();
    assert!(
        fresh.is_connect(),
        "expected a refused connection, got {fresh:?}"
    );
    // Open connections were closed too (after the hook's answer): a pooled client reconnects
    // and is refused as well.
    let pooled = f
        .client
        .get(f.url("/flows/company.team"))
        .send()
        .await
        .unwrap_err();
    assert!(pooled.is_connect(), "{pooled:?}");

    let recovered = loop {
        if let Ok(response) = f.client.get(f.url("/flows/company.team")).send().await {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(recovered.status(), StatusCode::OK);
    // Same port, same state.
    assert_eq!(recovered.url().port(), Some(f.fake.port()));
}

#[tokio::test]
async fn down_hang_never_answers_then_drops() {
    let f = start().await;
    f.hook_post("/down", json!({ "seconds": 1, "mode": "hang" }))
        .await;
    let started = Instant::now();
    let hanging = tokio::spawn(client().get(f.url("/flows/company.team")).send());

    // Hooks still answer during the window, so a test can watch or undo it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = client().get(f.hook("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        !hanging.is_finished(),
        "the API request must still be waiting"
    );

    let error = hanging.await.unwrap().unwrap_err();
    let waited = started.elapsed();
    assert!(
        !error.is_timeout(),
        "dropped at the end of the window, not timed out: {error:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // After the window the API answers again.
    json(f.get("/flows/company.team").await, StatusCode::OK).await;
}

#[tokio::test]
async fn counters_are_keyed_by_route_template_method_and_status() {
    let f = start().await;
    json(
        f.post_flow(&flow("company.team", "a", "x")).await,
        StatusCode::OK,
    )
    .await;
    json(f.get("/flows/company.team/a").await, StatusCode::OK).await;
    json(f.get("/flows/other.ns/b").await, StatusCode::NOT_FOUND).await;
    json(f.get("/flows/company.team/a").await, StatusCode::OK).await;
    json(f.get("/flows/search").await, StatusCode::OK).await;
    // Hooks are not counted.
    f.client.get(f.hook("/health")).send().await.unwrap();

    let counters = f.client.get(f.hook("/counters")).send().await.unwrap();
    assert_eq!(
        json(counters, StatusCode::OK).await,
        json!({
            "requests": [
                { "method": "GET", "route": "/api/v1/{tenant}/flows/search", "status": 200, "count": 1 },
                { "method": "GET", "route": "/api/v1/{tenant}/flows/{namespace}/{id}", "status": 200, "count": 2 },
                { "method": "GET", "route": "/api/v1/{tenant}/flows/{namespace}/{id}", "status": 404, "count": 1 },
                { "method": "POST", "route": "/api/v1/{tenant}/flows", "status": 200, "count": 1 },
            ],
            "total": 5,
        })
    );
    f.hook_post("/counters/reset", json!({})).await;
    let counters = f.client.get(f.hook("/counters")).send().await.unwrap();
    assert_eq!(
        json(counters, StatusCode::OK).await,
        json!({ "requests": [], "total": 0 })
    );
}

#[tokio::test]
async fn reset_wipes_all_state() {
    let f = start().await;
    json(
        f.post_flow(&flow("company.team", "a", "x")).await,
        StatusCode::OK,
    )
    .await;
    empty(f.put_kv("company.team", "k", "1").await, StatusCode::OK).await;
    f.hook_post(
        "/fail",
        json!({ "count": 5, "status": 500, "route": "/nowhere" }),
    )
    .await;
    f.hook_post("/reset", json!({})).await;
    json(f.get("/flows/company.team/a").await, StatusCode::NOT_FOUND).await;
    json(
        f.get("/namespaces/company.team/kv/k").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // Creating again starts over at revision 1.
    let created = json(
        f.post_flow(&flow("company.team", "a", "x")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(created["revision"], 1);
}

#[tokio::test]
async fn health_answers() {
    let f = start().await;
    let response = f.client.get(f.hook("/health")).send().await.unwrap();
    assert_eq!(
        json(response, StatusCode::OK).await,
        json!({ "status": "UP" })
    );
}

#[tokio::test]
async fn hooks_are_404_when_disabled() {
    let f = start_with(FakeConfig {
        test_hooks: false,
        ..FakeConfig::default()
    })
    .await;
    for path in ["/health", "/counters"] {
        let response = f.client.get(f.hook(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let response = f
        .client
        .post(f.hook("/fail"))
        .json(&json!({ "count": 1, "status": 500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    json(f.get("/flows/company.team").await, StatusCode::OK).await;
}
