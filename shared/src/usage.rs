//! The usage ledger in DynamoDB: tokens in and out and request counts per tenant, per UTC day, per
//! model. Each call adds to its row with one atomic update, so concurrent invocations never lose a
//! count.

use serde::Serialize;

use crate::dynamo::{self, DynamoError, Item, MalformedItem, n, s};

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub tenant_id: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub model_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
}

/// A tenant's totals for one day, across models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub tokens: u64,
    pub requests: u64,
}

/// Today's date in UTC as `YYYY-MM-DD`.
pub fn today() -> String {
    dynamo::now_rfc3339()[..10].to_owned()
}

#[derive(Clone)]
pub struct UsageLedger {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl UsageLedger {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }

    /// Adds one request and its tokens to the tenant's row for `day` and `model_id`.
    pub async fn record(
        &self,
        tenant_id: &str,
        day: &str,
        model_id: &str,
        input_tokens: u64,
        output_tokens: u64,
    ) -> Result<(), UsageError> {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("sk", s(format!("{day}#{model_id}")))
            .update_expression(
                "ADD input_tokens :in, output_tokens :out, requests :one SET #day = :day, model_id = :model",
            )
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":in", n(input_tokens))
            .expression_attribute_values(":out", n(output_tokens))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":day", s(day))
            .expression_attribute_values(":model", s(model_id))
            .send()
            .await
            .map_err(|e| DynamoError::new("UpdateItem", e))?;
        Ok(())
    }

    /// What the tenant used on `day`, all models together.
    pub async fn day_totals(&self, tenant_id: &str, day: &str) -> Result<DayTotals, UsageError> {
        let rows = self
            .rows(tenant_id, Some(("begins_with(sk, :day)", day)))
            .await?;
        Ok(rows.iter().fold(DayTotals::default(), |t, r| DayTotals {
            tokens: t.tokens + r.input_tokens + r.output_tokens,
            requests: t.requests + r.requests,
        }))
    }

    /// The tenant's rows from `since` (a `YYYY-MM-DD` day, inclusive) on, oldest first; all rows
    /// when `since` is `None`.
    pub async fn query(
        &self,
        tenant_id: &str,
        since: Option<&str>,
    ) -> Result<Vec<UsageRecord>, UsageError> {
        self.rows(tenant_id, since.map(|day| ("sk >= :day", day)))
            .await
    }

    /// The tenant's rows, optionally narrowed by a condition on the sort key (`:day`).
    async fn rows(
        &self,
        tenant_id: &str,
        day_condition: Option<(&str, &str)>,
    ) -> Result<Vec<UsageRecord>, UsageError> {
        let mut req = self
            .ddb
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":t", s(tenant_id));
        req = match day_condition {
            Some((condition, day)) => req
                .key_condition_expression(format!("tenant_id = :t AND {condition}"))
                .expression_attribute_values(":day", s(day)),
            None => req.key_condition_expression("tenant_id = :t"),
        };
        let items = dynamo::query_all(req).await?;
        items.iter().map(|i| Ok(record(i)?)).collect()
    }
}

fn record(item: &Item) -> Result<UsageRecord, MalformedItem> {
    Ok(UsageRecord {
        tenant_id: dynamo::string(item, "tenant_id")?,
        day: dynamo::string(item, "day")?,
        model_id: dynamo::string(item, "model_id")?,
        input_tokens: dynamo::number(item, "input_tokens")?,
        output_tokens: dynamo::number(item, "output_tokens")?,
        requests: dynamo::number(item, "requests")?,
    })
}
