//! KestraFlow adapter: the YAML source is the whole desired state.

use parking_lot::Mutex;
use std::time::Instant;

use crate::crd::flow::{FlowStatusFields, KestraFlow};
use crate::engine::refs::{self, RefKind, Reference};
use crate::engine::{Adapter, Common, Diff, ObserveMode, ReconcileError, Status, Target, Written};
use crate::kestra::{Flow, KestraClient, KestraError};

use super::flow_source::check_identity;
use super::listing::{Listing, NamespaceListings, if_offered};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct DesiredFlow {
    pub source: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ObservedFlow {
    Absent,
    Present(Flow),
    /// The namespace listing shows the revision last synced: nothing changed.
    AtRevision(i64),
}

/// Namespace listings shared by the flows of a resync wave: the cost of a drift check grows
/// with the number of Kestra namespaces, not flows.
#[derive(Default)]
pub struct FlowAdapter {
    listings: NamespaceListings<i64>,
    /// Flows the last read found absent: their write creates first, saving the update that
    /// would answer 404 (a third of a new flow's requests).
    absent: Mutex<std::collections::HashSet<Target>>,
}

impl FlowAdapter {
    /// Revisions by flow id in `target`'s namespace: a recent listing, or with `newer_than`,
    /// one taken after that instant.
    async fn listing(
        &self,
        kestra: &KestraClient,
        target: &Target,
        newer_than: Option<Instant>,
    ) -> Result<Listing<i64>, KestraError> {
        let fetch = || async {
            let flows = kestra
                .list_flows(target.tenant(), &target.namespace)
                .await?;
            Ok(flows.into_iter().map(|f| (f.id, f.revision)).collect())
        };
        match newer_than {
            Some(than) => self.listings.get_newer(target, than, fetch).await,
            None => self.listings.get(target, fetch).await,
        }
    }
}

impl Adapter for FlowAdapter {
    type Resource = KestraFlow;
    type Desired = DesiredFlow;
    type Observed = ObservedFlow;
    type Fields = FlowStatusFields;
    const KIND: &'static str = "KestraFlow";
    const NOUN: &'static str = "flow";

    fn common(r: &KestraFlow) -> Common<'_> {
        Common {
            namespace: &r.spec.namespace,
            name: &r.spec.id,
            tenant: r.spec.tenant.as_deref(),
            instance_ref: r.spec.instance_ref.as_ref(),
            deletion_policy: r.spec.deletion_policy.unwrap_or_default(),
            suspend: r.spec.suspend.unwrap_or(false),
            resync_period: r.spec.resync_period.as_deref(),
        }
    }

    fn status(r: &KestraFlow) -> Option<&Status<Self>> {
        r.status.as_ref()
    }

    fn references(r: &KestraFlow) -> Vec<Reference> {
        r.spec
            .source_from
            .iter()
            .map(|s| Reference {
                kind: RefKind::ConfigMap,
                name: s.config_map_key_ref.name.clone(),
            })
            .collect()
    }

    async fn desired(
        &self,
        client: &kube::Client,
        r: &KestraFlow,
    ) -> Result<DesiredFlow, ReconcileError> {
        let source = match (&r.spec.source, &r.spec.source_from) {
            (Some(source), None) => source.clone(),
            (None, Some(from)) => {
                let namespace = r.metadata.namespace.as_deref().unwrap_or_default();
                let bytes = refs::read_key(
                    client,
                    namespace,
                    RefKind::ConfigMap,
                    &from.config_map_key_ref,
                )
                .await?;
                String::from_utf8(bytes).map_err(|_| {
                    ReconcileError::InvalidSpec(format!(
                        "ConfigMap key {}/{} is not UTF-8 text, so it cannot be a flow YAML",
                        from.config_map_key_ref.name, from.config_map_key_ref.key
                    ))
                })?
            }
            _ => {
                return Err(ReconcileError::InvalidSpec(
                    "set exactly one of spec.source or spec.sourceFrom".to_string(),
                ));
            }
        };
        check_identity(&source, &r.spec.id, &r.spec.namespace)
            .map_err(ReconcileError::InvalidSpec)?;
        Ok(DesiredFlow { source })
    }

    async fn observe(
        &self,
        kestra: &KestraClient,
        target: &Target,
        mode: ObserveMode,
        prior: Option<&FlowStatusFields>,
    ) -> Result<ObservedFlow, KestraError> {
        if let (ObserveMode::Resync, Some(revision)) = (mode, prior.and_then(|p| p.revision))
            && let Some(listing) = if_offered(self.listing(kestra, target, None).await)?
        {
            if listing.rows.get(&target.name) == Some(&revision) {
                return Ok(ObservedFlow::AtRevision(revision));
            }
            // A listing shared with other objects may predate this flow's last write: look at
            // a newer one before reading the flow itself.
            let newer = self.listing(kestra, target, Some(listing.taken)).await?;
            if newer.rows.get(&target.name) == Some(&revision) {
                return Ok(ObservedFlow::AtRevision(revision));
            }
        }
        // A flow this resource never wrote, missing from the namespace listing, is not read: on
        // a cold sync that saves one request per flow. Should the listing be stale, creating
        // finds the flow and updates it instead (see `write`).
        let never_written = prior.and_then(|p| p.revision).is_none();
        let listed_absent = never_written
            && if_offered(self.listing(kestra, target, None).await)?
                .is_some_and(|listing| !listing.rows.contains_key(&target.name));
        let observed = if listed_absent {
            ObservedFlow::Absent
        } else {
            match kestra
                .get_flow(target.tenant(), &target.namespace, &target.name)
                .await?
            {
                Some(flow) => ObservedFlow::Present(flow),
                None => ObservedFlow::Absent,
            }
        };
        let mut absent = self.absent.lock();
        if observed == ObservedFlow::Absent {
            absent.insert(target.clone());
        } else {
            absent.remove(target);
        }
        Ok(observed)
    }

    fn diff(desired: &DesiredFlow, observed: &ObservedFlow) -> Diff {
        match observed {
            ObservedFlow::Absent => Diff::Missing,
            ObservedFlow::AtRevision(_) => Diff::InSync,
            ObservedFlow::Present(flow)
                if flow.source.as_deref() == Some(desired.source.as_str()) =>
            {
                Diff::InSync
            }
            ObservedFlow::Present(_) => Diff::Differs,
        }
    }

    async fn write(
        &self,
        kestra: &KestraClient,
        target: &Target,
        desired: &DesiredFlow,
    ) -> Result<Written<Self>, ReconcileError> {
        let (tenant, namespace, id) = (
            target.tenant(),
            target.namespace.as_str(),
            target.name.as_str(),
        );
        let update_again = || async {
            kestra
                .update_flow(tenant, namespace, id, &desired.source)
                .await?
                .ok_or_else(|| KestraError::Unexpected {
                    status: 404,
                    message: "Kestra said the flow exists, then that it does not".to_string(),
                })
        };
        let absent = self.absent.lock().remove(target);
        // A flow just read as absent is created (then updated if a concurrent writer created it
        // in between); otherwise update first (the usual case after creation), create when absent,
        // and update again if a concurrent writer created it in between.
        let flow = if absent {
            match kestra
                .create_flow(tenant, namespace, id, &desired.source)
                .await?
            {
                Some(flow) => flow,
                None => update_again().await?,
            }
        } else {
            match kestra
                .update_flow(tenant, namespace, id, &desired.source)
                .await?
            {
                Some(flow) => flow,
                None => match kestra
                    .create_flow(tenant, namespace, id, &desired.source)
                    .await?
                {
                    Some(flow) => flow,
                    None => update_again().await?,
                },
            }
        };
        let fields = FlowStatusFields {
            revision: Some(flow.revision),
            validated: Some(true),
        };
        // Kestra's answer carries the source it stored: the read-back, at no cost.
        let readback = flow.source.is_some().then_some(ObservedFlow::Present(flow));
        Ok(Written { fields, readback })
    }

    fn explain_difference(_: &DesiredFlow, observed: &ObservedFlow) -> String {
        match observed {
            ObservedFlow::Absent => "the flow is missing right after it was written".to_string(),
            _ => "the source Kestra stored differs from spec.source".to_string(),
        }
    }

    fn in_sync_fields(
        _: &DesiredFlow,
        observed: &ObservedFlow,
        prior: Option<&FlowStatusFields>,
    ) -> FlowStatusFields {
        let revision = match observed {
            ObservedFlow::Present(flow) => Some(flow.revision),
            ObservedFlow::AtRevision(revision) => Some(*revision),
            ObservedFlow::Absent => prior.and_then(|p| p.revision),
        };
        FlowStatusFields {
            revision,
            validated: Some(true),
        }
    }

    fn rejected_fields(prior: FlowStatusFields) -> FlowStatusFields {
        FlowStatusFields {
            validated: Some(false),
            ..prior
        }
    }

    fn describe(target: &Target, fields: &FlowStatusFields) -> String {
        let revision = fields
            .revision
            .map(|r| format!(" at revision {r}"))
            .unwrap_or_default();
        format!(
            "flow {}/{}{revision}{}",
            target.namespace,
            target.name,
            tenant_suffix(target)
        )
    }

    fn forget(&self, target: &Target) {
        self.absent.lock().remove(target);
    }

    async fn delete(&self, kestra: &KestraClient, target: &Target) -> Result<(), KestraError> {
        kestra
            .delete_flow(target.tenant(), &target.namespace, &target.name)
            .await
    }
}

pub(crate) fn tenant_suffix(target: &Target) -> String {
    match target.tenant() {
        Some(t) => format!(" (tenant {t})"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(source: &str, revision: i64) -> Flow {
        Flow {
            id: "f".into(),
            namespace: "n".into(),
            revision,
            source: Some(source.into()),
            deleted: false,
        }
    }

    #[test]
    fn diff_compares_sources_exactly() {
        let desired = DesiredFlow {
            source: "id: f\nnamespace: n\n".into(),
        };
        assert_eq!(
            FlowAdapter::diff(&desired, &ObservedFlow::Absent),
            Diff::Missing
        );
        assert_eq!(
            FlowAdapter::diff(&desired, &ObservedFlow::AtRevision(3)),
            Diff::InSync
        );
        assert_eq!(
            FlowAdapter::diff(
                &desired,
                &ObservedFlow::Present(flow("id: f\nnamespace: n\n", 1))
            ),
            Diff::InSync
        );
        assert_eq!(
            FlowAdapter::diff(
                &desired,
                &ObservedFlow::Present(flow("id: f\nnamespace: n\n# edited\n", 2))
            ),
            Diff::Differs
        );
    }

    #[test]
    fn a_rejected_flow_is_not_validated_and_keeps_its_revision() {
        let prior = FlowStatusFields {
            revision: Some(4),
            validated: Some(true),
        };
        let fields = FlowAdapter::rejected_fields(prior);
        assert_eq!(
            fields,
            FlowStatusFields {
                revision: Some(4),
                validated: Some(false)
            }
        );
    }

    #[test]
    fn in_sync_fields_take_the_observed_revision() {
        let desired = DesiredFlow {
            source: String::new(),
        };
        let fields =
            FlowAdapter::in_sync_fields(&desired, &ObservedFlow::Present(flow("", 7)), None);
        assert_eq!(fields.revision, Some(7));
        assert_eq!(fields.validated, Some(true));
    }
}
