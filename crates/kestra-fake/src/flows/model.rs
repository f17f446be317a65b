//! The flow model: validation of a YAML source, revisions and their JSON.

use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, Violation};

static FLOW_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$").expect("static regex"));
static NAMESPACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]*$").expect("static regex"));

/// Ids the API uses as path words since 1.0.
const RESERVED_IDS: &[&str] = &[
    "pause",
    "resume",
    "force-run",
    "change-status",
    "kill",
    "executions",
    "search",
    "source",
    "disable",
    "enable",
];

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
    pub violations: Vec<Violation>,
}

/// A valid flow: id, namespace and document.
#[derive(Debug)]
pub struct ParsedFlow {
    pub id: String,
    pub namespace: String,
    pub doc: Value,
}

impl FlowCheck {
    pub fn into_parsed(self) -> Result<ParsedFlow, ApiError> {
        match (self.id, self.namespace, self.doc) {
            (Some(id), Some(namespace), Some(doc)) if self.violations.is_empty() => {
                Ok(ParsedFlow { id, namespace, doc })
            }
            _ => Err(ApiError::Constraint(self.violations)),
        }
    }
}

/// Validates one YAML document the way Kestra's model validation does, permissively: only
/// what the operator can get wrong (kestra-api.md section 2) is checked.
pub fn check_flow(source: &str) -> FlowCheck {
    let mut check = FlowCheck::default();
    let doc = match serde_saphyr::from_str::<Value>(source) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            check
                .violations
                .push(Violation::new("flow", "must be a YAML mapping"));
            return check;
        }
        Err(error) => {
            check
                .violations
                .push(Violation::new("flow", format!("Invalid YAML: {error}")));
            return check;
        }
    };
    check.id = check_identifier(&doc, "id", &FLOW_ID, 100, &mut check.violations);
    check.namespace = check_identifier(&doc, "namespace", &NAMESPACE, 150, &mut check.violations);
    if let Some(id) = &check.id
        && RESERVED_IDS.contains(&id.as_str())
    {
        check.violations.push(Violation::new(
            "flow.id",
            format!("Flow id '{id}' is a reserved keyword"),
        ));
    }
    check_tasks(doc.get("tasks"), &mut check.violations);

    let mut doc = doc;
    if let Some(id) = &check.id {
        doc.insert("id".into(), Value::String(id.clone()));
    }
    if let Some(namespace) = &check.namespace {
        doc.insert("namespace".into(), Value::String(namespace.clone()));
    }
    check.doc = Some(Value::Object(doc));
    check
}

/// Returns the identifier as a string when present (even if invalid, for `validate`).
fn check_identifier(
    doc: &Map<String, Value>,
    field: &str,
    pattern: &Regex,
    max_len: usize,
    violations: &mut Vec<Violation>,
) -> Option<String> {
    let path = format!("flow.{field}");
    let value = match doc.get(field) {
        None | Some(Value::Null) => {
            violations.push(Violation::new(path, "must not be null"));
            return None;
        }
        Some(Value::String(s)) => s.clone(),
        // YAML reads `id: 123` as a number; Jackson would coerce it to a string.
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(_) => {
            violations.push(Violation::new(path, "must be a string"));
            return None;
        }
    };
    if value.is_empty() || value.chars().count() > max_len {
        violations.push(Violation::new(
            path.clone(),
            format!("size must be between 1 and {max_len}"),
        ));
    }
    if !pattern.is_match(&value) {
        let shown = pattern.as_str().trim_end_matches('$');
        violations.push(Violation::new(path, format!("must match \"{shown}\"")));
    }
    Some(value)
}

fn check_tasks(tasks: Option<&Value>, violations: &mut Vec<Violation>) {
    let tasks = match tasks {
        Some(Value::Array(tasks)) if !tasks.is_empty() => tasks,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            violations.push(Violation::new("flow.tasks", "must not be empty"));
            return;
        }
        Some(_) => {
            violations.push(Violation::new("flow.tasks", "must be a list"));
            return;
        }
    };
    for (i, task) in tasks.iter().enumerate() {
        let path = format!("flow.tasks[{i}]");
        let Value::Object(task) = task else {
            violations.push(Violation::new(path, "must be a mapping"));
            continue;
        };
        if !matches!(task.get("id"), Some(Value::String(id)) if !id.is_empty()) {
            violations.push(Violation::new(format!("{path}.id"), "must not be null"));
        }
        match task.get("type") {
            // Plugin types are fully qualified class names: without a dot none can exist.
            Some(Value::String(t)) if t.contains('.') => {}
            Some(Value::String(t)) => {
                violations.push(Violation::new(
                    format!("{path}.type"),
                    format!("Invalid type: {t}"),
                ));
            }
            _ => violations.push(Violation::new(format!("{path}.type"), "must not be null")),
        }
    }
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
    use crate::errors::join_violations;

    const VALID: &str = "id: hello\nnamespace: company.team\ntasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n";

    #[test]
    fn a_valid_flow_passes() {
        let check = check_flow(VALID);
        assert!(check.violations.is_empty(), "{:?}", check.violations);
        assert_eq!(check.id.as_deref(), Some("hello"));
        assert_eq!(check.namespace.as_deref(), Some("company.team"));
    }

    #[test]
    fn violations_name_their_path() {
        let check = check_flow("namespace: Bad NS\ntasks:\n  - id: t\n    type: Log\n");
        assert_eq!(
            join_violations(&check.violations),
            "flow.id: must not be null, flow.namespace: must match \"^[a-z0-9][a-z0-9._-]*\", \
             flow.tasks[0].type: Invalid type: Log"
        );
        let check = check_flow("id: kill\nnamespace: a\ntasks: []\n");
        assert_eq!(
            join_violations(&check.violations),
            "flow.id: Flow id 'kill' is a reserved keyword, flow.tasks: must not be empty"
        );
        let check = check_flow("id: [unclosed\n");
        assert_eq!(check.violations.len(), 1);
        assert!(check.violations[0].message.starts_with("Invalid YAML"));
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
        let check = check_flow(&format!("{VALID}labels:\n  team: data\n"));
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
