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
use promptseal::records::{SCHEMA_VERSION, timestamp_micros};
use promptseal::store::records::{PayloadStore, RecordError, StoredRecord};
use promptseal::tenant::ExportDestination;
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
    let mut object = ObjectBuilder::default();
    for stored in records {
        object.push(stored);
    }
    object.finish()
}

/// One object being filled: records serialised as lines into a buffer, compressed 60 KiB at a
/// time (the encoder works per write call, and serde_json writes a record in many small pieces).
struct ObjectBuilder {
    gz: GzEncoder<Vec<u8>>,
    lines: Vec<u8>,
    records: usize,
    /// Uncompressed bytes so far.
    bytes: usize,
}

impl Default for ObjectBuilder {
    fn default() -> Self {
        Self {
            gz: GzEncoder::new(Vec::new(), Compression::fast()),
            lines: Vec::with_capacity(64 * 1024),
            records: 0,
            bytes: 0,
        }
    }
}

impl ObjectBuilder {
    fn push(&mut self, stored: &StoredRecord) {
        let before = self.lines.len();
        serde_json::to_writer(&mut self.lines, &stored.record).expect("records always serialise");
        self.lines.push(b'\n');
        self.bytes += self.lines.len() - before;
        self.records += 1;
        if self.lines.len() >= 60 * 1024 {
            self.gz
                .write_all(&self.lines)
                .expect("writing to memory cannot fail");
            self.lines.clear();
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.gz
            .write_all(&self.lines)
            .expect("writing to memory cannot fail");
        self.gz.finish().expect("writing to memory cannot fail")
    }
}

/// How big one object may grow: it is closed at whichever limit comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLimits {
    pub records: usize,
    /// Uncompressed JSON Lines bytes.
    pub bytes: usize,
}

/// The default byte limit of one object (uncompressed): what export-logs holds in memory.
pub const DEFAULT_OBJECT_BYTES: usize = 64 * 1024 * 1024;

/// How far an export has got: the objects written and the position of the last record in them.
/// A scheduled export saves it after every object, so a run that stops (out of its budget, or
/// dead) continues from its last object with the same keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub objects: Vec<ManifestObject>,
    pub record_count: usize,
    pub first_record_time: Option<String>,
    pub last_record_time: Option<String>,
    /// `position` of the last record written.
    pub after: Option<String>,
}

/// Builds an export object by object: records go in in the order they were stored, full objects
/// come out, and the manifest at the end describes them all. Memory holds one object, compressed
/// as it fills.
pub struct ExportWriter {
    base: String,
    limits: ObjectLimits,
    open: Option<ObjectBuilder>,
    /// The progress including the open object's records.
    next: Progress,
    /// The progress up to the last object handed out.
    done: Progress,
    tenant_id: String,
    kind: ExportKind,
    window: Window,
}

impl ExportWriter {
    /// A writer that continues `progress` (empty for a new export).
    pub fn new(
        dest: &ExportDestination,
        tenant_id: &str,
        kind: ExportKind,
        window: &Window,
        limits: ObjectLimits,
        progress: Progress,
    ) -> Self {
        Self {
            base: export_prefix(dest, tenant_id, kind, window),
            limits: ObjectLimits {
                records: limits.records.max(1),
                bytes: limits.bytes.max(1),
            },
            open: None,
            next: progress.clone(),
            done: progress,
            tenant_id: tenant_id.to_owned(),
            kind,
            window: window.clone(),
        }
    }

    /// Takes one record; returns the object it filled, if it did.
    pub fn push(&mut self, stored: &StoredRecord) -> Option<EncodedObject> {
        let time = &stored.record.time;
        let next = &mut self.next;
        if next.first_record_time.as_ref().is_none_or(|t| time < t) {
            next.first_record_time = Some(time.clone());
        }
        if next.last_record_time.as_ref().is_none_or(|t| time > t) {
            next.last_record_time = Some(time.clone());
        }
        next.after = Some(stored.position.clone());
        let open = self.open.get_or_insert_with(ObjectBuilder::default);
        open.push(stored);
        (open.records >= self.limits.records || open.bytes >= self.limits.bytes)
            .then(|| self.close())
            .flatten()
    }

    /// Everything written up to the last object handed out: what to save once it is stored.
    pub fn progress(&self) -> &Progress {
        &self.done
    }

    fn close(&mut self) -> Option<EncodedObject> {
        let object = self.open.take()?;
        let records = object.records;
        let bytes = object.finish();
        let key = format!("{}part-{:05}.jsonl.gz", self.base, self.next.objects.len());
        self.next.record_count += records;
        self.next.objects.push(ManifestObject {
            key: key.clone(),
            records,
            bytes: bytes.len(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
        self.done = self.next.clone();
        Some(EncodedObject {
            key,
            bytes,
            records,
        })
    }

    /// The last, partly filled object (if any), then the manifest's key and the manifest.
    pub fn finish(mut self) -> (Option<EncodedObject>, String, Manifest) {
        let last = self.close();
        let p = self.next;
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            tenant_id: self.tenant_id,
            kind: self.kind,
            window: self.window,
            record_count: p.record_count,
            first_record_time: p.first_record_time,
            last_record_time: p.last_record_time,
            objects: p.objects,
        };
        (last, format!("{}manifest.json", self.base), manifest)
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
    let limits = ObjectLimits {
        records: per_object,
        bytes: DEFAULT_OBJECT_BYTES,
    };
    let mut writer = ExportWriter::new(dest, tenant_id, kind, window, limits, Progress::default());
    let mut objects: Vec<_> = records.iter().filter_map(|r| writer.push(r)).collect();
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
    #[error("the export needs more objects than one run may write; ask for a smaller window")]
    Unfinished,
    #[error(
        "the destination was registered without its account (or its role without an external \
         id): register it again with tenant put --export-account"
    )]
    IncompleteDestination,
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
    /// The manifest's key; none when the window held no record, or is not finished.
    pub manifest_key: Option<String>,
    /// False when the run's budget ran out first: the next run goes on from the last object.
    pub finished: bool,
}

/// How far one run took an export.
enum Step {
    Done(Delivered),
    /// Out of this run's budget after these objects; the progress is saved.
    Paused(Delivered),
}

/// Runs exports against the record store, the export state and S3.
pub struct Exporter {
    pub records: PayloadStore,
    pub state: ExportState,
    pub sdk: aws_config::SdkConfig,
    /// Records stored less than this long ago wait for the next run, so a write still in flight
    /// when the window closes is never skipped.
    pub settle: Duration,
    pub limits: ObjectLimits,
    /// Most objects one tenant's export writes in one run: a backlog bigger than a run takes
    /// several runs, and the tenants after it still get theirs.
    pub objects_per_run: usize,
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
    /// written, with no progress; the pending window of a run that did not finish and its
    /// progress, if there is one. None when there is nothing new to export yet.
    pub async fn plan(&self, tenant_id: &str) -> Result<Option<(Window, Progress)>, ExportError> {
        let state = self.state.get(tenant_id).await?;
        let from = state
            .watermark
            .clone()
            .unwrap_or_else(|| BEGINNING.to_owned());
        if let Some(until) = state.pending_until {
            return Ok(Some((Window { from, until }, state.progress)));
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
            return Ok(state.pending_until.map(|until| {
                let from = state.watermark.unwrap_or_else(|| BEGINNING.to_owned());
                (Window { from, until }, state.progress)
            }));
        }
        Ok(Some((Window { from, until }, Progress::default())))
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

    /// A tenant's scheduled export: plan, deliver up to this run's budget (saving the progress
    /// after every object), and once the window is done, the manifest and the watermark.
    pub async fn scheduled(
        &self,
        tenant_id: &str,
        dest: &ExportDestination,
    ) -> Result<Option<Delivered>, ExportError> {
        let Some((window, progress)) = self.plan(tenant_id).await? else {
            return Ok(None);
        };
        match self
            .run(tenant_id, dest, ExportKind::Scheduled, &window, progress)
            .await?
        {
            Step::Done(delivered) => {
                self.state.commit(tenant_id, &window.until).await?;
                Ok(Some(delivered))
            }
            Step::Paused(delivered) => Ok(Some(delivered)),
        }
    }

    /// Exports `window` in one run (an export on request); refused when it needs more objects
    /// than a run may write.
    pub async fn export(
        &self,
        tenant_id: &str,
        dest: &ExportDestination,
        kind: ExportKind,
        window: &Window,
    ) -> Result<Delivered, ExportError> {
        match self
            .run(tenant_id, dest, kind, window, Progress::default())
            .await?
        {
            Step::Done(delivered) => Ok(delivered),
            Step::Paused(_) => Err(ExportError::Unfinished),
        }
    }

    /// Goes on with `window` from `progress`: the records after it page by page, each object
    /// written as soon as it is full (and, for a scheduled export, the progress saved), until
    /// the window is done (then the manifest) or the run's object budget is spent.
    async fn run(
        &self,
        tenant_id: &str,
        dest: &ExportDestination,
        kind: ExportKind,
        window: &Window,
        progress: Progress,
    ) -> Result<Step, ExportError> {
        // Never a write without the bucket's expected owner, nor a role without the tenant's
        // external id (destinations registered by earlier releases have neither).
        if dest.account_id.is_empty() || (dest.role_arn.is_some() && dest.external_id.is_none()) {
            return Err(ExportError::IncompleteDestination);
        }
        let s3 = self.s3_for(dest).await;
        let after = progress.after.clone();
        let mut writer = ExportWriter::new(dest, tenant_id, kind, window, self.limits, progress);
        let from = after.as_deref().unwrap_or(&window.from);
        let mut pages = self.records.stored_between(tenant_id, from, &window.until);
        let mut written = 0;
        while let Some(page) = pages.next().await {
            // BETWEEN includes its start: the record the progress ends with is already out.
            for stored in page?.iter().filter(|r| Some(&r.position) != after.as_ref()) {
                let Some(object) = writer.push(stored) else {
                    continue;
                };
                self.put_object(&s3, dest, object).await?;
                written += 1;
                // A concurrent run that has got further (or finished the window) stops this one.
                let ahead = kind == ExportKind::Scheduled
                    && !self
                        .state
                        .checkpoint(tenant_id, &window.until, writer.progress())
                        .await?;
                if ahead || written >= self.objects_per_run {
                    let done = writer.progress();
                    return Ok(Step::Paused(Delivered {
                        tenant_id: tenant_id.to_owned(),
                        kind,
                        window: window.clone(),
                        records: done.record_count,
                        objects: done.objects.len(),
                        manifest_key: None,
                        finished: false,
                    }));
                }
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
            finished: true,
        };
        if manifest.record_count > 0 {
            let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
            self.put(&s3, dest, &manifest_key, json, "application/json")
                .await?;
        }
        Ok(Step::Done(delivered))
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
    use promptseal::fixtures::payload_record;
    use promptseal::records::PayloadRecord;
    use std::io::Read;

    fn stored(i: usize) -> StoredRecord {
        StoredRecord {
            position: format!("2026-11-22T09:00:0{i}.000000Z#m-{i}"),
            record: PayloadRecord {
                time: format!("2026-11-22T09:00:0{i}Z"),
                ..payload_record("acme", &format!("m-{i}"))
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
    fn a_writer_continued_from_its_progress_makes_the_same_objects() {
        let records: Vec<_> = (0..7).map(stored).collect();
        let whole = prepare(
            &dest(),
            "acme",
            ExportKind::Scheduled,
            &window(),
            records.clone(),
            3,
        );
        let limits = ObjectLimits {
            records: 3,
            bytes: DEFAULT_OBJECT_BYTES,
        };
        let writer = |progress| {
            ExportWriter::new(
                &dest(),
                "acme",
                ExportKind::Scheduled,
                &window(),
                limits,
                progress,
            )
        };
        // A run that stops after its first object...
        let mut first = writer(Progress::default());
        let mut objects: Vec<_> = records
            .iter()
            .filter_map(|r| first.push(r))
            .take(1)
            .collect();
        let progress = first.progress().clone();
        assert_eq!(
            progress.after.as_deref(),
            Some(records[2].position.as_str())
        );
        // ...and the next, from where it stopped.
        let mut next = writer(progress);
        objects.extend(records[3..].iter().filter_map(|r| next.push(r)));
        let (last, manifest_key, manifest) = next.finish();
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

    #[test]
    fn objects_are_closed_at_their_byte_limit() {
        let records: Vec<_> = (0..6).map(stored).collect();
        let line = serde_json::to_vec(&records[0].record).unwrap().len() + 1;
        let limits = ObjectLimits {
            records: 1000,
            bytes: 2 * line,
        };
        let mut writer = ExportWriter::new(
            &dest(),
            "acme",
            ExportKind::Scheduled,
            &window(),
            limits,
            Progress::default(),
        );
        let mut objects: Vec<_> = records.iter().filter_map(|r| writer.push(r)).collect();
        objects.extend(writer.finish().0);
        assert_eq!(
            objects.iter().map(|o| o.records).collect::<Vec<_>>(),
            [2, 2, 2]
        );
    }
}
