//! The handler: one CloudWatch Logs subscription event in, one payload record per log event of an
//! opted-in tenant out. Everything that cannot become a safe record is counted and skipped without
//! failing the batch, and so is a failure that belongs to one log event (its body unreadable in
//! S3, its version's fingerprints unreadable or their key refused). Only a failure that retrying
//! can fix (a store unavailable, throttled or unreachable) fails the batch, after every other log
//! event of it has been processed; the retried batch adds nothing twice, since records are
//! written once per Bedrock request id.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
use promptseal::envelope::EnvelopeError;
use promptseal::store::fingerprints::{FingerprintError, FingerprintStore};
use promptseal::store::records::{PayloadStore, RecordError, Written};
use promptseal::store::tenants::TenantRegistry;
use promptseal::telemetry::{MetricRecord, Unit};
use promptseal::tenant::TenantError;
use serde::Serialize;

use crate::invocation_log::{self, BodyRef, InvocationLog, Skip};

/// Everything the handler needs, built once per cold start.
pub struct Deps {
    pub records: PayloadStore,
    pub tenants: TenantRegistry,
    pub fingerprints: FingerprintStore,
    pub s3: aws_sdk_s3::Client,
}

/// What one batch did: counts only.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub log_events: usize,
    pub stored: usize,
    /// Records already stored (a retried batch, or invoke wrote it first).
    pub already_stored: usize,
    /// The tenant has not opted in to payload logging (or is not registered).
    pub not_opted_in: usize,
    pub malformed: usize,
    pub unknown_schema: usize,
    pub unsupported: usize,
    pub unattributed: usize,
    /// Too large for one record; nothing of it is stored.
    pub too_large: usize,
    /// A body in S3 is missing or may not be read.
    pub body_unreadable: usize,
    /// The version's fingerprints do not open (tampered with, or their key refused).
    pub fingerprints_unreadable: usize,
    /// A store failed in a way a retry can fix: the batch is retried.
    pub failed: usize,
}

impl Summary {
    fn skipped(&mut self, skip: Skip) {
        *match skip {
            Skip::Malformed(_) => &mut self.malformed,
            Skip::UnknownSchema => &mut self.unknown_schema,
            Skip::Unsupported(_) => &mut self.unsupported,
            Skip::Unattributed(_) => &mut self.unattributed,
        } += 1;
    }
}

/// A store failed in a way a retry can fix: the batch fails and is retried. Reported to Lambda
/// with its stable code as the error type; its message names the store, never a payload.
#[derive(Debug, thiserror::Error)]
pub enum RedactLogError {
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error(transparent)]
    Tenants(#[from] TenantError),
    #[error(transparent)]
    Fingerprints(#[from] FingerprintError),
    #[error("reading a body from S3 failed")]
    S3(#[source] Box<aws_sdk_s3::Error>),
    #[error("reading a body from S3 failed")]
    S3Body(#[source] aws_sdk_s3::primitives::ByteStreamError),
}

impl RedactLogError {
    /// A stable code for logs, alarms and Lambda's error type.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Records(_) => "records_unavailable",
            Self::Tenants(_) => "tenants_unavailable",
            Self::Fingerprints(_) => "fingerprints_unavailable",
            Self::S3(_) | Self::S3Body(_) => "bodies_unavailable",
        }
    }
}

impl From<RedactLogError> for lambda_runtime::Diagnostic {
    fn from(e: RedactLogError) -> Self {
        Self {
            error_type: e.code().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// What became of one log event.
enum Outcome {
    Written(Written),
    NotOptedIn,
    TooLarge,
    BodyUnreadable,
    FingerprintsUnreadable,
    Skipped(Skip),
}

pub async fn handle(deps: &Deps, event: &[u8]) -> Result<Summary, RedactLogError> {
    let mut summary = Summary::default();
    let data = match invocation_log::decode(event) {
        Ok(data) => data,
        Err(skip) => {
            tracing::warn!(skip = skip.code(), reason = %skip, "subscription event skipped");
            summary.skipped(skip);
            return Ok(report(summary));
        }
    };
    // CloudWatch Logs checks a subscription's destination with control messages.
    if data.message_type != "DATA_MESSAGE" {
        return Ok(report(summary));
    }
    let mut retention: HashMap<String, Option<u16>> = HashMap::new();
    let mut failure = None;
    for event in &data.log_events {
        summary.log_events += 1;
        let outcome = match record_one(deps, &event.message, &mut retention).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(
                    log_event_id = %event.id,
                    error_code = e.code(),
                    "log event failed; the batch is retried"
                );
                summary.failed += 1;
                failure.get_or_insert(e);
                continue;
            }
        };
        match outcome {
            Outcome::Written(Written::Stored) => summary.stored += 1,
            Outcome::Written(Written::AlreadyStored) => summary.already_stored += 1,
            Outcome::NotOptedIn => summary.not_opted_in += 1,
            Outcome::TooLarge => summary.too_large += 1,
            Outcome::BodyUnreadable => {
                tracing::warn!(log_event_id = %event.id, skip = "body_unreadable", "log event skipped");
                summary.body_unreadable += 1;
            }
            Outcome::FingerprintsUnreadable => {
                tracing::warn!(
                    log_event_id = %event.id,
                    skip = "fingerprints_unreadable",
                    "log event skipped"
                );
                summary.fingerprints_unreadable += 1;
            }
            Outcome::Skipped(skip) => {
                tracing::warn!(
                    log_event_id = %event.id,
                    skip = skip.code(),
                    reason = %skip,
                    "log event skipped"
                );
                summary.skipped(skip);
            }
        }
    }
    let summary = report(summary);
    match failure {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

async fn record_one(
    deps: &Deps,
    message: &str,
    retention: &mut HashMap<String, Option<u16>>,
) -> Result<Outcome, RedactLogError> {
    let log = match InvocationLog::parse(message) {
        Ok(log) => log,
        Err(skip) => return Ok(Outcome::Skipped(skip)),
    };
    let who = match invocation_log::attribute(&log) {
        Ok(who) => who,
        Err(skip) => return Ok(Outcome::Skipped(skip)),
    };
    // Whether the tenant opted in, asked once per batch.
    let days = match retention.get(&who.meta.tenant_id) {
        Some(days) => *days,
        None => {
            let days = deps
                .tenants
                .get(&who.meta.tenant_id)
                .await?
                .filter(|t| t.spec.payload_logging.enabled)
                .map(|t| t.spec.payload_logging.retention_days);
            retention.insert(who.meta.tenant_id.clone(), days);
            days
        }
    };
    let Some(days) = days else {
        return Ok(Outcome::NotOptedIn);
    };
    let fingerprints = match deps
        .fingerprints
        .get(&who.meta.template_id, who.meta.template_version)
        .await
    {
        Ok(fp) => fp,
        Err(FingerprintError::Missing { .. }) => {
            return Ok(Outcome::Skipped(Skip::Unattributed("no fingerprints")));
        }
        Err(e) if !retry_can_fix(&e) => return Ok(Outcome::FingerprintsUnreadable),
        Err(e) => return Err(e.into()),
    };
    let input = match log.input_body() {
        Ok(body) => match body_bytes(deps, body).await? {
            Some(bytes) => bytes,
            None => return Ok(Outcome::BodyUnreadable),
        },
        Err(skip) => Err(skip),
    };
    let output = match log.output_body() {
        Ok(body) => match body_bytes(deps, body).await? {
            Some(bytes) => bytes,
            None => return Ok(Outcome::BodyUnreadable),
        },
        Err(skip) => Err(skip),
    };
    let record = input.and_then(|input| {
        let prompt = invocation_log::prompt(&log.operation, &input)?;
        let reply = invocation_log::reply(&log.operation, &output?)?;
        invocation_log::redact(&log, who, prompt, reply, &fingerprints)
    });
    match record {
        Ok(record) => match deps.records.put(&record, days).await {
            Ok(written) => Ok(Outcome::Written(written)),
            Err(RecordError::TooLarge(_)) => Ok(Outcome::TooLarge),
            Err(e) => Err(e.into()),
        },
        Err(skip) => Ok(Outcome::Skipped(skip)),
    }
}

/// Whether a failure to open fingerprints is one a retry can fix (a store or KMS unavailable,
/// throttled or unreachable), rather than one that belongs to this version (fingerprints that do
/// not open, a key that refuses them).
fn retry_can_fix(e: &FingerprintError) -> bool {
    use aws_sdk_kms::error::ProvideErrorMetadata;
    match e {
        FingerprintError::Dynamo(_) => true,
        FingerprintError::Envelope(EnvelopeError::Kms { source, .. }) => !matches!(
            source.code(),
            Some(
                "AccessDeniedException"
                    | "DisabledException"
                    | "IncorrectKeyException"
                    | "InvalidCiphertextException"
                    | "InvalidKeyUsageException"
                    | "KMSInvalidStateException"
                    | "NotFoundException"
            )
        ),
        _ => false,
    }
}

/// A body's bytes: borrowed from the record, or read from the S3 object Bedrock wrote it to
/// (gzip or not); `None` when S3 answers that the object is missing or may not be read.
async fn body_bytes<'a>(
    deps: &Deps,
    body: BodyRef<'a>,
) -> Result<Option<Result<Cow<'a, [u8]>, Skip>>, RedactLogError> {
    let (bucket, key) = match body {
        BodyRef::Inline(json) => return Ok(Some(Ok(Cow::Borrowed(json.as_bytes())))),
        BodyRef::S3 { bucket, key } => (bucket, key),
    };
    let object = match deps.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => object,
        Err(e) => {
            // S3 answered with a refusal of its own (missing, denied), not throttling or a
            // failure on its side: retrying cannot fix it.
            let status = e.raw_response().map(|r| r.status().as_u16());
            let refused = status.is_some_and(|s| (400..500).contains(&s) && s != 429)
                && !matches!(
                    e.as_service_error().and_then(|s| s.meta().code()),
                    Some("SlowDown")
                );
            return if refused {
                Ok(None)
            } else {
                Err(RedactLogError::S3(Box::new(e.into())))
            };
        }
    };
    let bytes = object
        .body
        .collect()
        .await
        .map_err(RedactLogError::S3Body)?
        .into_bytes();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut json = Vec::new();
        return Ok(Some(
            GzDecoder::new(bytes.as_ref())
                .read_to_end(&mut json)
                .map(|_| Cow::Owned(json))
                .map_err(|_| Skip::Malformed("body object")),
        ));
    }
    Ok(Some(Ok(Cow::Owned(bytes.to_vec()))))
}

/// One summary line and one metrics record per batch.
fn report(summary: Summary) -> Summary {
    tracing::info!(
        log_events = summary.log_events,
        stored = summary.stored,
        already_stored = summary.already_stored,
        not_opted_in = summary.not_opted_in,
        malformed = summary.malformed,
        unknown_schema = summary.unknown_schema,
        unsupported = summary.unsupported,
        unattributed = summary.unattributed,
        too_large = summary.too_large,
        body_unreadable = summary.body_unreadable,
        fingerprints_unreadable = summary.fingerprints_unreadable,
        failed = summary.failed,
        "batch processed"
    );
    let count = |n: usize| n as f64;
    MetricRecord {
        namespace: "promptseal",
        dimensions: &[("Function", "redact-log")],
        metrics: &[
            ("LogEvents", count(summary.log_events), Unit::Count),
            ("RecordsStored", count(summary.stored), Unit::Count),
            (
                "RecordsAlreadyStored",
                count(summary.already_stored),
                Unit::Count,
            ),
            ("NotOptedIn", count(summary.not_opted_in), Unit::Count),
            ("Malformed", count(summary.malformed), Unit::Count),
            ("UnknownSchema", count(summary.unknown_schema), Unit::Count),
            ("Unsupported", count(summary.unsupported), Unit::Count),
            ("Unattributed", count(summary.unattributed), Unit::Count),
            ("TooLarge", count(summary.too_large), Unit::Count),
            (
                "BodyUnreadable",
                count(summary.body_unreadable),
                Unit::Count,
            ),
            (
                "FingerprintsUnreadable",
                count(summary.fingerprints_unreadable),
                Unit::Count,
            ),
            ("Failed", count(summary.failed), Unit::Count),
        ],
        properties: &[],
    }
    .emit();
    summary
}
