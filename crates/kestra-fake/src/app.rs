//! The router, the shared state and the middleware every API route goes through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::FakeConfig;
use crate::errors::{ApiError, PendingError};
use crate::hooks::Hooks;
use crate::server::ConnControl;
use crate::store::Store;
use crate::{auth, files, flows, hooks, kv, persist};

/// Uploads (namespace files, zips) may be larger than axum's 2 MiB default.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Kestra buffers at most 10 MiB of a non-multipart body (bodies#6-7 of the recordings).
const MAX_BUFFERED: u64 = 10 * 1024 * 1024;

/// The declared length of a body Kestra would buffer, when it is over [`MAX_BUFFERED`];
/// multipart uploads are streamed, so they are not limited.
fn buffered_length_over_limit(headers: &http::HeaderMap) -> Option<u64> {
    let multipart = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/"));
    let length = headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    (!multipart && length > MAX_BUFFERED).then_some(length)
}

pub type AppState = Arc<Shared>;

pub struct Shared {
    pub config: FakeConfig,
    store: Mutex<Store>,
    pub hooks: Hooks,
    pub conn: ConnControl,
}

impl Shared {
    pub fn new(config: FakeConfig, store: Store, conn: ConnControl) -> Self {
        Self {
            config,
            store: Mutex::new(store),
            hooks: Hooks::default(),
            conn,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave a half-written entry that matters to a
        // test double, so a poisoned lock is simply reused.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.lock())
    }

    /// Runs a mutation and, when it succeeds, saves the state file. Saving happens under the
    /// lock so that snapshots reach the disk in the order of the writes.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut store = self.lock();
        let out = f(&mut store)?;
        if let Some(path) = &self.config.state_file
            && let Err(error) = persist::save(path, &store)
        {
            // The write is applied in memory but would be lost on restart: say so.
            tracing::error!(
                error = format!("{error:#}"),
                "could not save the state file"
            );
            return Err(ApiError::Internal(format!(
                "cannot save the state file: {error:#}"
            )));
        }
        Ok(out)
    }
}

/// The tenant of a request: the `{tenant}` path segment, or `main` on the legacy root.
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let tenant = params
            .get("tenant")
            .cloned()
            .unwrap_or_else(|| "main".to_owned());
        if state.config.only_main_tenant && tenant != "main" {
            // Kestra OSS (tenants-and-roots#1-4 of the recordings).
            return Err(ApiError::BadRequest(
                "Tenant must be 'main' for OSS version".to_owned(),
            ));
        }
        Ok(Self(tenant))
    }
}

/// `Query` whose rejection is an [`ApiError`], so it is rendered like any other error.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Self(value))
    }
}

/// `Path` whose rejection is an [`ApiError`].
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        Ok(Self(value))
    }
}

/// Every API route under `root` (`/api/v1/{tenant}` or the tenant-less `/api/v1`).
fn api_routes(shared: &AppState, root: &str) -> Router<AppState> {
    let at = |suffix: &str| format!("{root}{suffix}");

    let api = Router::new()
        .route(&at("/flows"), post(flows::create))
        .route(
            &at("/flows/validate"),
            post(flows::validate).get(flows::list_validate_namespace),
        )
        // POST reaches Kestra's bulk namespace update (namespace `search`), refused here.
        .route(
            &at("/flows/search"),
            get(flows::search).post(flows::bulk_update_refused),
        )
        .route(
            &at("/flows/distinct-namespaces"),
            get(flows::distinct_namespaces),
        )
        // Literal bulk routes: static segments win over `{namespace}/{id}`, and where Kestra
        // has no literal route for a method the flow lookup answers instead.
        .route(
            &at("/flows/delete/by-query"),
            delete(flows::delete_by_query).get(flows::literal_lookup_delete_by_query),
        )
        .route(
            &at("/flows/delete/by-ids"),
            delete(flows::delete_by_ids).get(flows::literal_lookup_delete_by_ids),
        )
        .route(&at("/flows/export/by-query"), get(flows::export_by_query))
        .route(
            &at("/flows/export/by-query/csv"),
            get(flows::export_by_query_csv),
        )
        .route(&at("/flows/export/by-ids"), post(flows::export_by_ids))
        .route(&at("/flows/disable/by-ids"), post(flows::disable_by_ids))
        .route(&at("/flows/enable/by-ids"), post(flows::enable_by_ids))
        .route(
            &at("/flows/disable/by-query"),
            post(flows::disable_by_query),
        )
        .route(&at("/flows/enable/by-query"), post(flows::enable_by_query))
        .route(
            &at("/flows/{namespace}"),
            get(flows::list_namespace).post(flows::bulk_update_refused),
        )
        .route(
            &at("/flows/{namespace}/{id}"),
            get(flows::get_flow)
                .put(flows::update)
                .delete(flows::delete),
        )
        .route(
            &at("/flows/{namespace}/{id}/revisions"),
            get(flows::revisions),
        )
        .route(&at("/namespaces/{namespace}"), get(get_namespace));
    // Kestra 1.3 had a task sub-route (PATCH only); 2.0 has none.
    let api = if shared.config.kestra_version.is_v2() {
        api
    } else {
        api.route(
            &at("/flows/{namespace}/{id}/{task}"),
            axum::routing::patch(flows::patch_task_not_modelled),
        )
    };
    api.route(
        &at("/namespaces/{namespace}/kv"),
        get(kv::list).delete(kv::delete_many),
    )
    .route(&at("/kv"), get(kv::search))
    .route(
        &at("/namespaces/{namespace}/kv/{key}"),
        get(kv::get_entry).put(kv::put).delete(kv::delete),
    )
    .route(
        &at("/namespaces/{namespace}/files"),
        get(files::get_content)
            .post(files::upload)
            .put(files::move_path)
            .delete(files::delete),
    )
    .route(
        &at("/namespaces/{namespace}/files/stats"),
        get(files::stats),
    )
    .route(
        &at("/namespaces/{namespace}/files/revisions"),
        get(files::revisions),
    )
    .route(
        &at("/namespaces/{namespace}/files/search"),
        get(files::search),
    )
    .route(
        &at("/namespaces/{namespace}/files/export"),
        get(files::export),
    )
    .route(
        &at("/namespaces/{namespace}/files/directory"),
        get(files::list_directory).post(files::make_directory),
    )
}

pub fn router(shared: AppState) -> Router {
    let root = if shared.config.legacy_root {
        "/api/v1"
    } else {
        "/api/v1/{tenant}"
    };
    let mut api = api_routes(&shared, root);
    if shared.config.only_main_tenant && !shared.config.legacy_root {
        // Kestra OSS also serves the tenant-less root as tenant `main`
        // (tenants-and-roots#6 of the recordings).
        api = api.merge(api_routes(&shared, "/api/v1"));
    }
    let api = api
        .fallback(not_found)
        // `layer` (not `route_layer`) so the fallback is authenticated, counted and rendered too.
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            api_middleware,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT));

    // Open without credentials, as in Kestra (auth#10, auth#11 of the recordings).
    let api = Router::new()
        .route("/api/v1/configs", get(configs))
        .route("/ping", get(ping))
        .merge(api);
    let app = if shared.config.test_hooks {
        Router::new().nest("/__fake", hooks::router()).merge(api)
    } else {
        api
    };
    app.with_state(shared)
}

/// What Kestra says about itself, as each recorded version answered (auth#10).
async fn configs(State(shared): State<AppState>) -> impl IntoResponse {
    let uuid = "00000000-0000-4000-8000-000000000000";
    let common = json!({
        "uuid": uuid,
        "edition": "OSS",
        "chartDefaultDuration": "PT24H",
        "isAnonymousUsageEnabled": false,
        "isUiAnonymousUsageEnabled": false,
        "preview": {"initial": 100, "max": 5000},
        "systemNamespace": "system",
        "hiddenLabelsPrefixes": ["system.", "internal."],
        "isAiEnabled": false,
        "isBasicAuthInitialized": true,
        "pluginsHash": 0,
        "isConcurrencyViewEnabled": true
    });
    let specific = if shared.config.kestra_version.is_v2() {
        json!({
            "version": "2.0.0",
            "flowTemplate": "",
            "isCustomDashboardsEnabled": false,
            "isAiApiKeyConfigured": false
        })
    } else {
        json!({
            "version": "1.3.31",
            "isCustomDashboardsEnabled": true,
            "isTemplateEnabled": false
        })
    };
    let mut body = common;
    if let (Some(body), Some(specific)) = (body.as_object_mut(), specific.as_object()) {
        body.extend(specific.clone());
    }
    axum::Json(body)
}

/// Kestra's health answer: `pong`, labelled JSON although it is not.
async fn ping() -> impl IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], "pong")
}

async fn not_found() -> ApiError {
    ApiError::NotFound(String::new())
}

/// Namespaces are implicit in OSS: any id exists, and only its id is told
/// (tenants-and-roots#10 of the recordings).
async fn get_namespace(ApiPath(namespace): ApiPath<NamespacePath>) -> impl IntoResponse {
    axum::Json(json!({ "id": namespace.namespace }))
}

#[derive(serde::Deserialize)]
struct NamespacePath {
    namespace: String,
}

/// Fault injection, authentication, error rendering and counting, for every API request.
async fn api_middleware(State(shared): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let instance = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());

    // Decided before any await: the request body is not `Sync`, so the request cannot be held
    // by reference across the fault delays.
    // Only the API is protected, as in Kestra; other unknown paths just 404.
    let protected = path == "/api/v1" || path.starts_with("/api/v1/");
    let authorized = !protected
        || !shared.config.auth_enabled()
        || auth::is_authorized_with(
            shared
                .hooks
                .basic_auth(shared.config.basic_auth.as_ref())
                .as_ref(),
            shared.config.api_key.as_deref(),
            request.headers(),
        );
    // Kestra 1.3 answers a Basic credential that is not base64 with a 422 (2.0: 401).
    let malformed = (!authorized && !shared.config.kestra_version.is_v2())
        .then(|| auth::malformed_basic(request.headers()))
        .flatten();
    let oversized = buffered_length_over_limit(request.headers());
    let response = match faults_then_auth(&shared, &method, &path, authorized).await {
        Ok(None) if oversized.is_some() => {
            let length = oversized.unwrap_or_default();
            ApiError::Internal(format!(
                "The content length [{length}] exceeds the maximum allowed bufferable length \
                 [{MAX_BUFFERED}]. Note that the maximum buffer size got its own configuration \
                 property (micronaut.server.max-request-buffer-size) in 4.5.0 that you may have \
                 to configure. Alternatively you can rewrite your controller to stream the \
                 request instead of buffering it."
            ))
            .into_response()
        }
        Err(ApiError::Unauthorized) if malformed.is_some() => {
            let c = malformed.map_or(0, u32::from);
            ApiError::IllegalArgument(format!("Illegal base64 character {c:x}")).into_response()
        }
        Err(error) => error.into_response(),
        Ok(Some(status)) => {
            let body = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
                .await
                .unwrap_or_default();
            let quoted = String::from_utf8_lossy(&body);
            ApiError::Verbatim(status, format!("Invalid JSON value for: {quoted}")).into_response()
        }
        Ok(None) => next.run(request).await,
    };
    let allowed = allowed_methods(&shared, &route);
    let response = render_error(&shared, response, &method, &path, &instance, allowed);
    shared
        .hooks
        .count(method.as_str(), &route, response.status().as_u16());
    tracing::debug!(%method, %path, status = response.status().as_u16(), "api request");
    response
}

/// `Ok(Some(status))`: answer `status` quoting the request body (an injected failure).
async fn faults_then_auth(
    shared: &Shared,
    method: &http::Method,
    path: &str,
    authorized: bool,
) -> Result<Option<u16>, ApiError> {
    if let Some(until) = shared.hooks.hang_until() {
        // Held until the window ends; the server then drops the connection, so this request
        // never gets an answer. The extra second only guards against a connection that was
        // somehow not dropped.
        tokio::time::sleep_until(until + Duration::from_secs(1)).await;
        return Err(ApiError::Injected {
            status: 503,
            retry_after_secs: 1,
        });
    }
    if let Some(delay) = shared.hooks.latency_for(method.as_str(), path) {
        tokio::time::sleep(delay).await;
    }
    let echo = match shared.hooks.take_failure(method.as_str(), path) {
        Some(hooks::Injection::Fail(error)) => return Err(error),
        Some(hooks::Injection::EchoBody(status)) => Some(status),
        None => None,
    };
    if !authorized {
        return Err(ApiError::Unauthorized);
    }
    Ok(echo)
}

/// Micronaut's 405 text: `Method [PATCH] not allowed for URI [/path]. Allowed methods: [..]`,
/// the methods in the order Kestra lists them (HEAD first, GET last).
fn method_not_allowed(method: &http::Method, path: &str, allow: &str) -> String {
    const ORDER: [&str; 7] = ["HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "GET"];
    let allowed: Vec<String> = allow
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect();
    let listed: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|m| allowed.iter().any(|a| a == m))
        .collect();
    format!(
        "Method [{method}] not allowed for URI [{path}]. Allowed methods: [{}]",
        listed.join(", ")
    )
}

/// The methods each route answers, for the 405 text (axum only adds its `Allow` header after
/// this middleware has run). Keep in step with [`router`].
fn allowed_methods(shared: &Shared, route: &str) -> &'static str {
    let local = route
        .strip_prefix("/api/v1/{tenant}")
        .or_else(|| route.strip_prefix("/api/v1"))
        .unwrap_or(route);
    match local {
        "/flows" | "/flows/export/by-ids" => "POST",
        "/flows/validate" | "/flows/search" => "GET,HEAD,POST",
        "/flows/disable/by-ids" | "/flows/enable/by-ids" => "POST",
        "/flows/disable/by-query" | "/flows/enable/by-query" => "POST",
        "/flows/export/by-query" | "/flows/export/by-query/csv" | "/kv" => "GET,HEAD",
        "/flows/{namespace}/{id}/{task}" => "PATCH",
        "/flows/distinct-namespaces" | "/flows/{namespace}/{id}/revisions" => "GET,HEAD",
        "/namespaces/{namespace}" | "/namespaces/{namespace}/files/stats" => "GET,HEAD",
        "/namespaces/{namespace}/files/revisions"
        | "/namespaces/{namespace}/files/search"
        | "/namespaces/{namespace}/files/export" => "GET,HEAD",
        "/flows/delete/by-query" | "/flows/delete/by-ids" => "GET,HEAD,DELETE",
        "/flows/{namespace}" | "/namespaces/{namespace}/files/directory" => "GET,HEAD,POST",
        "/flows/{namespace}/{id}" | "/namespaces/{namespace}/kv/{key}" => "GET,HEAD,PUT,DELETE",
        // Kestra 2.0 removed the GET of the namespace KV listing.
        "/namespaces/{namespace}/kv" if shared.config.kestra_version.is_v2() => "DELETE",
        "/namespaces/{namespace}/kv" => "GET,HEAD,DELETE",
        "/namespaces/{namespace}/files" => "GET,HEAD,POST,PUT,DELETE",
        _ => "",
    }
}

fn render_error(
    shared: &Shared,
    response: Response,
    method: &http::Method,
    path: &str,
    instance: &str,
    allowed: &str,
) -> Response {
    if let Some(PendingError(error)) = response.extensions().get::<PendingError>() {
        return error.render(shared.config.error_format, instance);
    }
    // axum answers a known path with the wrong method itself, with an empty body.
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let mut rendered = ApiError::MethodNotAllowed(method_not_allowed(method, path, allowed))
            .render(shared.config.error_format, instance);
        if let Some(allow) = response.headers().get(http::header::ALLOW) {
            rendered
                .headers_mut()
                .insert(http::header::ALLOW, allow.clone());
        }
        return rendered;
    }
    response
}
