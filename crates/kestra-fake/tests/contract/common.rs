//! Shared helpers: a started double with a client and URL builders.

use std::time::Duration;

use kestra_fake::{FakeConfig, RunningFake};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

pub struct Fake {
    pub fake: RunningFake,
    pub client: Client,
    /// `{url}/api/v1/main`.
    pub api: String,
}

pub fn client() -> Client {
    // reqwest is built without a TLS provider and refuses to build a client until one is
    // installed, even for plain http. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn start() -> Fake {
    start_with(FakeConfig::default()).await
}

pub async fn start_with(config: FakeConfig) -> Fake {
    let root = if config.legacy_root {
        "/api/v1"
    } else {
        "/api/v1/main"
    };
    let fake = kestra_fake::spawn(config).await.expect("spawn the double");
    let api = format!("{}{root}", fake.url());
    Fake {
        fake,
        client: client(),
        api,
    }
}

impl Fake {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    pub fn hook(&self, path: &str) -> String {
        format!("{}/__fake{path}", self.fake.url())
    }

    pub async fn post_flow(&self, yaml: &str) -> Response {
        self.client
            .post(self.url("/flows"))
            .header("content-type", "application/x-yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .expect("POST /flows")
    }

    pub async fn put_flow(&self, namespace: &str, id: &str, yaml: &str) -> Response {
        self.client
            .put(self.url(&format!("/flows/{namespace}/{id}")))
            .header("content-type", "application/x-yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .expect("PUT flow")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn put_kv(&self, namespace: &str, key: &str, body: &str) -> Response {
        self.client
            .put(self.url(&format!("/namespaces/{namespace}/kv/{key}")))
            .header("content-type", "text/plain")
            .body(body.to_owned())
            .send()
            .await
            .expect("PUT kv")
    }

    pub async fn upload(
        &self,
        namespace: &str,
        path: &str,
        file_name: &str,
        bytes: &[u8],
    ) -> Response {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("fileContent", part);
        self.client
            .post(self.url(&format!("/namespaces/{namespace}/files")))
            .query(&[("path", path)])
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    pub async fn hook_post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.hook(path))
            .json(&body)
            .send()
            .await
            .expect("hook");
        assert_eq!(response.status(), StatusCode::OK, "hook {path}");
        response.json().await.expect("hook body")
    }
}

/// A minimal valid flow.
pub fn flow(namespace: &str, id: &str, message: &str) -> String {
    format!(
        "id: {id}\nnamespace: {namespace}\ntasks:\n  - id: hello\n    type: io.kestra.plugin.core.log.Log\n    message: {message}\n"
    )
}

/// Asserts the status and returns the JSON body.
pub async fn json(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the status and an empty body.
pub async fn empty(response: Response, status: StatusCode) {
    let got = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    assert_eq!(text, "", "expected an empty body");
}

/// Kestra's `_links.self` of a `JsonError` at `href`.
fn self_link(href: &str) -> Value {
    serde_json::json!({ "self": {
        "href": href,
        "templated": false,
        "profile": null,
        "deprecation": null,
        "title": null,
        "hreflang": null,
        "type": null,
        "name": null,
    } })
}

/// The legacy `JsonError` body expected for `message` at `href` (no embedded errors).
pub fn json_error(message: &str, href: &str) -> Value {
    serde_json::json!({
        "message": message,
        "logref": null,
        "path": null,
        "_links": self_link(href),
        "_embedded": {},
    })
}

/// A constraint-violation `JsonError`: `violations` are (path, message).
pub fn violation_error(href: &str, violations: &[(&str, &str)]) -> Value {
    let joined = violations
        .iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect::<Vec<_>>()
        .join(", ");
    let errors: Vec<Value> = violations
        .iter()
        .map(|(p, m)| {
            serde_json::json!({
                "message": m, "logref": null, "path": p, "_links": {}, "_embedded": {},
            })
        })
        .collect();
    serde_json::json!({
        "message": format!("Invalid entity: {joined}"),
        "logref": null,
        "path": null,
        "_links": self_link(href),
        "_embedded": { "errors": errors },
    })
}

/// Kestra's 422 for a flow that breaks model constraints: every violation `{shown}: {message}\n`
/// in the message (`shown` names a task by its id), `{path, message}` in `_embedded.errors`.
pub fn flow_violation_error(href: &str, violations: &[(&str, &str, &str)]) -> Value {
    let message: String = violations
        .iter()
        .map(|(_, shown, m)| format!("{shown}: {m}\n"))
        .collect();
    let errors: Vec<Value> = violations
        .iter()
        .map(|(p, _, m)| {
            serde_json::json!({
                "message": m, "logref": null, "path": p, "_links": {}, "_embedded": {},
            })
        })
        .collect();
    serde_json::json!({
        "message": format!("Invalid entity: {message}"),
        "logref": null,
        "path": null,
        "_links": self_link(href),
        "_embedded": { "errors": errors },
    })
}

/// Removes a timestamp after checking it is an RFC 3339 date-time.
pub fn take_timestamp(value: &mut Value, field: &str) {
    let text = value
        .as_object_mut()
        .and_then(|o| o.remove(field))
        .unwrap_or_else(|| panic!("missing {field}"));
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string"));
    assert!(
        chrono_like(text),
        "{field} is not an RFC 3339 date-time: {text}"
    );
}

fn chrono_like(text: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SS(.fff)Z: enough to tell a date-time from anything else.
    let bytes = text.as_bytes();
    bytes.len() >= 20 && bytes[4] == b'-' && bytes[10] == b'T' && text.ends_with('Z')
}
