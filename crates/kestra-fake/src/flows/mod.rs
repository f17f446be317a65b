//! Flows: kestra-api.md section 2. Revisions are kept whole; delete is a revision too.

mod bulk;
mod content;
mod model;
mod schema;
mod search;

pub use bulk::{
    delete_by_ids, delete_by_query, disable_by_ids, disable_by_query, enable_by_ids,
    enable_by_query, export_by_ids, export_by_query, export_by_query_csv,
    literal_lookup_delete_by_ids, literal_lookup_delete_by_query,
};

pub use model::FlowRevision;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use chrono::Utc;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use std::sync::LazyLock;

use regex::Regex;

use crate::app::{ApiPath, ApiQuery, AppState, Tenant};
use crate::errors::{ApiError, Violation};
use crate::store::Store;
use content::{FlowBody, FlowRoute};
use model::{Shape, check_flow, flow_json, split_documents, written_flow_json};
use schema::{Refusal, validate_constraints};
use search::SearchQuery;

fn latest_live(revisions: Option<&Vec<FlowRevision>>) -> Option<&FlowRevision> {
    revisions.and_then(|r| r.last()).filter(|r| !r.deleted)
}

fn utf8(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body)
        .map_err(|_| ApiError::Constraint(vec![Violation::new("flow", "the body is not UTF-8")]))
}

#[derive(Deserialize)]
pub struct FlowPath {
    namespace: String,
    id: String,
}

#[derive(Deserialize)]
pub struct NamespacePath {
    namespace: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GetQuery {
    #[serde(default)]
    source: bool,
    revision: Option<u32>,
    #[serde(default)]
    allow_deleted: bool,
}

pub async fn create(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v2 = shared.config.kestra_version.is_v2();
    let (source, from_json) = source_of(&headers, &body, FlowRoute::Create, v2)?;
    let source = source.as_str();
    if source.is_empty() {
        return Err(ApiError::InvalidRouteParams(
            "Required Body [flow] not specified".to_owned(),
        ));
    }
    let flow = check_flow(source, v2).into_parsed(v2)?;
    let rev = shared.write(|store| {
        let tenant = store.tenant_mut(&tenant);
        let history = tenant
            .flows
            .entry(flow.namespace.clone())
            .or_default()
            .entry(flow.id.clone())
            .or_default();
        if history.is_empty() {
            tenant
                .flow_order
                .push((flow.namespace.clone(), flow.id.clone()));
        }
        let history = tenant
            .flows
            .entry(flow.namespace.clone())
            .or_default()
            .entry(flow.id.clone())
            .or_default();
        if latest_live(Some(history)).is_some() {
            // Kestra 2.0 answers a 409 Conflict where 1.3 had a violation on `flow.id`.
            return Err(if v2 {
                ApiError::Verbatim(
                    409,
                    format!(
                        "Conflict: Flow '{}' already exists in namespace '{}'.",
                        flow.id, flow.namespace
                    ),
                )
            } else {
                ApiError::FlowExists {
                    namespace: flow.namespace.clone(),
                    id: flow.id.clone(),
                }
            });
        }
        let rev = FlowRevision {
            revision: history.last().map_or(1, |r| r.revision + 1),
            deleted: false,
            updated: Utc::now(),
            source: source.to_owned(),
            doc: flow.doc,
        };
        history.push(rev.clone());
        Ok(rev)
    })?;
    Ok(Json(answer_of(written_flow_json(&rev, v2), from_json)))
}

/// Imports a flow file uploaded to `/_flows/<name>` of `namespace` (also from a zip): the
/// source's namespace line is rewritten to `namespace`, then the flow is created, or updated
/// when its source changed.
pub fn import_source(
    store: &mut Store,
    tenant: &str,
    namespace: &str,
    source: &str,
    v2: bool,
) -> Result<(), ApiError> {
    #[expect(
        clippy::expect_used,
        reason = "a literal pattern; every test that uses it would fail first"
    )]
    static NAMESPACE_LINE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?m)^namespace:.*$").expect("static regex"));
    let source = NAMESPACE_LINE
        .replace(source, format!("namespace: {namespace}").as_str())
        .into_owned();
    let flow = check_flow(&source, v2).into_parsed(v2)?;
    let tenant = store.tenant_mut(tenant);
    let history = tenant
        .flows
        .entry(flow.namespace.clone())
        .or_default()
        .entry(flow.id.clone())
        .or_default();
    if history.is_empty() {
        tenant
            .flow_order
            .push((flow.namespace.clone(), flow.id.clone()));
    }
    let history = tenant
        .flows
        .entry(flow.namespace.clone())
        .or_default()
        .entry(flow.id.clone())
        .or_default();
    let live = latest_live(Some(history)).cloned();
    if live.as_ref().is_some_and(|r| r.source == source) {
        return Ok(());
    }
    history.push(FlowRevision {
        revision: history.last().map_or(1, |r| r.revision + 1),
        deleted: false,
        updated: Utc::now(),
        source,
        doc: flow.doc,
    });
    Ok(())
}

/// The YAML source of a create or update body, and whether it came as JSON.
fn source_of(
    headers: &HeaderMap,
    body: &Bytes,
    route: FlowRoute,
    v2: bool,
) -> Result<(String, bool), ApiError> {
    match content::read(headers, body, route, v2)? {
        FlowBody::Json(flow) => Ok((content::yaml_of(&flow), true)),
        FlowBody::Yaml | FlowBody::Multipart => Ok((utf8(body)?.to_owned(), false)),
    }
}

/// A flow written from JSON is answered as a `Flow`, without its (generated) source.
fn answer_of(mut answer: Value, from_json: bool) -> Value {
    if from_json && let Some(obj) = answer.as_object_mut() {
        obj.remove("source");
    }
    answer
}

pub async fn get_flow(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<FlowPath>,
    ApiQuery(query): ApiQuery<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    lookup(&shared, &tenant, &path, &query)
}

/// `GET /flows/{namespace}/{id}`, also reached by literal paths without a GET route of their
/// own (`GET /flows/delete/by-query` is the flow `by-query` of namespace `delete`).
fn lookup(
    shared: &AppState,
    tenant: &str,
    path: &FlowPath,
    query: &GetQuery,
) -> Result<Json<Value>, ApiError> {
    let found = shared.read(|store| {
        let history = store
            .tenant(tenant)?
            .flows
            .get(&path.namespace)?
            .get(&path.id)?;
        let rev = match query.revision {
            Some(n) => history.iter().find(|r| r.revision == n)?,
            None => history.last()?,
        };
        (query.allow_deleted || !rev.deleted).then(|| {
            flow_json(
                rev,
                Shape {
                    with_source: query.source,
                    v2: shared.config.kestra_version.is_v2(),
                },
            )
        })
    });
    found.map(Json).ok_or_else(|| flow_not_found(path))
}

/// Kestra's flow 404 is the bare `Not Found`, without the flow's name.
fn flow_not_found(_path: &FlowPath) -> ApiError {
    ApiError::NotFound(String::new())
}

/// Appends a deleted revision when the flow is live; whether it was.
fn soft_delete(history: &mut Vec<FlowRevision>) -> bool {
    let Some(last) = latest_live(Some(history)).cloned() else {
        return false;
    };
    history.push(FlowRevision {
        revision: last.revision + 1,
        deleted: true,
        updated: Utc::now(),
        ..last
    });
    true
}

pub async fn update(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<FlowPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let v2 = shared.config.kestra_version.is_v2();
    let (source, from_json) = source_of(&headers, &body, FlowRoute::Update, v2)?;
    let source = source.as_str();
    let answer = shared.write(|store| {
        let history = store
            .tenant_mut(&tenant)
            .flows
            .get_mut(&path.namespace)
            .and_then(|flows| flows.get_mut(&path.id));
        // Kestra looks the flow up before it parses the body: a missing flow is a 404 even
        // when the YAML is invalid.
        let Some(history) = history.filter(|h| latest_live(Some(h)).is_some()) else {
            return Err(flow_not_found(&path));
        };
        let flow = check_flow(source, v2).into_parsed(v2)?;
        let mut violations = Vec::new();
        if flow.id != path.id {
            violations.push(Violation::new("flow.id", "Illegal flow id update"));
        }
        if flow.namespace != path.namespace {
            violations.push(Violation::new("flow.namespace", "Illegal namespace update"));
        }
        if !v2 {
            // The order of a hash set, as 1.3.31 answered (flow-update-revisions#15).
            violations.reverse();
        }
        if !violations.is_empty() {
            return Err(ApiError::Constraint(violations));
        }
        let last = history
            .last()
            .cloned()
            .ok_or_else(|| flow_not_found(&path))?;
        if last.source == source {
            // The identical source: Kestra answers with the stored flow, as a GET shows it.
            return Ok(flow_json(
                &last,
                Shape {
                    with_source: true,
                    v2,
                },
            ));
        }
        let rev = FlowRevision {
            revision: last.revision + 1,
            deleted: false,
            updated: Utc::now(),
            source: source.to_owned(),
            doc: flow.doc,
        };
        let answer = written_flow_json(&rev, v2);
        history.push(rev);
        Ok(answer)
    })?;
    Ok(Json(answer_of(answer, from_json)))
}

pub async fn delete(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<FlowPath>,
) -> Result<StatusCode, ApiError> {
    shared.write(|store| {
        let history = store
            .tenant_mut(&tenant)
            .flows
            .get_mut(&path.namespace)
            .and_then(|flows| flows.get_mut(&path.id));
        if history.is_some_and(soft_delete) {
            Ok(())
        } else {
            Err(flow_not_found(&path))
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_namespace(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<NamespacePath>,
) -> Json<Vec<Value>> {
    let shape = listed(&shared);
    let flows = shared.read(|store| {
        store
            .tenant(&tenant)
            .map(|t| {
                t.flows_in_order()
                    .into_iter()
                    .filter(|(namespace, ..)| **namespace == path.namespace)
                    .filter_map(|(.., h)| latest_live(Some(h)))
                    .map(|r| flow_json(r, shape))
                    .collect()
            })
            .unwrap_or_default()
    });
    Json(flows)
}

/// `PATCH /flows/{namespace}/{id}/{taskId}` (1.3: updates one task) is not modelled; its
/// other methods answer Kestra's 405.
pub async fn patch_task_not_modelled() -> ApiError {
    ApiError::NotFound(String::new())
}

/// `GET /flows/validate` has no route of its own: it is the list of the namespace `validate`.
pub async fn list_validate_namespace(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
) -> Json<Vec<Value>> {
    list_namespace(
        State(shared),
        Tenant(tenant),
        ApiPath(NamespacePath {
            namespace: "validate".to_owned(),
        }),
    )
    .await
}

/// `GET /flows/{namespace}/{id}/revisions`: every live revision with its source, oldest
/// first (deleted revisions are left out); `[]` for an unknown flow.
pub async fn revisions(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<FlowPath>,
) -> Json<Vec<Value>> {
    let shape = Shape {
        with_source: true,
        v2: shared.config.kestra_version.is_v2(),
    };
    let revisions = shared.read(|store| {
        store
            .tenant(&tenant)
            .and_then(|t| t.flows.get(&path.namespace)?.get(&path.id))
            .map(|history| {
                history
                    .iter()
                    .filter(|r| !r.deleted)
                    .map(|r| flow_json(r, shape))
                    .collect()
            })
            .unwrap_or_default()
    });
    Json(revisions)
}

/// `GET /flows/distinct-namespaces`: the namespaces holding a live flow, sorted.
pub async fn distinct_namespaces(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
) -> Json<Vec<String>> {
    let namespaces = shared.read(|store| {
        store
            .tenant(&tenant)
            .map(|t| {
                t.flows
                    .iter()
                    .filter(|(_, flows)| flows.values().any(|h| latest_live(Some(h)).is_some()))
                    .map(|(namespace, _)| namespace.clone())
                    .collect()
            })
            .unwrap_or_default()
    });
    Json(namespaces)
}

/// The shape of flows in listings and search results (no source).
fn listed(shared: &AppState) -> Shape {
    Shape {
        with_source: false,
        v2: shared.config.kestra_version.is_v2(),
    }
}

/// Refused on purpose: this endpoint deletes every flow of the namespace missing from the body
/// (kestra-api.md section 2), so a client that calls it has a bug worth failing loudly on.
/// Bodies Kestra itself refuses get Kestra's answer (methods-and-params#2 of the recordings):
/// 2.0 takes YAML or multipart only; 1.3 validates the JSON flows first.
pub async fn bulk_update_refused(
    State(shared): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiError {
    let v2 = shared.config.kestra_version.is_v2();
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if v2 && !matches!(essence, "application/x-yaml" | "multipart/form-data") {
        return ApiError::UnsupportedMediaType(format!(
            "Content Type [{content_type}] not allowed. Allowed types: [application/x-yaml, \
             multipart/form-data]"
        ));
    }
    if !v2
        && essence == "application/json"
        && let Some(violations) = bulk_json_violations(&body)
    {
        return ApiError::Constraint(violations);
    }
    tracing::warn!("refused POST /flows/{{namespace}}: the bulk update deletes other flows");
    ApiError::MethodNotAllowed(
        "the Kestra double refuses POST /flows/{namespace} (bulk update that deletes every other \
         flow of the namespace); use POST /flows and PUT /flows/{namespace}/{id}"
            .to_owned(),
    )
}

/// The constraint violations of a 1.3 bulk update's JSON flows (a single object is a list of
/// one), named as Kestra names them; `None` when there are none.
fn bulk_json_violations(body: &[u8]) -> Option<Vec<Violation>> {
    let flows = match serde_json::from_slice::<Value>(body).ok()? {
        Value::Array(flows) => flows,
        one => vec![one],
    };
    let mut violations = Vec::new();
    for (i, flow) in flows.iter().enumerate() {
        let Value::Object(doc) = flow else {
            continue;
        };
        if let Err(schema::Refusal::Violations(found)) = schema::schema(false).check(doc) {
            violations.extend(found.into_iter().map(|v| {
                Violation::new(
                    format!("updateFlowsInNamespaceFromJson.flows[{i}].{}", v.path),
                    v.message,
                )
            }));
        }
    }
    (!violations.is_empty()).then_some(violations)
}

pub async fn validate(
    State(shared): State<AppState>,
    request: Request,
) -> Result<Json<Vec<Value>>, ApiError> {
    let v2 = shared.config.kestra_version.is_v2();
    let read = content::read(request.headers(), &[], FlowRoute::Validate, v2)?;
    let body = if matches!(read, FlowBody::Multipart) {
        multipart_flows(request).await?
    } else {
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        utf8(&bytes)?.to_owned()
    };
    let mut documents = split_documents(&body);
    if documents.is_empty() {
        // An empty body is one empty document, which Kestra cannot read.
        documents.push(String::new());
    }
    let results = documents
        .iter()
        .enumerate()
        .map(|(index, doc)| validation_result(index, doc, v2))
        .collect();
    Ok(Json(results))
}

/// From 1.2 the sources may come in a multipart part named `flows`.
async fn multipart_flows(request: Request) -> Result<String, ApiError> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut out = String::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?
    {
        if field.name() == Some("flows") {
            let text = field
                .text()
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
            out.push_str(&text);
            out.push_str("\n---\n");
        }
    }
    Ok(out)
}

/// One item of the validate answer. A source that cannot be bound to the model (YAML error,
/// unknown task type) only has `index`, `constraints` and `outdated`.
fn validation_result(index: usize, source: &str, v2: bool) -> Value {
    let mut check = check_flow(source, v2);
    // Validate reads the whole YAML first, so a syntax error is SnakeYAML's, not Jackson's.
    if let Some(Refusal::Yaml(detail)) = &mut check.refusal
        && let Some(snake) = model::snakeyaml_syntax_error(source)
    {
        *detail = snake;
    }
    if let Some(refusal @ (Refusal::Yaml(_) | Refusal::InvalidType(_))) = &check.refusal {
        return json!({
            "index": index,
            "constraints": validate_constraints(refusal, v2),
            "outdated": false,
        });
    }
    let mut result = json!({ "index": index });
    if let Some(namespace) = check.namespace {
        result["namespace"] = Value::String(namespace);
    }
    if let Some(id) = check.id {
        result["flow"] = Value::String(id);
    }
    if let Some(refusal) = &check.refusal {
        result["constraints"] = Value::String(validate_constraints(refusal, v2));
    }
    result["outdated"] = Value::Bool(false);
    result["deprecationPaths"] = json!([]);
    result["warnings"] = json!([]);
    result["infos"] = json!(check.infos);
    result
}

pub async fn search(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let query = SearchQuery::parse(&params, !shared.config.kestra_version.is_v2())?;
    let shape = listed(&shared);
    let matches: Vec<Value> = shared.read(|store| {
        let Some(tenant) = store.tenant(&tenant) else {
            return Vec::new();
        };
        let mut found: Vec<_> = tenant
            .flows_in_order()
            .into_iter()
            .filter_map(|(namespace, id, h)| Some((namespace, id, latest_live(Some(h))?)))
            .filter(|(namespace, id, r)| query.matches(namespace, id, &r.doc))
            .collect();
        // A stable sort: equal keys keep the creation order.
        found.sort_by(|a, b| query.compare((a.0, a.1), (b.0, b.1)));
        found
            .into_iter()
            .map(|(.., r)| flow_json(r, shape))
            .collect()
    });
    let total = matches.len();
    let results: Vec<Value> = matches
        .into_iter()
        .skip((query.page - 1).saturating_mul(query.size))
        .take(query.size)
        .collect();
    Ok(Json(json!({ "results": results, "total": total })))
}
