//! Cross-cutting rules (kestra-api.md sections 1 and 5): auth, roots, tenants, error formats,
//! persistence, and the binary itself.

use std::time::Duration;

use kestra_fake::{ErrorFormat, FakeConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

fn with_auth() -> FakeConfig {
    FakeConfig {
        basic_auth: Some("admin:s3cret".parse().unwrap()),
        api_key: Some("token-123".into()),
        ..FakeConfig::default()
    }
}

/// Kestra's 401: `WWW-Authenticate: Basic`, no body, no content type (auth#1-9).
async fn assert_401(response: reqwest::Response, _href: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Basic");
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn basic_auth_is_required_when_configured() {
    let f = start_with(with_auth()).await;
    let url = f.url("/flows/company.team");
    assert_401(
        f.client.get(&url).send().await.unwrap(),
        "/api/v1/main/flows/company.team",
    )
    .await;
    let wrong = f
        .client
        .get(&url)
        .basic_auth("admin", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_401(wrong, "/api/v1/main/flows/company.team").await;
    // Unknown API paths are protected too.
    assert_401(f.get("/nowhere").await, "/api/v1/main/nowhere").await;
    // The hooks are test plumbing, outside the API: no credential needed.
    let health = f.client.get(f.hook("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ok = f
        .client
        .get(&url)
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(ok, StatusCode::OK).await, json!([]));
}

#[tokio::test]
async fn bearer_token_is_accepted_when_configured() {
    let f = start_with(with_auth()).await;
    let url = f.url("/flows/company.team");
    let wrong = f
        .client
        .get(&url)
        .bearer_auth("other")
        .send()
        .await
        .unwrap();
    assert_401(wrong, "/api/v1/main/flows/company.team").await;
    let ok = f
        .client
        .get(&url)
        .bearer_auth("token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(json(ok, StatusCode::OK).await, json!([]));
}

#[tokio::test]
async fn no_auth_is_asked_when_none_is_configured() {
    let f = start().await;
    let ok = f
        .client
        .get(f.url("/flows/company.team"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(ok, StatusCode::OK).await, json!([]));
}

#[tokio::test]
async fn unauthorized_in_problem_format() {
    let f = start_with(FakeConfig {
        error_format: ErrorFormat::Problem,
        ..with_auth()
    })
    .await;
    let response = f.get("/flows/company.team").await;
    assert_eq!(response.headers()["www-authenticate"], "Basic");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        json(response, StatusCode::UNAUTHORIZED).await,
        json!({
            "type": "https://kestra.io/docs/api-reference/problems/unauthenticated",
            "title": "Unauthenticated",
            "status": 401,
            "detail": "Authentication required",
            "instance": "/api/v1/main/flows/company.team",
        })
    );
}

#[tokio::test]
async fn legacy_root_serves_tenantless_paths_as_main() {
    let f = start_with(FakeConfig {
        legacy_root: true,
        ..FakeConfig::default()
    })
    .await;
    assert!(f.api.ends_with("/api/v1"));
    let created = json(
        f.post_flow(&flow("company.team", "hello", "x")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(created["revision"], 1);
    json(f.get("/flows/company.team/hello").await, StatusCode::OK).await;
    empty(f.put_kv("company.team", "k", "1").await, StatusCode::OK).await;
    // The tenant form is not served on this root.
    let tenant_form = f
        .client
        .get(format!(
            "{}/api/v1/main/flows/company.team/hello",
            f.fake.url()
        ))
        .send()
        .await
        .unwrap();
    json(tenant_form, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn tenants_are_isolated() {
    let f = start().await;
    let other = format!("{}/api/v1/other", f.fake.url());
    json(
        f.post_flow(&flow("company.team", "hello", "x")).await,
        StatusCode::OK,
    )
    .await;
    empty(f.put_kv("company.team", "k", "1").await, StatusCode::OK).await;
    empty(
        f.upload("company.team", "/f.txt", "f.txt", b"x").await,
        StatusCode::OK,
    )
    .await;

    let get = |path: &str| f.client.get(format!("{other}{path}")).send();
    json(
        get("/flows/company.team/hello").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    json(
        get("/namespaces/company.team/kv/k").await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    json(
        get("/namespaces/company.team/files?path=/f.txt")
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        json(get("/flows/company.team").await.unwrap(), StatusCode::OK).await,
        json!([])
    );
    // The same flow can be created in the other tenant, starting at revision 1.
    let created = f
        .client
        .post(format!("{other}/flows"))
        .header("content-type", "application/x-yaml")
        .body(flow("company.team", "hello", "y"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(created, StatusCode::OK).await["revision"], 1);
}

#[tokio::test]
async fn namespaces_always_exist() {
    let f = start().await;
    assert_eq!(
        json(f.get("/namespaces/never.seen").await, StatusCode::OK).await,
        json!({ "id": "never.seen" })
    );
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_error_format() {
    let f = start().await;
    let response = f
        .client
        .patch(f.url("/flows/company.team/hello"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    let body = json(response, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(
        body,
        json_error(
            "Method Not Allowed: Method [PATCH] not allowed for URI \
             [/api/v1/main/flows/company.team/hello]. Allowed methods: [HEAD, PUT, DELETE, GET]",
            "/api/v1/main/flows/company.team/hello"
        )
    );
}

#[tokio::test]
async fn unknown_paths_are_404_in_the_error_format() {
    let f = start().await;
    assert_eq!(
        json(f.get("/no/such/thing").await, StatusCode::NOT_FOUND).await,
        json_error("Not Found", "/api/v1/main/no/such/thing")
    );
}

fn problem() -> FakeConfig {
    FakeConfig {
        error_format: ErrorFormat::Problem,
        ..FakeConfig::default()
    }
}

#[tokio::test]
async fn problem_format_for_a_missing_kv_key() {
    let f = start_with(problem()).await;
    let response = f.get("/namespaces/company.team/kv/nope").await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        json(response, StatusCode::NOT_FOUND).await,
        json!({
            "type": "https://kestra.io/docs/api-reference/problems/not-found",
            "title": "Not found",
            "status": 404,
            "detail": "No value found for key 'nope' in namespace 'company.team'",
            "instance": "/api/v1/main/namespaces/company.team/kv/nope",
        })
    );
}

#[tokio::test]
async fn problem_format_flow_exists_is_409_entity_already_exists() {
    let f = start_with(problem()).await;
    json(
        f.post_flow(&flow("company.team", "hello", "x")).await,
        StatusCode::OK,
    )
    .await;
    let body = json(
        f.post_flow(&flow("company.team", "hello", "y")).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        body,
        json!({
            "type": "https://kestra.io/docs/api-reference/problems/entity-already-exists",
            "title": "Entity already exists",
            "status": 409,
            "detail": "A flow with id 'hello' already exists in namespace 'company.team'.",
            "instance": "/api/v1/main/flows",
            "errors": [{ "detail": "Flow id already exists", "pointer": "/id", "path": "flow.id" }],
        })
    );
}

#[tokio::test]
async fn problem_format_validation_lists_errors() {
    let f = start_with(problem()).await;
    let yaml = "id: hello\nnamespace: company.team\ntasks:\n  - id: t\n    type: Log\n";
    let body = json(f.post_flow(yaml).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let at = "io.kestra.core.models.flows.FlowWithSource[\"tasks\"]->java.util.ArrayList[0]";
    assert_eq!(
        body,
        json!({
            "type": "https://kestra.io/docs/api-reference/problems/validation-failed",
            "title": "Validation failed",
            "status": 422,
            "detail": "Invalid type: Log",
            "instance": "/api/v1/main/flows",
            "errors": [
                { "detail": "Invalid type: Log", "pointer": "/tasks/0", "path": at },
                { "detail": format!("Could not resolve type id 'Log' as a subtype of `io.kestra.core.models.Plugin`: No plugin registered for the defined type: 'Log'\n at [Source: UNKNOWN; byte offset: #UNKNOWN] (through reference chain: {at})"), "pointer": "/tasks/0", "path": at },
            ],
        })
    );
}

#[tokio::test]
async fn problem_format_slugs_for_argument_expiry_and_bad_request() {
    let f = start_with(problem()).await;
    let bad_key = json(
        f.put_kv("company.team", "_bad", "1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        bad_key["type"],
        "https://kestra.io/docs/api-reference/problems/invalid-argument"
    );
    assert_eq!(bad_key["title"], "Invalid argument");

    let short = f
        .client
        .put(f.url("/namespaces/company.team/kv/short"))
        .header("content-type", "text/plain")
        .header("ttl", "PT0.05S")
        .body("1")
        .send()
        .await
        .unwrap();
    empty(short, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = json(
        f.get("/namespaces/company.team/kv/short").await,
        StatusCode::GONE,
    )
    .await;
    assert_eq!(
        (gone["type"].clone(), gone["detail"].clone()),
        (
            json!("https://kestra.io/docs/api-reference/problems/resource-expired"),
            json!("The requested value has expired")
        )
    );

    let missing_path = f.get("/namespaces/company.team/files").await;
    let body = json(missing_path, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        body["type"],
        "https://kestra.io/docs/api-reference/problems/bad-request"
    );
    assert_eq!(body["detail"], "Required QueryValue [path] not specified");
}

#[tokio::test]
async fn move_onto_an_existing_file_is_500_in_both_formats() {
    // files-mkdir-move#13: Kestra answers 500 with the file and namespace named.
    for (config, json_format) in [(FakeConfig::default(), true), (problem(), false)] {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        let f = start_with(config).await;
        empty(
            f.upload("company.team", "/a.txt", "a.txt", b"a").await,
            StatusCode::OK,
        )
        .await;
        empty(
            f.upload("company.team", "/b.txt", "b.txt", b"b").await,
            StatusCode::OK,
        )
        .await;
        let response = f
            .client
            .put(f.url("/namespaces/company.team/files"))
            .query(&[("from", "/a.txt"), ("to", "/b.txt")])
            .send()
            .await
            .unwrap();
        let body = json(response, status).await;
        if json_format {
            assert_eq!(
                body["message"],
                "Internal server error: File '/b.txt' already exists in namespace 'company.team'."
            );
        } else {
            assert_eq!(
                body["type"],
                "https://kestra.io/docs/api-reference/problems/internal-error"
            );
            assert_eq!(
                body["detail"],
                "File '/b.txt' already exists in namespace 'company.team'."
            );
        }
    }
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("kestra-fake-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state_file = dir.join("state.json");
    let _ = std::fs::remove_file(&state_file);
    let config = FakeConfig {
        state_file: Some(state_file.clone()),
        ..FakeConfig::default()
    };

    let f = start_with(config.clone()).await;
    json(
        f.post_flow(&flow("company.team", "hello", "x")).await,
        StatusCode::OK,
    )
    .await;
    json(
        f.put_flow("company.team", "hello", &flow("company.team", "hello", "y"))
            .await,
        StatusCode::OK,
    )
    .await;
    empty(f.put_kv("company.team", "k", "42").await, StatusCode::OK).await;
    empty(
        f.upload("company.team", "/d/f.bin", "f.bin", &[0, 1, 2, 255])
            .await,
        StatusCode::OK,
    )
    .await;
    f.fake.shutdown().await.unwrap();

    let f = start_with(config).await;
    let got = json(
        f.get("/flows/company.team/hello?revision=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["tasks"][0]["message"], "x");
    let latest = json(f.get("/flows/company.team/hello").await, StatusCode::OK).await;
    assert_eq!(latest["revision"], 2);
    let kv = json(f.get("/namespaces/company.team/kv/k").await, StatusCode::OK).await;
    assert_eq!(
        (kv["type"].clone(), kv["value"].clone()),
        (json!("NUMBER"), json!(42))
    );
    let file = f.get("/namespaces/company.team/files?path=/d/f.bin").await;
    assert_eq!(file.bytes().await.unwrap().to_vec(), vec![0, 1, 2, 255]);
    f.fake.shutdown().await.unwrap();

    // Without the state file, a restart starts empty.
    let f = start().await;
    json(
        f.get("/flows/company.team/hello").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The binary: flags, `--port-file`, hooks and a clean exit on SIGTERM.
#[tokio::test]
async fn binary_writes_its_port_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("kestra-fake-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let _ = std::fs::remove_file(&port_file);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kestra-fake"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--test-hooks",
            "--log-format",
            "json",
        ])
        .arg("--port-file")
        .arg(&port_file)
        .env("KESTRA_FAKE_API_KEY", "from-env")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse::<u16>().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no port file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let client = client();
    let health = client
        .get(format!("http://127.0.0.1:{port}/__fake/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(health, StatusCode::OK).await,
        json!({ "status": "UP" })
    );
    let api = format!("http://127.0.0.1:{port}/api/v1/main/flows/company.team");
    assert_eq!(
        client.get(&api).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = client
        .get(&api)
        .bearer_auth("from-env")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// As Kestra OSS: tenants other than `main` are refused, and the tenant-less root is served as
/// tenant `main` too (tenants-and-roots of the recordings).
#[tokio::test]
async fn only_main_tenant_answers_like_kestra_oss() {
    let f = start_with(FakeConfig {
        only_main_tenant: true,
        ..FakeConfig::default()
    })
    .await;
    json(
        f.post_flow(&flow("company.team", "hello", "x")).await,
        StatusCode::OK,
    )
    .await;
    let other = f
        .client
        .get(format!("{}/api/v1/other/flows/search", f.fake.url()))
        .send()
        .await
        .unwrap();
    let body = json(other, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        body["message"],
        "Bad Request: Tenant must be 'main' for OSS version"
    );
    let legacy = f
        .client
        .get(format!("{}/api/v1/flows/company.team/hello", f.fake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(json(legacy, StatusCode::OK).await["id"], "hello");
}
