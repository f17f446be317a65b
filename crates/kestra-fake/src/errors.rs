//! Every error the double answers, and its two wire formats (kestra-api.md section 1):
//! the legacy Micronaut `JsonError` and RFC 9457 `application/problem+json`.
//!
//! Handlers return [`ApiError`]; its `IntoResponse` only parks the error in the response
//! extensions. The API middleware then renders it with the configured [`ErrorFormat`] and the
//! request path, which handlers do not know.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::config::ErrorFormat;

/// One violated constraint: `path` like `flow.tasks[0].type`, `message` like `must not be null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl Violation {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Joins violations the way Kestra's `ConstraintViolationException` message does.
pub fn join_violations(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.path, v.message))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid entity: {}", join_violations(.0))]
    Constraint(Vec<Violation>),
    /// A 422 whose message Kestra words on its own (flow validation): the message verbatim,
    /// the violations in `_embedded.errors`.
    #[error("{message}")]
    Entity {
        message: String,
        errors: Vec<Violation>,
    },
    /// Kestra 1.x answers 422 with a violation on `flow.id`; the problem format uses 409.
    #[error("Invalid entity: flow.id: Flow id already exists")]
    FlowExists { namespace: String, id: String },
    #[error("Illegal argument: {0}")]
    IllegalArgument(String),
    #[error("Invalid format: {0}")]
    InvalidFormat(String),
    #[error("Illegal state: {0}")]
    IllegalState(String),
    /// An empty detail renders as the bare `Not Found`.
    #[error("{}", not_found_message(.0))]
    NotFound(String),
    #[error("Bad Request: {0}")]
    BadRequest(String),
    #[error("Resource has expired: The requested value has expired")]
    Expired,
    #[error("Unauthorized")]
    Unauthorized,
    #[error("Method Not Allowed: {0}")]
    MethodNotAllowed(String),
    #[error("Unsupported Media Type: {0}")]
    UnsupportedMediaType(String),
    /// A failure injected by the `/__fake/fail` hook.
    #[error("{}", injected_message(*.status))]
    Injected { status: u16, retry_after_secs: u64 },
    #[error("Internal server error: {0}")]
    Internal(String),
    /// Micronaut's 422 for a missing body or parameter.
    #[error("Invalid route params: {0}")]
    InvalidRouteParams(String),
    /// A status with Kestra's message verbatim, for answers that fit no other variant.
    #[error("{1}")]
    Verbatim(u16, String),
}

fn not_found_message(detail: &str) -> String {
    if detail.is_empty() {
        "Not Found".to_owned()
    } else {
        format!("Not Found: {detail}")
    }
}

fn injected_message(status: u16) -> String {
    let prefix = match status {
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Illegal state",
        410 => "Resource has expired",
        422 => "Illegal argument",
        500 => "Internal server error",
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    };
    format!("{prefix}: injected failure")
}

/// The problem type slug and title for a status, for errors without a more specific one.
fn generic_problem(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad-request", "Bad request"),
        401 => ("unauthenticated", "Unauthenticated"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not-found", "Not found"),
        405 => ("method-not-allowed", "Method not allowed"),
        409 => ("conflict", "Conflict"),
        410 => ("resource-expired", "Resource expired"),
        415 => ("unsupported-media-type", "Unsupported media type"),
        422 => ("invalid-argument", "Invalid argument"),
        429 => ("too-many-requests", "Too many requests"),
        503 => ("service-unavailable", "Service unavailable"),
        _ => ("internal-error", "Internal error"),
    }
}

const PROBLEM_BASE: &str = "https://kestra.io/docs/api-reference/problems/";

impl ApiError {
    /// The status in the legacy `JsonError` generation.
    pub fn json_status(&self) -> StatusCode {
        match self {
            Self::Constraint(_)
            | Self::Entity { .. }
            | Self::FlowExists { .. }
            | Self::IllegalArgument(_)
            | Self::InvalidFormat(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IllegalState(_) => StatusCode::CONFLICT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Expired => StatusCode::GONE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Injected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidRouteParams(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Verbatim(status, _) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// Status, slug and title in the problem generation, where a few statuses differ.
    fn problem_kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Constraint(_) | Self::Entity { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            Self::FlowExists { .. } => (
                StatusCode::CONFLICT,
                "entity-already-exists",
                "Entity already exists",
            ),
            Self::InvalidFormat(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-format",
                "Invalid format",
            ),
            Self::IllegalState(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
            ),
            other => {
                let status = other.json_status();
                let (slug, title) = generic_problem(status);
                (status, slug, title)
            }
        }
    }

    /// The human detail without the legacy message prefix.
    fn detail(&self) -> String {
        match self {
            Self::Constraint(v) => join_violations(v),
            Self::Entity { message, .. } => message
                .strip_prefix("Invalid entity: ")
                .unwrap_or(message)
                .to_owned(),
            Self::FlowExists { namespace, id } => {
                format!("A flow with id '{id}' already exists in namespace '{namespace}'.")
            }
            Self::IllegalArgument(d)
            | Self::InvalidFormat(d)
            | Self::IllegalState(d)
            | Self::BadRequest(d)
            | Self::MethodNotAllowed(d)
            | Self::UnsupportedMediaType(d)
            | Self::Internal(d)
            | Self::InvalidRouteParams(d)
            | Self::Verbatim(_, d) => d.clone(),
            Self::NotFound(d) if d.is_empty() => "Not Found".to_owned(),
            Self::NotFound(d) => d.clone(),
            Self::Expired => "The requested value has expired".to_owned(),
            Self::Unauthorized => "Authentication required".to_owned(),
            Self::Injected { .. } => "Injected failure".to_owned(),
        }
    }

    fn violations(&self) -> Vec<Violation> {
        match self {
            Self::Constraint(v) | Self::Entity { errors: v, .. } => v.clone(),
            Self::FlowExists { .. } => vec![Violation::new("flow.id", "Flow id already exists")],
            _ => Vec::new(),
        }
    }

    /// Renders the error in `format`; `instance` is the request path (and query).
    pub fn render(&self, format: ErrorFormat, instance: &str) -> Response {
        let mut response = match format {
            ErrorFormat::Json => self.render_json(instance),
            ErrorFormat::Problem => self.render_problem(instance),
        };
        let headers = response.headers_mut();
        if matches!(self, Self::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        if let Self::Injected {
            status: 429 | 503,
            retry_after_secs,
        } = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }

    /// Micronaut's `JsonError` exactly as Kestra sends it: null `logref`/`path`, the full
    /// `_links.self` link, and `_embedded.errors` only for constraint violations.
    fn render_json(&self, instance: &str) -> Response {
        if matches!(self, Self::Unauthorized) {
            // Kestra's 401 has no body and no content type (auth#1-9 of the recordings).
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let violations = self.violations();
        let embedded = if violations.is_empty() {
            json!({})
        } else {
            let errors: Vec<Value> = violations
                .iter()
                .map(|v| {
                    json!({
                        "message": v.message,
                        "logref": null,
                        "path": v.path,
                        "_links": {},
                        "_embedded": {},
                    })
                })
                .collect();
            json!({ "errors": errors })
        };
        let body = json!({
            "message": self.to_string(),
            "logref": null,
            "path": null,
            "_links": { "self": {
                "href": instance,
                "templated": false,
                "profile": null,
                "deprecation": null,
                "title": null,
                "hreflang": null,
                "type": null,
                "name": null,
            } },
            "_embedded": embedded,
        });
        (self.json_status(), Json(body)).into_response()
    }

    fn render_problem(&self, instance: &str) -> Response {
        let (status, slug, title) = self.problem_kind();
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.detail(),
            "instance": instance,
        });
        let violations = self.violations();
        if !violations.is_empty() {
            body["errors"] = violations
                .iter()
                .map(|v| json!({ "detail": v.message, "pointer": json_pointer(&v.path), "path": v.path }))
                .collect();
        }
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// `flow.tasks[0].type` becomes `/tasks/0/type`: the pointer into the submitted entity; a
/// Jackson reference chain (`Flow["tasks"]->java.util.ArrayList[0]`) becomes `/tasks/0`.
fn json_pointer(path: &str) -> String {
    if path == "flow" || path.is_empty() {
        return String::new();
    }
    if path.contains('"') {
        let mut out = String::new();
        for link in path.split("->") {
            if let Some(open) = link.find('[') {
                let inner = link[open + 1..].trim_end_matches(']').trim_matches('"');
                out.push('/');
                out.push_str(inner);
            }
        }
        return out;
    }
    let inner = path.strip_prefix("flow.").unwrap_or(path);
    let mut out = String::new();
    for segment in inner.split('.') {
        let mut rest = segment;
        if let Some(open) = rest.find('[') {
            out.push('/');
            out.push_str(&rest[..open]);
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                out.push('/');
                out.push_str(&stripped[..close]);
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// Marker carried in the response extensions until the middleware renders it.
#[derive(Clone)]
pub struct PendingError(pub ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Rendered once more by the middleware with the real format and path; this default body
        // only shows if a route escapes the middleware.
        let mut response = self.render(ErrorFormat::Json, "");
        response.extensions_mut().insert(PendingError(self));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_follow_the_entity() {
        assert_eq!(json_pointer("flow.id"), "/id");
        assert_eq!(json_pointer("flow.tasks[0].type"), "/tasks/0/type");
        assert_eq!(json_pointer("flow"), "");
        assert_eq!(json_pointer("tasks[0].message"), "/tasks/0/message");
        assert_eq!(
            json_pointer(
                "io.kestra.core.models.flows.FlowWithSource[\"tasks\"]->java.util.ArrayList[0]"
            ),
            "/tasks/0"
        );
    }

    #[test]
    fn messages_carry_the_documented_prefixes() {
        let v = ApiError::Constraint(vec![
            Violation::new("flow.id", "Illegal flow id update"),
            Violation::new("flow.namespace", "Illegal namespace update"),
        ]);
        assert_eq!(
            v.to_string(),
            "Invalid entity: flow.id: Illegal flow id update, flow.namespace: Illegal namespace update"
        );
        assert_eq!(ApiError::NotFound(String::new()).to_string(), "Not Found");
        assert_eq!(
            ApiError::Injected {
                status: 503,
                retry_after_secs: 1
            }
            .to_string(),
            "Service Unavailable: injected failure"
        );
    }
}
