//! Namespace file calls. Paths travel in the `path` query parameter, always with a leading `/`.

use bytes::Bytes;
use reqwest::Method;

use super::error::KestraError;
use super::transport::{Call, KestraClient, decode};
use super::types::FileStat;

impl KestraClient {
    /// A file's bytes, or `None` when absent. `path` starts with `/`.
    pub async fn get_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<Option<Bytes>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "files"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200 => Ok(Some(body)),
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// The direct children of a directory; a missing directory has none (Kestra answers 404).
    pub async fn list_directory(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<Vec<FileStat>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files/directory",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "files", "directory"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200 => decode(&body),
            404 => Ok(Vec::new()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Upload (create or overwrite) a file as the multipart part `fileContent`.
    pub async fn upload_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
        content: Bytes,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files",
            method: Method::POST,
            tenant,
            segments: &["namespaces", namespace, "files"],
        };
        // A part filename ending in `.zip` makes Kestra extract an archive; ours never does.
        let part_name = "content";
        self.expect_ok(call, |r| {
            let part = reqwest::multipart::Part::bytes(content.to_vec())
                .file_name(part_name)
                .mime_str("application/octet-stream")
                .unwrap_or_else(|_| {
                    reqwest::multipart::Part::bytes(content.to_vec()).file_name(part_name)
                });
            r.query(&[("path", path)])
                .multipart(reqwest::multipart::Form::new().part("fileContent", part))
        })
        .await
        .map(|_| ())
    }

    /// What Kestra holds at `path`: a file, a directory, or nothing (`None`).
    pub async fn stat_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<Option<FileStat>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files/stats",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "files", "stats"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200 => decode(&body).map(Some),
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Delete the file at `path`, and only a file: Kestra's delete removes directories with
    /// everything under them (`path=/` empties the namespace), so what is there is looked at
    /// first, and a directory is never deleted.
    pub async fn delete_file(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        path: &str,
    ) -> Result<(), KestraError> {
        match self.stat_file(tenant, namespace, path).await? {
            None => return Ok(()),
            Some(stat) if stat.type_.as_deref() == Some("File") => {}
            Some(stat) => {
                return Err(KestraError::Unexpected {
                    status: 200,
                    message: format!(
                        "{path} is a {} in Kestra, not a file: it is left in place",
                        stat.type_.as_deref().unwrap_or("thing of unknown type")
                    ),
                });
            }
        }
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/files",
            method: Method::DELETE,
            tenant,
            segments: &["namespaces", namespace, "files"],
        };
        let (status, body) = self.send(call, |r| r.query(&[("path", path)])).await?;
        match status.as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }
}
