//! Flow validation against the flow JSON schema each recorded Kestra version publishes
//! (`GET /api/v1/plugins/schemas/flow`, core plugins only; copies under `schemas/`), with the
//! schema's findings worded as Kestra words its refusals (transcripts `flow-create-invalid`,
//! `flow-validate`).
//!
//! The schema says which task types exist (and, in 1.3, which legacy aliases a type still
//! accepts), which properties a flow and each task have, which are required, and their
//! patterns and sizes. Kestra reads a flow in two stages, and so does the double: the YAML is
//! bound to the model first (unknown top-level property, unknown task type: one error, nothing
//! else is checked), then the model's constraints are checked all at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator, options};
use serde_json::{Map, Value, json};

const SCHEMA_1_3: &str = include_str!("../../schemas/flow-schema-1.3.31.json");
const SCHEMA_2_0: &str = include_str!("../../schemas/flow-schema-2.0.0.json");

const FLOW: &str = "io.kestra.core.models.flows.Flow";
/// The top-level flow definition with its task lists reduced to "objects": tasks are checked
/// one by one against their own type, which gives Kestra's per-property findings instead of
/// the `anyOf` of every task type.
const FLOW_TOP: &str = "kestra-fake.FlowTopLevel";
/// Flow properties that hold tasks.
const TASK_LISTS: &[&str] = &["tasks", "errors", "finally", "afterExecution"];
/// Flow properties whose items are typed plugins, checked one by one against their type.
const PLUGIN_LISTS: &[&str] = &["tasks", "errors", "finally", "afterExecution", "triggers"];
/// The packages of the plugins bundled with Kestra, which the recorded schemas describe
/// whole: a type there that the schema lacks does not exist.
const CORE_PACKAGES: &[&str] = &["io.kestra.plugin.core.", "io.kestra.core."];

/// Whether a type the schema does not know may still exist: a fully qualified class outside
/// the core packages, i.e. a plugin the recorded servers did not have installed.
fn may_be_other_plugin(type_name: &str) -> bool {
    type_name.contains('.') && !CORE_PACKAGES.iter().any(|p| type_name.starts_with(p))
}

/// The properties Jackson lists when it meets an unknown top-level key, in its order.
const KNOWN_1_3: &[&str] = &[
    "workerGroup",
    "finally",
    "tenantId",
    "retry",
    "inputs",
    "errors",
    "tasks",
    "outputs",
    "concurrency",
    "variables",
    "deleted",
    "id",
    "description",
    "labels",
    "pluginDefaults",
    "sla",
    "checks",
    "taskDefaults",
    "namespace",
    "disabled",
    "listeners",
    "revision",
    "updated",
    "afterExecution",
    "triggers",
    "source",
];
const KNOWN_2_0: &[&str] = &[
    "draft",
    "finally",
    "tenantId",
    "retry",
    "inputs",
    "errors",
    "tasks",
    "outputs",
    "concurrency",
    "variables",
    "deleted",
    "id",
    "description",
    "workerSelector",
    "labels",
    "sla",
    "checks",
    "policyRefs",
    "namespace",
    "disabled",
    "revision",
    "updated",
    "afterExecution",
    "triggers",
    "quotas",
    "source",
];

/// Ids the API used as path words until 2.0 (1.3 refuses them as flow ids).
const RESERVED_IDS: &str =
    "pause, resume, force-run, change-status, kill, executions, search, source, disable, enable";

/// One broken model constraint: `path` as in `_embedded.errors` (`tasks[0].message`), `shown`
/// as in the message (`t.message` in 1.3, `tasks[t].message` in 2.0, empty for flow-wide
/// rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowViolation {
    pub path: String,
    pub shown: String,
    pub message: String,
}

impl FlowViolation {
    fn new(path: impl Into<String>, shown: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            shown: shown.into(),
            message: message.into(),
        }
    }
}

/// Why Kestra refuses a flow source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The model's constraints (bean validation and the flow-wide rules), all at once.
    Violations(Vec<FlowViolation>),
    /// A task type no plugin provides: binding stops there.
    InvalidType(String),
    /// An unknown top-level property: binding stops there.
    UnknownProperty(String),
    /// The source is not a flow document; the text after `YAML parsing error: `.
    Yaml(String),
}

/// One version's schema, with what Kestra's binding needs from it.
pub struct FlowSchema {
    v2: bool,
    /// Every definition, patterns anchored at both ends (Java's `@Pattern` matches whole).
    root: Value,
    /// Top-level properties of a flow.
    flow_properties: HashSet<String>,
    /// Task type -> (definition name, the type that replaces it when it is a legacy alias).
    task_types: HashMap<String, (String, Option<String>)>,
    flow_top: Validator,
    tasks: Mutex<HashMap<String, Arc<Validator>>>,
}

static V1_3: LazyLock<FlowSchema> = LazyLock::new(|| FlowSchema::load(SCHEMA_1_3, false));
static V2_0: LazyLock<FlowSchema> = LazyLock::new(|| FlowSchema::load(SCHEMA_2_0, true));

/// The schema of the Kestra line the double plays.
pub fn schema(v2: bool) -> &'static FlowSchema {
    if v2 { &V2_0 } else { &V1_3 }
}

/// Java's `@Pattern` must match the whole value; JSON schema patterns match anywhere.
fn anchor_patterns(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    Value::String(pattern) if key == "pattern" => {
                        *pattern = format!("^(?:{})$", pattern.trim_start_matches('^'));
                    }
                    other => anchor_patterns(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(anchor_patterns),
        _ => {}
    }
}

fn definition_name(reference: &Value) -> Option<&str> {
    reference["$ref"].as_str()?.strip_prefix("#/definitions/")
}

fn compile(root: &Value, definition: &str) -> Validator {
    let mut schema = Map::new();
    schema.insert("$schema".into(), root["$schema"].clone());
    schema.insert("definitions".into(), root["definitions"].clone());
    schema.insert(
        "$ref".into(),
        Value::String(format!("#/definitions/{definition}")),
    );
    options()
        .should_validate_formats(false)
        .build(&Value::Object(schema))
        .unwrap_or_else(|e| panic!("the recorded flow schema compiles ({definition}): {e}"))
}

impl FlowSchema {
    #[expect(
        clippy::expect_used,
        reason = "the schema is compiled in; the replay tests load it"
    )]
    fn load(text: &str, v2: bool) -> Self {
        let mut root: Value = serde_json::from_str(text).expect("the recorded flow schema is JSON");
        anchor_patterns(&mut root);
        let flow = root["definitions"][FLOW].clone();
        let flow_properties = flow["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();

        let mut task_types = HashMap::new();
        for list in PLUGIN_LISTS {
            let candidates = flow["properties"][list]["items"]["anyOf"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for candidate in &candidates {
                let Some(name) = definition_name(candidate) else {
                    continue;
                };
                let type_schema = &root["definitions"][name]["properties"]["type"];
                let names: Vec<String> = match (&type_schema["const"], &type_schema["enum"]) {
                    (Value::String(one), _) => vec![one.clone()],
                    (_, Value::Array(many)) => many
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => vec![name.to_owned()],
                };
                // The first name is the type; the others are legacy aliases of it.
                for (i, type_name) in names.iter().enumerate() {
                    let replaced_by = (i > 0).then(|| names[0].clone());
                    task_types
                        .entry(type_name.clone())
                        .or_insert_with(|| (name.to_owned(), replaced_by));
                }
            }
        }

        let mut top = flow;
        for list in PLUGIN_LISTS {
            if let Some(property) = top["properties"].get_mut(*list) {
                property["items"] = json!({ "type": "object" });
            }
        }
        if let Some(definitions) = root["definitions"].as_object_mut() {
            definitions.insert(FLOW_TOP.into(), top);
        }
        let flow_top = compile(&root, FLOW_TOP);
        Self {
            v2,
            root,
            flow_properties,
            task_types,
            flow_top,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn task_validator(&self, definition: &str) -> Arc<Validator> {
        let mut cache = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(definition.to_owned())
            .or_insert_with(|| Arc::new(compile(&self.root, definition)))
            .clone()
    }

    /// The bounds of a property of a definition, for `size must be between` texts.
    fn size_bounds(&self, definition: &str, property: &str) -> (u64, Option<u64>) {
        let node = &self.root["definitions"][definition]["properties"][property];
        let min = node["minLength"]
            .as_u64()
            .or_else(|| node["minItems"].as_u64())
            .unwrap_or(0);
        let max = node["maxLength"]
            .as_u64()
            .or_else(|| node["maxItems"].as_u64());
        (min, max)
    }

    /// Checks a parsed flow document: `Err` with Kestra's refusal, or the `infos` of a valid
    /// flow (legacy task types that are replaced).
    pub fn check(&self, doc: &Map<String, Value>) -> Result<Vec<String>, Refusal> {
        // Binding: unknown top-level keys, then unknown task types.
        if let Some(key) = doc.keys().find(|k| {
            !self.flow_properties.contains(k.as_str())
                && !matches!(k.as_str(), "tenantId" | "source")
        }) {
            return Err(Refusal::UnknownProperty(key.clone()));
        }
        let mut infos = Vec::new();
        let mut typed_tasks = Vec::new();
        for list in PLUGIN_LISTS {
            let Some(Value::Array(tasks)) = doc.get(*list) else {
                continue;
            };
            for (index, task) in tasks.iter().enumerate() {
                if !task.is_object() {
                    continue;
                }
                // Kestra's PluginDeserializer (core/.../plugins/serdes/PluginDeserializer.java)
                // refuses a plugin without a type as the type `<null>`.
                let Some(type_name) = task
                    .get("type")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                else {
                    return Err(Refusal::InvalidType("<null>".to_owned()));
                };
                let Some((definition, replaced_by)) = self.task_types.get(type_name) else {
                    if may_be_other_plugin(type_name) {
                        // Not described by the core-only schema: taken as it is.
                        continue;
                    }
                    return Err(Refusal::InvalidType(type_name.to_owned()));
                };
                if let Some(new) = replaced_by {
                    infos.push(format!("{type_name} is replaced by {new}"));
                }
                typed_tasks.push((*list, index, task, definition.as_str()));
            }
        }

        // Constraints, all at once.
        let mut violations = Vec::new();
        let instance = Value::Object(doc.clone());
        for error in self.flow_top.iter_errors(&instance) {
            let at: Vec<String> = error
                .instance_path()
                .as_str()
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            violations.extend(self.word(&error, FLOW, &at, |p| p.to_owned()));
        }
        for (list, index, task, definition) in typed_tasks {
            let validator = self.task_validator(definition);
            let task_id = task.get("id").and_then(Value::as_str).unwrap_or("");
            for error in validator.iter_errors(task) {
                let at: Vec<String> = error
                    .instance_path()
                    .as_str()
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                let prefix = format!("{list}[{index}].");
                for mut violation in self.word(&error, definition, &at, |p| format!("{prefix}{p}"))
                {
                    // The message names the task by its id.
                    let rest = violation.path.strip_prefix(&prefix).unwrap_or_default();
                    violation.shown = if self.v2 {
                        format!("{list}[{task_id}].{rest}")
                    } else {
                        format!("{task_id}.{rest}")
                    };
                    violations.push(violation);
                }
            }
        }

        // The flow-wide rules (Kestra's FlowValidator).
        let mut seen = BTreeMap::new();
        for list in TASK_LISTS {
            collect_task_ids(doc.get(*list), &mut seen);
        }
        if let Some((id, _)) = seen.iter().find(|(_, n)| **n > 1) {
            violations.push(FlowViolation::new(
                "",
                "",
                format!("Invalid Flow: Duplicate task id with name [{id}]"),
            ));
        }
        if !self.v2
            && let Some(id) = doc.get("id").and_then(Value::as_str)
            && RESERVED_IDS.split(", ").any(|r| r == id)
        {
            violations.push(FlowViolation::new(
                "",
                "",
                format!(
                    "Invalid Flow: Flow id is a reserved keyword: {id}. List of reserved \
                     keywords: {RESERVED_IDS}"
                ),
            ));
        }
        if violations.is_empty() {
            Ok(infos)
        } else {
            Err(Refusal::Violations(violations))
        }
    }

    /// Kestra's wording of one schema finding at `at` (segments below the checked object).
    fn word(
        &self,
        error: &ValidationError<'_>,
        definition: &str,
        at: &[String],
        path_of: impl Fn(&str) -> String,
    ) -> Vec<FlowViolation> {
        let dotted = |segments: &[String]| {
            let mut out = String::new();
            for s in segments {
                if s.chars().all(|c| c.is_ascii_digit()) {
                    out.push_str(&format!("[{s}]"));
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(s);
                }
            }
            out
        };
        let make = |local: String, message: String| {
            let path = path_of(&local);
            FlowViolation::new(path.clone(), path, message)
        };
        let kind = error.kind();
        // Jackson reads a scalar into whatever scalar or expression the property takes, so
        // a scalar of another JSON type is not refused (`message: 42`, `timeout: "{{ x }}"`).
        if matches!(
            kind,
            ValidationErrorKind::Type { .. }
                | ValidationErrorKind::AnyOf { .. }
                | ValidationErrorKind::OneOfNotValid { .. }
        ) && !matches!(
            error.instance().as_ref(),
            Value::Object(_) | Value::Array(_)
        ) {
            return Vec::new();
        }
        let here = dotted(at);
        let top_property = at.first().map(String::as_str).unwrap_or("");
        match kind {
            ValidationErrorKind::Required { property } => {
                let property = property.as_str().unwrap_or_default();
                let local = if here.is_empty() {
                    property.to_owned()
                } else {
                    format!("{here}.{property}")
                };
                let at_flow = definition == FLOW && here.is_empty();
                if at_flow && property == "tasks" {
                    vec![make(local, "must not be empty".into())]
                } else if at_flow && property == "id" {
                    vec![
                        make(local.clone(), "must not be null".into()),
                        make(local, "must not be blank".into()),
                    ]
                } else {
                    vec![make(local, "must not be null".into())]
                }
            }
            ValidationErrorKind::MinItems { .. } => vec![make(here, "must not be empty".into())],
            ValidationErrorKind::Pattern { pattern } => {
                let shown = pattern
                    .strip_prefix("^(?:")
                    .and_then(|p| p.strip_suffix(")$"))
                    .map_or_else(|| pattern.clone(), |p| format!("^{p}"));
                vec![make(here, format!("must match \"{shown}\""))]
            }
            ValidationErrorKind::MinLength { .. } | ValidationErrorKind::MaxLength { .. } => {
                let definition = if definition == FLOW {
                    FLOW_TOP
                } else {
                    definition
                };
                let (min, max) = self.size_bounds(definition, top_property);
                let max = max.map_or_else(|| i32::MAX.to_string(), |m| m.to_string());
                vec![make(here, format!("size must be between {min} and {max}"))]
            }
            _ => vec![make(here, error.to_string())],
        }
    }
}

/// Counts task ids, nested task lists included.
fn collect_task_ids(tasks: Option<&Value>, seen: &mut BTreeMap<String, usize>) {
    let Some(Value::Array(tasks)) = tasks else {
        return;
    };
    for task in tasks {
        if let Some(id) = task.get("id").and_then(Value::as_str) {
            *seen.entry(id.to_owned()).or_default() += 1;
        }
        for list in ["tasks", "errors", "finally", "then", "else"] {
            collect_task_ids(task.get(list), seen);
        }
    }
}

/// The refusal in Kestra's create/update words: the 422 message and its `_embedded.errors`.
pub fn entity_error(refusal: &Refusal, v2: bool) -> (String, Vec<(String, String)>) {
    match refusal {
        Refusal::Violations(violations) => {
            let message: String = violations
                .iter()
                .map(|v| format!("{}: {}\n", v.shown, v.message))
                .collect();
            let errors = violations
                .iter()
                .map(|v| (v.path.clone(), v.message.clone()))
                .collect();
            (format!("Invalid entity: {message}"), errors)
        }
        Refusal::InvalidType(type_name) => {
            let at =
                "io.kestra.core.models.flows.FlowWithSource[\"tasks\"]->java.util.ArrayList[0]";
            let jackson = format!(
                "Could not resolve type id '{type_name}' as a subtype of \
                 `io.kestra.core.models.Plugin`: No plugin registered for the defined type: \
                 '{type_name}'\n at [Source: UNKNOWN; byte offset: #UNKNOWN] (through \
                 reference chain: {at})"
            );
            let invalid = format!("Invalid type: {type_name}");
            (
                format!("Invalid entity: {invalid}"),
                vec![(at.to_owned(), invalid), (at.to_owned(), jackson)],
            )
        }
        Refusal::UnknownProperty(key) => {
            let known = if v2 { KNOWN_2_0 } else { KNOWN_1_3 };
            let list: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
            let text = format!(
                "Unrecognized field \"{key}\" (class io.kestra.core.models.flows.FlowWithSource), \
                 not marked as ignorable ({} known properties: {})",
                known.len(),
                list.join(", ")
            );
            (
                format!("Invalid entity: {text}"),
                vec![(
                    format!("io.kestra.core.models.flows.FlowWithSource[\"{key}\"]"),
                    text,
                )],
            )
        }
        Refusal::Yaml(detail) => (
            format!("Invalid entity: Illegal genericflow source: YAML parsing error: {detail}"),
            vec![("yaml".to_owned(), format!("YAML parsing error: {detail}"))],
        ),
    }
}

/// The refusal as `POST /flows/validate` words it in `constraints`.
pub fn validate_constraints(refusal: &Refusal, v2: bool) -> String {
    match refusal {
        Refusal::Violations(violations) => {
            let lines: String = violations
                .iter()
                .map(|v| {
                    if v.shown.is_empty() {
                        format!(" {}\n", v.message)
                    } else {
                        format!("{}: {}\n", v.shown, v.message)
                    }
                })
                .collect();
            format!("Validation error: {lines}")
        }
        Refusal::InvalidType(type_name) => format!("Validation error: Invalid type: {type_name}"),
        Refusal::Yaml(detail) => {
            format!("Validation error: Illegal Flow source: YAML parsing error: {detail}")
        }
        Refusal::UnknownProperty(_) => {
            let (message, _) = entity_error(refusal, v2);
            format!(
                "Validation error: {}",
                message.trim_start_matches("Invalid entity: ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Map<String, Value> {
        match serde_saphyr::from_str::<Value>(yaml).unwrap() {
            Value::Object(map) => map,
            other => panic!("{other}"),
        }
    }

    const LOG: &str = "id: hello\nnamespace: company.team\ntasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n";
    const LEGACY: &str = "id: hello\nnamespace: company.team\ntasks:\n  - id: log\n    type: io.kestra.core.tasks.log.Log\n    message: hi\n";

    #[test]
    fn the_known_properties_are_the_schema_ones() {
        for (v2, known) in [(false, KNOWN_1_3), (true, KNOWN_2_0)] {
            let mut from_schema: Vec<&str> = schema(v2)
                .flow_properties
                .iter()
                .map(String::as_str)
                .chain(["tenantId", "source"])
                .collect();
            from_schema.sort_unstable();
            let mut known = known.to_vec();
            known.sort_unstable();
            assert_eq!(from_schema, known);
        }
    }

    #[test]
    fn a_log_with_a_message_is_valid_in_both_versions() {
        assert_eq!(schema(false).check(&doc(LOG)), Ok(vec![]));
        assert_eq!(schema(true).check(&doc(LOG)), Ok(vec![]));
    }

    #[test]
    fn the_legacy_log_is_an_alias_in_1_3_and_unknown_in_2_0() {
        assert_eq!(
            schema(false).check(&doc(LEGACY)),
            Ok(vec![
                "io.kestra.core.tasks.log.Log is replaced by io.kestra.plugin.core.log.Log".into()
            ])
        );
        assert_eq!(
            schema(true).check(&doc(LEGACY)),
            Err(Refusal::InvalidType("io.kestra.core.tasks.log.Log".into()))
        );
    }

    #[test]
    fn plugins_outside_the_core_packages_are_taken_as_they_are() {
        let yaml = "id: s\nnamespace: a\ntasks:\n  - id: py\n    type: io.kestra.plugin.scripts.python.Script\n    script: print(1)\ntriggers:\n  - id: daily\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: \"0 9 * * *\"\n";
        assert_eq!(schema(false).check(&doc(yaml)), Ok(vec![]));
        assert_eq!(schema(true).check(&doc(yaml)), Ok(vec![]));
        let nope =
            "id: s\nnamespace: a\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Nope\n";
        assert_eq!(
            schema(false).check(&doc(nope)),
            Err(Refusal::InvalidType(
                "io.kestra.plugin.core.log.Nope".into()
            ))
        );
    }

    #[test]
    fn a_task_without_a_type_is_the_type_null() {
        let untyped = "id: s\nnamespace: a\ntasks:\n  - id: no-type\n";
        for v2 in [false, true] {
            assert_eq!(
                schema(v2).check(&doc(untyped)),
                Err(Refusal::InvalidType("<null>".into()))
            );
        }
    }

    #[test]
    fn a_log_without_message_names_the_task_id() {
        let yaml =
            "id: hello\nnamespace: a\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n";
        let (message, errors) = entity_error(&schema(false).check(&doc(yaml)).unwrap_err(), false);
        assert_eq!(message, "Invalid entity: t.message: must not be null\n");
        assert_eq!(
            errors,
            vec![("tasks[0].message".into(), "must not be null".into())]
        );
        let (message, _) = entity_error(&schema(true).check(&doc(yaml)).unwrap_err(), true);
        assert_eq!(
            message,
            "Invalid entity: tasks[t].message: must not be null\n"
        );
    }

    #[test]
    fn identifiers_follow_the_whole_pattern_and_size() {
        let yaml = "id: has space\nnamespace: UP\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: x\n";
        let Err(Refusal::Violations(v)) = schema(false).check(&doc(yaml)) else {
            panic!("refused");
        };
        let texts: Vec<String> = v
            .iter()
            .map(|v| format!("{}: {}", v.shown, v.message))
            .collect();
        assert!(texts.contains(&"id: must match \"^[a-zA-Z0-9][a-zA-Z0-9._-]*\"".to_owned()));
        assert!(texts.contains(&"namespace: must match \"^[a-z0-9][a-z0-9._-]*\"".to_owned()));
        let long = format!(
            "id: {}\nnamespace: a\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: x\n",
            "x".repeat(101)
        );
        let (message, _) = entity_error(&schema(false).check(&doc(&long)).unwrap_err(), false);
        assert_eq!(
            message,
            "Invalid entity: id: size must be between 1 and 100\n"
        );
    }
}
