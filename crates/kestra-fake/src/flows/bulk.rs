//! The literal bulk routes under `/flows` (README rows 11, 12, 15 of the transcripts):
//! delete, export, disable and enable, by query or by ids. They shadow `/flows/{namespace}/{id}`
//! for their own methods only: `GET /flows/delete/by-query` is still the flow `by-query` of the
//! namespace `delete`.

use std::io::{Cursor, Write};
use std::sync::LazyLock;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::header;
use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::search::SearchQuery;
use super::{FlowPath, FlowRevision, GetQuery, latest_live, lookup, soft_delete};
use crate::app::{ApiQuery, AppState, Tenant};
use crate::errors::ApiError;
use crate::store::TenantStore;

#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static DISABLED_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^disabled:[ \t]*(true|false)[ \t]*$").expect("static regex"));

/// One `{"namespace", "id"}` of a by-ids body.
/// A missing field names no flow, so it ends in the 404 of a missing flow.
#[derive(Debug, Deserialize)]
struct FlowId {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    id: String,
}

/// What Kestra answers when a listed flow does not exist (an `Optional.get()` on empty).
fn no_value_present() -> ApiError {
    ApiError::NotFound("No value present".to_owned())
}

/// Parses a by-ids body; Kestra answers a malformed one with a 500 and Jackson's text, and
/// takes a single object as a list of one.
fn parse_ids(body: &Bytes) -> Result<Vec<FlowId>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        let text = String::from_utf8_lossy(body);
        let token: String = text
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        if token.is_empty() {
            ApiError::Internal(format!("Cannot parse the flow ids: {error}"))
        } else {
            ApiError::Internal(format!(
                "Unrecognized token '{token}': was expecting (JSON String, Number, Array, \
                 Object or token 'null', 'true' or 'false')\n at [Source: REDACTED \
                 (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: 1]"
            ))
        }
    })?;
    let value = match value {
        Value::Object(_) => Value::Array(vec![value]),
        other => other,
    };
    serde_json::from_value(value)
        .map_err(|error| ApiError::Internal(format!("Cannot read the flow ids: {error}")))
}

/// The live flows matching a query, as (namespace, id), in listing order.
fn matching(tenant: Option<&TenantStore>, query: &SearchQuery) -> Vec<(String, String)> {
    let Some(tenant) = tenant else {
        return Vec::new();
    };
    tenant
        .flows_in_order()
        .into_iter()
        .filter(|(namespace, id, h)| {
            latest_live(Some(h)).is_some_and(|r| query.matches(namespace, id, &r.doc))
        })
        .map(|(namespace, id, _)| (namespace.clone(), id.clone()))
        .collect()
}

fn parse_query(shared: &AppState, params: &[(String, String)]) -> Result<SearchQuery, ApiError> {
    SearchQuery::parse(params, !shared.config.kestra_version.is_v2())
}

/// Which flows a bulk change is for.
enum Selection {
    /// The flows of a by-ids body, in order: the first missing one stops the change with a 404,
    /// keeping the changes before it, as Kestra does.
    Ids(Vec<FlowId>),
    /// The live flows matching a query; one gone by the time of the change is skipped.
    Query(SearchQuery),
}

/// Applies `change` to each selected flow and answers `{"count": n}`, the flows it changed.
fn for_each_selected_flow(
    shared: &AppState,
    tenant: &str,
    selection: Selection,
    mut change: impl FnMut(&mut Vec<FlowRevision>) -> bool,
) -> Result<Json<Value>, ApiError> {
    let count = shared.write(|store| {
        let (flow_ids, all_must_exist) = match selection {
            Selection::Ids(ids) => (ids.into_iter().map(|f| (f.namespace, f.id)).collect(), true),
            Selection::Query(query) => (matching(store.tenant(tenant), &query), false),
        };
        let flows = &mut store.tenant_mut(tenant).flows;
        let mut count = 0;
        for (namespace, id) in flow_ids {
            let history = flows.get_mut(&namespace).and_then(|f| f.get_mut(&id));
            if history.is_some_and(&mut change) {
                count += 1;
            } else if all_must_exist {
                return Err(no_value_present());
            }
        }
        Ok(count)
    })?;
    Ok(Json(json!({ "count": count })))
}

/// `DELETE /flows/delete/by-query`: soft-deletes every match (without a filter, every flow of
/// the tenant) and answers `{"count": n}`.
pub async fn delete_by_query(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let selection = Selection::Query(parse_query(&shared, &params)?);
    for_each_selected_flow(&shared, &tenant, selection, soft_delete)
}

/// `DELETE /flows/delete/by-ids`: deletes in order and stops with a 404 at the first missing
/// flow, keeping the deletions before it, as Kestra does.
pub async fn delete_by_ids(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let selection = Selection::Ids(parse_ids(&body)?);
    for_each_selected_flow(&shared, &tenant, selection, soft_delete)
}

fn zip_response(entries: Vec<(String, String)>) -> Result<Response, ApiError> {
    let failed = |e: zip::result::ZipError| ApiError::Internal(format!("cannot write zip: {e}"));
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, source) in entries {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .map_err(failed)?;
        zip.write_all(source.as_bytes())
            .map_err(|e| ApiError::Internal(format!("cannot write zip: {e}")))?;
    }
    let bytes = zip.finish().map_err(failed)?.into_inner();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"flows.zip\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /flows/export/by-query`: a zip of `{namespace}-{id}.yml` sources.
pub async fn export_by_query(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let query = parse_query(&shared, &params)?;
    let entries = shared.read(|store| {
        let tenant = store.tenant(&tenant);
        matching(tenant, &query)
            .into_iter()
            .filter_map(|(namespace, id)| {
                let rev = latest_live(tenant?.flows.get(&namespace)?.get(&id))?;
                Some((format!("{namespace}-{id}.yml"), rev.source.clone()))
            })
            .collect()
    });
    zip_response(entries)
}

/// Java's `toString` of a parsed YAML value (`[{id=hello, type=..., message=hi}]`), as the
/// CSV export writes nested values.
fn java_text(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = super::content::ordered(map)
                .into_iter()
                .map(|(k, v)| format!("{k}={}", java_text(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(java_text).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `GET /flows/export/by-query/csv`: one line per matching flow (flow-literal-routes#12).
pub async fn export_by_query_csv(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let query = parse_query(&shared, &params)?;
    let v2 = shared.config.kestra_version.is_v2();
    let mut csv = if v2 {
        "id,namespace,revision,updated,disabled,deleted,draft,tasks,triggers\n".to_owned()
    } else {
        "id,namespace,revision,updated,disabled,deleted,tasks,triggers\n".to_owned()
    };
    shared.read(|store| {
        let tenant = store.tenant(&tenant);
        for (namespace, id) in matching(tenant, &query) {
            let Some(rev) = tenant.and_then(|t| latest_live(t.flows.get(&namespace)?.get(&id)))
            else {
                continue;
            };
            let doc = &rev.doc;
            let mut fields = vec![
                id.clone(),
                namespace.clone(),
                rev.revision.to_string(),
                rev.updated
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                doc.get("disabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                rev.deleted.to_string(),
            ];
            if v2 {
                fields.push("false".to_owned());
            }
            fields.push(java_text(doc.get("tasks").unwrap_or(&Value::Null)));
            fields.push(java_text(doc.get("triggers").unwrap_or(&json!([]))));
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            csv.push_str(&line.join(","));
            csv.push('\n');
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=flows.csv",
            ),
        ],
        csv,
    )
        .into_response())
}

/// `POST /flows/export/by-ids`: a zip of `{namespace}.{id}.yaml` sources; 404 when one is
/// missing.
pub async fn export_by_ids(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ids = parse_ids(&body)?;
    let entries = shared.read(|store| {
        ids.iter()
            .map(|FlowId { namespace, id }| {
                store
                    .tenant(&tenant)
                    .and_then(|t| latest_live(t.flows.get(namespace)?.get(id)))
                    .map(|rev| (format!("{namespace}.{id}.yaml"), rev.source.clone()))
                    .ok_or_else(no_value_present)
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    zip_response(entries)
}

/// The source with `disabled: <value>`: an existing top-level line is replaced, otherwise the
/// line is appended after a blank line (what Kestra stores on enable/disable).
fn with_disabled(source: &str, disabled: bool) -> String {
    let line = format!("disabled: {disabled}");
    if DISABLED_LINE.is_match(source) {
        DISABLED_LINE.replace(source, line.as_str()).into_owned()
    } else {
        let sep = if source.ends_with('\n') { "" } else { "\n" };
        format!("{source}{sep}\n{line}\n")
    }
}

/// Sets `disabled` on one live flow: a new revision when the source changes.
fn set_disabled(history: &mut Vec<FlowRevision>, disabled: bool) -> bool {
    let Some(last) = latest_live(Some(history)).cloned() else {
        return false;
    };
    let source = with_disabled(&last.source, disabled);
    if source != last.source {
        let mut doc = last.doc.clone();
        if let Value::Object(map) = &mut doc {
            map.insert("disabled".into(), Value::Bool(disabled));
        }
        history.push(FlowRevision {
            revision: last.revision + 1,
            deleted: false,
            updated: Utc::now(),
            source,
            doc,
        });
    }
    true
}

/// `POST /flows/disable/by-ids`: `{"count": n}`, a new revision per flow.
pub async fn disable_by_ids(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let selection = Selection::Ids(parse_ids(&body)?);
    for_each_selected_flow(&shared, &tenant, selection, |h| set_disabled(h, true))
}

/// `POST /flows/enable/by-ids`: `{"count": n}`; the source gets `disabled: false`.
pub async fn enable_by_ids(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let selection = Selection::Ids(parse_ids(&body)?);
    for_each_selected_flow(&shared, &tenant, selection, |h| set_disabled(h, false))
}

/// `POST /flows/disable/by-query`.
pub async fn disable_by_query(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let selection = Selection::Query(parse_query(&shared, &params)?);
    for_each_selected_flow(&shared, &tenant, selection, |h| set_disabled(h, true))
}

/// `POST /flows/enable/by-query`.
pub async fn enable_by_query(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let selection = Selection::Query(parse_query(&shared, &params)?);
    for_each_selected_flow(&shared, &tenant, selection, |h| set_disabled(h, false))
}

fn literal_lookup(
    shared: &AppState,
    tenant: &str,
    id: &str,
    query: &GetQuery,
) -> Result<Json<Value>, ApiError> {
    let path = FlowPath {
        namespace: "delete".to_owned(),
        id: id.to_owned(),
    };
    lookup(shared, tenant, &path, query)
}

/// `GET /flows/delete/by-query`: no literal GET route, so the flow `by-query` of `delete`.
pub async fn literal_lookup_delete_by_query(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(query): ApiQuery<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    literal_lookup(&shared, &tenant, "by-query", &query)
}

/// `GET /flows/delete/by-ids`: the flow `by-ids` of `delete`.
pub async fn literal_lookup_delete_by_ids(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(query): ApiQuery<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    literal_lookup(&shared, &tenant, "by-ids", &query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_is_replaced_or_appended() {
        let source = "id: a\nnamespace: b\n";
        let disabled = with_disabled(source, true);
        assert_eq!(disabled, "id: a\nnamespace: b\n\ndisabled: true\n");
        assert_eq!(
            with_disabled(&disabled, false),
            "id: a\nnamespace: b\n\ndisabled: false\n"
        );
    }
}
