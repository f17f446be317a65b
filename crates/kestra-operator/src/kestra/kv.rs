//! Key-value calls. The answer of a key read must be an entry (an object with a type): on
//! Kestra 1.3 `GET .../kv/inheritance` is the inherited listing, a list.

use reqwest::Method;

use super::error::KestraError;
use super::transport::{Call, KestraClient, decode, header_safe};
use super::types::{KvEntry, KvRead, KvSummary};

/// One KV write: the typed body (see `kv_encoding`) and the headers.
#[derive(Clone, Copy, Debug)]
pub struct KvWrite<'a> {
    pub body: &'a str,
    pub ttl: Option<&'a str>,
    pub description: Option<&'a str>,
}

impl KestraClient {
    pub async fn get_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
    ) -> Result<KvRead, KestraError> {
        self.get_kv_stamped(tenant, namespace, key)
            .await
            .map(|(read, _)| read)
    }

    /// A KV read with the entry's `updated` time when Kestra sends it (1.2 and later).
    pub async fn get_kv_stamped(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
    ) -> Result<(KvRead, Option<String>), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "kv", key],
        };
        let (status, body) = self.send(call, |r| r).await?;
        match status.as_u16() {
            200 => {
                let value: serde_json::Value = decode(&body)?;
                let is_entry = value
                    .as_object()
                    .is_some_and(|o| o.get("type").is_some_and(serde_json::Value::is_string));
                if !is_entry {
                    return Err(KestraError::Decode(format!(
                        "the read of key {namespace}/{key} did not answer with an entry"
                    )));
                }
                let stamp = value
                    .get("updated")
                    .and_then(|u| u.as_str())
                    .map(str::to_string);
                let entry: KvEntry = serde_json::from_value(value).map_err(KestraError::Json)?;
                Ok((KvRead::Found(entry), stamp))
            }
            404 => Ok((KvRead::Missing, None)),
            410 => Ok((KvRead::Expired, None)),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// The keys of a namespace with their update times and descriptions: one listing however
    /// many keys it holds. Through the filtered, paged `GET /kv` (Kestra 1.3 and 2.0; 2.0 has no
    /// per-namespace listing), else the per-namespace route of older versions.
    pub async fn list_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<KvSummary>, KestraError> {
        if !self
            .kv_search_missing
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            match self.search_kv(tenant, namespace).await {
                Err(KestraError::Unexpected {
                    status: 404 | 405, ..
                }) => {
                    tracing::info!(
                        "Kestra has no filtered KV listing (GET /kv): using the per-namespace one"
                    );
                    self.kv_search_missing
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.list_kv_of_namespace(tenant, namespace).await
    }

    /// `GET /kv?filters[namespace][EQUALS]=..`, page by page until `total` rows are in.
    async fn search_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<KvSummary>, KestraError> {
        #[derive(serde::Deserialize)]
        struct Page {
            results: Vec<KvSummary>,
            total: u64,
        }
        const PAGE_SIZE: usize = 1000;
        const MAX_PAGES: usize = 1000;
        let size = PAGE_SIZE.to_string();
        let mut rows: Vec<KvSummary> = Vec::new();
        for page in 1..=MAX_PAGES {
            let call = Call {
                route: "/api/v1/{tenant}/kv",
                method: Method::GET,
                tenant,
                segments: &["kv"],
            };
            let page_number = page.to_string();
            let body = self
                .expect_ok(call, |r| {
                    r.query(&[
                        ("filters[namespace][EQUALS]", namespace),
                        ("page", page_number.as_str()),
                        ("size", size.as_str()),
                        ("sort", "key:asc"),
                    ])
                })
                .await?;
            let Page { results, total } = decode(&body)?;
            let last = results.len() < PAGE_SIZE;
            rows.extend(results);
            check_namespace(&rows, namespace)?;
            if last || rows.len() as u64 >= total {
                return Ok(rows);
            }
        }
        Err(KestraError::Decode(format!(
            "the key listing of namespace {namespace} did not end after {MAX_PAGES} pages"
        )))
    }

    /// `GET /namespaces/{namespace}/kv` (Kestra up to 1.3).
    async fn list_kv_of_namespace(
        &self,
        tenant: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<KvSummary>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv",
            method: Method::GET,
            tenant,
            segments: &["namespaces", namespace, "kv"],
        };
        let body = self.expect_ok(call, |r| r).await?;
        let rows: Vec<KvSummary> = decode(&body)?;
        check_namespace(&rows, namespace)?;
        Ok(rows)
    }

    /// Create or overwrite a KV entry.
    pub async fn put_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
        write: KvWrite<'_>,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
            method: Method::PUT,
            tenant,
            segments: &["namespaces", namespace, "kv", key],
        };
        let (status, body) = self
            .send(call, |r| {
                let mut r = r
                    .header("Content-Type", "text/plain")
                    .body(write.body.to_string());
                if let Some(ttl) = write.ttl {
                    r = r.header("ttl", ttl);
                }
                if let Some(description) = write.description.filter(|d| header_safe(d)) {
                    r = r.header("description", description);
                }
                r
            })
            .await?;
        if status.is_success() {
            return Ok(());
        }
        Err(value_refusal(KestraError::from_status(
            status.as_u16(),
            &body,
        )))
    }

    /// Delete a key. Kestra answers `true` (deleted) or `false` (absent), never 404.
    pub async fn delete_kv(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        key: &str,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/namespaces/{namespace}/kv/{key}",
            method: Method::DELETE,
            tenant,
            segments: &["namespaces", namespace, "kv", key],
        };
        let (status, body) = self.send(call, |r| r).await?;
        match status.as_u16() {
            200 => decode::<bool>(&body).map(|_| ()),
            204 | 404 => Ok(()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }
}

/// Rows of another namespace mean the filter was not applied (Kestra ignores a filter it does
/// not know, e.g. the legacy `namespace=`): such an answer is no listing of this namespace.
fn check_namespace(rows: &[KvSummary], namespace: &str) -> Result<(), KestraError> {
    match rows
        .iter()
        .find(|row| row.namespace.as_deref().is_some_and(|ns| ns != namespace))
    {
        Some(row) => Err(KestraError::Decode(format!(
            "the key listing of namespace {namespace} holds a key of namespace {}",
            row.namespace.as_deref().unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

/// Kestra 1.3 answers some values it cannot parse with a 500 naming the value (`Year 0 must be
/// between 1 and 9999 inclusive`, `Text cannot be parsed to a Duration` for a ttl): that is the
/// spec's fault, not an outage, and retrying cannot help.
fn value_refusal(error: KestraError) -> KestraError {
    const VALUE_ERRORS: [&str; 4] = [
        "must be between",
        "cannot be parsed",
        "Invalid JSON value",
        "Invalid value",
    ];
    match error {
        KestraError::Unavailable {
            what: super::Unavailability::Status(500),
            message,
        } if VALUE_ERRORS.iter().any(|m| message.contains(m)) => KestraError::Rejected {
            status: 500,
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_500_naming_the_value_is_a_refusal_of_the_value() {
        let year =
            br#"{"message":"Internal server error: Year 0 must be between 1 and 9999 inclusive"}"#;
        assert!(matches!(
            value_refusal(KestraError::from_status(500, year)),
            KestraError::Rejected { status: 500, .. }
        ));
        let outage = br#"{"message":"Internal server error: Connection is not available"}"#;
        assert!(value_refusal(KestraError::from_status(500, outage)).is_transient());
        assert!(value_refusal(KestraError::from_status(503, year)).is_transient());
    }
}
