//! The payload-record table: one item per request in the tenant's partition, gzip-compressed,
//! expiring (TTL) after the tenant's retention; written once per model request id, so retries add
//! nothing, and fenced against the tenant's export so that no record lands in a window an export
//! has already closed.

use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::records::{PayloadRecord, timestamp_micros};
use crate::store::dynamo::{self, DynamoError, Item, MalformedItem, n, s};

/// What DynamoDB accepts in one item, less room for the other attributes.
const MAX_BODY_BYTES: usize = 390 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the record is {0} bytes compressed, over DynamoDB's item limit")]
    TooLarge(usize),
    #[error("a stored record could not be read")]
    Unreadable(#[source] std::io::Error),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
    #[error("the tenant's export fence kept moving while the record was written")]
    Fenced,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// A record for this model request id was already there; it is kept as it was.
    AlreadyStored,
}

/// A record read back, with its position in the tenant's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// `recorded_at#model_request_id`: orders a tenant's records by when they were stored.
    pub position: String,
    pub record: PayloadRecord,
}

/// The payload-record table: pk `tenant_id`, sk `model_request_id`, and the local index
/// `by_recorded` on `recorded` (`recorded_at#model_request_id`) that exports read in order.
#[derive(Clone)]
pub struct PayloadStore {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

pub const RECORDED_INDEX: &str = "by_recorded";
/// The key of a tenant's export fence item (in the tenant's partition; it has no `recorded`
/// time, so no export reads it as a record).
const FENCE: &str = "#export-fence";
/// Attempts of a write whose time an export keeps closing.
const FENCE_ATTEMPTS: usize = 3;
/// Attempts of a write in all: concurrent writes of one tenant's records check the same fence
/// item, and DynamoDB cancels a transaction that meets another on it (`TransactionConflict`).
const WRITE_ATTEMPTS: u32 = 10;

/// Waits before another attempt: exponential from 10 ms, with jitter, at most about 1.3 s.
async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(7);
    let jitter = u64::from(crate::random_bytes::<1>()[0]) * base / 255;
    tokio::time::sleep(std::time::Duration::from_millis(base / 2 + jitter / 2)).await;
}
/// The DynamoDB operation timeout (retries included) of the functions that write records: well
/// below export-logs' settle time (60 s), so a write stamped before a window closes almost
/// always commits before it does; the export fence takes care of the rest.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A DynamoDB client for a function that writes records: every operation, retries included,
/// ends within [`WRITE_TIMEOUT`].
pub fn writer_client(config: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::Client {
    let timeout = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .operation_timeout(WRITE_TIMEOUT)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config.timeout_config(timeout).build())
}

impl PayloadStore {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }

    /// Stores `record` unless one with its model request id is already stored; it expires
    /// `retention_days` from now.
    pub async fn put(
        &self,
        record: &PayloadRecord,
        retention_days: u16,
    ) -> Result<Written, RecordError> {
        self.put_stamped(record, retention_days, SystemTime::now())
            .await
    }

    /// Stores `record` stamped with `stamped`, the time taken before the write. The write is one
    /// transaction with a check of the tenant's export fence ([`PayloadStore::close_until`]):
    /// a record whose time an export has already closed (its write committed late: SDK retries,
    /// a slow network, a skewed clock) is stamped again at the fence, so it falls into the next
    /// export. Every stored record is in exactly one export window, however late it commits.
    pub async fn put_stamped(
        &self,
        record: &PayloadRecord,
        retention_days: u16,
        stamped: SystemTime,
    ) -> Result<Written, RecordError> {
        let body = compress(record)?;
        let expires_at = unix_secs(SystemTime::now()) + u64::from(retention_days) * 86_400;
        let mut time = timestamp_micros(stamped);
        let mut fenced_again = 0;
        for attempt in 0..WRITE_ATTEMPTS {
            let recorded = format!("{time}#{}", record.model_request_id);
            let fence = ConditionCheck::builder()
                .table_name(&self.table)
                .key("tenant_id", s(&record.tenant_id))
                .key("model_request_id", s(FENCE))
                .condition_expression(
                    "attribute_not_exists(closed_until) OR closed_until <= :recorded",
                )
                .expression_attribute_values(":recorded", s(&recorded))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .expect("table, key and condition are set");
            let put = Put::builder()
                .table_name(&self.table)
                .item("tenant_id", s(&record.tenant_id))
                .item("model_request_id", s(&record.model_request_id))
                .item("recorded", s(&recorded))
                .item("expires_at", n(expires_at))
                .item("schema_version", n(record.schema_version))
                .item("body", AttributeValue::B(Blob::new(body.clone())))
                .condition_expression("attribute_not_exists(model_request_id)")
                .build()
                .expect("table, item and condition are set");
            let out = self
                .ddb
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(fence).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .send()
                .await;
            let Err(e) = out else {
                return Ok(Written::Stored);
            };
            let reasons = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons()
                }
                _ => return Err(DynamoError::new("TransactWriteItems", e).into()),
            };
            let code = |i: usize| reasons.get(i).and_then(|r| r.code());
            if code(1) == Some("ConditionalCheckFailed") {
                return Ok(Written::AlreadyStored);
            }
            if code(0) == Some("ConditionalCheckFailed") {
                // An export has closed this time: the record belongs after the fence (or now,
                // on a clock that is ahead of it).
                fenced_again += 1;
                if fenced_again >= FENCE_ATTEMPTS {
                    return Err(RecordError::Fenced);
                }
                let now = timestamp_micros(SystemTime::now());
                time = reasons[0]
                    .item()
                    .and_then(|item| dynamo::opt_string(item, "closed_until"))
                    .map_or(now.clone(), |closed| closed.max(now));
                continue;
            }
            if !reasons
                .iter()
                .any(|r| r.code() == Some("TransactionConflict"))
            {
                return Err(DynamoError::new("TransactWriteItems", e).into());
            }
            // Another writer's transaction (or an export closing a window) holds the fence.
            backoff(attempt).await;
        }
        Err(RecordError::Fenced)
    }

    /// Closes the tenant's records up to `until` for export: from now on a record stamped
    /// earlier is stamped again at the fence ([`PayloadStore::put_stamped`]). Never moves the
    /// fence back. An export closes its window this way before it reads it.
    pub async fn close_until(&self, tenant_id: &str, until: &str) -> Result<(), RecordError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("model_request_id", s(FENCE))
            .update_expression("SET closed_until = :until")
            .condition_expression("attribute_not_exists(closed_until) OR closed_until < :until")
            .expression_attribute_values(":until", s(until))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(()),
                // A writer's transaction holds the fence: a later run tries again.
                _ => Err(DynamoError::new("UpdateItem", e).into()),
            },
        }
    }

    /// One record by its key.
    pub async fn get(
        &self,
        tenant_id: &str,
        model_request_id: &str,
    ) -> Result<Option<PayloadRecord>, RecordError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("model_request_id", s(model_request_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?;
        out.item.map(|item| Ok(stored(&item)?.record)).transpose()
    }

    /// A tenant's records stored at or after `from` and before `until` (times as
    /// [`timestamp_micros`] writes them), in the order they were stored, a page at a time.
    pub fn stored_between(&self, tenant_id: &str, from: &str, until: &str) -> RecordPages {
        // `t#id` sorts after `t` and before any later time: BETWEEN from AND until is [from, until).
        let pages = self
            .ddb
            .query()
            .table_name(&self.table)
            .index_name(RECORDED_INDEX)
            .consistent_read(true)
            .key_condition_expression("tenant_id = :t AND recorded BETWEEN :from AND :until")
            .expression_attribute_values(":t", s(tenant_id))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":until", s(until))
            .into_paginator()
            .send();
        RecordPages { pages }
    }
}

type QueryPage = Result<
    aws_sdk_dynamodb::operation::query::QueryOutput,
    aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::query::QueryError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
>;

/// Pages of stored records, read as they are needed.
pub struct RecordPages {
    pages: aws_smithy_async::future::pagination_stream::PaginationStream<QueryPage>,
}

impl RecordPages {
    /// The next page, or None after the last.
    pub async fn next(&mut self) -> Option<Result<Vec<StoredRecord>, RecordError>> {
        let page = self.pages.next().await?;
        Some(
            page.map_err(|e| RecordError::from(DynamoError::new("Query", e)))
                .and_then(|out| out.items().iter().map(stored).collect()),
        )
    }

    /// Every remaining record (for callers that know the range is small).
    pub async fn all(mut self) -> Result<Vec<StoredRecord>, RecordError> {
        let mut out = Vec::new();
        while let Some(page) = self.next().await {
            out.extend(page?);
        }
        Ok(out)
    }
}

fn stored(item: &Item) -> Result<StoredRecord, RecordError> {
    let body = dynamo::bytes(item, "body")?;
    let mut json = Vec::with_capacity(body.len() * 4);
    GzDecoder::new(body.as_slice())
        .read_to_end(&mut json)
        .map_err(RecordError::Unreadable)?;
    let record = serde_json::from_slice(&json).map_err(|_| MalformedItem("body"))?;
    Ok(StoredRecord {
        position: dynamo::string(item, "recorded")?,
        record,
    })
}

fn compress(record: &PayloadRecord) -> Result<Vec<u8>, RecordError> {
    let json = serde_json::to_vec(record).expect("records always serialise");
    let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 2), Compression::fast());
    gz.write_all(&json).expect("writing to memory cannot fail");
    let body = gz.finish().expect("writing to memory cannot fail");
    if body.len() > MAX_BODY_BYTES {
        return Err(RecordError::TooLarge(body.len()));
    }
    Ok(body)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
