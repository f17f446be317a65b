//! KestraNamespaceFile adapter: bytes compared exactly, uploaded as multipart.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::crd::nsfile::{KestraNamespaceFile, NamespaceFileStatusFields};
use crate::engine::refs::{self, Reference};
use crate::engine::{Adapter, Common, Diff, ObserveMode, ReconcileError, Status, Target, Written};
use crate::kestra::{Dialect, FileStat, KestraClient, KestraError};

use super::flow::tenant_suffix;
use super::listing::{NamespaceListings, if_offered, split_path};
use super::paths::normalise;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct DesiredFile {
    pub content: Bytes,
}

/// What a check of one file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservedFile {
    Absent,
    Content(Bytes),
    /// The directory listing shows the file as it was when last read: the SHA-256 of that read.
    AsRead {
        sha256: [u8; 32],
    },
}

/// A resync checks the files of a directory through one listing, which carries each file's size
/// and modification time: a file is read again only when either moved since it was last read.
pub struct NamespaceFileAdapter {
    listings: NamespaceListings<FileStat>,
    seen: Mutex<HashMap<Target, SeenFile>>,
}

impl Default for NamespaceFileAdapter {
    fn default() -> Self {
        Self {
            listings: NamespaceListings::by_directory(),
            seen: Mutex::default(),
        }
    }
}

/// A file as last read: its listing row then, when it was read, and a digest of its bytes.
#[derive(Clone, Debug)]
struct SeenFile {
    size: u64,
    modified_ms: i64,
    read_at_ms: i64,
    sha256: [u8; 32],
}

/// Some Kestra storages keep modification times to the second (S3 does), so a change made in
/// the same second as a read could keep the time the read saw. A listing row is trusted only
/// for a read made this long after the file's modification.
const MODIFIED_TIME_RESOLUTION_MS: i64 = 2_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn sha256(content: &[u8]) -> [u8; 32] {
    Sha256::digest(content).into()
}

/// The listing row shows the file unchanged since `seen` was read.
fn unchanged_since(seen: &SeenFile, row: &FileStat) -> bool {
    row.size == Some(seen.size)
        && row.last_modified_time == Some(seen.modified_ms)
        && seen.read_at_ms >= seen.modified_ms.saturating_add(MODIFIED_TIME_RESOLUTION_MS)
}

/// What to remember of a read, when the listing row describes the bytes read.
fn seen_from(row: Option<&FileStat>, content: &[u8], read_at_ms: i64) -> Option<SeenFile> {
    let row = row?;
    let size = row.size?;
    (size == content.len() as u64).then_some(())?;
    Some(SeenFile {
        size,
        modified_ms: row.last_modified_time?,
        read_at_ms,
        sha256: sha256(content),
    })
}

impl NamespaceFileAdapter {
    fn seen(&self) -> parking_lot::MutexGuard<'_, HashMap<Target, SeenFile>> {
        self.seen.lock()
    }
}

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
    type Observed = ObservedFile;
    type Fields = NamespaceFileStatusFields;
    const KIND: &'static str = "KestraNamespaceFile";
    const NOUN: &'static str = "file";

    fn common(r: &KestraNamespaceFile) -> Common<'_> {
        Common {
            namespace: &r.spec.namespace,
            name: &r.spec.filename,
            tenant: r.spec.tenant.as_deref(),
            instance_ref: r.spec.instance_ref.as_ref(),
            deletion_policy: r.spec.deletion_policy.unwrap_or_default(),
            suspend: r.spec.suspend.unwrap_or(false),
            resync_period: r.spec.resync_period.as_deref(),
        }
    }

    fn status(r: &KestraNamespaceFile) -> Option<&Status<Self>> {
        r.status.as_ref()
    }

    /// On a Kestra that stores a space in a file name as `+` (1.x), the name is kept in that
    /// form: `a b.txt` and `a+b.txt` are then one file, so one target (a Conflict between two
    /// resources), and the directory listing, which shows `a+b.txt`, finds it.
    fn object_name(r: &KestraNamespaceFile, dialect: &Dialect) -> Result<String, ReconcileError> {
        let path = normalise(&r.spec.filename).map_err(ReconcileError::InvalidSpec)?;
        Ok(if dialect.folds_space_and_plus_in_file_names() {
            path.replace(' ', "+")
        } else {
            path
        })
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
        mode: ObserveMode,
        prior: Option<&NamespaceFileStatusFields>,
    ) -> Result<ObservedFile, KestraError> {
        let (directory, name) = split_path(&target.name);
        let listing = if_offered(
            self.listings
                .get(target, || async {
                    let rows = kestra
                        .list_directory(target.tenant(), &target.namespace, directory)
                        .await?;
                    Ok(rows.into_iter().map(|r| (r.file_name.clone(), r)).collect())
                })
                .await,
        )?;
        let row = listing.as_ref().and_then(|l| l.rows.get(name));
        let file_row = row.filter(|r| r.type_.as_deref() != Some("Directory"));
        if mode == ObserveMode::Resync
            && let (Some(row), Some(seen)) = (file_row, self.seen().get(target).cloned())
            && unchanged_since(&seen, row)
        {
            return Ok(ObservedFile::AsRead {
                sha256: seen.sha256,
            });
        }
        // A file this resource never wrote, missing from its directory's listing, is not read:
        // on a cold sync that saves one request per file.
        let written_before = prior.is_some_and(|p| p.sha256.is_some());
        if !written_before && listing.is_some() && row.is_none() {
            self.seen().remove(target);
            return Ok(ObservedFile::Absent);
        }
        let content = kestra
            .get_file(target.tenant(), &target.namespace, &target.name)
            .await?;
        match content
            .as_deref()
            .and_then(|bytes| seen_from(file_row, bytes, now_ms()))
        {
            Some(seen) => self.seen().insert(target.clone(), seen),
            None => self.seen().remove(target),
        };
        Ok(content.map_or(ObservedFile::Absent, ObservedFile::Content))
    }

    fn diff(desired: &DesiredFile, observed: &ObservedFile) -> Diff {
        match observed {
            ObservedFile::Absent => Diff::Missing,
            ObservedFile::Content(bytes) if *bytes == desired.content => Diff::InSync,
            ObservedFile::AsRead { sha256: read } if *read == sha256(&desired.content) => {
                Diff::InSync
            }
            ObservedFile::Content(_) | ObservedFile::AsRead { .. } => Diff::Differs,
        }
    }

    async fn write(
        &self,
        kestra: &KestraClient,
        target: &Target,
        desired: &DesiredFile,
    ) -> Result<Written<Self>, ReconcileError> {
        self.seen().remove(target);
        kestra
            .upload_file(
                target.tenant(),
                &target.namespace,
                &target.name,
                desired.content.clone(),
            )
            .await?;
        // Kestra stores the bytes as sent: there is nothing to read back.
        Ok(Written {
            fields: fields_for(&desired.content),
            readback: None,
        })
    }

    fn explain_difference(_: &DesiredFile, _: &ObservedFile) -> String {
        "its content differs from the spec's".to_string()
    }

    fn in_sync_fields(
        desired: &DesiredFile,
        _: &ObservedFile,
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

    fn forget(&self, target: &Target) {
        self.seen().remove(target);
    }

    async fn delete(&self, kestra: &KestraClient, target: &Target) -> Result<(), KestraError> {
        self.seen().remove(target);
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
        let diff = NamespaceFileAdapter::diff;
        assert_eq!(diff(&desired, &ObservedFile::Absent), Diff::Missing);
        let content = |b: &'static [u8]| ObservedFile::Content(Bytes::from_static(b));
        assert_eq!(diff(&desired, &content(b"\x00\xffdata")), Diff::InSync);
        assert_eq!(diff(&desired, &content(b"\x00\xffdatA")), Diff::Differs);
        let as_read = |b: &[u8]| ObservedFile::AsRead { sha256: sha256(b) };
        assert_eq!(diff(&desired, &as_read(b"\x00\xffdata")), Diff::InSync);
        assert_eq!(diff(&desired, &as_read(b"other")), Diff::Differs);
    }

    fn row(size: u64, modified_ms: i64) -> FileStat {
        FileStat {
            file_name: "f.txt".into(),
            type_: Some("File".into()),
            size: Some(size),
            last_modified_time: Some(modified_ms),
        }
    }

    #[test]
    fn a_listing_row_answers_only_for_a_read_well_after_the_last_change() {
        let seen = seen_from(Some(&row(4, 10_000)), b"data", 20_000).unwrap();
        assert!(unchanged_since(&seen, &row(4, 10_000)));
        assert!(!unchanged_since(&seen, &row(4, 10_001)), "modified again");
        assert!(!unchanged_since(&seen, &row(5, 10_000)), "another size");
        // Read within the storage's time resolution of the change: not trusted.
        let close = seen_from(Some(&row(4, 10_000)), b"data", 11_000).unwrap();
        assert!(!unchanged_since(&close, &row(4, 10_000)));
        // A row that does not describe the bytes read is not remembered.
        assert!(seen_from(Some(&row(3, 10_000)), b"data", 20_000).is_none());
        assert!(seen_from(None, b"data", 20_000).is_none());
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

#[cfg(test)]
mod listing_tests {
    use std::time::Duration;

    use super::*;
    use crate::adapters::listing::LISTING_TTL;
    use crate::adapters::test_support::{fake_and_client, gets};

    #[tokio::test]
    async fn a_resync_reads_a_file_again_only_when_its_listing_row_moved() {
        let (fake, kestra) = fake_and_client().await;
        let url = fake.url();
        let (tenant, ns, path) = (Some("main"), "company.team", "/dir/f.txt");
        let target = Target {
            instance: crate::instances::InstanceId::Default,
            tenant: Some("main".into()),
            namespace: ns.into(),
            name: path.into(),
        };
        let upload = |content: &'static [u8]| {
            let kestra = kestra.clone();
            async move {
                kestra
                    .upload_file(tenant, ns, path, Bytes::from_static(content))
                    .await
                    .unwrap()
            }
        };
        upload(b"aaaa").await;
        // Past the storage's time resolution, so that a read now is trusted later.
        tokio::time::sleep(Duration::from_millis(
            MODIFIED_TIME_RESOLUTION_MS as u64 + 100,
        ))
        .await;
        let adapter = NamespaceFileAdapter::default();
        let resync = || adapter.observe(&kestra, &target, ObserveMode::Resync, None);
        assert_eq!(
            resync().await.unwrap(),
            ObservedFile::Content(Bytes::from_static(b"aaaa"))
        );
        assert_eq!(
            resync().await.unwrap(),
            ObservedFile::AsRead {
                sha256: sha256(b"aaaa")
            }
        );
        assert_eq!(gets(&url, "/files").await, 1);
        // The same size, written directly: the modification time moved, so it is read again.
        upload(b"bbbb").await;
        tokio::time::sleep(LISTING_TTL + Duration::from_millis(100)).await;
        assert_eq!(
            resync().await.unwrap(),
            ObservedFile::Content(Bytes::from_static(b"bbbb"))
        );
        assert_eq!(gets(&url, "/files").await, 2);
        fake.shutdown().await.unwrap();
    }
}
