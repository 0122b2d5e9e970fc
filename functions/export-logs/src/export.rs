//! One export: a tenant's payload records stored in a time window, written to its S3 destination
//! as gzipped JSON Lines objects and a manifest (record count, time range, SHA-256 of each
//! object), under keys that depend only on the tenant and the window. A scheduled export's window
//! runs from the tenant's watermark to a time fixed (as "pending") before anything is written, so
//! a run that dies anywhere is repeated with the same window, rewrites the same keys, and only
//! then advances the watermark: no record is lost or delivered twice. The window is closed to
//! writers (the records' export fence) before it is read, so a record whose write commits late
//! is stamped into the next window instead of one already read.

use std::io::Write;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use flate2::Compression;
use flate2::write::GzEncoder;
use promptseal::records::{
    PayloadStore, RecordError, SCHEMA_VERSION, StoredRecord, timestamp_micros,
};
use promptseal::tenants::ExportDestination;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{ExportState, StateError};

/// Where the window of the first export of a tenant starts: every record it has.
pub const BEGINNING: &str = "1970-01-01T00:00:00.000000Z";

/// A half-open window `[from, until)` of the times records were stored, as
/// [`timestamp_micros`] writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: String,
    pub until: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// From the watermark, on the schedule.
    Scheduled,
    /// A window an operator asked for; the watermark is not moved.
    OnDemand,
}

/// One object of an export, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedObject {
    pub key: String,
    pub bytes: Vec<u8>,
    pub records: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    pub key: String,
    pub records: usize,
    pub bytes: usize,
    pub sha256: String,
}

/// What an export delivered; written last, so a manifest names only complete objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The record schema version of every line in the objects.
    pub schema_version: u32,
    pub tenant_id: String,
    pub kind: ExportKind,
    /// The window of times the records were stored.
    pub window: Window,
    pub record_count: usize,
    /// The earliest and latest request time among the records.
    pub first_record_time: Option<String>,
    pub last_record_time: Option<String>,
    pub objects: Vec<ManifestObject>,
}

/// An export with its objects encoded, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub objects: Vec<EncodedObject>,
    pub manifest_key: String,
    pub manifest: Manifest,
}

/// `2026-11-22T09:30:00.123456Z` → `20261122T093000.123456Z`, for object keys.
fn compact(t: &str) -> String {
    t.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// The key prefix of one export: `{prefix}{tenant}/[on-demand/]{from}_{until}/`.
pub fn export_prefix(
    dest: &ExportDestination,
    tenant_id: &str,
    kind: ExportKind,
    window: &Window,
) -> String {
    let kind = match kind {
        ExportKind::Scheduled => "",
        ExportKind::OnDemand => "on-demand/",
    };
    format!(
        "{}{tenant_id}/{kind}{}_{}/",
        dest.prefix,
        compact(&window.from),
        compact(&window.until)
    )
}

/// Records as gzipped JSON Lines, one record per line.
pub fn encode<'a>(records: impl IntoIterator<Item = &'a StoredRecord>) -> Vec<u8> {
    // Lines are serialised into a buffer first: the encoder works per write call, and
    // serde_json writes a record in many small pieces.
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    let mut lines = Vec::with_capacity(64 * 1024);
    for stored in records {
        serde_json::to_writer(&mut lines, &stored.record).expect("records always serialise");
        lines.push(b'\n');
        if lines.len() >= 60 * 1024 {
            gz.write_all(&lines).expect("writing to memory cannot fail");
            lines.clear();
        }
    }
    gz.write_all(&lines).expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

/// Builds an export object by object: records go in in the order they were stored, full objects
/// come out, and the manifest at the end describes them all. Memory holds one object's records.
pub struct ExportWriter {
    base: String,
    per_object: usize,
    pending: Vec<StoredRecord>,
    manifest: Manifest,
}

impl ExportWriter {
    pub fn new(
        dest: &ExportDestination,
        tenant_id: &str,
        kind: ExportKind,
        window: &Window,
        per_object: usize,
    ) -> Self {
        Self {
            base: export_prefix(dest, tenant_id, kind, window),
            per_object: per_object.max(1),
            pending: Vec::new(),
            manifest: Manifest {
                schema_version: SCHEMA_VERSION,
                tenant_id: tenant_id.to_owned(),
                kind,
                window: window.clone(),
                record_count: 0,
                first_record_time: None,
                last_record_time: None,
                objects: Vec::new(),
            },
        }
    }

    /// Takes records; returns the objects that are now full.
    pub fn push(&mut self, records: Vec<StoredRecord>) -> Vec<EncodedObject> {
        self.pending.extend(records);
        let mut full = Vec::new();
        while self.pending.len() >= self.per_object {
            let rest = self.pending.split_off(self.per_object);
            let chunk = std::mem::replace(&mut self.pending, rest);
            full.push(self.object(&chunk));
        }
        full
    }

    /// The last, partly filled object (if any), then the manifest's key and the manifest.
    pub fn finish(mut self) -> (Option<EncodedObject>, String, Manifest) {
        let pending = std::mem::take(&mut self.pending);
        let last = (!pending.is_empty()).then(|| self.object(&pending));
        (last, format!("{}manifest.json", self.base), self.manifest)
    }

    fn object(&mut self, chunk: &[StoredRecord]) -> EncodedObject {
        let m = &mut self.manifest;
        for stored in chunk {
            let time = &stored.record.time;
            if m.first_record_time.as_ref().is_none_or(|t| time < t) {
                m.first_record_time = Some(time.clone());
            }
            if m.last_record_time.as_ref().is_none_or(|t| time > t) {
                m.last_record_time = Some(time.clone());
            }
        }
        let bytes = encode(chunk);
        let key = format!("{}part-{:05}.jsonl.gz", self.base, m.objects.len());
        m.record_count += chunk.len();
        m.objects.push(ManifestObject {
            key: key.clone(),
            records: chunk.len(),
            bytes: bytes.len(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
        EncodedObject {
            key,
            bytes,
            records: chunk.len(),
        }
    }
}

/// A whole export of `records` at once: what [`Exporter::export`] writes, page by page.
pub fn prepare(
    dest: &ExportDestination,
    tenant_id: &str,
    kind: ExportKind,
    window: &Window,
    records: Vec<StoredRecord>,
    per_object: usize,
) -> Prepared {
    let mut writer = ExportWriter::new(dest, tenant_id, kind, window, per_object);
    let mut objects = writer.push(records);
    let (last, manifest_key, manifest) = writer.finish();
    objects.extend(last);
    Prepared {
        objects,
        manifest_key,
        manifest,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("writing s3://{bucket}/{key} failed")]
    Put {
        bucket: String,
        key: String,
        #[source]
        source: Box<aws_sdk_s3::Error>,
    },
}

/// What one tenant's export did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub tenant_id: String,
    pub kind: ExportKind,
    pub window: Window,
    pub records: usize,
    pub objects: usize,
    /// The manifest's key; none when the window held no record.
    pub manifest_key: Option<String>,
}

/// Runs exports against the record store, the export state and S3.
pub struct Exporter {
    pub records: PayloadStore,
    pub state: ExportState,
    pub sdk: aws_config::SdkConfig,
    /// Records stored less than this long ago wait for the next run, so a write still in flight
    /// when the window closes is never skipped.
    pub settle: Duration,
    pub per_object: usize,
}

impl Exporter {
    /// The S3 client for a destination: this function's own credentials, or the tenant's role.
    pub async fn s3_for(&self, dest: &ExportDestination) -> aws_sdk_s3::Client {
        let mut config = aws_sdk_s3::config::Builder::from(&self.sdk);
        if let Some(role) = &dest.role_arn {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("promptseal-export-logs")
                .configure(&self.sdk);
            // The tenant's own external id: a role registered for another tenant refuses it.
            if let Some(id) = &dest.external_id {
                provider = provider.external_id(id);
            }
            config = config.credentials_provider(provider.build().await);
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    /// The window of a tenant's next scheduled export, fixed (as pending) before anything is
    /// written; the pending window of a run that did not finish, if there is one. None when
    /// there is nothing new to export yet.
    pub async fn plan(&self, tenant_id: &str) -> Result<Option<Window>, ExportError> {
        let state = self.state.get(tenant_id).await?;
        let from = state
            .watermark
            .clone()
            .unwrap_or_else(|| BEGINNING.to_owned());
        if let Some(until) = state.pending_until {
            return Ok(Some(Window { from, until }));
        }
        let until = timestamp_micros(SystemTime::now() - self.settle);
        if until <= from {
            return Ok(None);
        }
        // Closed before it is read: a record whose write commits from now on, stamped before
        // `until`, is stamped again at it and goes into the next window, never lost.
        self.records.close_until(tenant_id, &until).await?;
        if !self
            .state
            .begin(tenant_id, state.watermark.as_deref(), &until)
            .await?
        {
            // Another run fixed a window first: continue that one.
            let state = self.state.get(tenant_id).await?;
            return Ok(state.pending_until.map(|until| Window {
                from: state.watermark.unwrap_or_else(|| BEGINNING.to_owned()),
                until,
            }));
        }
        Ok(Some(Window { from, until }))
    }

    pub async fn put(
        &self,
        s3: &aws_sdk_s3::Client,
        dest: &ExportDestination,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ExportError> {
        let mut req = s3
            .put_object()
            .bucket(&dest.bucket)
            .expected_bucket_owner(&dest.account_id)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes));
        if let Some(kms) = &dest.kms_key_id {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        req.send().await.map_err(|e| ExportError::Put {
            bucket: dest.bucket.clone(),
            key: key.to_owned(),
            source: Box::new(e.into()),
        })?;
        Ok(())
    }

    /// A tenant's scheduled export: plan, prepare, deliver, advance the watermark.
    pub async fn scheduled(
        &self,
        tenant_id: &str,
        dest: &ExportDestination,
    ) -> Result<Option<Delivered>, ExportError> {
        let Some(window) = self.plan(tenant_id).await? else {
            return Ok(None);
        };
        let delivered = self
            .export(tenant_id, dest, ExportKind::Scheduled, &window)
            .await?;
        self.state.commit(tenant_id, &window.until).await?;
        Ok(Some(delivered))
    }

    /// Exports `window`: the records page by page, each object written as soon as it is full,
    /// then the manifest. An empty window writes nothing.
    pub async fn export(
        &self,
        tenant_id: &str,
        dest: &ExportDestination,
        kind: ExportKind,
        window: &Window,
    ) -> Result<Delivered, ExportError> {
        let s3 = self.s3_for(dest).await;
        let mut writer = ExportWriter::new(dest, tenant_id, kind, window, self.per_object);
        let mut pages = self
            .records
            .stored_between(tenant_id, &window.from, &window.until);
        while let Some(page) = pages.next().await {
            for object in writer.push(page?) {
                self.put_object(&s3, dest, object).await?;
            }
        }
        let (last, manifest_key, manifest) = writer.finish();
        if let Some(object) = last {
            self.put_object(&s3, dest, object).await?;
        }
        let delivered = Delivered {
            tenant_id: tenant_id.to_owned(),
            kind,
            window: window.clone(),
            records: manifest.record_count,
            objects: manifest.objects.len(),
            manifest_key: (manifest.record_count > 0).then(|| manifest_key.clone()),
        };
        if manifest.record_count > 0 {
            let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
            self.put(&s3, dest, &manifest_key, json, "application/json")
                .await?;
        }
        Ok(delivered)
    }

    pub async fn put_object(
        &self,
        s3: &aws_sdk_s3::Client,
        dest: &ExportDestination,
        object: EncodedObject,
    ) -> Result<(), ExportError> {
        self.put(s3, dest, &object.key, object.bytes, "application/gzip")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promptseal::leak::{GuardAction, GuardReport};
    use promptseal::records::{PayloadRecord, Source, TokenUsage};
    use std::io::Read;

    fn stored(i: usize) -> StoredRecord {
        StoredRecord {
            position: format!("2026-11-22T09:00:0{i}.000000Z#m-{i}"),
            record: PayloadRecord {
                schema_version: SCHEMA_VERSION,
                tenant_id: "acme".into(),
                request_id: format!("r-{i}"),
                model_request_id: format!("m-{i}"),
                time: format!("2026-11-22T09:00:0{i}Z"),
                source: Source::Invoke,
                principal: None,
                template_id: "t".into(),
                template_version: 1,
                model_id: "m".into(),
                system: vec![],
                messages: vec![],
                output: format!("answer {i}"),
                stop_reason: None,
                guard: GuardReport {
                    action: GuardAction::Passed,
                    findings: 0,
                    forms: vec![],
                },
                usage: TokenUsage::default(),
            },
        }
    }

    fn dest() -> ExportDestination {
        ExportDestination {
            bucket: "acme-logs".into(),
            prefix: "promptseal/".into(),
            account_id: "123456789012".into(),
            kms_key_id: None,
            role_arn: None,
            external_id: None,
        }
    }

    fn window() -> Window {
        Window {
            from: "2026-11-22T09:00:00.000000Z".into(),
            until: "2026-11-22T10:00:00.000000Z".into(),
        }
    }

    #[test]
    fn an_export_is_split_into_objects_and_described_by_its_manifest() {
        let records: Vec<_> = (0..5).map(stored).collect();
        let p = prepare(
            &dest(),
            "acme",
            ExportKind::Scheduled,
            &window(),
            records.clone(),
            2,
        );
        let base = "promptseal/acme/20261122T090000.000000Z_20261122T100000.000000Z/";
        assert_eq!(p.manifest_key, format!("{base}manifest.json"));
        let keys: Vec<_> = p.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("{base}part-00000.jsonl.gz"),
                format!("{base}part-00001.jsonl.gz"),
                format!("{base}part-00002.jsonl.gz")
            ]
        );
        assert_eq!(p.manifest.record_count, 5);
        assert_eq!(
            p.manifest.first_record_time.as_deref(),
            Some("2026-11-22T09:00:00Z")
        );
        assert_eq!(
            p.manifest.last_record_time.as_deref(),
            Some("2026-11-22T09:00:04Z")
        );
        // Each object is gzipped JSON Lines of whole records, and its digest is in the manifest.
        let mut lines = Vec::new();
        for (object, described) in p.objects.iter().zip(&p.manifest.objects) {
            assert_eq!(described.sha256, hex::encode(Sha256::digest(&object.bytes)));
            let mut text = String::new();
            flate2::read::GzDecoder::new(object.bytes.as_slice())
                .read_to_string(&mut text)
                .unwrap();
            for line in text.lines() {
                let record: PayloadRecord = serde_json::from_str(line).unwrap();
                assert_eq!(record.schema_version, SCHEMA_VERSION);
                lines.push(record.model_request_id);
            }
        }
        assert_eq!(lines, ["m-0", "m-1", "m-2", "m-3", "m-4"]);
        // The same window always gives the same keys and bytes.
        assert_eq!(
            p,
            prepare(
                &dest(),
                "acme",
                ExportKind::Scheduled,
                &window(),
                records.clone(),
                2
            )
        );
        let on_demand = prepare(&dest(), "acme", ExportKind::OnDemand, &window(), records, 2);
        assert!(
            on_demand
                .manifest_key
                .starts_with("promptseal/acme/on-demand/")
        );
    }

    #[test]
    fn pages_of_any_size_make_the_same_objects() {
        let records: Vec<_> = (0..7).map(stored).collect();
        let whole = prepare(
            &dest(),
            "acme",
            ExportKind::Scheduled,
            &window(),
            records.clone(),
            3,
        );
        let mut writer = ExportWriter::new(&dest(), "acme", ExportKind::Scheduled, &window(), 3);
        let mut objects = Vec::new();
        for page in [&records[..1], &records[1..5], &records[5..5], &records[5..]] {
            objects.extend(writer.push(page.to_vec()));
        }
        let (last, manifest_key, manifest) = writer.finish();
        objects.extend(last);
        assert_eq!(objects, whole.objects);
        assert_eq!(
            (manifest_key, manifest),
            (whole.manifest_key, whole.manifest)
        );
        assert_eq!(
            objects.iter().map(|o| o.records).collect::<Vec<_>>(),
            [3, 3, 1]
        );
    }
}
