//! What the webhook answers: the checks the reconcile makes before writing (the adapters'
//! `desired` and `object_name`, the same code), then for a flow Kestra's own validation.
//! The verdict functions are pure; [`Checker::review`] gathers their inputs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::review::{AdmissionRequest, AdmissionResponse, Operation, ResponseStatus};
use crate::adapters::{FlowAdapter, KeyValueAdapter, NamespaceFileAdapter};
use crate::engine::{Adapter, ReconcileError};
use crate::instances::{InstanceError, Instances};
use crate::kestra::{FlowValidation, KestraClient, KestraError};

/// What the webhook decided about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        warnings: Vec<String>,
    },
    Denied {
        message: String,
        warnings: Vec<String>,
    },
}

impl Verdict {
    pub fn allow() -> Self {
        Self::Allowed {
            warnings: Vec::new(),
        }
    }

    fn allow_with(warning: String) -> Self {
        Self::Allowed {
            warnings: vec![warning],
        }
    }

    /// The same verdict, with one more warning.
    fn warning(mut self, warning: String) -> Self {
        match &mut self {
            Self::Allowed { warnings } | Self::Denied { warnings, .. } => warnings.push(warning),
        }
        self
    }

    pub fn into_response(self, uid: String) -> AdmissionResponse {
        match self {
            Self::Allowed { warnings } => AdmissionResponse {
                uid,
                allowed: true,
                status: None,
                warnings: warnings.iter().map(|w| one_line(w)).collect(),
            },
            Self::Denied { message, warnings } => AdmissionResponse {
                uid,
                allowed: false,
                status: Some(ResponseStatus { code: 403, message }),
                warnings: warnings.iter().map(|w| one_line(w)).collect(),
            },
        }
    }
}

/// A warning is one header line: no control characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The kinds the webhook checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Flow,
    KeyValue,
    NamespaceFile,
}

impl Kind {
    pub fn of(kind: &str) -> Option<Self> {
        match kind {
            "KestraFlow" => Some(Self::Flow),
            "KestraKeyValue" => Some(Self::KeyValue),
            "KestraNamespaceFile" => Some(Self::NamespaceFile),
            _ => None,
        }
    }
}

/// Why Kestra gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum Unvalidated {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Kestra(#[from] KestraError),
}

/// Whether a request needs no check: another operation, a change outside the spec (finalizers,
/// labels: the operator's own updates), or a resource being deleted.
pub fn needs_no_check(request: &AdmissionRequest) -> bool {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return true;
    }
    let spec = |o: &Option<Value>| o.as_ref().and_then(|o| o.get("spec")).cloned();
    let deleting = request
        .object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/deletionTimestamp"))
        .is_some();
    deleting
        || (request.operation == Operation::Update
            && spec(&request.object) == spec(&request.old_object))
}

/// The verdict of the checks made before any write.
pub fn local_verdict<T>(check: Result<T, ReconcileError>) -> Result<T, Verdict> {
    match check {
        Ok(value) => Ok(value),
        Err(ReconcileError::InvalidSpec(message)) => Err(Verdict::Denied {
            message,
            warnings: Vec::new(),
        }),
        Err(ReconcileError::ReferenceNotFound(why)) => Err(Verdict::allow_with(format!(
            "{why}: the operator syncs once it exists"
        ))),
        Err(other) => Err(Verdict::allow_with(format!(
            "not checked at apply time ({other}): the operator reports in status"
        ))),
    }
}

/// The verdict of Kestra's validation of a flow source: refused with Kestra's constraint
/// messages (one line each), deprecations and warnings passed on as admission warnings.
pub fn flow_verdict(outcome: Result<Vec<FlowValidation>, Unvalidated>) -> Verdict {
    let items = match outcome {
        Ok(items) => items,
        Err(why) => {
            return Verdict::allow_with(format!(
                "Kestra could not validate the flow ({why}): the operator reports the outcome in status"
            ));
        }
    };
    let several = items.len() > 1;
    let prefix = |index: usize| {
        if several {
            format!("document {index}: ")
        } else {
            String::new()
        }
    };
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    for item in &items {
        let p = prefix(item.index);
        violations.extend(item.violations().into_iter().map(|v| format!("{p}{v}")));
        warnings.extend(
            item.deprecation_paths
                .iter()
                .map(|path| format!("{p}Kestra: {path} is deprecated")),
        );
        warnings.extend(item.warnings.iter().map(|w| format!("{p}Kestra: {w}")));
        warnings.extend(item.infos.iter().map(|i| format!("{p}Kestra: {i}")));
    }
    if violations.is_empty() {
        Verdict::Allowed { warnings }
    } else {
        Verdict::Denied {
            message: violations.join("\n"),
            warnings,
        }
    }
}

/// Gathers what the verdicts need: references from Kubernetes, Kestra's validation.
pub struct Checker {
    pub client: kube::Client,
    /// The Kestra instances (every replica reads them, leader or not).
    pub instances: Arc<Instances>,
    /// Bound of the Kestra call, below the API server's timeout.
    pub kestra_timeout: Duration,
}

impl Checker {
    pub async fn review(&self, request: &AdmissionRequest) -> Verdict {
        if needs_no_check(request) {
            return Verdict::allow();
        }
        let (Some(kind), Some(object)) = (Kind::of(&request.kind.kind), &request.object) else {
            return Verdict::allow();
        };
        let namespace = request.namespace.as_deref().unwrap_or_default();
        match kind {
            Kind::Flow => match self.local(&FlowAdapter::default(), object, namespace).await {
                Ok((_, _, Err(instance))) => Verdict::allow_with(instance_warning(&instance)),
                Ok((flow, desired, Ok(kestra))) => {
                    let tenant = match kestra.tenant_for(flow.spec.tenant.as_deref()) {
                        Ok(tenant) => tenant,
                        Err(e) => return Verdict::allow_with(e.to_string()),
                    };
                    let validate = kestra.validate_flow(tenant.as_deref(), &desired.source);
                    let outcome = match tokio::time::timeout(self.kestra_timeout, validate).await {
                        Ok(result) => result.map_err(Unvalidated::from),
                        Err(_) => Err(Unvalidated::Timeout(self.kestra_timeout)),
                    };
                    flow_verdict(outcome)
                }
                Err(verdict) => verdict,
            },
            Kind::KeyValue => {
                self.local_only(&KeyValueAdapter::default(), object, namespace)
                    .await
            }
            Kind::NamespaceFile => {
                self.local_only(&NamespaceFileAdapter::default(), object, namespace)
                    .await
            }
        }
    }

    async fn local_only<A: Adapter>(
        &self,
        adapter: &A,
        object: &Value,
        namespace: &str,
    ) -> Verdict {
        match self.local(adapter, object, namespace).await {
            Ok((_, _, Ok(_))) => Verdict::allow(),
            Ok((_, _, Err(instance))) => Verdict::allow_with(instance_warning(&instance)),
            Err(verdict) => verdict,
        }
    }

    /// The resource, its desired state as the reconcile builds it, and its instance's client.
    async fn local<A: Adapter>(
        &self,
        adapter: &A,
        object: &Value,
        namespace: &str,
    ) -> Result<(A::Resource, A::Desired, Result<KestraClient, InstanceError>), Verdict> {
        let resource: A::Resource = serde_json::from_value(object.clone()).map_err(|e| {
            Verdict::allow_with(format!("the webhook could not read the {}: {e}", A::KIND))
        })?;
        let instance = self
            .instances
            .resolve(namespace, A::common(&resource).instance_ref)
            .map(|resolved| resolved.client);
        let dialect = instance
            .as_ref()
            .unwrap_or(self.instances.default_client())
            .dialect();
        let named = A::object_name(&resource, &dialect);
        let instance_note = instance.as_ref().err().map(instance_warning);
        let with_note = |verdict: Verdict| match &instance_note {
            Some(note) => verdict.warning(note.clone()),
            None => verdict,
        };
        local_verdict(named).map_err(with_note)?;
        let desired =
            local_verdict(adapter.desired(&self.client, &resource).await).map_err(with_note)?;
        Ok((resource, desired, instance))
    }
}

/// A warning at apply time: the resource is accepted, and will wait with this reason.
fn instance_warning(error: &InstanceError) -> String {
    let reason = ReconcileError::from(error.clone()).reason();
    format!(
        "{error}: the resource is accepted and waits with reason {reason} until it can be synced"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::review::GroupVersionKind;
    use serde_json::json;

    fn validation(constraints: Option<&str>) -> FlowValidation {
        FlowValidation {
            index: 0,
            namespace: Some("company.team".into()),
            flow: Some("hello".into()),
            constraints: constraints.map(str::to_string),
            outdated: false,
            deprecation_paths: Vec::new(),
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    fn request(operation: Operation, object: Value, old: Option<Value>) -> AdmissionRequest {
        AdmissionRequest {
            uid: "u-1".into(),
            kind: GroupVersionKind {
                group: "model.kestra.io".into(),
                version: "v1alpha1".into(),
                kind: "KestraFlow".into(),
            },
            operation,
            namespace: Some("ns".into()),
            name: Some("f".into()),
            object: Some(object),
            old_object: old,
            dry_run: Some(false),
        }
    }

    #[test]
    fn an_invalid_flow_is_refused_with_kestras_messages_one_per_line() {
        let verdict = flow_verdict(Ok(vec![validation(Some(
            "Validation error: tasks[t].message: must not be null\n  \nnamespace: must not be null\n",
        ))]));
        assert_eq!(
            verdict,
            Verdict::Denied {
                message: "Validation error: tasks[t].message: must not be null\nnamespace: must not be null".into(),
                warnings: Vec::new(),
            }
        );
        let response = verdict.into_response("u-1".into());
        assert!(!response.allowed);
        assert_eq!(response.uid, "u-1");
    }

    #[test]
    fn deprecations_and_warnings_come_back_as_warnings_of_a_valid_flow() {
        let mut item = validation(None);
        item.deprecation_paths = vec!["tasks[0].type".into()];
        item.warnings = vec!["line one\nline two".into()];
        let response = flow_verdict(Ok(vec![item])).into_response("u".into());
        assert!(response.allowed && response.status.is_none());
        assert_eq!(
            response.warnings,
            [
                "Kestra: tasks[0].type is deprecated",
                "Kestra: line one line two"
            ]
        );
    }

    #[test]
    fn several_documents_are_named_by_position() {
        let mut second = validation(Some("Validation error: Invalid type: x"));
        second.index = 1;
        match flow_verdict(Ok(vec![validation(None), second])) {
            Verdict::Denied { message, .. } => {
                assert_eq!(message, "document 1: Validation error: Invalid type: x")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kestra_down_or_slow_lets_the_apply_through_with_a_warning() {
        for why in [
            Unvalidated::Timeout(Duration::from_secs(3)),
            Unvalidated::Kestra(KestraError::Decode("x".into())),
        ] {
            match flow_verdict(Err(why)) {
                Verdict::Allowed { warnings } => {
                    assert!(warnings[0].contains("reports the outcome in status"))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn local_checks_refuse_invalid_specs_only() {
        assert!(matches!(
            local_verdict::<()>(Err(ReconcileError::InvalidSpec("bad ttl".into()))),
            Err(Verdict::Denied { message, .. }) if message == "bad ttl"
        ));
        assert!(matches!(
            local_verdict::<()>(Err(ReconcileError::ReferenceNotFound("Secret s".into()))),
            Err(Verdict::Allowed { .. })
        ));
        assert_eq!(local_verdict(Ok(1)), Ok(1));
    }

    #[test]
    fn only_spec_changes_are_checked() {
        let flow = json!({"metadata": {"name": "f"}, "spec": {"id": "f"}});
        let mut finalized = flow.clone();
        finalized["metadata"]["finalizers"] = json!(["model.kestra.io/finalizer"]);
        assert!(needs_no_check(&request(
            Operation::Update,
            finalized,
            Some(flow.clone())
        )));
        assert!(!needs_no_check(&request(
            Operation::Create,
            flow.clone(),
            None
        )));
        let changed = json!({"metadata": {"name": "f"}, "spec": {"id": "g"}});
        assert!(!needs_no_check(&request(
            Operation::Update,
            changed,
            Some(flow.clone())
        )));
        let mut deleting = flow.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(needs_no_check(&request(Operation::Create, deleting, None)));
        assert!(needs_no_check(&request(Operation::Delete, flow, None)));
    }
}
