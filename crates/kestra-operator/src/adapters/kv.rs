//! KestraKeyValue adapter: typed values, ttl and expiry.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;

use crate::crd::kv::{KestraKeyValue, KeyValueStatusFields};
use crate::engine::refs::{self, RefKind, Reference};
use crate::engine::{Adapter, Common, Diff, ObserveMode, ReconcileError, Status, Target, Written};
use crate::kestra::{KestraClient, KestraError, KvEntry, KvRead, KvSummary, KvWrite};

use super::flow::tenant_suffix;
use super::kv_encoding::{Encoded, check_ttl, encode, expiry, matches, same_instant};
use super::listing::{NamespaceListings, if_offered};

#[derive(Clone, Debug, Hash, PartialEq)]
pub struct DesiredValue {
    pub encoded: Encoded,
    pub ttl: Option<String>,
    pub description: Option<String>,
    /// The value came from a Secret: it never appears in a message.
    pub from_secret: bool,
}

/// What a check of one key found. Kestra's read of a key gives its type and value; the
/// description comes from the namespace listing, and the ttl from status (Kestra keeps only the
/// expiry it computed), so that a change of either is written too.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedKey {
    pub read: KvRead,
    /// The key's description in the listing; `None` when no listing holds the key.
    pub description: Option<Option<String>>,
    /// The ttl the entry was last written with, from status.
    pub written_ttl: Option<String>,
}

/// Compared without surrounding whitespace (HTTP servers trim header values), and an empty
/// description is no description.
fn same_description(observed: Option<&str>, desired: Option<&str>) -> bool {
    fn clean(d: Option<&str>) -> Option<&str> {
        d.map(str::trim).filter(|d| !d.is_empty())
    }
    clean(observed) == clean(desired)
}

/// A resync checks the keys of a Kestra namespace through one listing, which carries each key's
/// update time: a key is read again only when its update time moved since it was last read (or
/// when Kestra offers no listing at all).
#[derive(Default)]
pub struct KeyValueAdapter {
    listings: NamespaceListings<KvSummary>,
    /// The entry each key held when last read, with the update time Kestra gave with it.
    seen: Mutex<HashMap<Target, (String, KvEntry)>>,
}

impl KeyValueAdapter {
    /// The keys of `target`'s namespace with their update times: a recent listing, or with
    /// `newer_than`, one taken after that instant (shared by the checks waiting for it).
    async fn listing(
        &self,
        kestra: &KestraClient,
        target: &Target,
        newer_than: Option<Instant>,
    ) -> Result<Arc<HashMap<String, KvSummary>>, KestraError> {
        let fetch = || async {
            let rows = kestra.list_kv(target.tenant(), &target.namespace).await?;
            Ok(rows.into_iter().map(|r| (r.key.clone(), r)).collect())
        };
        match newer_than {
            Some(than) => self.listings.get_newer(target, than, fetch).await,
            None => self.listings.get(target, fetch).await,
        }
        .map(|listing| listing.rows)
    }

    fn seen(&self) -> parking_lot::MutexGuard<'_, HashMap<Target, (String, KvEntry)>> {
        self.seen.lock()
    }

    /// The entry read last time, when the listing row shows the key not updated since then.
    fn unchanged(&self, target: &Target, row: &KvSummary) -> Option<KvEntry> {
        let (stamp, entry) = self.seen().get(target).cloned()?;
        let now = Timestamp::now();
        let expired = |at: &Option<String>| {
            at.as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_some_and(|t| t <= now)
        };
        if expired(&row.expiration_date) || expired(&entry.expiration_date) {
            return None;
        }
        same_instant(row.update_date.as_deref()?, &stamp).then_some(entry)
    }

    fn remember(&self, target: &Target, read: &KvRead, updated: Option<String>) {
        match (read, updated) {
            (KvRead::Found(entry), Some(updated)) => {
                self.seen().insert(target.clone(), (updated, entry.clone()));
            }
            _ => {
                self.seen().remove(target);
            }
        }
    }
}

/// The listing's update time is the read's or later (compared as times when both parse).
fn not_before(row: Option<&str>, read: &str) -> bool {
    match (row.map(str::parse::<Timestamp>), read.parse::<Timestamp>()) {
        (Some(Ok(row)), Ok(read)) => row >= read,
        (Some(_), _) => row == Some(read),
        (None, _) => false,
    }
}

impl Adapter for KeyValueAdapter {
    type Resource = KestraKeyValue;
    type Desired = DesiredValue;
    type Observed = ObservedKey;
    type Fields = KeyValueStatusFields;
    const KIND: &'static str = "KestraKeyValue";
    const NOUN: &'static str = "key";

    fn common(r: &KestraKeyValue) -> Common<'_> {
        Common {
            namespace: &r.spec.namespace,
            name: &r.spec.key,
            tenant: r.spec.tenant.as_deref(),
            instance_ref: r.spec.instance_ref.as_ref(),
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
        if let Some(ttl) = &r.spec.ttl {
            check_ttl(ttl, Timestamp::now()).map_err(ReconcileError::InvalidSpec)?;
        }
        Ok(DesiredValue {
            encoded,
            ttl: r.spec.ttl.clone(),
            description: r.spec.description.clone(),
            from_secret: secret_source.is_some(),
        })
    }

    async fn observe(
        &self,
        kestra: &KestraClient,
        target: &Target,
        mode: ObserveMode,
        prior: Option<&KeyValueStatusFields>,
    ) -> Result<ObservedKey, KestraError> {
        let written_ttl = prior.and_then(|p| p.ttl.clone());
        let written_before = prior.is_some_and(|p| p.type_.is_some());
        // After a spec change the description is compared with a listing taken now; otherwise
        // a recent one will do. Without a listing (a Kestra that offers none) every
        // check reads the key and the description is not compared.
        let fresh = mode == ObserveMode::Full && written_before;
        let newer_than = fresh.then(Instant::now);
        let listing = if_offered(self.listing(kestra, target, newer_than).await)?;
        let row = listing.as_ref().and_then(|l| l.get(&target.name));
        // A listing older than the last read of the key may predate this operator's own write.
        let row_current = |row: &KvSummary| {
            let stamp = self.seen().get(target).map(|(stamp, _)| stamp.clone());
            fresh || stamp.is_some_and(|stamp| not_before(row.update_date.as_deref(), &stamp))
        };
        let observed = |read| ObservedKey {
            description: row
                .filter(|row| row_current(row))
                .map(|r| r.description.clone()),
            read,
            written_ttl: written_ttl.clone(),
        };
        if mode == ObserveMode::Resync
            && let Some(entry) = row.and_then(|row| self.unchanged(target, row))
        {
            return Ok(observed(KvRead::Found(entry)));
        }
        // Kestra may purge an expired entry (404 instead of 410): still an expiry, not a deletion.
        let expired_before = prior
            .and_then(|p| p.expires_at.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|t| t <= Timestamp::now());
        let missing = if expired_before {
            KvRead::Expired
        } else {
            KvRead::Missing
        };
        // A key the resource has never written and the listing does not hold is not read: on a
        // cold sync that saves one request per key.
        if !written_before && listing.is_some() && row.is_none() {
            self.seen().remove(target);
            return Ok(observed(missing));
        }
        let (read, updated) = kestra
            .get_kv_stamped(target.tenant(), &target.namespace, &target.name)
            .await?;
        self.remember(target, &read, updated);
        Ok(observed(match read {
            KvRead::Missing => missing,
            other => other,
        }))
    }

    fn diff(desired: &DesiredValue, observed: &ObservedKey) -> Diff {
        match &observed.read {
            KvRead::Missing => Diff::Missing,
            KvRead::Expired => Diff::Expired,
            KvRead::Found(entry)
                if matches(&desired.encoded, entry)
                    && observed.written_ttl == desired.ttl
                    && observed.description.as_ref().is_none_or(|d| {
                        same_description(d.as_deref(), desired.description.as_deref())
                    }) =>
            {
                Diff::InSync
            }
            KvRead::Found(_) => Diff::Differs,
        }
    }

    async fn write(
        &self,
        kestra: &KestraClient,
        target: &Target,
        desired: &DesiredValue,
    ) -> Result<Written<Self>, ReconcileError> {
        let written_at = Timestamp::now();
        self.seen().remove(target);
        let write = KvWrite {
            body: &desired.encoded.body,
            ttl: desired.ttl.as_deref(),
            description: desired.description.as_deref(),
        };
        let scrub = |error: KestraError| {
            if desired.from_secret {
                let raw = desired.encoded.expected.as_str().unwrap_or_default();
                error.without(&[&desired.encoded.body, raw])
            } else {
                error
            }
        };
        kestra
            .put_kv(target.tenant(), &target.namespace, &target.name, write)
            .await
            .map_err(scrub)?;
        // Kestra types the body itself: read back what it stored, so that a value it keeps in
        // another form is reported instead of being rewritten at every resync. The write has
        // landed: a read-back that fails only means no check this time (the next resync reads).
        let readback = match kestra
            .get_kv_stamped(target.tenant(), &target.namespace, &target.name)
            .await
        {
            Ok((read, updated)) => {
                self.remember(target, &read, updated);
                Some(ObservedKey {
                    read,
                    description: None,
                    written_ttl: desired.ttl.clone(),
                })
            }
            Err(error) => {
                tracing::debug!(error = %scrub(error), "the read-back after a KV write failed");
                None
            }
        };
        let stored_type = match readback.as_ref().map(|r| &r.read) {
            Some(KvRead::Found(entry)) => entry.type_.clone(),
            _ => desired.encoded.type_.as_str().to_string(),
        };
        let fields = KeyValueStatusFields {
            type_: Some(stored_type),
            expires_at: desired
                .ttl
                .as_deref()
                .and_then(|ttl| expiry(ttl, written_at))
                .and_then(|t| t.round(k8s_openapi::jiff::Unit::Second).ok())
                .map(|t| t.to_string()),
            ttl: desired.ttl.clone(),
        };
        Ok(Written { fields, readback })
    }

    fn explain_difference(desired: &DesiredValue, observed: &ObservedKey) -> String {
        let sent = desired.encoded.type_.as_str();
        match &observed.read {
            KvRead::Found(entry) if entry.type_ != sent => format!(
                "it was sent as {sent} and Kestra stored type {}",
                entry.type_
            ),
            KvRead::Found(entry) if desired.from_secret => format!(
                "Kestra stored the {} value from the Secret in another form (not shown)",
                entry.type_
            ),
            KvRead::Found(entry) => format!("the {sent} value was stored as {}", entry.value),
            KvRead::Missing => "the key is missing right after it was written".to_string(),
            KvRead::Expired => "the key expired right after it was written".to_string(),
        }
    }

    fn in_sync_fields(
        desired: &DesiredValue,
        observed: &ObservedKey,
        prior: Option<&KeyValueStatusFields>,
    ) -> KeyValueStatusFields {
        let expires_at = match &observed.read {
            KvRead::Found(entry) => entry.expiration_date.clone(),
            _ => None,
        }
        .or_else(|| prior.and_then(|p| p.expires_at.clone()));
        let stored_type = match &observed.read {
            KvRead::Found(entry) => entry.type_.clone(),
            _ => desired.encoded.type_.as_str().to_string(),
        };
        KeyValueStatusFields {
            type_: Some(stored_type),
            expires_at: desired.ttl.as_ref().and(expires_at),
            ttl: desired.ttl.clone(),
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

    fn forget(&self, target: &Target) {
        self.seen().remove(target);
    }

    async fn delete(&self, kestra: &KestraClient, target: &Target) -> Result<(), KestraError> {
        self.seen().remove(target);
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

#[cfg(test)]
mod diff_tests {
    use super::*;
    use crate::kestra::KvEntry;

    fn desired(ttl: Option<&str>, description: Option<&str>) -> DesiredValue {
        DesiredValue {
            encoded: encode(&serde_json::json!("v"), None).unwrap(),
            ttl: ttl.map(str::to_string),
            description: description.map(str::to_string),
            from_secret: false,
        }
    }

    fn found(written_ttl: Option<&str>, description: Option<Option<&str>>) -> ObservedKey {
        ObservedKey {
            read: KvRead::Found(KvEntry {
                type_: "STRING".into(),
                value: serde_json::json!("v"),
                expiration_date: None,
            }),
            description: description.map(|d| d.map(str::to_string)),
            written_ttl: written_ttl.map(str::to_string),
        }
    }

    #[test]
    fn a_changed_ttl_or_description_is_written_even_when_the_value_matches() {
        let want = desired(Some("PT1H"), Some("nightly"));
        let diff = KeyValueAdapter::diff;
        assert_eq!(
            diff(&want, &found(Some("PT1H"), Some(Some("nightly")))),
            Diff::InSync
        );
        assert_eq!(
            diff(&want, &found(Some("PT5M"), Some(Some("nightly")))),
            Diff::Differs
        );
        assert_eq!(
            diff(&want, &found(None, Some(Some("nightly")))),
            Diff::Differs
        );
        assert_eq!(
            diff(&want, &found(Some("PT1H"), Some(Some("other")))),
            Diff::Differs
        );
        assert_eq!(diff(&want, &found(Some("PT1H"), Some(None))), Diff::Differs);
        // No listing holds the key: the description cannot be compared, the rest still is.
        assert_eq!(diff(&want, &found(Some("PT1H"), None)), Diff::InSync);
        // Removing both is a change too; an empty description is none.
        let bare = desired(None, None);
        assert_eq!(diff(&bare, &found(Some("PT1H"), Some(None))), Diff::Differs);
        assert_eq!(diff(&bare, &found(None, Some(Some("x")))), Diff::Differs);
        assert_eq!(diff(&bare, &found(None, Some(Some("")))), Diff::InSync);
        // Kestra receives the description in a header, whose value servers trim.
        let spaced = desired(None, Some(" nightly "));
        assert_eq!(
            diff(&spaced, &found(None, Some(Some("nightly")))),
            Diff::InSync
        );
    }
}

#[cfg(test)]
mod listing_tests {
    use std::time::Duration;

    use crate::adapters::listing::LISTING_TTL;

    use serde_json::{Value, json};

    use super::*;
    use crate::adapters::test_support::{fake_and_client_of, gets};
    use kestra_fake::KestraVersion;

    fn value(observed: &ObservedKey) -> Value {
        match &observed.read {
            KvRead::Found(entry) => entry.value.clone(),
            other => panic!("expected a value, got {other:?}"),
        }
    }

    /// The write landed even when the read-back after it fails: the write is not an error
    /// (its resource must own the key, and delete it with itself).
    #[tokio::test]
    async fn a_failed_read_back_does_not_undo_a_write() {
        let (fake, kestra) = fake_and_client_of(KestraVersion::V1_3).await;
        let target = Target {
            instance: crate::instances::InstanceId::Default,
            tenant: Some("main".into()),
            namespace: "company.team".into(),
            name: "k".into(),
        };
        reqwest::Client::new()
            .post(format!("{}/__fake/fail", fake.url()))
            .json(&json!({"count": 1, "status": 503, "method": "GET",
                "route": "/api/v1/main/namespaces/company.team/kv/k"}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let desired = DesiredValue {
            encoded: encode(&json!("v"), None).unwrap(),
            ttl: None,
            description: None,
            from_secret: false,
        };
        let written = KeyValueAdapter::default()
            .write(&kestra, &target, &desired)
            .await
            .expect("the PUT succeeded: the write is done");
        assert!(written.readback.is_none());
        assert_eq!(written.fields.type_.as_deref(), Some("STRING"));
        let (_, stored) = kestra
            .get_kv_stamped(Some("main"), "company.team", "k")
            .await
            .map(|(read, _)| ((), read))
            .unwrap();
        assert!(matches!(stored, KvRead::Found(_)));
        fake.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_resync_reads_a_key_again_only_when_its_update_time_moved() {
        for version in [KestraVersion::V1_3, KestraVersion::V2_0] {
            resync_reads_a_key_again_only_when_its_update_time_moved(version).await;
        }
    }

    async fn resync_reads_a_key_again_only_when_its_update_time_moved(version: KestraVersion) {
        let (fake, kestra) = fake_and_client_of(version).await;
        let url = fake.url();
        let (tenant, ns) = (Some("main"), "company.team");
        let target = Target {
            instance: crate::instances::InstanceId::Default,
            tenant: Some("main".into()),
            namespace: ns.into(),
            name: "k".into(),
        };
        let put = |v: &'static str| {
            let kestra = kestra.clone();
            async move {
                let write = KvWrite {
                    body: v,
                    ttl: None,
                    description: None,
                };
                kestra.put_kv(tenant, ns, "k", write).await.unwrap()
            }
        };
        put("\"v1\"").await;
        let adapter = KeyValueAdapter::default();
        let resync = || adapter.observe(&kestra, &target, ObserveMode::Resync, None);
        // Nothing remembered yet: read. Then the listing alone answers.
        assert_eq!(value(&resync().await.unwrap()), json!("v1"));
        assert_eq!(value(&resync().await.unwrap()), json!("v1"));
        assert_eq!(value(&resync().await.unwrap()), json!("v1"));
        assert_eq!(gets(&url, "/kv/{key}").await, 1);
        // One listing, through the filtered route both versions have (2.0 lacks the other).
        assert_eq!(gets(&url, "/api/v1/{tenant}/kv").await, 1);
        assert_eq!(gets(&url, "/namespaces/{namespace}/kv").await, 0);
        // Changed directly in Kestra: once the listing is refreshed, the key is read again.
        tokio::time::sleep(Duration::from_millis(5)).await;
        put("\"v2\"").await;
        tokio::time::sleep(LISTING_TTL + Duration::from_millis(100)).await;
        assert_eq!(value(&resync().await.unwrap()), json!("v2"));
        assert_eq!(gets(&url, "/kv/{key}").await, 2);
        // A full read always reads.
        adapter
            .observe(&kestra, &target, ObserveMode::Full, None)
            .await
            .unwrap();
        assert_eq!(gets(&url, "/kv/{key}").await, 3);
        // Deleted in Kestra: missing from the listing, so read, and found missing.
        kestra.delete_kv(tenant, ns, "k").await.unwrap();
        tokio::time::sleep(LISTING_TTL + Duration::from_millis(100)).await;
        assert_eq!(resync().await.unwrap().read, KvRead::Missing);
        fake.shutdown().await.unwrap();
    }
}
