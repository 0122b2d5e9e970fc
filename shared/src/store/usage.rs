//! The usage ledger in DynamoDB: tokens in and out and request counts per tenant, per UTC day, per
//! model. Each call adds to its row with one atomic update, so concurrent invocations never lose a
//! count. Beside the rows, one quota item per tenant and day (`#quota#DAY`) counts the requests
//! reserved before the model is called and the tokens used, so the daily request limit is exact
//! however many instances run at once.

use serde::Serialize;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use crate::records::TokenUsage;
use crate::store::dynamo::{self, DynamoError, Item, MalformedItem, n, s};
use crate::tenant::Quotas;

/// The sort key of a tenant's quota item for `day`; `#` sorts before every day's rows.
fn quota_key(day: &str) -> String {
    format!("#quota#{day}")
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub tenant_id: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub model_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from Bedrock's prompt cache (0 in rows written before caching).
    pub cache_read_input_tokens: u64,
    /// Input tokens written to Bedrock's prompt cache.
    pub cache_write_input_tokens: u64,
    pub requests: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
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

    /// Reserves one of the tenant's requests for `day` before the model is called, with one
    /// conditional update: `false` when the day's reserved requests or used tokens have reached
    /// `quotas`. Requests are exact; tokens are known only after each call, so the token limit can
    /// be passed by what the requests in flight use.
    pub async fn reserve(
        &self,
        tenant_id: &str,
        day: &str,
        quotas: Quotas,
    ) -> Result<bool, UsageError> {
        let mut req = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("sk", s(quota_key(day)))
            .update_expression("ADD requests :one")
            .expression_attribute_values(":one", n(1));
        let mut conditions = Vec::new();
        if let Some(max) = quotas.daily_requests {
            conditions.push("(attribute_not_exists(requests) OR requests < :max_requests)");
            req = req.expression_attribute_values(":max_requests", n(max));
        }
        if let Some(max) = quotas.daily_tokens {
            conditions.push("(attribute_not_exists(tokens) OR tokens < :max_tokens)");
            req = req.expression_attribute_values(":max_tokens", n(max));
        }
        if !conditions.is_empty() {
            req = req.condition_expression(conditions.join(" AND "));
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(DynamoError::new("UpdateItem", e).into()),
            },
        }
    }

    /// Gives back a reservation whose request never reached the model.
    pub async fn release(&self, tenant_id: &str, day: &str) -> Result<(), UsageError> {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("sk", s(quota_key(day)))
            .update_expression("ADD requests :minus_one")
            .expression_attribute_values(":minus_one", n(-1))
            .send()
            .await
            .map_err(|e| DynamoError::new("UpdateItem", e))?;
        Ok(())
    }

    /// Adds one request and its tokens to the tenant's row for `day` and `model_id`, then the
    /// tokens to the day's quota item (every token, cached or not). Two atomic updates, not a
    /// transaction: concurrent transactions on one quota item would conflict and lose counts;
    /// plain `ADD`s never do.
    pub async fn record(
        &self,
        tenant_id: &str,
        day: &str,
        model_id: &str,
        usage: &TokenUsage,
    ) -> Result<(), UsageError> {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("sk", s(format!("{day}#{model_id}")))
            .update_expression(
                "ADD input_tokens :in, output_tokens :out, cache_read_input_tokens :read, \
                 cache_write_input_tokens :write, requests :one SET #day = :day, model_id = :model",
            )
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":in", n(usage.input_tokens))
            .expression_attribute_values(":out", n(usage.output_tokens))
            .expression_attribute_values(":read", n(usage.cache_read_input_tokens))
            .expression_attribute_values(":write", n(usage.cache_write_input_tokens))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":day", s(day))
            .expression_attribute_values(":model", s(model_id))
            .send()
            .await
            .map_err(|e| DynamoError::new("UpdateItem", e))?;
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .key("sk", s(quota_key(day)))
            .update_expression("ADD tokens :tokens")
            .expression_attribute_values(":tokens", n(usage.total()))
            .send()
            .await
            .map_err(|e| DynamoError::new("UpdateItem", e))?;
        Ok(())
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
        items
            .iter()
            .filter(|i| {
                !i.get("sk")
                    .and_then(|k| k.as_s().ok())
                    .is_some_and(|k| k.starts_with('#'))
            })
            .map(|i| Ok(record(i)?))
            .collect()
    }
}

fn record(item: &Item) -> Result<UsageRecord, MalformedItem> {
    Ok(UsageRecord {
        tenant_id: dynamo::string(item, "tenant_id")?,
        day: dynamo::string(item, "day")?,
        model_id: dynamo::string(item, "model_id")?,
        input_tokens: dynamo::number(item, "input_tokens")?,
        output_tokens: dynamo::number(item, "output_tokens")?,
        cache_read_input_tokens: dynamo::opt_number(item, "cache_read_input_tokens")?.unwrap_or(0),
        cache_write_input_tokens: dynamo::opt_number(item, "cache_write_input_tokens")?
            .unwrap_or(0),
        requests: dynamo::number(item, "requests")?,
    })
}
