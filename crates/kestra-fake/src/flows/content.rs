//! Which content types the flow routes take, per Kestra line (transcript `content-types`):
//! 1.3 also takes a flow as JSON (the deprecated route; the stored source is YAML generated
//! from it) and reads a body without content type as JSON; 2.0 takes YAML only, with or
//! without a content type.

use http::{HeaderMap, header};
use serde_json::{Map, Value};

use crate::errors::ApiError;

/// The route a flow body is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowRoute {
    Create,
    Update,
    Validate,
}

/// A flow body as the route reads it.
#[derive(Debug)]
pub enum FlowBody {
    /// YAML source (also multipart for validate, read by the handler).
    Yaml,
    /// A flow as a JSON document (1.3): stored as YAML generated from it.
    Json(Value),
    /// Multipart (validate only).
    Multipart,
}

/// Jackson's text for a body that is not JSON.
pub fn unrecognized_token(body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body);
    let token: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect();
    ApiError::Internal(format!(
        "Unrecognized token '{token}': was expecting (JSON String, Number, Array, Object or \
         token 'null', 'true' or 'false')\n at [Source: REDACTED \
         (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: 1, column: 1]"
    ))
}

fn not_allowed(content_type: &str, allowed: &str) -> ApiError {
    ApiError::UnsupportedMediaType(format!(
        "Content Type [{content_type}] not allowed. Allowed types: [{allowed}]"
    ))
}

/// Decides how `route` reads `body` sent with `headers`, or Kestra's refusal.
pub fn read(
    headers: &HeaderMap,
    body: &[u8],
    route: FlowRoute,
    v2: bool,
) -> Result<FlowBody, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let essence = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let shown = content_type.unwrap_or("");
    let as_json = || {
        serde_json::from_slice::<Value>(body)
            .map(FlowBody::Json)
            .map_err(|_| unrecognized_token(body))
    };
    match (v2, route, essence.as_str()) {
        (_, _, "application/x-yaml") => Ok(FlowBody::Yaml),
        (_, FlowRoute::Validate, "multipart/form-data") => Ok(FlowBody::Multipart),
        (true, FlowRoute::Validate, _) => Err(not_allowed(
            shown,
            "application/x-yaml, multipart/form-data",
        )),
        (true, _, "") => Ok(FlowBody::Yaml),
        (true, _, _) => Err(not_allowed(shown, "application/x-yaml")),
        (false, FlowRoute::Validate, "" | "application/json") => Ok(FlowBody::Yaml),
        (false, FlowRoute::Validate, _) => Err(not_allowed(
            shown,
            "application/x-yaml, application/json, multipart/form-data",
        )),
        (false, _, "" | "application/json") => as_json(),
        (false, FlowRoute::Create, "application/yaml") => Err(ApiError::InvalidRouteParams(
            "Required Body [flow] not specified".to_owned(),
        )),
        (false, FlowRoute::Create, _) => Err(ApiError::Verbatim(
            422,
            "Internal server error: Cannot convert type [class java.lang.String] to target \
             type: class io.kestra.core.models.flows.Flow. Considering defining a TypeConverter \
             bean to handle this case."
                .to_owned(),
        )),
        (false, FlowRoute::Update, _) => {
            Err(not_allowed(shown, "application/x-yaml, application/json"))
        }
    }
}

/// Keys Kestra's model writes first, in its order; the others follow by name.
const KEY_ORDER: &[&str] = &[
    "id",
    "namespace",
    "type",
    "revision",
    "description",
    "labels",
    "inputs",
    "variables",
    "tasks",
    "errors",
    "finally",
    "afterExecution",
    "triggers",
];

pub fn ordered(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by_key(|(k, _)| {
        (
            KEY_ORDER
                .iter()
                .position(|o| o == k)
                .unwrap_or(KEY_ORDER.len()),
            (*k).clone(),
        )
    });
    entries
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let plain = !s.is_empty()
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.contains('\n')
                && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
                && !s.ends_with([' ', ':'])
                && serde_saphyr::from_str::<Value>(s).ok().as_ref() == Some(value);
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        other => other.to_string(),
    }
}

fn emit(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, field) in ordered(map) {
                out.push_str(&pad);
                out.push_str(&scalar(&Value::String(key.clone())));
                match field {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push_str(":\n");
                        emit(field, indent + 2, out);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        out.push_str(":\n");
                        emit(field, indent, out);
                    }
                    Value::Object(_) => out.push_str(": {}\n"),
                    Value::Array(_) => out.push_str(": []\n"),
                    other => {
                        out.push_str(": ");
                        out.push_str(&scalar(other));
                        out.push('\n');
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push_str(inner.trim_start());
                    }
                    Value::Array(list) if !list.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push_str(inner.trim_start());
                    }
                    other => {
                        out.push_str(&scalar(other));
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// The YAML source Kestra generates for a flow sent as JSON (Jackson's YAML writer: no
/// document marker, list items at the key's indentation, quotes only where needed).
pub fn yaml_of(flow: &Value) -> String {
    let mut out = String::new();
    emit(flow, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_flows_become_kestra_yaml() {
        let flow = json!({"id": "c2", "namespace": "tx.ctype", "tasks": [
            {"id": "t", "type": "io.kestra.plugin.core.log.Log", "message": "hi"}]});
        assert_eq!(
            yaml_of(&flow),
            "id: c2\nnamespace: tx.ctype\ntasks:\n- id: t\n  type: io.kestra.plugin.core.log.Log\n  message: hi\n"
        );
        let odd = json!({"id": "x", "labels": {"a": "true", "b": ""}, "list": [1, [2]]});
        let yaml = yaml_of(&odd);
        assert_eq!(
            serde_saphyr::from_str::<Value>(&yaml).unwrap(),
            odd,
            "{yaml}"
        );
    }
}
