//! Each tenant's export progress (pk `tenant_id`): the watermark (records stored before it have
//! been delivered) and, while a window is under way, its end (`pending_until`), fixed before
//! anything is written so that a repeated run repeats the same window, and how far it has got
//! (`progress`: the objects written), saved after every object.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use promptseal::store::dynamo::{self, DynamoError, MalformedItem, s};

use crate::export::Progress;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub watermark: Option<String>,
    pub pending_until: Option<String>,
    /// How far the pending window has got.
    pub progress: Progress,
}

#[derive(Clone)]
pub struct ExportState {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl ExportState {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }

    pub async fn get(&self, tenant_id: &str) -> Result<State, StateError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?;
        let item = out.item.unwrap_or_default();
        let progress = match dynamo::opt_string(&item, "progress") {
            None => Progress::default(),
            Some(json) => serde_json::from_str(&json).map_err(|_| MalformedItem("progress"))?,
        };
        Ok(State {
            watermark: dynamo::opt_string(&item, "watermark"),
            pending_until: dynamo::opt_string(&item, "pending_until"),
            progress,
        })
    }

    /// Saves how far the pending window ending `until` has got. False when that window is no
    /// longer pending (committed by a concurrent run) or a concurrent run has saved as far or
    /// further: progress only moves forward.
    pub async fn checkpoint(
        &self,
        tenant_id: &str,
        until: &str,
        progress: &Progress,
    ) -> Result<bool, StateError> {
        let json = serde_json::to_string(progress).expect("progress always serialises");
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .update_expression(
                "SET progress = :progress, progress_objects = :objects, updated_at = :now",
            )
            .condition_expression(
                "pending_until = :until AND \
                 (attribute_not_exists(progress_objects) OR progress_objects < :objects)",
            )
            .expression_attribute_values(":progress", s(json))
            .expression_attribute_values(":objects", dynamo::n(progress.objects.len()))
            .expression_attribute_values(":until", s(until))
            .expression_attribute_values(":now", s(dynamo::now_rfc3339()))
            .send()
            .await;
        conditional(out)
    }

    /// Fixes a run's window end, if no run has fixed one and the watermark is still `watermark`.
    /// False when another run got there first.
    pub async fn begin(
        &self,
        tenant_id: &str,
        watermark: Option<&str>,
        until: &str,
    ) -> Result<bool, StateError> {
        let mut req = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .update_expression("SET pending_until = :until, updated_at = :now")
            .expression_attribute_values(":until", s(until))
            .expression_attribute_values(":now", s(dynamo::now_rfc3339()));
        req = match watermark {
            Some(w) => req
                .condition_expression("attribute_not_exists(pending_until) AND watermark = :w")
                .expression_attribute_values(":w", s(w)),
            None => req.condition_expression(
                "attribute_not_exists(pending_until) AND attribute_not_exists(watermark)",
            ),
        };
        conditional(req.send().await)
    }

    /// Advances the watermark to the end of the pending window and clears it. False when that
    /// window was already committed (by a concurrent run).
    pub async fn commit(&self, tenant_id: &str, until: &str) -> Result<bool, StateError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .update_expression(
                "SET watermark = :until, updated_at = :now \
                 REMOVE pending_until, progress, progress_objects",
            )
            .condition_expression("pending_until = :until")
            .expression_attribute_values(":until", s(until))
            .expression_attribute_values(":now", s(dynamo::now_rfc3339()))
            .send()
            .await;
        conditional(out)
    }
}

type UpdateResult = Result<
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::error::SdkError<
        UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
>;

/// An update's outcome: applied, or refused by its condition.
fn conditional(out: UpdateResult) -> Result<bool, StateError> {
    match out {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(DynamoError::new("UpdateItem", e).into()),
        },
    }
}
