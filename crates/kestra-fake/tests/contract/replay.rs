//! Replays recorded exchanges with real Kestra servers (`shared/kestra-transcripts`, see its
//! README.md) against the double and compares status and normalised body, step by step.
//!
//! [`replay`] takes a version directory (`1.3.31`, `2.0.0`), a file (`flows.jsonl`, ...) and a
//! scenario. It starts a double in the matching `--kestra-version` with the recording's basic
//! auth, sends every earlier line of the file first (the scenarios are stateful: totals and
//! tenant-wide operations depend on them), then the scenario's steps (and, in 2.0.0 KV, the
//! interleaved `<scenario>+kv-list` steps), and returns one [`Step`] per step of the scenario.
//! It returns `None`, after printing why, when the transcripts are not there.

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kestra_fake::{BasicAuth, FakeConfig, KestraVersion};
use regex::Regex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Fake, start_with};

const USER: &str = "admin@kestra.io";
const PASSWORD: &str = "Admin1234";

/// Fields whose non-null values the recording replaced by `<timestamp>`.
const TIMESTAMP_FIELDS: &[&str] = &[
    "updated",
    "creationDate",
    "updateDate",
    "expirationDate",
    "lastModifiedTime",
    "creationTime",
    "date",
    "startDate",
    "endDate",
    "timestamp",
    "lastModifiedDate",
];
const UUID_FIELDS: &[&str] = &["uuid", "executionId", "taskRunId"];

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
        .expect("static regex")
});
static KV_TMP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"/_kv/[0-9a-zA-Z]{5}-").expect("static regex"));
static CONTENT_LENGTH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"content length \[\d+\]").expect("static regex"));
static ISO_DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
        .expect("static regex")
});

/// Where the transcripts are: `../shared/kestra-transcripts` next to the repository.
pub fn transcripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kestra-transcripts")
}

/// One replayed step: what was recorded and what the double answered (both normalised).
#[derive(Debug)]
pub struct Step {
    pub scenario: String,
    pub step: u64,
    pub request: String,
    pub expected_status: u16,
    pub actual_status: u16,
    /// The recorded `Content-Type` (None: Kestra sent none) and the double's.
    pub expected_content_type: Option<String>,
    pub actual_content_type: Option<String>,
    pub expected_body: Value,
    pub actual_body: Value,
}

impl Step {
    pub fn status_matches(&self) -> bool {
        self.expected_status == self.actual_status
    }

    pub fn matches(&self) -> bool {
        self.status_matches()
            && self.expected_content_type == self.actual_content_type
            && self.expected_body == self.actual_body
    }

    pub fn describe(&self) -> String {
        format!(
            "{}#{} {}\n  expected {} {:?} {}\n  actual   {} {:?} {}",
            self.scenario,
            self.step,
            self.request,
            self.expected_status,
            self.expected_content_type,
            self.expected_body,
            self.actual_status,
            self.actual_content_type,
            self.actual_body
        )
    }
}

/// Asserts that every step matches, except the steps of `status_only` (whose body depends on
/// behaviour outside the test's scope, such as state left by earlier scenarios), of which only
/// the status is compared, and those of `skip` (routes the double does not model).
pub fn assert_steps(steps: &[Step], status_only: &[u64], skip: &[u64]) {
    let failures: Vec<String> = steps
        .iter()
        .filter(|s| !skip.contains(&s.step))
        .filter(|s| {
            if status_only.contains(&s.step) {
                !s.status_matches()
            } else {
                !s.matches()
            }
        })
        .map(Step::describe)
        .collect();
    assert!(
        failures.is_empty(),
        "{} step(s) differ from the recording:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn version_of(dir: &str) -> KestraVersion {
    if dir.starts_with("2.") {
        KestraVersion::V2_0
    } else {
        KestraVersion::V1_3
    }
}

/// The lines of one transcript file, in order; `None` (after printing why) when absent.
fn transcript(version: &str, file: &str) -> Option<Vec<Value>> {
    let path = transcripts_dir().join(version).join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "skipped: no transcript at {} (replay needs shared/kestra-transcripts)",
            path.display()
        );
        return None;
    };
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("a transcript line is JSON"))
            .collect(),
    )
}

/// A fresh double set up as the recorded servers were: the version, Kestra OSS (tenant
/// `main` only), the recording's basic auth.
async fn fresh_double(version: &str) -> Fake {
    start_with(FakeConfig {
        basic_auth: Some(BasicAuth {
            user: USER.to_owned(),
            password: PASSWORD.to_owned(),
        }),
        kestra_version: version_of(version),
        only_main_tenant: true,
        ..FakeConfig::default()
    })
    .await
}

/// Sends one recorded line and compares the answer with the recording.
async fn replay_line(f: &Fake, line: &Value) -> Step {
    let (status, content_type, body) = send(f, line).await;
    let response = &line["response"];
    let expected_status = response["status"].as_u64().unwrap_or(0) as u16;
    let mut expected_body = expected_body(response);
    let mut actual_body = actual_body(response, &body);
    if line["unordered_violations"].as_bool() == Some(true) {
        sort_violations(&mut expected_body);
        sort_violations(&mut actual_body);
    }
    Step {
        scenario: line["scenario"].as_str().unwrap_or("").to_owned(),
        step: line["step"].as_u64().unwrap_or(0),
        request: format!(
            "{} {}",
            line["request"]["method"].as_str().unwrap_or(""),
            line["request"]["path"].as_str().unwrap_or("")
        ),
        expected_status,
        actual_status: status,
        expected_content_type: response["headers"]["content-type"]
            .as_str()
            .map(str::to_owned),
        actual_content_type: content_type,
        expected_body,
        actual_body,
    }
}

/// The transcript files in the order they were recorded (README "How they were recorded").
pub const FILES: [&str; 4] = [
    "flows.jsonl",
    "kv.jsonl",
    "files.jsonl",
    "auth-errors.jsonl",
];

/// Replays every transcript file of `version` in the recorded order, strictly line by line,
/// against one fresh double; one [`Step`] per exchange, with its file. `None` when the
/// transcripts are absent.
pub async fn replay_all(version: &str) -> Option<Vec<(&'static str, Step)>> {
    let mut files = Vec::new();
    for file in FILES {
        files.push((file, transcript(version, file)?));
    }
    let f = fresh_double(version).await;
    let mut steps = Vec::new();
    for (file, lines) in &files {
        for line in lines {
            steps.push((*file, replay_line(&f, line).await));
        }
    }
    Some(steps)
}

/// Replays `scenario` of `file` recorded against `version` on a fresh double (see the module
/// documentation). `None` when the transcripts are absent.
pub async fn replay(version: &str, file: &str, scenario: &str) -> Option<Vec<Step>> {
    let lines = transcript(version, file)?;
    let in_scenario = |line: &Value| {
        let name = line["scenario"].as_str().unwrap_or("");
        name == scenario
            || name
                .strip_prefix(scenario)
                .is_some_and(|rest| rest.starts_with('+'))
    };
    let last = lines
        .iter()
        .rposition(in_scenario)
        .unwrap_or_else(|| panic!("no scenario {scenario} in {version}/{file}"));

    let f = fresh_double(version).await;
    let mut steps = Vec::new();
    for line in &lines[..=last] {
        let step = replay_line(&f, line).await;
        if in_scenario(line) {
            steps.push(step);
        }
    }
    Some(steps)
}

/// Sends one recorded request; returns the status, the content type and the raw body.
async fn send(f: &Fake, line: &Value) -> (u16, Option<String>, Vec<u8>) {
    if let Some(pause) = line["pause_before_s"].as_f64() {
        tokio::time::sleep(Duration::from_secs_f64(pause)).await;
    }
    let request = &line["request"];
    let method =
        Method::from_bytes(request["method"].as_str().unwrap_or("GET").as_bytes()).expect("method");
    let path = request["path"].as_str().unwrap_or("/");
    let url = format!("{}{path}", f.fake.url());
    let mut builder = f.client.request(method, url);
    let headers = &request["headers"];
    for name in ["ttl", "description"] {
        if let Some(value) = headers[name].as_str() {
            builder = builder.header(name, value);
        }
    }
    builder = match headers["auth"].as_str() {
        Some("basic") => builder.basic_auth(USER, Some(PASSWORD)),
        Some("wrong-password") => builder.basic_auth(USER, Some("Wrong1234")),
        Some("unknown-user") => builder.basic_auth("nobody@kestra.io", Some(PASSWORD)),
        Some("malformed") => builder.header("authorization", "Basic !!!"),
        Some("bearer") => builder.header("authorization", "Bearer some-token"),
        _ => builder,
    };
    if let Some(parts) = request["multipart"].as_array() {
        let mut form = reqwest::multipart::Form::new();
        for part in parts {
            let name = part["name"].as_str().unwrap_or("").to_owned();
            let mut p = reqwest::multipart::Part::bytes(part_bytes(part));
            if let Some(file_name) = part["filename"].as_str() {
                p = p.file_name(file_name.to_owned());
            }
            if let Some(content_type) = part["content_type"].as_str() {
                p = p.mime_str(content_type).expect("part content type");
            }
            form = form.part(name, p);
        }
        builder = builder.multipart(form);
    } else {
        if let Some(content_type) = headers["content-type"].as_str() {
            builder = builder.header("content-type", content_type);
        }
        if let Some(body) = request_body(request) {
            builder = builder.body(body);
        }
    }
    let response = builder.send().await.expect("the double answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("body").to_vec();
    (status, content_type, bytes)
}

fn request_body(request: &Value) -> Option<Vec<u8>> {
    if let Some(b64) = request["body_b64"].as_str() {
        return Some(STANDARD.decode(b64).expect("body_b64"));
    }
    if let Some(generated) = request.get("body_gen") {
        return Some(generated_bytes(generated));
    }
    match request.get("body") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.as_bytes().to_vec()),
        Some(json) => Some(json.to_string().into_bytes()),
    }
}

fn generated_bytes(generated: &Value) -> Vec<u8> {
    let unit = generated["repeat"].as_str().unwrap_or("");
    let count = generated["count"].as_u64().unwrap_or(0) as usize;
    unit.repeat(count).into_bytes()
}

fn part_bytes(part: &Value) -> Vec<u8> {
    if let Some(text) = part["content"].as_str() {
        return text.as_bytes().to_vec();
    }
    if let Some(b64) = part["content_b64"].as_str() {
        return STANDARD.decode(b64).expect("content_b64");
    }
    if let Some(generated) = part.get("content_gen") {
        return generated_bytes(generated);
    }
    if let Some(entries) = part["zip_entries"].as_array() {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for entry in entries {
            // Stored, without extra fields, as the recorder's zips were.
            zip.start_file(
                entry["name"].as_str().unwrap_or(""),
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored),
            )
            .expect("zip entry");
            zip.write_all(entry["content"].as_str().unwrap_or("").as_bytes())
                .expect("zip write");
        }
        return zip.finish().expect("zip").into_inner();
    }
    Vec::new()
}

/// The recorded body in one comparable value: JSON, text, `{"b64": ..}` or `{"zip": [..]}`.
fn expected_body(response: &Value) -> Value {
    if let Some(entries) = response.get("body_zip") {
        return json!({ "zip": entries });
    }
    if let Some(b64) = response.get("body_b64") {
        return json!({ "b64": b64 });
    }
    response.get("body").cloned().unwrap_or(Value::Null)
}

/// The double's body in the shape the recording uses, normalised the same way.
fn actual_body(response: &Value, bytes: &[u8]) -> Value {
    if response.get("body_zip").is_some() {
        return json!({ "zip": zip_entries(bytes) });
    }
    if response.get("body_b64").is_some() {
        return json!({ "b64": STANDARD.encode(bytes) });
    }
    let is_json = response["headers"]["content-type"]
        .as_str()
        .is_some_and(|ct| ct.contains("json"));
    let text = String::from_utf8_lossy(bytes).into_owned();
    if is_json && !text.is_empty() {
        match serde_json::from_str::<Value>(&text) {
            Ok(mut value) => {
                normalise(&mut value);
                value
            }
            Err(_) => Value::String(text),
        }
    } else if is_json {
        Value::String(String::new())
    } else {
        Value::String(ISO_DATE_TIME.replace_all(&text, "<timestamp>").into_owned())
    }
}

fn zip_entries(bytes: &[u8]) -> Value {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return json!("not a zip");
    };
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("zip entry");
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("zip read");
        let content = match String::from_utf8(content) {
            Ok(text) => json!({ "name": name, "content": text }),
            Err(e) => json!({ "name": name, "content_b64": STANDARD.encode(e.into_bytes()) }),
        };
        entries.push(content);
    }
    Value::Array(entries)
}

/// The recording's normalisation (README "Normalisation"), applied to the double's answer.
pub fn normalise(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if TIMESTAMP_FIELDS.contains(&key.as_str()) && !field.is_null() {
                    *field = json!("<timestamp>");
                } else if UUID_FIELDS.contains(&key.as_str()) && !field.is_null() {
                    *field = json!("<uuid>");
                } else if key == "value" && field.is_string() {
                    // KV values are never touched.
                } else {
                    normalise(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        Value::String(text) => {
            if UUID.is_match(text) {
                *text = UUID.replace_all(text, "<uuid>").into_owned();
            }
            // The double's (pretended) storage folder, as the recording names Kestra's.
            if text.contains("/app/storage/") {
                *text = text.replace("/app/storage/", "<storage>/");
            }
            if KV_TMP.is_match(text) {
                *text = KV_TMP.replace_all(text, "/_kv/<tmp>-").into_owned();
            }
            if CONTENT_LENGTH.is_match(text) {
                *text = CONTENT_LENGTH
                    .replace_all(text, "content length [<n>]")
                    .into_owned();
            }
        }
        _ => {}
    }
}

/// Puts the violations of an error body (or of validate results) in a fixed order: Kestra
/// does not fix it (README "unordered_violations").
fn sort_violations(body: &mut Value) {
    if let Some(items) = body.as_array_mut() {
        for item in items {
            if let Some(constraints) = item.get("constraints").and_then(Value::as_str) {
                item["constraints"] = Value::String(sorted_message(constraints));
            }
        }
        return;
    }
    if let Some(errors) = body
        .pointer_mut("/_embedded/errors")
        .and_then(Value::as_array_mut)
    {
        errors.sort_by_key(|e| e.to_string());
    }
    if let Some(message) = body.get("message").and_then(Value::as_str) {
        body["message"] = Value::String(sorted_message(message));
    }
}

/// The violations of a message as a sorted list, behind its fixed prefix.
fn sorted_message(message: &str) -> String {
    let (prefix, rest) = ["Invalid entity: ", "Validation error: "]
        .iter()
        .find_map(|p| message.strip_prefix(p).map(|rest| (*p, rest)))
        .unwrap_or(("", message));
    let mut parts: Vec<&str> = if rest.contains('\n') {
        rest.split('\n').collect()
    } else {
        rest.split(", ").collect()
    };
    parts.sort_unstable();
    let separator = if rest.contains('\n') { "\n" } else { ", " };
    format!("{prefix}{}", parts.join(separator))
}
