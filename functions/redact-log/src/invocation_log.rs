//! Bedrock's model invocation log as a CloudWatch Logs subscription delivers it: the `awslogs`
//! payload decoded, each `ModelInvocationLog` record read (Converse bodies, and InvokeModel bodies
//! in the Anthropic Messages format), attributed through its `requestMetadata`, and redacted into
//! the payload record invoke would have written. Pure: bodies kept in S3 and fingerprints are
//! fetched by the handler.
//!
//! Redaction fails closed: a record whose tenant, template or block map is missing, whose body
//! does not have exactly the blocks the map names, or whose tenant blocks hold template text,
//! yields no record at all.

use std::collections::HashMap;
use std::io::Read;

use aws_lambda_events::event::cloudwatch_logs::LogData;
use base64::Engine;
use flate2::read::GzDecoder;
use promptseal::assembly::{BlockKind, BlockMap};
use promptseal::leak::{Fingerprints, KnownText, Scanner};
use promptseal::metadata::{RequestMetadata, Unattributed};
use promptseal::records::{
    Exchange, Part, PartKind, PayloadRecord, Place, RecordMessage, RecordPrompt, Source,
    TokenUsage, prompt_part, reformat_timestamp,
};
use promptseal::template::Role;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a log event produced no record. Each is counted; none fails the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Bad base64, bad gzip, or JSON that is not what the field should hold.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Not a `ModelInvocationLog` record of schema version 1.x.
    #[error("unknown schema")]
    UnknownSchema,
    /// An operation or body format redact-log does not read.
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// Not made by promptseal, or not attributable to a tenant, template and block layout.
    #[error("unattributed: {0}")]
    Unattributed(&'static str),
}

impl Skip {
    /// The counter this skip is reported under.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownSchema => "unknown_schema",
            Self::Unsupported(_) => "unsupported",
            Self::Unattributed(_) => "unattributed",
        }
    }
}

#[derive(Deserialize)]
struct Subscription<'a> {
    #[serde(borrow)]
    awslogs: AwsLogs<'a>,
}

#[derive(Deserialize)]
struct AwsLogs<'a> {
    data: &'a str,
}

/// A CloudWatch Logs subscription event (`{"awslogs":{"data":"<base64 gzip JSON>"}}`) decoded
/// into the ecosystem's `LogData`. The envelope is unwrapped here rather than by
/// aws_lambda_events' `LogsEvent`, whose deserializer streams the gunzipped payload through
/// serde_json's reader: a pass over the peer's corpus took 8.59 s that way, 7.05 s this way
/// (`cargo bench -p redact-log --bench redact`, one session; BENCHMARKS.md).
pub fn decode(event: &[u8]) -> Result<LogData, Skip> {
    let event: Subscription<'_> =
        serde_json::from_slice(event).map_err(|_| Skip::Malformed("event"))?;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(event.awslogs.data)
        .map_err(|_| Skip::Malformed("base64"))?;
    let mut json = Vec::with_capacity(gz.len() * 8);
    GzDecoder::new(gz.as_slice())
        .read_to_end(&mut json)
        .map_err(|_| Skip::Malformed("gzip"))?;
    serde_json::from_slice(&json).map_err(|_| Skip::Malformed("logs payload"))
}

/// One `ModelInvocationLog` record, bodies left unparsed until the operation is known.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationLog<'a> {
    pub schema_type: String,
    pub schema_version: String,
    pub timestamp: String,
    pub request_id: String,
    pub operation: String,
    pub model_id: String,
    #[serde(default)]
    pub request_metadata: HashMap<String, String>,
    #[serde(default, borrow)]
    pub input: Option<Input<'a>>,
    #[serde(default, borrow)]
    pub output: Option<Output<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input<'a> {
    #[serde(default, borrow)]
    pub input_body_json: Option<&'a RawValue>,
    #[serde(default)]
    pub input_body_s3_path: Option<String>,
    #[serde(default)]
    pub input_token_count: Option<u64>,
    #[serde(default)]
    pub cache_read_input_token_count: Option<u64>,
    #[serde(default)]
    pub cache_write_input_token_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Output<'a> {
    #[serde(default, borrow)]
    pub output_body_json: Option<&'a RawValue>,
    #[serde(default)]
    pub output_body_s3_path: Option<String>,
    #[serde(default)]
    pub output_token_count: Option<u64>,
}

/// Where a body is: in the record, or (over 100 KB) in an S3 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRef<'a> {
    Inline(&'a str),
    S3 { bucket: String, key: String },
}

impl<'a> InvocationLog<'a> {
    /// Reads one log event's message as an invocation-log record of a known schema.
    pub fn parse(message: &'a str) -> Result<Self, Skip> {
        let log: Self = serde_json::from_str(message).map_err(|_| Skip::Malformed("record"))?;
        if log.schema_type != "ModelInvocationLog" || !log.schema_version.starts_with("1.") {
            return Err(Skip::UnknownSchema);
        }
        if !matches!(
            log.operation.as_str(),
            "Converse" | "ConverseStream" | "InvokeModel"
        ) {
            return Err(Skip::Unsupported("operation"));
        }
        Ok(log)
    }

    pub fn input_body(&self) -> Result<BodyRef<'a>, Skip> {
        let input = self.input.as_ref().ok_or(Skip::Malformed("input"))?;
        body_ref(input.input_body_json, input.input_body_s3_path.as_deref())
    }

    pub fn output_body(&self) -> Result<BodyRef<'a>, Skip> {
        let output = self.output.as_ref().ok_or(Skip::Malformed("output"))?;
        body_ref(
            output.output_body_json,
            output.output_body_s3_path.as_deref(),
        )
    }
}

fn body_ref<'a>(inline: Option<&'a RawValue>, s3: Option<&str>) -> Result<BodyRef<'a>, Skip> {
    if let Some(raw) = inline {
        return Ok(BodyRef::Inline(raw.get()));
    }
    let path = s3.ok_or(Skip::Malformed("body"))?;
    let (bucket, key) = path
        .strip_prefix("s3://")
        .and_then(|p| p.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or(Skip::Malformed("body S3 path"))?;
    Ok(BodyRef::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

/// Whose request it was, from the `requestMetadata` invoke attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub meta: RequestMetadata,
    /// `meta`'s block map, read.
    pub map: BlockMap,
}

pub fn attribute(log: &InvocationLog<'_>) -> Result<Attribution, Skip> {
    let md = &log.request_metadata;
    let meta = RequestMetadata::from_entries(|k| md.get(k).map(String::as_str))
        .map_err(|Unattributed(why)| Skip::Unattributed(why))?;
    let map =
        BlockMap::parse(&meta.block_map).map_err(|_| Skip::Unattributed("malformed block map"))?;
    Ok(Attribution { meta, map })
}

/// A request body reduced to its blocks: the text of each (None for a block with no text).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    pub system: Vec<Option<String>>,
    pub messages: Vec<(Role, Vec<Option<String>>)>,
}

/// The reply: its text and stop reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ConverseRequest {
    #[serde(default)]
    system: Vec<ConverseBlock>,
    messages: Vec<ConverseMessage>,
}

#[derive(Deserialize)]
struct ConverseMessage {
    role: Role,
    #[serde(default)]
    content: Vec<ConverseBlock>,
}

#[derive(Deserialize)]
struct ConverseBlock {
    text: Option<String>,
    #[serde(rename = "guardContent")]
    guard_content: Option<GuardContent>,
    #[serde(rename = "cachePoint")]
    cache_point: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct GuardContent {
    text: Option<GuardText>,
}

#[derive(Deserialize)]
struct GuardText {
    text: String,
}

impl ConverseBlock {
    /// A prompt-cache point: a marker with no content, which the block map does not count.
    fn is_cache_point(&self) -> bool {
        self.cache_point.is_some() && self.text.is_none() && self.guard_content.is_none()
    }

    fn into_text(self) -> Option<String> {
        self.text
            .or(self.guard_content.and_then(|g| g.text).map(|t| t.text))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse {
    output: ConverseOutput,
    stop_reason: Option<String>,
}

/// A Converse reply as logged: whole, or (ConverseStream) as the events it was streamed in.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConverseReply {
    Whole(ConverseResponse),
    Events(Vec<StreamEvent>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamEvent {
    content_block_delta: Option<StreamDelta>,
    message_stop: Option<StreamStop>,
}

#[derive(Deserialize)]
struct StreamDelta {
    delta: DeltaText,
}

#[derive(Deserialize)]
struct DeltaText {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamStop {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ConverseOutput {
    message: ConverseMessage,
}

/// The Anthropic Messages body of InvokeModel: `system` and `content` are a string or a list of
/// typed blocks.
#[derive(Deserialize)]
struct AnthropicRequest {
    #[serde(default)]
    system: Option<AnthropicContent>,
    messages: Vec<AnthropicMessage>,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    role: Role,
    content: AnthropicContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnthropicContent {
    Text(String),
    Blocks(Vec<AnthropicBlock>),
}

#[derive(Deserialize)]
struct AnthropicBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

impl AnthropicContent {
    fn into_blocks(self) -> Vec<Option<String>> {
        match self {
            Self::Text(text) => vec![Some(text)],
            Self::Blocks(blocks) => blocks
                .into_iter()
                .map(|b| if b.kind == "text" { b.text } else { None })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct AnthropicResponse {
    content: Vec<AnthropicBlock>,
    stop_reason: Option<String>,
}

/// The text of each content block, cache points left out.
fn content(blocks: Vec<ConverseBlock>) -> Vec<Option<String>> {
    blocks
        .into_iter()
        .filter(|b| !b.is_cache_point())
        .map(ConverseBlock::into_text)
        .collect()
}

/// Reads a request body of `operation`.
pub fn prompt(operation: &str, body: &[u8]) -> Result<Prompt, Skip> {
    if operation != "InvokeModel" {
        let req: ConverseRequest =
            serde_json::from_slice(body).map_err(|_| Skip::Unsupported("request body"))?;
        return Ok(Prompt {
            system: content(req.system),
            messages: req
                .messages
                .into_iter()
                .map(|m| (m.role, content(m.content)))
                .collect(),
        });
    }
    let req: AnthropicRequest =
        serde_json::from_slice(body).map_err(|_| Skip::Unsupported("request body"))?;
    Ok(Prompt {
        system: req
            .system
            .map(AnthropicContent::into_blocks)
            .unwrap_or_default(),
        messages: req
            .messages
            .into_iter()
            .map(|m| (m.role, m.content.into_blocks()))
            .collect(),
    })
}

/// Reads a response body of `operation`.
pub fn reply(operation: &str, body: &[u8]) -> Result<Reply, Skip> {
    let (blocks, stop_reason) = if operation != "InvokeModel" {
        let res: ConverseResponse = match serde_json::from_slice::<ConverseReply>(body) {
            Ok(ConverseReply::Whole(res)) => res,
            // A streamed reply logged as its events: the text deltas in order, the stop reason
            // of messageStop.
            Ok(ConverseReply::Events(events)) => {
                let mut text = String::new();
                let mut stop_reason = None;
                for event in events {
                    if let Some(delta) = event.content_block_delta.and_then(|d| d.delta.text) {
                        text.push_str(&delta);
                    }
                    if let Some(stop) = event.message_stop {
                        stop_reason = stop.stop_reason;
                    }
                }
                return Ok(Reply { text, stop_reason });
            }
            Err(_) => return Err(Skip::Unsupported("response body")),
        };
        let blocks: Vec<_> = res
            .output
            .message
            .content
            .into_iter()
            .filter_map(|b| b.text)
            .collect();
        (blocks, res.stop_reason)
    } else {
        let res: AnthropicResponse =
            serde_json::from_slice(body).map_err(|_| Skip::Unsupported("response body"))?;
        let blocks = res
            .content
            .into_iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text)
            .collect();
        (blocks, res.stop_reason)
    };
    Ok(Reply {
        text: blocks.concat(),
        stop_reason,
    })
}

/// What stands in for a tenant block that holds no text (an image, a document).
const NON_TEXT: &str = "[non-text content]";

/// The payload record of one invocation: ISV blocks removed by the block map, ISV text in the
/// reply redacted by the version's fingerprints. A body whose blocks do not match the map
/// exactly yields nothing.
pub fn redact(
    log: &InvocationLog<'_>,
    who: Attribution,
    prompt: Prompt,
    reply: Reply,
    fingerprints: &Fingerprints,
) -> Result<PayloadRecord, Skip> {
    let fits = who.map.system.len() == prompt.system.len()
        && who.map.messages.len() == prompt.messages.len()
        && who
            .map
            .messages
            .iter()
            .zip(&prompt.messages)
            .all(|(kinds, (_, blocks))| kinds.len() == blocks.len());
    if !fits {
        return Err(Skip::Unattributed("block map does not fit the body"));
    }
    // In the form invoke writes, so a tenant's records sort and read alike whoever wrote them.
    let time = reformat_timestamp(&log.timestamp).ok_or(Skip::Malformed("timestamp"))?;
    // Every block with its kind, in the order the model read them.
    let blocks = || {
        who.map.system.iter().zip(&prompt.system).chain(
            who.map
                .messages
                .iter()
                .zip(&prompt.messages)
                .flat_map(|(kinds, (_, blocks))| kinds.iter().zip(blocks)),
        )
    };
    let tenant_texts = || {
        blocks()
            .filter(|(kind, _)| **kind != BlockKind::Isv)
            .filter_map(|(_, text)| text.as_deref())
    };
    // The map is data from the log: a block it calls the tenant's must not hold template text.
    let sealed = Scanner::new(fingerprints);
    if tenant_texts().any(|text| sealed.repeats_template(text)) {
        return Err(Skip::Unattributed("template text in a tenant block"));
    }
    // The reply is guarded as invoke guards it: against the sealed fingerprints and the ISV
    // blocks as sent, the tenant's own text coming back not counted.
    let sent = Fingerprints::of_sent(
        blocks().map(|(kind, text)| text.as_deref().filter(|_| *kind == BlockKind::Isv)),
        fingerprints.settings(),
    );
    let known = KnownText::of(tenant_texts(), fingerprints.min_span());
    let scanner = sealed.with_sent(&sent).with_known(&known);
    let (id, version) = (who.meta.template_id.as_str(), who.meta.template_version);
    let part = |kind: BlockKind, place, text: Option<String>| match (kind, text) {
        (BlockKind::Isv, _) => prompt_part(kind, place, "", id, version),
        (_, Some(text)) => prompt_part(kind, place, &text, id, version),
        (_, None) => Part {
            kind: match kind {
                BlockKind::TenantContext => PartKind::TenantContext,
                _ => PartKind::UserInput,
            },
            document_id: None,
            text: NON_TEXT.to_owned(),
        },
    };
    let system = who
        .map
        .system
        .iter()
        .zip(prompt.system)
        .map(|(kind, text)| part(*kind, Place::System, text))
        .collect();
    let messages = who
        .map
        .messages
        .iter()
        .zip(prompt.messages)
        .map(|(kinds, (role, blocks))| RecordMessage {
            role,
            content: kinds
                .iter()
                .zip(blocks)
                .map(|(kind, text)| part(*kind, Place::Message, text))
                .collect(),
        })
        .collect();
    // The version's own policy, as invoke applied it: a reply it withheld is withheld here too.
    let (guard, replacement) = scanner.enforce(&reply.text, fingerprints.policy());
    let tokens = |n: Option<u64>| n.unwrap_or(0);
    let input = log.input.as_ref();
    let exchange = Exchange {
        source: Source::InvocationLog,
        model_request_id: log.request_id.clone(),
        time,
        model_id: log.model_id.clone(),
        prompt: RecordPrompt { system, messages },
        output: replacement.unwrap_or(reply.text),
        stop_reason: reply.stop_reason,
        guard,
        usage: TokenUsage {
            input_tokens: tokens(input.and_then(|i| i.input_token_count)),
            output_tokens: tokens(log.output.as_ref().and_then(|o| o.output_token_count)),
            cache_read_input_tokens: tokens(input.and_then(|i| i.cache_read_input_token_count)),
            cache_write_input_tokens: tokens(input.and_then(|i| i.cache_write_input_token_count)),
        },
        retrieved: Vec::new(),
    };
    Ok(PayloadRecord::new(who.meta, exchange))
}
