//! Reading typed fields out of DynamoDB items, and the errors a store reports.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::envelope::Sealed;

pub type Item = HashMap<String, AttributeValue>;

/// A DynamoDB failure, with the operation that failed and the SDK's cause kept.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB {operation} failed")]
pub struct DynamoError {
    pub operation: &'static str,
    #[source]
    pub source: Box<aws_sdk_dynamodb::Error>,
}

impl DynamoError {
    pub fn new(operation: &'static str, source: impl Into<aws_sdk_dynamodb::Error>) -> Self {
        Self {
            operation,
            source: Box::new(source.into()),
        }
    }
}

/// A stored item is missing a field or has one of the wrong type.
#[derive(Debug, thiserror::Error)]
#[error("stored item has a missing or malformed {0:?} attribute")]
pub struct MalformedItem(pub &'static str);

/// Every item a Scan returns, across pages.
pub async fn scan_all(
    request: aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
) -> Result<Vec<Item>, DynamoError> {
    request
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| DynamoError::new("Scan", e))
}

/// Every item a Query returns, across pages.
pub async fn query_all(
    request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<Item>, DynamoError> {
    request
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| DynamoError::new("Query", e))
}

/// Runs a write transaction: `Ok(false)` when a condition cancelled it (someone else's change
/// came first), any other failure an error.
pub async fn transact(
    ddb: &aws_sdk_dynamodb::Client,
    items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
) -> Result<bool, DynamoError> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match ddb
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(_)) => Ok(false),
            _ => Err(DynamoError::new("TransactWriteItems", e)),
        },
    }
}

pub fn string(item: &Item, name: &'static str) -> Result<String, MalformedItem> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or(MalformedItem(name))
}

pub fn opt_string(item: &Item, name: &'static str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub fn number<T: FromStr>(item: &Item, name: &'static str) -> Result<T, MalformedItem> {
    opt_number(item, name)?.ok_or(MalformedItem(name))
}

pub fn opt_number<T: FromStr>(item: &Item, name: &'static str) -> Result<Option<T>, MalformedItem> {
    item.get(name)
        .map(|v| {
            v.as_n()
                .ok()
                .and_then(|n| n.parse().ok())
                .ok_or(MalformedItem(name))
        })
        .transpose()
}

pub fn bytes(item: &Item, name: &'static str) -> Result<Vec<u8>, MalformedItem> {
    item.get(name)
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .ok_or(MalformedItem(name))
}

/// A sealed object stored as two binary attributes, `ciphertext` and `wrapped_key`.
pub fn sealed(item: &Item) -> Result<Sealed, MalformedItem> {
    Ok(Sealed {
        ciphertext: bytes(item, "ciphertext")?,
        wrapped_key: bytes(item, "wrapped_key")?,
    })
}

/// The attributes [`sealed`] reads.
pub fn sealed_attributes(sealed: &Sealed) -> [(&'static str, AttributeValue); 2] {
    [
        (
            "ciphertext",
            AttributeValue::B(Blob::new(sealed.ciphertext.clone())),
        ),
        (
            "wrapped_key",
            AttributeValue::B(Blob::new(sealed.wrapped_key.clone())),
        ),
    ]
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The current time as RFC 3339 UTC, second precision.
pub fn now_rfc3339() -> String {
    use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
    DateTime::from(std::time::SystemTime::now())
        .fmt(DateTimeFormat::DateTime)
        .expect("the current time is always representable")
}
