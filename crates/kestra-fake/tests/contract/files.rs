//! kestra-api.md section 4: namespace files.

use std::io::{Cursor, Write};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "company.team";

impl Fake {
    /// Builds the request now, so the returned future borrows nothing.
    fn files(
        &self,
        method: reqwest::Method,
        suffix: &str,
        query: &[(&str, &str)],
    ) -> impl Future<Output = reqwest::Response> + use<> {
        let sent = self
            .client
            .request(method, self.url(&format!("/namespaces/{NS}/files{suffix}")))
            .query(query)
            .send();
        async move { sent.await.expect("files request") }
    }

    async fn content(&self, path: &str) -> reqwest::Response {
        self.files(reqwest::Method::GET, "", &[("path", path)])
            .await
    }
}

async fn bytes_ok(response: reqwest::Response) -> Vec<u8> {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    response.bytes().await.unwrap().to_vec()
}

/// The stats without their (checked) millisecond timestamps.
fn strip_times(mut stat: Value) -> Value {
    for field in ["creationTime", "lastModifiedTime"] {
        let ms = stat
            .as_object_mut()
            .and_then(|o| o.remove(field))
            .and_then(|v| v.as_i64())
            .unwrap_or_else(|| panic!("missing {field} in {stat}"));
        assert!(
            ms > 1_600_000_000_000,
            "{field} is epoch milliseconds: {ms}"
        );
    }
    stat
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.add_directory("dir/", options).unwrap();
    for (name, content) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[tokio::test]
async fn upload_returns_200_empty_and_creates_parents() {
    let f = start().await;
    empty(
        f.upload(NS, "/dir/sub/f.txt", "f.txt", b"hello").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bytes_ok(f.content("/dir/sub/f.txt").await).await, b"hello");
    let stat = json(
        f.files(reqwest::Method::GET, "/stats", &[("path", "/dir/sub")])
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stat["type"], "Directory");
}

#[tokio::test]
async fn upload_overwrites_as_a_new_revision() {
    let f = start().await;
    empty(
        f.upload(NS, "/f.txt", "f.txt", b"one").await,
        StatusCode::OK,
    )
    .await;
    empty(
        f.upload(NS, "/f.txt", "f.txt", b"two").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bytes_ok(f.content("/f.txt").await).await, b"two");
    let first = f
        .files(
            reqwest::Method::GET,
            "",
            &[("path", "/f.txt"), ("revision", "1")],
        )
        .await;
    assert_eq!(bytes_ok(first).await, b"one");
    let missing = f
        .files(
            reqwest::Method::GET,
            "",
            &[("path", "/f.txt"), ("revision", "3")],
        )
        .await;
    json(missing, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn upload_without_path_is_400() {
    let f = start().await;
    let part = reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("f.txt");
    let response = f
        .client
        .post(f.url(&format!("/namespaces/{NS}/files")))
        .multipart(reqwest::multipart::Form::new().part("fileContent", part))
        .send()
        .await
        .unwrap();
    let body = json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        body,
        json_error(
            "Bad Request: Required QueryValue [path] not specified",
            "/api/v1/main/namespaces/company.team/files"
        )
    );
}

#[tokio::test]
async fn upload_of_a_zip_extracts_it_and_ignores_path() {
    let f = start().await;
    let archive = zip_of(&[("a.txt", b"A"), ("dir/b.txt", b"B")]);
    empty(
        f.upload(NS, "/ignored.zip", "bundle.zip", &archive).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bytes_ok(f.content("/a.txt").await).await, b"A");
    assert_eq!(bytes_ok(f.content("/dir/b.txt").await).await, b"B");
    json(f.content("/ignored.zip").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn flows_folder_is_forbidden_on_every_route() {
    let f = start().await;
    let message = "Illegal argument: Forbidden path: /_flows/x.yml";
    let check = |response: reqwest::Response| async move {
        let body = json(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["message"], message);
    };
    check(f.content("/_flows/x.yml").await).await;
    check(
        f.files(reqwest::Method::GET, "/stats", &[("path", "/_flows/x.yml")])
            .await,
    )
    .await;
    check(
        f.files(
            reqwest::Method::GET,
            "/directory",
            &[("path", "/_flows/x.yml")],
        )
        .await,
    )
    .await;
    check(
        f.files(
            reqwest::Method::POST,
            "/directory",
            &[("path", "/_flows/x.yml")],
        )
        .await,
    )
    .await;
    check(
        f.files(reqwest::Method::DELETE, "", &[("path", "/_flows/x.yml")])
            .await,
    )
    .await;
    check(
        f.files(
            reqwest::Method::PUT,
            "",
            &[("from", "/_flows/x.yml"), ("to", "/y")],
        )
        .await,
    )
    .await;
    empty(f.upload(NS, "/y.txt", "y.txt", b"y").await, StatusCode::OK).await;
    check(
        f.files(
            reqwest::Method::PUT,
            "",
            &[("from", "/y.txt"), ("to", "/_flows/x.yml")],
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn get_content_returns_raw_bytes_or_404() {
    let f = start().await;
    let binary: Vec<u8> = (0..=255).collect();
    empty(
        f.upload(NS, "/bin/data.bin", "data.bin", &binary).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bytes_ok(f.content("/bin/data.bin").await).await, binary);
    let body = json(f.content("/nope.txt").await, StatusCode::NOT_FOUND).await;
    assert_eq!(
        body["message"],
        "Not Found: File '/nope.txt' was not found in namespace 'company.team'."
    );
    // A directory has no content.
    json(f.content("/bin").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn stats_describe_files_and_directories_or_404() {
    let f = start().await;
    empty(
        f.upload(NS, "/dir/f.txt", "f.txt", b"12345").await,
        StatusCode::OK,
    )
    .await;
    let stat = |path: &'static str| f.files(reqwest::Method::GET, "/stats", &[("path", path)]);
    assert_eq!(
        strip_times(json(stat("/dir/f.txt").await, StatusCode::OK).await),
        json!({ "fileName": "f.txt", "type": "File", "size": 5, "metadata": {} })
    );
    assert_eq!(
        strip_times(json(stat("dir").await, StatusCode::OK).await),
        json!({ "fileName": "dir", "type": "Directory", "size": 0, "metadata": {} })
    );
    let body = json(stat("/missing").await, StatusCode::NOT_FOUND).await;
    assert_eq!(
        body["message"],
        "Not Found: File '/missing' was not found in namespace 'company.team'."
    );
}

#[tokio::test]
async fn list_directory_returns_direct_children_or_404() {
    let f = start().await;
    empty(
        f.upload(NS, "/dir/a.txt", "a.txt", b"a").await,
        StatusCode::OK,
    )
    .await;
    empty(
        f.upload(NS, "/dir/sub/deep.txt", "deep.txt", b"d").await,
        StatusCode::OK,
    )
    .await;
    let list = |path: &'static str| f.files(reqwest::Method::GET, "/directory", &[("path", path)]);
    let children: Vec<Value> = json(list("/dir").await, StatusCode::OK)
        .await
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(strip_times)
        .collect();
    assert_eq!(
        children,
        vec![
            json!({ "fileName": "a.txt", "type": "File", "size": 1, "metadata": {} }),
            json!({ "fileName": "sub", "type": "Directory", "size": 0, "metadata": {} }),
        ]
    );
    let body = json(list("/nope").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["message"], "Not Found: Directory not found: /nope");
    // The root always exists, even in an empty namespace.
    let root = f
        .client
        .get(format!("{}/namespaces/empty.ns/files/directory", f.api))
        .send()
        .await
        .unwrap();
    assert_eq!(json(root, StatusCode::OK).await, json!([]));
}

#[tokio::test]
async fn make_directory_returns_200() {
    let f = start().await;
    // Kestra 1.3 makes no listable directory under a missing parent (files-mkdir-move#19-20).
    let parent = f
        .files(reqwest::Method::POST, "/directory", &[("path", "/a")])
        .await;
    empty(parent, StatusCode::OK).await;
    let made = f
        .files(reqwest::Method::POST, "/directory", &[("path", "/a/b")])
        .await;
    empty(made, StatusCode::OK).await;
    let again = f
        .files(reqwest::Method::POST, "/directory", &[("path", "/a/b")])
        .await;
    empty(again, StatusCode::OK).await;
    let stat = json(
        f.files(reqwest::Method::GET, "/stats", &[("path", "/a/b")])
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(stat["type"], "Directory");
}

/// A flow YAML uploaded to `/_flows/<name>` is imported as a flow of the URL's namespace;
/// deeper paths are refused (files-forbidden-flows-path#1-4 of the recordings).
#[tokio::test]
async fn a_flow_uploaded_to_the_flows_folder_is_imported() {
    let f = start().await;
    let source = b"id: imported\nnamespace: somewhere.else\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n";
    empty(
        f.upload(NS, "/_flows/imported.yml", "imported.yml", source)
            .await,
        StatusCode::OK,
    )
    .await;
    let flow = json(
        f.get(&format!("/flows/{NS}/imported?source=true")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        flow["source"],
        format!(
            "id: imported\nnamespace: {NS}\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
        )
    );
    let deep = json(
        f.upload(NS, "/_flows/deep/x.yml", "x.yml", source).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        deep["message"],
        "Illegal argument: Invalid flow file path: /_flows/deep/x.yml"
    );
}

#[tokio::test]
async fn move_returns_200_and_moves_content() {
    let f = start().await;
    empty(
        f.upload(NS, "/src/f.txt", "f.txt", b"moved").await,
        StatusCode::OK,
    )
    .await;
    let moved = f
        .files(
            reqwest::Method::PUT,
            "",
            &[("from", "/src"), ("to", "/dst/inner")],
        )
        .await;
    empty(moved, StatusCode::OK).await;
    assert_eq!(
        bytes_ok(f.content("/dst/inner/f.txt").await).await,
        b"moved"
    );
    json(f.content("/src/f.txt").await, StatusCode::NOT_FOUND).await;
    // Moving something absent is a silent no-op (files-mkdir-move#10); a missing parameter a
    // 400.
    let absent = f
        .files(reqwest::Method::PUT, "", &[("from", "/src"), ("to", "/x")])
        .await;
    empty(absent, StatusCode::OK).await;
    json(f.content("/x").await, StatusCode::NOT_FOUND).await;
    let no_to = f.files(reqwest::Method::PUT, "", &[("from", "/dst")]).await;
    let body = json(no_to, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        body["message"],
        "Bad Request: Required QueryValue [to] not specified"
    );
}

#[tokio::test]
async fn delete_is_recursive_200_even_when_missing_and_cascades_upward() {
    let f = start().await;
    empty(
        f.upload(NS, "/a/b/c.txt", "c.txt", b"c").await,
        StatusCode::OK,
    )
    .await;
    empty(
        f.upload(NS, "/keep/x.txt", "x.txt", b"x").await,
        StatusCode::OK,
    )
    .await;
    empty(
        f.upload(NS, "/keep/sub/y.txt", "y.txt", b"y").await,
        StatusCode::OK,
    )
    .await;
    let delete = |path: &'static str| f.files(reqwest::Method::DELETE, "", &[("path", path)]);

    empty(delete("/a/b/c.txt").await, StatusCode::OK).await;
    let root: Vec<String> = json(
        f.files(reqwest::Method::GET, "/directory", &[("path", "/")])
            .await,
        StatusCode::OK,
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|s| s["fileName"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(
        root,
        vec!["keep"],
        "/a/b and /a were left empty and went too"
    );

    empty(delete("/keep/sub").await, StatusCode::OK).await;
    json(f.content("/keep/sub/y.txt").await, StatusCode::NOT_FOUND).await;
    assert_eq!(bytes_ok(f.content("/keep/x.txt").await).await, b"x");

    empty(delete("/never/was").await, StatusCode::OK).await;
}

#[tokio::test]
async fn paths_are_normalised_and_url_decoded() {
    let f = start().await;
    // No leading slash, doubled slashes, a space and a literal `+` (sent encoded as %2B).
    empty(
        f.upload(NS, "docs//my file+1.txt", "f.txt", b"x").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bytes_ok(f.content("/docs/my file+1.txt").await).await, b"x");
    let raw = f
        .client
        .get(format!(
            "{}/namespaces/{NS}/files?path=%2Fdocs%2Fmy%20file%2B1.txt",
            f.api
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bytes_ok(raw).await, b"x");
    // An unencoded `+` in a query is a space, as in any form-encoded query.
    let plus = f
        .client
        .get(format!(
            "{}/namespaces/{NS}/files?path=/docs/my+file%2B1.txt",
            f.api
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bytes_ok(plus).await, b"x");
}
