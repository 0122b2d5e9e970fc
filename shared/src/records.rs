//! Payload records: what a tenant that opted in gets to keep of each request. The tenant's own
//! text (user input, its context documents) and the guarded reply are kept verbatim; every ISV
//! part is replaced by a placeholder naming what was there (`[isv:system support-agent@3]`). invoke
//! and redact-log build the same record from the same blocks, through [`prompt_part`], and every
//! record through [`PayloadRecord::new`] from the request's metadata and what was exchanged. The
//! table that keeps them is `store::records`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::assembly::{Assembled, BlockKind, unwrap_block};
use crate::leak::LeakReport;
use crate::metadata::RequestMetadata;
use crate::template::Role;

/// The version of the record format below; every stored and exported record carries it.
pub const SCHEMA_VERSION: u32 = 1;

/// Where a record was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// By invoke, as it answered.
    Invoke,
    /// By redact-log, from Bedrock's model invocation log.
    InvocationLog,
}

/// Whose a part of the prompt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// The ISV's: only a placeholder is kept.
    Isv,
    UserInput,
    TenantContext,
}

/// One block of the prompt, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub kind: PartKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMessage {
    pub role: Role,
    pub content: Vec<Part>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input tokens billed at the model's full rate: none of those read from or written to
    /// Bedrock's prompt cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache (billed at its lower rate).
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache (billed at its write rate).
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

impl TokenUsage {
    /// Every token the model read or wrote, cached or not: what a token quota counts.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_write_input_tokens
    }
}

/// One request, redacted of everything that is the ISV's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRecord {
    pub schema_version: u32,
    pub tenant_id: String,
    /// promptseal's request id (the one invoke returns to the caller).
    pub request_id: String,
    /// Bedrock's request id: the record's key.
    pub model_request_id: String,
    /// When the request was made (RFC 3339, UTC).
    pub time: String,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub template_id: String,
    pub template_version: u32,
    pub model_id: String,
    pub system: Vec<Part>,
    pub messages: Vec<RecordMessage>,
    /// The reply after the output leak guard (empty when it was withheld).
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    pub guard: LeakReport,
    pub usage: TokenUsage,
    /// The retrieved chunks placed in the prompt, by id (`isv:kb/3f9c0a1b2c3d4e5f.2.17`), never their text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retrieved: Vec<String>,
}

/// One model call as the writer of its record saw it: everything a record holds besides whose
/// request it was.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub source: Source,
    /// Bedrock's request id (the record's key).
    pub model_request_id: String,
    /// When the request was made (RFC 3339, UTC).
    pub time: String,
    pub model_id: String,
    pub prompt: RecordPrompt,
    /// The reply after the output leak guard.
    pub output: String,
    pub stop_reason: Option<String>,
    pub guard: LeakReport,
    pub usage: TokenUsage,
    /// The retrieved chunks placed in the prompt, by id (invoke knows them; an invocation log
    /// names only the tenant's, in their blocks).
    pub retrieved: Vec<String>,
}

impl PayloadRecord {
    /// The record of one model call: whose request it was (the metadata invoke sent with it and
    /// redact-log reads back from the invocation log) and what was exchanged. Every writer builds
    /// its records here, so that they read alike whoever wrote them. Without invoke's request id,
    /// the record goes by Bedrock's.
    pub fn new(meta: RequestMetadata, exchange: Exchange) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            request_id: meta
                .request_id
                .unwrap_or_else(|| exchange.model_request_id.clone()),
            tenant_id: meta.tenant_id,
            model_request_id: exchange.model_request_id,
            time: exchange.time,
            source: exchange.source,
            principal: meta.principal,
            template_id: meta.template_id,
            template_version: meta.template_version,
            model_id: exchange.model_id,
            system: exchange.prompt.system,
            messages: exchange.prompt.messages,
            output: exchange.output,
            stop_reason: exchange.stop_reason,
            guard: exchange.guard,
            usage: exchange.usage,
            retrieved: exchange.retrieved,
        }
    }
}

/// Where in the request a block sits, for its placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    System,
    Message,
}

/// The record's form of one prompt block: tenant text out of its tags, ISV text replaced by a
/// placeholder naming the template version it came from.
pub fn prompt_part(
    kind: BlockKind,
    place: Place,
    text: &str,
    template_id: &str,
    version: u32,
) -> Part {
    let (document_id, text) = unwrap_block(kind, text);
    let (kind, text) = match kind {
        BlockKind::Isv => {
            let place = match place {
                Place::System => "system",
                Place::Message => "message",
            };
            (
                PartKind::Isv,
                format!("[isv:{place} {template_id}@{version}]"),
            )
        }
        BlockKind::UserInput => (PartKind::UserInput, text.to_owned()),
        BlockKind::TenantContext => (PartKind::TenantContext, text.to_owned()),
    };
    Part {
        kind,
        document_id: document_id.map(str::to_owned),
        text,
    }
}

/// The prompt as a record keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordPrompt {
    pub system: Vec<Part>,
    pub messages: Vec<RecordMessage>,
}

impl RecordPrompt {
    /// The record's form of an assembled request: no ISV text is copied out of it.
    pub fn of(assembled: &Assembled, template_id: &str, version: u32) -> Self {
        let part = |place, b: &crate::assembly::Block| {
            prompt_part(b.kind, place, &b.text, template_id, version)
        };
        Self {
            system: assembled
                .system
                .iter()
                .map(|b| part(Place::System, b))
                .collect(),
            messages: assembled
                .messages
                .iter()
                .map(|m| RecordMessage {
                    role: m.role,
                    content: m.blocks.iter().map(|b| part(Place::Message, b)).collect(),
                })
                .collect(),
        }
    }
}

/// `2026-11-22T10:00:00.123456Z`: fixed width, so text order is time order.
pub fn timestamp_micros(t: SystemTime) -> String {
    use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = DateTime::from_secs(since.as_secs() as i64)
        .fmt(DateTimeFormat::DateTime)
        .expect("the current time is always representable");
    format!("{}.{:06}Z", &secs[..19], since.subsec_micros())
}

/// An RFC 3339 UTC time (`2026-11-22T10:00:00Z`, any fraction of a second) as
/// [`timestamp_micros`] writes it, so records from every writer carry times of one form.
pub fn reformat_timestamp(rfc3339: &str) -> Option<String> {
    use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
    let t = DateTime::from_str(rfc3339, DateTimeFormat::DateTime).ok()?;
    SystemTime::try_from(t).ok().map(timestamp_micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_of_any_precision_take_the_fixed_width_form() {
        for (given, written) in [
            ("2026-11-22T09:30:14Z", "2026-11-22T09:30:14.000000Z"),
            ("2026-11-22T09:30:14.5Z", "2026-11-22T09:30:14.500000Z"),
            (
                "2026-11-22T09:30:14.123456789Z",
                "2026-11-22T09:30:14.123456Z",
            ),
        ] {
            assert_eq!(
                reformat_timestamp(given).as_deref(),
                Some(written),
                "{given}"
            );
        }
        for bad in ["", "yesterday", "2026-11-22", "2026-13-01T00:00:00Z"] {
            assert_eq!(reformat_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn isv_blocks_become_placeholders_and_tenant_text_leaves_its_tags() {
        let isv = prompt_part(BlockKind::Isv, Place::System, "secret rules", "support", 3);
        assert_eq!(isv.text, "[isv:system support@3]");
        assert_eq!(isv.kind, PartKind::Isv);
        let isv = prompt_part(BlockKind::Isv, Place::Message, "more rules", "support", 3);
        assert_eq!(isv.text, "[isv:message support@3]");
        let user = prompt_part(
            BlockKind::UserInput,
            Place::Message,
            "<user_input_ab12>Where is my order?</user_input_ab12>",
            "support",
            3,
        );
        assert_eq!(
            (user.kind, user.text.as_str()),
            (PartKind::UserInput, "Where is my order?")
        );
        let doc = prompt_part(
            BlockKind::TenantContext,
            Place::Message,
            "<tenant_context_ab12 id=\"crm-7\">Order 42 shipped.</tenant_context_ab12>",
            "support",
            3,
        );
        assert_eq!(doc.document_id.as_deref(), Some("crm-7"));
        assert_eq!(doc.text, "Order 42 shipped.");
    }

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let a = timestamp_micros(t);
        let b = timestamp_micros(t + Duration::from_micros(1));
        let c = timestamp_micros(t + Duration::from_secs(1));
        assert_eq!(a.len(), "2026-11-18T08:26:40.000000Z".len());
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
