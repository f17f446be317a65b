//! KestraKeyValue adapter: typed values, ttl and expiry.

use k8s_openapi::jiff::Timestamp;

use crate::crd::kv::{KestraKeyValue, KeyValueStatusFields};
use crate::engine::refs::{self, RefKind, Reference};
use crate::engine::{Adapter, Common, Diff, ObserveMode, ReconcileError, Status, Target};
use crate::kestra::{KestraClient, KestraError, KvRead};

use super::flow::tenant_suffix;
use super::kv_encoding::{Encoded, encode, expiry, matches};

#[derive(Clone, Debug, Hash, PartialEq)]
pub struct DesiredValue {
    pub encoded: Encoded,
    pub ttl: Option<String>,
    pub description: Option<String>,
}

#[derive(Default)]
pub struct KeyValueAdapter;

impl Adapter for KeyValueAdapter {
    type Resource = KestraKeyValue;
    type Desired = DesiredValue;
    type Observed = KvRead;
    type Fields = KeyValueStatusFields;
    const KIND: &'static str = "KestraKeyValue";
    const NOUN: &'static str = "key";

    fn common(r: &KestraKeyValue) -> Common<'_> {
        Common {
            namespace: &r.spec.namespace,
            name: &r.spec.key,
            tenant: r.spec.tenant.as_deref(),
            deletion_policy: r.spec.deletion_policy.unwrap_or_default(),
            suspend: r.spec.suspend.unwrap_or(false),
            resync_period: r.spec.resync_period.as_deref(),
        }
    }

    fn status(r: &KestraKeyValue) -> Option<&Status<Self>> {
        r.status.as_ref()
    }

    fn references(r: &KestraKeyValue) -> Vec<Reference> {
        r.spec
            .value_from
            .as_ref()
            .and_then(|v| v.reference())
            .map(|(kind, key_ref)| Reference {
                kind,
                name: key_ref.name.clone(),
            })
            .into_iter()
            .collect()
    }

    async fn desired(
        &self,
        client: &kube::Client,
        r: &KestraKeyValue,
    ) -> Result<DesiredValue, ReconcileError> {
        let mut secret_source = None;
        let value = match (&r.spec.value, &r.spec.value_from) {
            (Some(value), None) => value.clone(),
            (None, Some(from)) => {
                let (kind, key_ref) = from.reference().ok_or_else(|| {
                    ReconcileError::InvalidSpec(
                        "spec.valueFrom needs secretKeyRef or configMapKeyRef".to_string(),
                    )
                })?;
                let namespace = r.metadata.namespace.as_deref().unwrap_or_default();
                let bytes = refs::read_key(client, namespace, kind, key_ref).await?;
                if kind == RefKind::Secret {
                    secret_source = Some(key_ref);
                }
                let text = String::from_utf8(bytes).map_err(|_| {
                    ReconcileError::InvalidSpec(format!(
                        "key {:?} of {} is not UTF-8 text",
                        key_ref.key, key_ref.name
                    ))
                })?;
                serde_json::Value::String(text)
            }
            _ => {
                return Err(ReconcileError::InvalidSpec(
                    "set exactly one of spec.value or spec.valueFrom".to_string(),
                ));
            }
        };
        let encoded = encode(&value, r.spec.type_).map_err(|reason| match (secret_source, r.spec.type_) {
            // The reason quotes the value: never for a Secret's.
            (Some(key_ref), Some(type_)) => ReconcileError::InvalidSpec(format!(
                "the value of key {:?} in Secret {} is not a valid {} (the value is not shown): \
                 fix the Secret or spec.type",
                key_ref.key,
                key_ref.name,
                type_.as_str()
            )),
            (Some(key_ref), None) => ReconcileError::InvalidSpec(format!(
                "the value of key {:?} in Secret {} cannot be stored (the value is not shown)",
                key_ref.key, key_ref.name
            )),
            (None, _) => ReconcileError::InvalidSpec(reason),
        })?;
        if let Some(description) = &r.spec.description {
            check_description(description).map_err(ReconcileError::InvalidSpec)?;
        }
        Ok(DesiredValue {
            encoded,
            ttl: r.spec.ttl.clone(),
            description: r.spec.description.clone(),
        })
    }

    async fn observe(
        &self,
        kestra: &KestraClient,
        target: &Target,
        _mode: ObserveMode,
        prior: Option<&KeyValueStatusFields>,
    ) -> Result<KvRead, KestraError> {
        let read = kestra
            .get_kv(target.tenant(), &target.namespace, &target.name)
            .await?;
        // Kestra may purge an expired entry (404 instead of 410): still an expiry, not a deletion.
        let expired_before = prior
            .and_then(|p| p.expires_at.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= Timestamp::now());
        Ok(match read {
            KvRead::Missing if expired_before => KvRead::Expired,
            other => other,
        })
    }

    fn diff(desired: &DesiredValue, observed: &KvRead) -> Diff {
        match observed {
            KvRead::Missing => Diff::Missing,
            KvRead::Expired => Diff::Expired,
            KvRead::Found(entry) if matches(&desired.encoded, entry) => Diff::InSync,
            KvRead::Found(_) => Diff::Differs,
        }
    }

    async fn write(
        &self,
        kestra: &KestraClient,
        target: &Target,
        desired: &DesiredValue,
    ) -> Result<KeyValueStatusFields, ReconcileError> {
        let written_at = Timestamp::now();
        kestra
            .put_kv(
                target.tenant(),
                &target.namespace,
                &target.name,
                &desired.encoded.body,
                desired.ttl.as_deref(),
                desired.description.as_deref(),
            )
            .await?;
        Ok(KeyValueStatusFields {
            type_: Some(desired.encoded.type_.as_str().to_string()),
            expires_at: desired
                .ttl
                .as_deref()
                .and_then(|ttl| expiry(ttl, written_at))
                .and_then(|t| t.round(k8s_openapi::jiff::Unit::Second).ok())
                .map(|t| t.to_string()),
        })
    }

    fn in_sync_fields(
        desired: &DesiredValue,
        observed: &KvRead,
        prior: Option<&KeyValueStatusFields>,
    ) -> KeyValueStatusFields {
        let expires_at = match observed {
            KvRead::Found(entry) => entry.expiration_date.clone(),
            _ => None,
        }
        .or_else(|| prior.and_then(|p| p.expires_at.clone()));
        KeyValueStatusFields {
            type_: Some(desired.encoded.type_.as_str().to_string()),
            expires_at: desired.ttl.as_ref().and(expires_at),
        }
    }

    fn describe(target: &Target, fields: &KeyValueStatusFields) -> String {
        let type_ = fields
            .type_
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        format!(
            "key {}/{}{type_}{}",
            target.namespace,
            target.name,
            tenant_suffix(target)
        )
    }

    async fn delete(&self, kestra: &KestraClient, target: &Target) -> Result<(), KestraError> {
        kestra
            .delete_kv(target.tenant(), &target.namespace, &target.name)
            .await
    }
}

/// Kestra takes the description in an HTTP header, which carries printable ASCII only: other
/// characters would be refused, or stored garbled (servers read header bytes as Latin-1), and
/// control characters cannot be sent at all. Say so instead of writing something else.
fn check_description(description: &str) -> Result<(), String> {
    match description
        .chars()
        .find(|c| *c != '\t' && !(' '..='~').contains(c))
    {
        None => Ok(()),
        Some(c) => Err(format!(
            "spec.description may hold printable ASCII only (Kestra receives it in an HTTP header), \
             and it contains {c:?}"
        )),
    }
}

#[cfg(test)]
mod description_tests {
    use super::check_description;

    #[test]
    fn descriptions_are_printable_ascii() {
        assert!(check_description("Nightly ETL: loads (a) + [b] ~ 100%").is_ok());
        assert!(check_description("tab\tseparated").is_ok());
        let err = check_description("Überprüfung").unwrap_err();
        assert!(
            err.contains("printable ASCII") && err.contains("'Ü'"),
            "{err}"
        );
        assert!(check_description("two\nlines").is_err());
        assert!(check_description("bell\u{7}").is_err());
    }
}
