//! Flow calls. Every path names the flow through `{namespace}/{id}` segments or a JSON body
//! naming exactly one flow; every answer is checked to be about that flow, because a literal
//! route (`flows/delete/by-query`, `flows/export/by-query`) takes precedence over the variables.

use reqwest::Method;
use serde::Serialize;

use super::error::KestraError;
use super::transport::{Call, KestraClient, decode, yaml_body};
use super::types::{Flow, FlowSummary, FlowValidation};

/// One flow named in a bulk body.
#[derive(Serialize)]
struct FlowRef<'a> {
    namespace: &'a str,
    id: &'a str,
}

/// `{"count": n}`, the answer of the bulk routes.
#[derive(serde::Deserialize)]
struct Count {
    count: i64,
}

impl KestraClient {
    /// The flow with its source, or `None` when absent or deleted.
    pub async fn get_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Flow>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}/{id}",
            method: Method::GET,
            tenant,
            segments: &["flows", namespace, id],
        };
        let (status, body) = self.send(call, |r| r.query(&[("source", "true")])).await?;
        match status.as_u16() {
            200 => {
                let flow = the_flow(decode(&body)?, namespace, id)?;
                Ok((!flow.deleted).then_some(flow))
            }
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// The flows of a namespace (no sources): one request however many flows it holds. Rows of
    /// another namespace mean the path reached another route: no listing.
    pub async fn list_flows(
        &self,
        tenant: Option<&str>,
        namespace: &str,
    ) -> Result<Vec<FlowSummary>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}",
            method: Method::GET,
            tenant,
            segments: &["flows", namespace],
        };
        let body = self.expect_ok(call, |r| r).await?;
        let rows: Vec<FlowSummary> = decode(&body)?;
        if let Some(row) = rows.iter().find(|row| row.namespace != namespace) {
            return Err(KestraError::Decode(format!(
                "the listing of namespace {namespace} holds a flow of namespace {}",
                row.namespace
            )));
        }
        Ok(rows)
    }

    /// Create a flow; `Ok(None)` when Kestra says it exists already (either error generation).
    pub async fn create_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
        source: &str,
    ) -> Result<Option<Flow>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows",
            method: Method::POST,
            tenant,
            segments: &["flows"],
        };
        let (status, body) = self.send(call, |r| yaml_body(r, source)).await?;
        match status.as_u16() {
            200 | 201 => the_flow(decode(&body)?, namespace, id).map(Some),
            409 => Ok(None),
            422 if crate::kestra::error_message(&body)
                .is_some_and(|m| m.contains("already exists")) =>
            {
                Ok(None)
            }
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Update an existing flow; `Ok(None)` when it does not exist (create it instead).
    pub async fn update_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
        source: &str,
    ) -> Result<Option<Flow>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/{namespace}/{id}",
            method: Method::PUT,
            tenant,
            segments: &["flows", namespace, id],
        };
        let (status, body) = self.send(call, |r| yaml_body(r, source)).await?;
        match status.as_u16() {
            200 => the_flow(decode(&body)?, namespace, id).map(Some),
            404 => Ok(None),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Delete one flow (a soft delete in Kestra); an absent flow counts as deleted.
    ///
    /// Sent as the bulk delete with a body naming exactly this flow: `DELETE flows/{ns}/{id}`
    /// is taken by the tenant-wide `flows/delete/by-query` when the flow is `delete/by-query`.
    pub async fn delete_flow(
        &self,
        tenant: Option<&str>,
        namespace: &str,
        id: &str,
    ) -> Result<(), KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/delete/by-ids",
            method: Method::DELETE,
            tenant,
            segments: &["flows", "delete", "by-ids"],
        };
        let one = [FlowRef { namespace, id }];
        let (status, body) = self.send(call, |r| r.json(&one)).await?;
        match status.as_u16() {
            200 => match decode::<Count>(&body)?.count {
                0 | 1 => Ok(()),
                n => Err(KestraError::Unexpected {
                    status: 200,
                    message: format!("Kestra deleted {n} flows for one id"),
                }),
            },
            // Kestra answers `Not Found: No value present` for an id it does not hold.
            404 => Ok(()),
            s => Err(KestraError::from_status(s, &body)),
        }
    }

    /// Kestra's verdict on a flow source without storing anything: one item per YAML document,
    /// checked to come in order (a source holds one flow, but `---` splits it into several).
    pub async fn validate_flow(
        &self,
        tenant: Option<&str>,
        source: &str,
    ) -> Result<Vec<FlowValidation>, KestraError> {
        let call = Call {
            route: "/api/v1/{tenant}/flows/validate",
            method: Method::POST,
            tenant,
            segments: &["flows", "validate"],
        };
        let body = self.expect_ok(call, |r| yaml_body(r, source)).await?;
        validations(decode(&body)?)
    }
}

/// The items of a validate answer, when there is at least one and they come in order.
fn validations(items: Vec<FlowValidation>) -> Result<Vec<FlowValidation>, KestraError> {
    if items.is_empty() {
        return Err(KestraError::Decode(
            "Kestra's validation answer holds no result".to_string(),
        ));
    }
    if let Some((position, item)) = items.iter().enumerate().find(|(i, v)| v.index != *i) {
        return Err(KestraError::Decode(format!(
            "Kestra's validation answer has index {} at position {position}",
            item.index
        )));
    }
    Ok(items)
}

/// The flow of an answer, when it is the one asked for.
fn the_flow(flow: Flow, namespace: &str, id: &str) -> Result<Flow, KestraError> {
    if flow.namespace == namespace && flow.id == id {
        Ok(flow)
    } else {
        Err(KestraError::Decode(format!(
            "asked for flow {namespace}/{id}, Kestra answered with flow {}/{}",
            flow.namespace, flow.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_about_another_flow_is_refused() {
        let flow = |ns: &str, id: &str| Flow {
            id: id.into(),
            namespace: ns.into(),
            revision: 1,
            source: None,
            deleted: false,
        };
        assert!(the_flow(flow("a", "b"), "a", "b").is_ok());
        assert!(the_flow(flow("a", "c"), "a", "b").is_err());
        assert!(the_flow(flow("x", "b"), "a", "b").is_err());
    }

    #[test]
    fn a_validate_answer_is_read_with_its_messages_one_per_line() {
        let body = br#"[{"index": 0, "namespace": "tx", "flow": "hello",
            "constraints": "Validation error: tasks[t].message: must not be null\n",
            "outdated": false, "deprecationPaths": ["tasks[0].type"], "warnings": ["w"],
            "infos": []}, {"index": 1, "constraints": "Validation error: Invalid type: x",
            "outdated": false}]"#;
        let items = validations(decode(body).unwrap()).unwrap();
        assert_eq!(
            items[0].violations(),
            ["Validation error: tasks[t].message: must not be null"]
        );
        assert_eq!(items[0].deprecation_paths, ["tasks[0].type"]);
        assert!(!items[1].is_valid() && items[1].flow.is_none());
        let valid: Vec<FlowValidation> =
            decode(br#"[{"index": 0, "flow": "ok", "outdated": false}]"#).unwrap();
        assert!(valid[0].is_valid());
    }

    #[test]
    fn a_validate_answer_out_of_shape_is_refused() {
        assert!(validations(Vec::new()).is_err());
        let shifted: Vec<FlowValidation> = decode(br#"[{"index": 1, "outdated": false}]"#).unwrap();
        assert!(validations(shifted).is_err());
        assert!(decode::<Vec<FlowValidation>>(br#"{"index": 0}"#).is_err());
    }
}
