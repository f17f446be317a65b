//! KestraNamespaceFile adapter: bytes compared exactly, uploaded as multipart.

use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::crd::nsfile::{KestraNamespaceFile, NamespaceFileStatusFields};
use crate::engine::refs::{self, Reference};
use crate::engine::{Adapter, Common, Diff, ObserveMode, ReconcileError, Status, Target};
use crate::kestra::{KestraClient, KestraError};

use super::flow::tenant_suffix;
use super::paths::normalise;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct DesiredFile {
    pub content: Bytes,
}

#[derive(Default)]
pub struct NamespaceFileAdapter;

fn fields_for(content: &[u8]) -> NamespaceFileStatusFields {
    let digest = Sha256::digest(content);
    NamespaceFileStatusFields {
        size: Some(i64::try_from(content.len()).unwrap_or(i64::MAX)),
        sha256: Some(digest.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

impl Adapter for NamespaceFileAdapter {
    type Resource = KestraNamespaceFile;
    type Desired = DesiredFile;
    type Observed = Option<Bytes>;
    type Fields = NamespaceFileStatusFields;
    const KIND: &'static str = "KestraNamespaceFile";
    const NOUN: &'static str = "file";

    fn common(r: &KestraNamespaceFile) -> Common<'_> {
        Common {
            namespace: &r.spec.namespace,
            name: &r.spec.filename,
            tenant: r.spec.tenant.as_deref(),
            deletion_policy: r.spec.deletion_policy.unwrap_or_default(),
            suspend: r.spec.suspend.unwrap_or(false),
            resync_period: r.spec.resync_period.as_deref(),
        }
    }

    fn status(r: &KestraNamespaceFile) -> Option<&Status<Self>> {
        r.status.as_ref()
    }

    fn object_name(r: &KestraNamespaceFile) -> Result<String, ReconcileError> {
        normalise(&r.spec.filename).map_err(ReconcileError::InvalidSpec)
    }

    fn references(r: &KestraNamespaceFile) -> Vec<Reference> {
        r.spec
            .content_from
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
        r: &KestraNamespaceFile,
    ) -> Result<DesiredFile, ReconcileError> {
        let spec = &r.spec;
        let content = match (&spec.content, &spec.content_base64, &spec.content_from) {
            (Some(text), None, None) => Bytes::from(text.clone().into_bytes()),
            (None, Some(encoded), None) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map(Bytes::from)
                .map_err(|e| {
                    ReconcileError::InvalidSpec(format!(
                        "spec.contentBase64 is not valid base64: {e}"
                    ))
                })?,
            (None, None, Some(from)) => {
                let (kind, key_ref) = from.reference().ok_or_else(|| {
                    ReconcileError::InvalidSpec(
                        "spec.contentFrom needs secretKeyRef or configMapKeyRef".to_string(),
                    )
                })?;
                let namespace = r.metadata.namespace.as_deref().unwrap_or_default();
                Bytes::from(refs::read_key(client, namespace, kind, key_ref).await?)
            }
            _ => {
                return Err(ReconcileError::InvalidSpec(
                    "set exactly one of spec.content, spec.contentBase64 or spec.contentFrom"
                        .to_string(),
                ));
            }
        };
        Ok(DesiredFile { content })
    }

    async fn observe(
        &self,
        kestra: &KestraClient,
        target: &Target,
        _mode: ObserveMode,
        _prior: Option<&NamespaceFileStatusFields>,
    ) -> Result<Option<Bytes>, KestraError> {
        kestra
            .get_file(target.tenant(), &target.namespace, &target.name)
            .await
    }

    fn diff(desired: &DesiredFile, observed: &Option<Bytes>) -> Diff {
        match observed {
            None => Diff::Missing,
            Some(bytes) if *bytes == desired.content => Diff::InSync,
            Some(_) => Diff::Differs,
        }
    }

    async fn write(
        &self,
        kestra: &KestraClient,
        target: &Target,
        desired: &DesiredFile,
    ) -> Result<NamespaceFileStatusFields, ReconcileError> {
        kestra
            .upload_file(
                target.tenant(),
                &target.namespace,
                &target.name,
                desired.content.clone(),
            )
            .await?;
        Ok(fields_for(&desired.content))
    }

    fn in_sync_fields(
        desired: &DesiredFile,
        _: &Option<Bytes>,
        _: Option<&NamespaceFileStatusFields>,
    ) -> NamespaceFileStatusFields {
        fields_for(&desired.content)
    }

    fn describe(target: &Target, fields: &NamespaceFileStatusFields) -> String {
        let size = fields
            .size
            .map(|s| format!(" ({s} bytes)"))
            .unwrap_or_default();
        format!(
            "file {}{}{size}{}",
            target.namespace,
            target.name,
            tenant_suffix(target)
        )
    }

    async fn delete(&self, kestra: &KestraClient, target: &Target) -> Result<(), KestraError> {
        kestra
            .delete_file(target.tenant(), &target.namespace, &target.name)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_is_byte_exact() {
        let desired = DesiredFile {
            content: Bytes::from_static(b"\x00\xffdata"),
        };
        assert_eq!(NamespaceFileAdapter::diff(&desired, &None), Diff::Missing);
        assert_eq!(
            NamespaceFileAdapter::diff(&desired, &Some(Bytes::from_static(b"\x00\xffdata"))),
            Diff::InSync
        );
        assert_eq!(
            NamespaceFileAdapter::diff(&desired, &Some(Bytes::from_static(b"\x00\xffdatA"))),
            Diff::Differs
        );
    }

    #[test]
    fn fields_carry_size_and_sha256() {
        let fields = fields_for(b"Hello World");
        assert_eq!(fields.size, Some(11));
        assert_eq!(
            fields.sha256.as_deref(),
            Some("a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e")
        );
    }
}
