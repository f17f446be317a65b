//! What Kestra says about `filters[field][OP]=` parameters it cannot read, shared by the flow
//! search and the KV listing (transcripts flow-list-search#20-21, kv-types+kv-list#21-23).

use crate::errors::ApiError;

/// `io.kestra.core.models.QueryFilter.Op`.
const OPS: &[&str] = &[
    "EQUALS",
    "NOT_EQUALS",
    "GREATER_THAN",
    "LESS_THAN",
    "GREATER_THAN_OR_EQUAL_TO",
    "LESS_THAN_OR_EQUAL_TO",
    "IN",
    "NOT_IN",
    "STARTS_WITH",
    "ENDS_WITH",
    "CONTAINS",
    "REGEX",
    "PREFIX",
];

/// `QueryFilter.Field` values, in the order Kestra lists them when it meets another one.
const FIELDS_1_3: &str = "childFilter, metadata, triggerState, endDate, parentPath, \
    triggerExecutionId, type, taskRunId, path, flowRevision, assetId, scope, id, state, flowId, \
    expirationDate, timeRange, workerId, level, kind, created, triggerId, version, labels, q, \
    executionId, existingOnly, namespace, updated, startDate, taskId, username";
const FIELDS_2_0: &str = "attemptNumber, childFilter, metadata, triggerState, endDate, \
    parentPath, source, type, taskRunId, path, flowRevision, action, details, id, state, locked, \
    timeRange, workerId, level, kind, policyScope, created, triggerId, enforcement, groupList, \
    version, labels, tags, executionId, name, assignee, updated, startDate, status, \
    instance_owner, nextExecutionDate, external_id, triggerExecutionId, expired_at, enabled, \
    assetId, scope, artifactId, flowId, email, expirationDate, severity, resources, userId, \
    parentId, q, existingOnly, namespace, lastTriggeredDate, taskId, username";

/// Checks the operator and the field of a filter, in Kestra's order (operator first).
pub fn check(field: &str, op: &str, v2: bool) -> Result<(), ApiError> {
    if !OPS.contains(&op) {
        return Err(ApiError::IllegalArgument(format!(
            "No enum constant io.kestra.core.models.QueryFilter.Op.{op}"
        )));
    }
    let fields = if v2 { FIELDS_2_0 } else { FIELDS_1_3 };
    if !fields.split(", ").any(|f| f == field) {
        return Err(ApiError::IllegalArgument(format!(
            "Unsupported field '{field}'. Expected one of: [{fields}]"
        )));
    }
    Ok(())
}
