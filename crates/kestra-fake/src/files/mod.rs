//! Namespace files: kestra-api.md section 4. Each namespace has a tree of directories and
//! files; every upload of a file is a new revision.

mod tree;

pub use tree::FileTree;

use std::io::{Cursor, Read, Write};

use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::{HeaderMap, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{ApiPath, ApiQuery, AppState, Tenant};
use crate::errors::ApiError;
use crate::flows;
use tree::{FileError, normalize};

/// Stops a small zip from expanding into memory without bound.
const MAX_EXTRACTED_BYTES: u64 = 256 * 1024 * 1024;

impl From<FileError> for ApiError {
    fn from(error: FileError) -> Self {
        match error {
            FileError::NotFound(_) | FileError::DirectoryNotFound(_) => {
                ApiError::NotFound(error.to_string())
            }
            FileError::AlreadyExists(_) => ApiError::IllegalState(error.to_string()),
            _ => ApiError::IllegalArgument(error.to_string()),
        }
    }
}

#[derive(Deserialize)]
pub struct NamespacePath {
    namespace: String,
}

#[derive(Deserialize)]
pub struct FileQuery {
    path: Option<String>,
    revision: Option<usize>,
    from: Option<String>,
    to: Option<String>,
}

/// The stored form of a decoded path. Kestra 1.x's storage keeps a space as `+` (so `a b.txt`
/// and `a+b.txt` are one file, listed as `a+b.txt`); 2.0 keeps names as sent. The query was
/// decoded as a form, so a raw `+` already reads as a space.
fn stored(shared: &AppState, path: &str) -> Result<String, ApiError> {
    let path = normalize(path)?;
    Ok(if shared.config.kestra_version.is_v2() {
        path
    } else {
        path.replace(' ', "+")
    })
}

/// A query value Micronaut would declare required.
fn required(shared: &AppState, value: Option<&String>, name: &str) -> Result<String, ApiError> {
    let value = value.ok_or_else(|| {
        ApiError::BadRequest(format!("Required QueryValue [{name}] not specified"))
    })?;
    stored(shared, value)
}

/// A nullable query value: the namespace root when absent.
fn optional(shared: &AppState, value: Option<&String>) -> Result<String, ApiError> {
    value.map_or(Ok("/".to_owned()), |v| stored(shared, v))
}

/// Kestra's 404 for a missing file names the namespace.
fn file_not_found(path: &str, namespace: &str) -> ApiError {
    ApiError::NotFound(format!(
        "File '{path}' was not found in namespace '{namespace}'."
    ))
}

pub async fn get_content(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<Response, ApiError> {
    let path = required(&shared, query.path.as_ref(), "path")?;
    let bytes = shared
        .read(|store| {
            store
                .tenant(&tenant)
                .and_then(|t| t.files.get(&ns.namespace))
                .ok_or_else(|| FileError::NotFound(path.clone()))
                .and_then(|tree| tree.content(&path, query.revision).map(<[u8]>::to_vec))
        })
        .map_err(|error| match error {
            FileError::NotFound(path) => file_not_found(&path, &ns.namespace),
            FileError::IsDirectory(path) if shared.config.kestra_version.is_v2() => {
                ApiError::NotFound(format!(
                    "'{path}' is a directory in namespace '{}', it has no content to read.",
                    ns.namespace
                ))
            }
            // Kestra 1.x leaks the local storage path of the directory.
            FileError::IsDirectory(path) => ApiError::NotFound(format!(
                "/app/storage/{tenant}/{}/_files{path} (Is a directory)",
                ns.namespace.replace('.', "/")
            )),
            other => other.into(),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

pub async fn stats(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<Json<Value>, ApiError> {
    let path = optional(&shared, query.path.as_ref())?;
    let now = Utc::now();
    let stat = shared
        .read(|store| {
            match store
                .tenant(&tenant)
                .and_then(|t| t.files.get(&ns.namespace))
            {
                Some(tree) => tree.stat(&path, now),
                None => FileTree::default().stat(&path, now),
            }
        })
        .map_err(|error| match error {
            FileError::NotFound(path) => file_not_found(&path, &ns.namespace),
            other => other.into(),
        })?;
    Ok(Json(stat))
}

pub async fn list_directory(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let path = optional(&shared, query.path.as_ref())?;
    let children = shared.read(|store| {
        match store
            .tenant(&tenant)
            .and_then(|t| t.files.get(&ns.namespace))
        {
            Some(tree) => tree.children(&path),
            None => FileTree::default().children(&path),
        }
    })?;
    Ok(Json(children))
}

pub async fn make_directory(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<(), ApiError> {
    let path = optional(&shared, query.path.as_ref())?;
    let v2 = shared.config.kestra_version.is_v2();
    shared.write(|store| {
        let tree = store
            .tenant_mut(&tenant)
            .files
            .entry(ns.namespace.clone())
            .or_default();
        if !v2 {
            return Ok(tree.make_dir_1_3(&path, Utc::now())?);
        }
        match tree.make_dir(&path, Utc::now()) {
            Err(FileError::NotADirectory(file)) if file == path => Err(ApiError::Verbatim(
                409,
                format!(
                    "Conflict: Cannot create directory '{path}' in namespace '{}': a file \
                     already exists at this path.",
                    ns.namespace
                ),
            )),
            other => Ok(other?),
        }
    })
}

pub async fn move_path(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<(), ApiError> {
    let from = required(&shared, query.from.as_ref(), "from")?;
    let to = required(&shared, query.to.as_ref(), "to")?;
    shared.write(|store| {
        let tree = store
            .tenant_mut(&tenant)
            .files
            .entry(ns.namespace.clone())
            .or_default();
        // Kestra moves a missing source silently and refuses an existing target with a 500.
        match tree.move_path(&from, &to, Utc::now()) {
            Ok(()) | Err(FileError::NotFound(_)) => Ok(()),
            Err(FileError::AlreadyExists(to)) => Err(ApiError::Internal(format!(
                "File '{to}' already exists in namespace '{}'.",
                ns.namespace
            ))),
            Err(other) => Err(other.into()),
        }
    })
}

pub async fn delete(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<(), ApiError> {
    let path = required(&shared, query.path.as_ref(), "path")?;
    shared.write(|store| {
        if let Some(tree) = store.tenant_mut(&tenant).files.get_mut(&ns.namespace) {
            tree.delete(&path);
        }
        Ok(())
    })
}

/// Kestra's texts for a flow file uploaded under `/_flows` (a flow import) at `path`; `None`
/// when `path` is not there.
fn flows_dir_file(path: &str) -> Option<Result<(), ApiError>> {
    let rest = path
        .strip_prefix("/_flows/")
        .or_else(|| path.strip_prefix("_flows/"))?;
    Some(if rest.is_empty() || rest.contains('/') {
        Err(ApiError::IllegalArgument(format!(
            "Invalid flow file path: {path}"
        )))
    } else {
        Ok(())
    })
}

pub async fn upload(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(), ApiError> {
    let raw_path = query.path.as_ref().ok_or_else(|| {
        ApiError::BadRequest("Required QueryValue [path] not specified".to_owned())
    })?;
    let flow_file = flows_dir_file(raw_path);
    let path = if flow_file.is_some() {
        raw_path.clone()
    } else {
        required(&shared, query.path.as_ref(), "path")?
    };
    let mut multipart = multipart.map_err(|_| {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ApiError::UnsupportedMediaType(format!(
            "Content Type [{content_type}] not allowed. Allowed types: [multipart/form-data]"
        ))
    })?;
    let (file_name, bytes) = file_content_part(&mut multipart).await?;
    let v2 = shared.config.kestra_version.is_v2();
    if let Some(flow_file) = flow_file {
        // A flow YAML uploaded to `/_flows/<name>` is imported as a flow of this namespace.
        flow_file?;
        let source = String::from_utf8_lossy(&bytes).into_owned();
        return shared
            .write(|store| flows::import_source(store, &tenant, &ns.namespace, &source, v2));
    }
    // Kestra extracts a part whose file name ends in `.zip` and ignores `path`; a part so
    // named that is no zip is dropped.
    let files = if file_name.to_lowercase().ends_with(".zip") {
        extract_zip(&bytes).unwrap_or_default()
    } else {
        vec![(path, bytes.to_vec())]
    };
    let (flow_files, files): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(path, _)| flows_dir_file(path).is_some());
    let files: Vec<(String, Vec<u8>)> = if v2 {
        files
    } else {
        files
            .into_iter()
            .map(|(path, bytes)| (path.replace(' ', "+"), bytes))
            .collect()
    };
    shared.write(|store| {
        for (path, bytes) in &flow_files {
            flows_dir_file(path).unwrap_or(Ok(()))?;
            let source = String::from_utf8_lossy(bytes).into_owned();
            flows::import_source(store, &tenant, &ns.namespace, &source, v2)?;
        }
        let tree = store
            .tenant_mut(&tenant)
            .files
            .entry(ns.namespace)
            .or_default();
        // Applied to a copy so that a failing entry leaves the namespace untouched.
        let mut updated = tree.clone();
        let now = Utc::now();
        for (path, bytes) in files {
            updated.put_file(&path, bytes, now)?;
        }
        *tree = updated;
        Ok(())
    })
}

/// `GET files/revisions?path=`: `[{"revision": 1}, ...]`.
pub async fn revisions(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<FileQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let path = required(&shared, query.path.as_ref(), "path")?;
    let count = shared
        .read(|store| {
            store
                .tenant(&tenant)
                .and_then(|t| t.files.get(&ns.namespace))
                .ok_or_else(|| FileError::NotFound(path.clone()))
                .and_then(|tree| tree.revision_count(&path))
        })
        .map_err(|error| match error {
            FileError::NotFound(path) => file_not_found(&path, &ns.namespace),
            other => other.into(),
        })?;
    Ok(Json(
        (1..=count).map(|n| json!({ "revision": n })).collect(),
    ))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET files/search?q=`: the paths of the files whose path contains `q`, sorted.
pub async fn search(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Json<Vec<String>> {
    let paths = shared.read(|store| {
        store
            .tenant(&tenant)
            .and_then(|t| t.files.get(&ns.namespace))
            .map(|tree| {
                tree.files()
                    .into_iter()
                    .map(|(path, _)| path.to_owned())
                    .filter(|path| path.contains(&query.q))
                    .collect()
            })
            .unwrap_or_default()
    });
    Json(paths)
}

/// `GET files/export`: a zip of every file of the namespace, by path.
pub async fn export(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(ns): ApiPath<NamespacePath>,
) -> Result<Response, ApiError> {
    let files: Vec<(String, Vec<u8>)> = shared.read(|store| {
        store
            .tenant(&tenant)
            .and_then(|t| t.files.get(&ns.namespace))
            .map(|tree| {
                tree.files()
                    .into_iter()
                    .map(|(path, bytes)| (path.trim_start_matches('/').to_owned(), bytes.to_vec()))
                    .collect()
            })
            .unwrap_or_default()
    });
    let failed = |e: zip::result::ZipError| ApiError::Internal(format!("cannot write zip: {e}"));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .map_err(failed)?;
        zip.write_all(&bytes)
            .map_err(|e| ApiError::Internal(format!("cannot write zip: {e}")))?;
    }
    let bytes = zip.finish().map_err(failed)?.into_inner();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"namespace-files.zip\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn file_content_part(multipart: &mut Multipart) -> Result<(String, Bytes), ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::BadRequest(e.body_text());
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        if field.name() == Some("fileContent") {
            // A part without a file name is a form value to Micronaut, not a file.
            let Some(file_name) = field.file_name().map(str::to_owned) else {
                return Err(ApiError::Verbatim(
                    422,
                    "Internal server error: Cannot convert type [class \
                     io.micronaut.http.server.netty.MicronautHttpData$AttributeImpl] to target \
                     type: interface io.micronaut.http.multipart.CompletedFileUpload. \
                     Considering defining a TypeConverter bean to handle this case."
                        .to_owned(),
                ));
            };
            let bytes = field.bytes().await.map_err(bad)?;
            return Ok((file_name, bytes));
        }
    }
    Err(ApiError::Internal(
        "Required Part [fileContent] not specified".to_owned(),
    ))
}

/// The files of a zip archive as normalised paths and contents; directories are implied.
fn extract_zip(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let invalid =
        |e: zip::result::ZipError| ApiError::IllegalArgument(format!("Invalid zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(invalid)?;
    let mut files = Vec::new();
    let mut budget = MAX_EXTRACTED_BYTES;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(invalid)?;
        if entry.is_dir() {
            continue;
        }
        // `enclosed_name` refuses absolute paths and `..`, which would escape the namespace.
        let Some(name) = entry.enclosed_name() else {
            let raw = entry.name().map(|n| n.into_owned()).unwrap_or_default();
            return Err(FileError::InvalidPath(raw).into());
        };
        let name = name.to_string_lossy();
        // `_flows/<name>` entries are flow imports, handled by the caller.
        let path = if name.starts_with("_flows/") {
            format!("/{name}")
        } else {
            normalize(&name)?
        };
        let mut content = Vec::new();
        let read = (&mut entry)
            .take(budget + 1)
            .read_to_end(&mut content)
            .map_err(|e| ApiError::IllegalArgument(format!("Invalid zip archive: {e}")))?;
        budget = budget.checked_sub(read as u64).ok_or_else(|| {
            ApiError::IllegalArgument("Zip archive too large once extracted".to_owned())
        })?;
        files.push((path, content));
    }
    Ok(files)
}
