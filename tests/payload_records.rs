//! The payload-record store against the local AWS emulator: written once per model request id,
//! expiring after the tenant's retention, read back per tenant in the order stored.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promptseal::fixtures::payload_record;
use promptseal::records::{PayloadRecord, timestamp_micros};
use promptseal::store::records::Written;

/// The shared fixture, with the user's `input`.
fn record(tenant: &str, model_request_id: &str, input: &str) -> PayloadRecord {
    let mut record = payload_record(tenant, model_request_id);
    record.messages[0].content[0].text = input.into();
    record
}

#[tokio::test]
async fn a_record_is_written_once_and_read_back_whole() {
    let stack = common::fresh_stack().await;
    let store = stack.payload_records();
    let first = record("acme", "m-1", "Where is order 42?");
    assert_eq!(store.put(&first, 30).await.unwrap(), Written::Stored);
    // A retried write (same model request id) keeps the first record.
    let retry = record("acme", "m-1", "something else");
    assert_eq!(store.put(&retry, 30).await.unwrap(), Written::AlreadyStored);
    assert_eq!(store.get("acme", "m-1").await.unwrap(), Some(first));
    // Another tenant's key space is its own.
    assert_eq!(store.get("globex", "m-1").await.unwrap(), None);

    let item = stack
        .ddb()
        .get_item()
        .table_name(stack.resources.table("PayloadRecordsTable"))
        .key(
            "tenant_id",
            aws_sdk_dynamodb::types::AttributeValue::S("acme".into()),
        )
        .key(
            "model_request_id",
            aws_sdk_dynamodb::types::AttributeValue::S("m-1".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expires.abs_diff(now + 30 * 86_400) < 60,
        "expires in 30 days"
    );
    // At rest the body is compressed: the input is not readable in the item.
    let body = item["body"].as_b().unwrap().as_ref();
    assert!(!String::from_utf8_lossy(body).contains("order 42"));
}

#[tokio::test]
async fn records_are_listed_per_tenant_in_the_order_stored() {
    let stack = common::fresh_stack().await;
    let store = stack.payload_records();
    let start = timestamp_micros(SystemTime::now());
    for id in ["z-first", "a-second", "m-third"] {
        store.put(&record("acme", id, id), 7).await.unwrap();
    }
    store.put(&record("globex", "g-1", "x"), 7).await.unwrap();
    let end = timestamp_micros(SystemTime::now() + Duration::from_secs(1));
    let listed: Vec<_> = store
        .stored_between("acme", &start, &end)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.record.model_request_id)
        .collect();
    assert_eq!(listed, ["z-first", "a-second", "m-third"]);
    // The range is half-open: nothing at or after `until`.
    assert!(
        store
            .stored_between("acme", &start, &start)
            .all()
            .await
            .unwrap()
            .is_empty()
    );
}
