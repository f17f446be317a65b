//! Kestra API errors: what went wrong, parsed from either error body format.

use serde::Deserialize;

/// What kind of outage a call met: the retry policy depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailability {
    Timeout,
    /// The connection could not be made: nothing reached Kestra, so any call may be retried.
    Connect,
    /// The connection broke during the exchange.
    Transport,
    /// The TLS handshake failed: Kestra's certificate is not trusted or not for its name.
    Tls,
    /// Kestra answered with this 5xx, 408 or 429 status.
    Status(u16),
}

impl std::fmt::Display for Unavailability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("timeout"),
            Self::Connect => f.write_str("connection failed"),
            Self::Transport => f.write_str("transport error"),
            Self::Tls => f.write_str("TLS handshake failed"),
            Self::Status(status) => write!(f, "HTTP {status}"),
        }
    }
}

/// Why a Kestra call failed, in the categories the operator acts on.
#[derive(Debug, thiserror::Error)]
pub enum KestraError {
    /// No usable answer: refused connection, timeout, 5xx, 429. Retried with backoff.
    #[error("Kestra is unavailable ({what}): {message}")]
    Unavailable {
        what: Unavailability,
        message: String,
    },
    /// 401 or 403: the credentials are missing, wrong or lack a permission.
    #[error("Kestra refused the credentials (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// 400, 409 or 422: Kestra refused what we sent; the spec must change.
    #[error("Kestra rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Any other answer we did not expect (e.g. a 404 where the object must exist).
    #[error("unexpected answer from Kestra (HTTP {status}): {message}")]
    Unexpected { status: u16, message: String },
    /// The answer could not be read as the documented shape.
    #[error("could not read Kestra's answer: {0}")]
    Decode(String),
    /// The answer was not the JSON the route documents.
    #[error("could not read Kestra's answer: {0}")]
    Json(#[source] serde_json::Error),
    /// The operator's own settings make the request impossible.
    #[error("{0}")]
    Config(String),
    /// This replica lost the leader Lease: the call was not sent, or was abandoned.
    #[error("this replica is no longer the leader; the call to Kestra was abandoned")]
    Fenced,
}

impl KestraError {
    /// Classify an HTTP error status with the message parsed from its body.
    pub fn from_status(status: u16, body: &[u8]) -> Self {
        let message = error_message(body).unwrap_or_else(|| fallback_message(status, body));
        match status {
            401 | 403 => Self::Unauthorized { status, message },
            400 | 409 | 422 => Self::Rejected { status, message },
            408 | 429 | 500..=599 => Self::Unavailable {
                what: Unavailability::Status(status),
                message,
            },
            _ => Self::Unexpected { status, message },
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The same error with every copy of `secret` (and of the request body carrying it) cut
    /// out of Kestra's message: some versions quote the whole body in their errors.
    pub fn without(self, secrets: &[&str]) -> Self {
        let scrub = |message: String| redact(message, secrets);
        match self {
            Self::Unavailable { what, message } => Self::Unavailable {
                what,
                message: scrub(message),
            },
            Self::Unauthorized { status, message } => Self::Unauthorized {
                status,
                message: scrub(message),
            },
            Self::Rejected { status, message } => Self::Rejected {
                status,
                message: scrub(message),
            },
            Self::Unexpected { status, message } => Self::Unexpected {
                status,
                message: scrub(message),
            },
            Self::Decode(message) => Self::Decode(scrub(message)),
            // serde_json may quote a value of the body: keep the typed error unless it holds one.
            Self::Json(e) => {
                let text = e.to_string();
                let scrubbed = scrub(text.clone());
                if scrubbed == text {
                    Self::Json(e)
                } else {
                    Self::Decode(scrubbed)
                }
            }
            other @ (Self::Config(_) | Self::Fenced) => other,
        }
    }
}

/// Replace each non-empty secret in `message` (longest first, so that a body containing the
/// value goes whole) with a marker.
fn redact(mut message: String, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .copied()
        .filter(|s| !s.trim().is_empty())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if message.contains(secret) {
            message = message.replace(secret, "<value from a Secret, not shown>");
        }
    }
    message
}

fn fallback_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status} with an empty body")
    } else {
        truncate(text, 300)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Micronaut `JsonError` (Kestra 0.x/1.x).
#[derive(Deserialize)]
struct JsonError {
    message: Option<String>,
    #[serde(rename = "_embedded")]
    embedded: Option<JsonErrorEmbedded>,
}

#[derive(Deserialize)]
struct JsonErrorEmbedded {
    #[serde(default)]
    errors: Vec<JsonErrorItem>,
}

#[derive(Deserialize)]
struct JsonErrorItem {
    message: Option<String>,
}

/// RFC 9457 problem details (newest Kestra).
#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<ProblemItem>,
}

#[derive(Deserialize)]
struct ProblemItem {
    detail: Option<String>,
    path: Option<String>,
    pointer: Option<String>,
}

/// The human message of an error body in either format, `None` if it is neither.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("status").is_some()
        && (value.get("detail").is_some() || value.get("title").is_some())
    {
        let problem: Problem = serde_json::from_value(value).ok()?;
        let mut message = problem.detail.or(problem.title)?;
        let details: Vec<String> = problem
            .errors
            .into_iter()
            .filter_map(|e| {
                let detail = e.detail?;
                Some(match e.path.or(e.pointer) {
                    Some(path) if !message.contains(&detail) => format!("{path}: {detail}"),
                    _ => detail,
                })
            })
            .filter(|d| !message.contains(d.as_str()))
            .collect();
        if !details.is_empty() {
            message = format!("{} ({})", message.trim_end(), details.join("; "));
        }
        return Some(truncate(message.trim(), 1000));
    }
    let error: JsonError = serde_json::from_value(value).ok()?;
    let mut message = error.message?;
    let details: Vec<String> = error
        .embedded
        .map(|e| e.errors.into_iter().filter_map(|i| i.message).collect())
        .unwrap_or_default();
    let extra: Vec<&String> = details
        .iter()
        .filter(|d| !message.contains(d.as_str()))
        .collect();
    if !extra.is_empty() {
        message = format!(
            "{} ({})",
            message.trim_end(),
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    // Kestra 1.3 ends its validation messages with a line break.
    Some(truncate(message.trim(), 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_keeps_its_source_unless_it_quotes_a_secret() {
        use std::error::Error as _;
        let bad = |body: &str| KestraError::Json(serde_json::from_str::<u64>(body).unwrap_err());
        let plain = bad(r#""text""#).without(&["tok-123"]);
        assert!(matches!(plain, KestraError::Json(_)));
        assert!(plain.source().is_some());
        let quoted = bad(r#""tok-123""#).without(&["tok-123"]);
        assert!(matches!(quoted, KestraError::Decode(_)), "{quoted:?}");
        assert!(!quoted.to_string().contains("tok-123"), "{quoted}");
    }

    #[test]
    fn parses_legacy_json_error() {
        let body = br#"{"message":"Invalid entity: flow.id: Illegal flow id update","_links":{"self":{"href":"/api/v1/main/flows/a/b","templated":false}},"_embedded":{"errors":[{"message":"Invalid entity: flow.id: Illegal flow id update","path":"flow.id"}]}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Invalid entity: flow.id: Illegal flow id update")
        );
    }

    #[test]
    fn kestra_line_breaks_around_a_message_are_dropped() {
        let body =
            br#"{"message":"Invalid entity: hello.message: must not be null\n","_embedded":{}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Invalid entity: hello.message: must not be null")
        );
    }

    #[test]
    fn legacy_error_appends_distinct_embedded_messages() {
        let body = br#"{"message":"Invalid entity","_embedded":{"errors":[{"message":"tasks: must not be empty"}]}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Invalid entity (tasks: must not be empty)")
        );
    }

    #[test]
    fn parses_problem_json() {
        let body = br#"{"type":"https://kestra.io/docs/api-reference/problems/invalid-entity","title":"Invalid entity","status":422,"detail":"Flow is invalid","instance":"/api/v1/main/flows","errors":[{"detail":"must not be empty","pointer":"/tasks","path":"tasks"}]}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Flow is invalid (tasks: must not be empty)")
        );
    }

    #[test]
    fn classifies_statuses() {
        assert!(matches!(
            KestraError::from_status(401, b""),
            KestraError::Unauthorized { .. }
        ));
        assert!(matches!(
            KestraError::from_status(403, b""),
            KestraError::Unauthorized { .. }
        ));
        assert!(matches!(
            KestraError::from_status(422, b"{}"),
            KestraError::Rejected { .. }
        ));
        assert!(matches!(
            KestraError::from_status(409, b""),
            KestraError::Rejected { .. }
        ));
        assert!(KestraError::from_status(500, b"").is_transient());
        assert!(KestraError::from_status(503, b"").is_transient());
        assert!(KestraError::from_status(429, b"").is_transient());
        assert!(matches!(
            KestraError::from_status(404, b""),
            KestraError::Unexpected { .. }
        ));
    }

    #[test]
    fn plain_text_body_becomes_the_message() {
        let err = KestraError::from_status(502, b"Bad Gateway");
        assert_eq!(
            err.to_string(),
            "Kestra is unavailable (HTTP 502): Bad Gateway"
        );
    }

    #[test]
    fn secrets_are_cut_out_of_kestra_messages() {
        let body = br#"{"message":"Invalid JSON value for: \"hunter2-secret\""}"#;
        let err =
            KestraError::from_status(422, body).without(&["\"hunter2-secret\"", "hunter2-secret"]);
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("HTTP 422") && text.contains("Invalid JSON value for"),
            "{text}"
        );
        // An empty secret removes nothing.
        assert_eq!(redact("a b".into(), &["", " "]), "a b");
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert_eq!(error_message(b"\xff\xfe"), None);
        assert_eq!(error_message(b"[1,2]"), None);
    }
}
