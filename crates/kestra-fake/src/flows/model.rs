//! The flow model: validation of a YAML source, revisions and their JSON.

use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::schema::{Refusal, entity_error, schema};
use crate::errors::{ApiError, Violation};

/// One stored revision of a flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowRevision {
    pub revision: u32,
    pub deleted: bool,
    pub updated: DateTime<Utc>,
    /// The YAML exactly as sent.
    pub source: String,
    /// The YAML as a JSON document, with `id` and `namespace` as strings.
    pub doc: Value,
}

/// What a YAML source says about itself, valid or not.
#[derive(Debug, Default)]
pub struct FlowCheck {
    pub id: Option<String>,
    pub namespace: Option<String>,
    pub doc: Option<Value>,
    /// Why Kestra refuses it; `None` when it is valid.
    pub refusal: Option<Refusal>,
    /// Notes on a valid flow (legacy task types), as `validate` lists them.
    pub infos: Vec<String>,
}

/// A valid flow: id, namespace and document.
#[derive(Debug)]
pub struct ParsedFlow {
    pub id: String,
    pub namespace: String,
    pub doc: Value,
}

impl FlowCheck {
    /// The valid flow, or the 422 Kestra answers a create or update with.
    pub fn into_parsed(self, v2: bool) -> Result<ParsedFlow, ApiError> {
        if let Some(refusal) = &self.refusal {
            let (message, errors) = entity_error(refusal, v2);
            return Err(ApiError::Entity {
                message,
                errors: errors
                    .into_iter()
                    .map(|(path, message)| Violation::new(path, message))
                    .collect(),
            });
        }
        match (self.id, self.namespace, self.doc) {
            (Some(id), Some(namespace), Some(doc)) => Ok(ParsedFlow { id, namespace, doc }),
            _ => Err(ApiError::Internal(
                "a valid flow without id or namespace".into(),
            )),
        }
    }
}

#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static ERROR_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"line (\d+) column (\d+)").expect("static regex"));

/// SnakeYAML's words (which `POST /flows/validate` quotes) for the syntax error of `source`,
/// when it is a `:` met inside an unclosed flow sequence (`id: [unclosed` then `key: value`);
/// `None` for other errors or a valid document.
pub fn snakeyaml_syntax_error(source: &str) -> Option<String> {
    let error = serde_saphyr::from_str::<Value>(source).err()?.to_string();
    let caps = ERROR_LINE.captures(&error)?;
    let (line, column): (usize, usize) = (caps[1].parse().ok()?, caps[2].parse().ok()?);
    let lines: Vec<&str> = source.lines().collect();
    let error_text = *lines.get(line.checked_sub(1)?)?;
    if error_text.chars().nth(column.checked_sub(1)?) != Some(':') {
        return None;
    }
    // The flow sequence left open before the error.
    let mut open = Vec::new();
    for (i, text) in lines.iter().enumerate().take(line) {
        for (j, c) in text.chars().enumerate() {
            if i + 1 == line && j + 1 >= column {
                break;
            }
            match c {
                '[' | '{' => open.push((i + 1, j + 1, c)),
                ']' | '}' => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    let (open_line, open_column, '[') = *open.last()? else {
        return None;
    };
    let snippet = |n: usize, col: usize| {
        format!(
            " in 'reader', line {n}, column {col}:\n    {}\n    {}^",
            lines[n - 1],
            " ".repeat(col - 1)
        )
    };
    Some(format!(
        "while parsing a flow sequence\n{}\nexpected ',' or ']', but got :\n{}\n\n at [Source: \
         (StringReader); line: {line}, column: {column}] (at line {line})",
        snippet(open_line, open_column),
        snippet(line, column)
    ))
}

/// Jackson binds the YAML while it reads it: a flow collection opened as the value of a string
/// field (`id: [`) fails there, before a syntax error further on (`error_line`) is met.
fn collection_in_string_field(source: &str, error_line: Option<usize>) -> Option<String> {
    for (i, line) in source.lines().enumerate() {
        let n = i + 1;
        if error_line.is_some_and(|limit| n > limit) {
            break;
        }
        for field in ["id", "namespace"] {
            let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) else {
                continue;
            };
            let value = rest.trim_start();
            let (kind, token) = match value.chars().next() {
                Some('[') => ("Array", "START_ARRAY"),
                Some('{') => ("Object", "START_OBJECT"),
                _ => continue,
            };
            let column = line.len() - value.len() + 1;
            return Some(format!(
                "Cannot deserialize value of type `java.lang.String` from {kind} value (token \
                 `JsonToken.{token}`)\n at [Source: (StringReader); line: {n}, column: \
                 {column}] (through reference chain: \
                 io.kestra.core.models.flows.GenericFlow[\"{field}\"]) (at line {n})"
            ));
        }
    }
    None
}

/// Jackson's words for a document that is not a flow (`YAML parsing error: ...`).
fn not_a_flow(value: &Value) -> String {
    let shown = match value {
        Value::String(s) => format!("String value ('{s}')"),
        Value::Array(_) => "Array value".to_owned(),
        other => format!("value ({other})"),
    };
    format!(
        "Cannot construct instance of `io.kestra.core.models.flows.GenericFlow` (although at \
         least one Creator exists): no String-argument constructor/factory method to \
         deserialize from {shown}\n at [Source: (StringReader); line: 1, column: 1] (at line 1)"
    )
}

/// Validates one YAML document the way Kestra does, against the flow schema of the version
/// the double plays (see [`super::schema`]).
pub fn check_flow(source: &str, v2: bool) -> FlowCheck {
    let mut check = FlowCheck::default();
    if source.trim().is_empty() {
        check.refusal = Some(Refusal::Yaml(
            "No content to map due to end-of-input\n at [Source: (StringReader); line: 1, \
             column: 1] (at line 1)"
                .to_owned(),
        ));
        return check;
    }
    let mut doc = match serde_saphyr::from_str::<Value>(source) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            check.refusal = Some(Refusal::Yaml(not_a_flow(&other)));
            return check;
        }
        Err(error) => {
            let text = error.to_string();
            let error_line = ERROR_LINE
                .captures(&text)
                .and_then(|c| c[1].parse::<usize>().ok());
            let jackson = collection_in_string_field(source, error_line);
            check.refusal = Some(Refusal::Yaml(jackson.unwrap_or(text)));
            return check;
        }
    };
    if let Some(jackson) = collection_in_string_field(source, None).filter(|_| {
        !matches!(doc.get("id"), Some(Value::String(_)))
            || !matches!(doc.get("namespace"), Some(Value::String(_)))
    }) {
        check.refusal = Some(Refusal::Yaml(jackson));
        return check;
    }
    // Jackson reads scalars into the string fields.
    for field in ["id", "namespace"] {
        if let Some(v @ (Value::Number(_) | Value::Bool(_))) = doc.get(field) {
            let text = v.to_string();
            doc.insert(field.into(), Value::String(text));
        }
    }
    check.id = doc.get("id").and_then(Value::as_str).map(str::to_owned);
    check.namespace = doc
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // A null is an absent value to the model's constraints.
    let mut checked = doc.clone();
    checked.retain(|_, v| !v.is_null());
    match schema(v2).check(&checked) {
        Ok(infos) => check.infos = infos,
        Err(refusal) => check.refusal = Some(refusal),
    }
    check.doc = Some(Value::Object(doc));
    check
}

/// Splits a multi-document body on `---` lines, skipping empty documents.
pub fn split_documents(body: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in body.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
        }
    }
    docs.push(current);
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

/// How a flow is shown: what Kestra's answer shapes depend on.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// `FlowWithSource` (with `source`).
    pub with_source: bool,
    /// Kestra 2.0: every flow has `draft`, and a deleted one keeps `updated`.
    pub v2: bool,
}

/// The JSON of a freshly written revision (the create/update answer): Kestra leaves out
/// `updated` and the empty `triggers` there.
pub fn written_flow_json(rev: &FlowRevision, v2: bool) -> Value {
    let mut json = flow_json(
        rev,
        Shape {
            with_source: true,
            v2,
        },
    );
    if let Value::Object(obj) = &mut json {
        obj.remove("updated");
        if obj.get("triggers").is_some_and(|t| t == &json!([])) {
            obj.remove("triggers");
        }
    }
    json
}

/// The `Flow` JSON of a stored revision; `FlowWithSource` when `shape.with_source`.
pub fn flow_json(rev: &FlowRevision, shape: Shape) -> Value {
    let with_source = shape.with_source;
    let mut obj = match &rev.doc {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    // Kestra serializes labels as a list of key/value pairs whatever the YAML used.
    if let Some(Value::Object(labels)) = obj.get("labels") {
        let list = labels
            .iter()
            .map(|(k, v)| {
                let value = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                json!({ "key": k, "value": value })
            })
            .collect();
        obj.insert("labels".into(), Value::Array(list));
    }
    let disabled = obj
        .get("disabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    obj.insert("disabled".into(), Value::Bool(disabled));
    obj.insert("deleted".into(), Value::Bool(rev.deleted));
    if shape.v2 {
        obj.insert("draft".into(), Value::Bool(false));
    }
    obj.insert("revision".into(), json!(rev.revision));
    // Kestra 1.x shows a deleted revision without `updated`.
    if !rev.deleted || shape.v2 {
        obj.insert(
            "updated".into(),
            Value::String(rev.updated.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
    }
    if !matches!(obj.get("triggers"), Some(Value::Array(_))) {
        obj.insert("triggers".into(), json!([]));
    }
    if with_source {
        obj.insert("source".into(), Value::String(rev.source.clone()));
    } else {
        obj.remove("source");
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "id: hello\nnamespace: company.team\ntasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n";

    #[test]
    fn a_valid_flow_passes() {
        for v2 in [false, true] {
            let check = check_flow(VALID, v2);
            assert!(check.refusal.is_none(), "{:?}", check.refusal);
            assert_eq!(check.id.as_deref(), Some("hello"));
            assert_eq!(check.namespace.as_deref(), Some("company.team"));
        }
    }

    #[test]
    fn refusals_say_what_kestra_says() {
        let check = check_flow(
            "namespace: Bad NS\ntasks:\n  - id: t\n    type: Log\n",
            false,
        );
        assert_eq!(check.refusal, Some(Refusal::InvalidType("Log".into())));
        let check = check_flow("id: kill\nnamespace: a\ntasks: []\n", false);
        let Some(Refusal::Violations(v)) = check.refusal else {
            panic!("refused");
        };
        assert_eq!(v.len(), 2, "{v:?}");
        let check = check_flow("", false);
        assert!(matches!(check.refusal, Some(Refusal::Yaml(_))));
        let check = check_flow("id: [unclosed\n", false);
        assert!(matches!(check.refusal, Some(Refusal::Yaml(_))));
    }

    #[test]
    fn syntax_errors_in_snakeyaml_words() {
        assert_eq!(
            snakeyaml_syntax_error("id: [unclosed\nnamespace: a\n").as_deref(),
            Some(
                "while parsing a flow sequence\n in 'reader', line 1, column 5:\n    id: \
                 [unclosed\n        ^\nexpected ',' or ']', but got :\n in 'reader', line 2, \
                 column 10:\n    namespace: a\n             ^\n\n at [Source: (StringReader); \
                 line: 2, column: 10] (at line 2)"
            )
        );
        assert_eq!(snakeyaml_syntax_error("id: x\n"), None);
    }

    #[test]
    fn documents_split_on_separator_lines() {
        assert_eq!(
            split_documents("---\na: 1\n---\nb: 2\n--- \n\n"),
            vec!["a: 1\n".to_owned(), "b: 2\n".to_owned()]
        );
        assert_eq!(split_documents("a: '---'\n"), vec!["a: '---'\n".to_owned()]);
    }

    #[test]
    fn labels_become_key_value_pairs() {
        let check = check_flow(&format!("{VALID}labels:\n  team: data\n"), false);
        let rev = FlowRevision {
            revision: 2,
            deleted: false,
            updated: Utc::now(),
            source: VALID.into(),
            doc: check.doc.unwrap(),
        };
        let json = flow_json(
            &rev,
            Shape {
                with_source: false,
                v2: false,
            },
        );
        assert_eq!(json["labels"], json!([{ "key": "team", "value": "data" }]));
        assert_eq!(json["revision"], 2);
        assert_eq!(json["disabled"], false);
        assert!(json.get("source").is_none());
    }
}
