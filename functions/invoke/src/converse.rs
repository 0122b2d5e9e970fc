//! The Bedrock Converse call: assembled blocks to the SDK's request types, the reply back to text
//! and token counts. ISV blocks become text blocks, user input becomes guardContent, and the
//! request metadata carries ids and the block map only.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ConversationRole,
    ConverseOutput as Output, ConverseStreamOutput as StreamOutput, GuardrailConfiguration,
    GuardrailConverseContentBlock, GuardrailConverseTextBlock, GuardrailStreamConfiguration,
    GuardrailTrace, GuardrailTraceAssessment, InferenceConfiguration, Message, StopReason,
    SystemContentBlock,
};
use promptseal::assembly::{Assembled, Block, BlockKind};
use promptseal::records::TokenUsage;
use promptseal::template::{Guardrail, Role};
use zeroize::Zeroizing;

use crate::error::InvokeError;

pub struct ModelCall<'a> {
    pub model_id: &'a str,
    pub assembled: &'a Assembled,
    pub max_tokens: u32,
    pub temperature: f32,
    pub guardrail: Option<&'a Guardrail>,
    pub metadata: HashMap<String, String>,
}

/// Where the template's guardrail stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intervened {
    /// The user's input was blocked; the model did not answer.
    Input,
    /// The model's answer was blocked.
    Output,
}

impl Intervened {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

pub struct ModelReply {
    /// Bedrock's id for the call (the `requestId` of its invocation log).
    pub model_request_id: Option<String>,
    /// Set when the template's guardrail intervened (`stopReason: guardrail_intervened`).
    pub guardrail: Option<Intervened>,
    pub text: Zeroizing<String>,
    pub stop_reason: String,
    pub usage: TokenUsage,
}

fn system_block(block: &Block) -> SystemContentBlock {
    match block.kind {
        BlockKind::UserInput => SystemContentBlock::GuardContent(guard_text(block)),
        BlockKind::Isv | BlockKind::TenantContext => {
            SystemContentBlock::Text(block.text.to_string())
        }
    }
}

fn message_block(block: &Block, role: Role) -> ContentBlock {
    match (block.kind, role) {
        (BlockKind::UserInput, Role::User) => ContentBlock::GuardContent(guard_text(block)),
        _ => ContentBlock::Text(block.text.to_string()),
    }
}

fn guard_text(block: &Block) -> GuardrailConverseContentBlock {
    GuardrailConverseContentBlock::Text(
        GuardrailConverseTextBlock::builder()
            .text(block.text.as_str())
            .build()
            .expect("text is set"),
    )
}

/// The system blocks, and the cache point after the first when the assembly put one there.
fn system(assembled: &Assembled) -> Vec<SystemContentBlock> {
    let mut blocks: Vec<_> = assembled.system.iter().map(system_block).collect();
    if assembled.cache_point {
        let point = CachePointBlock::builder()
            .r#type(CachePointType::Default)
            .build()
            .expect("the type is set");
        blocks.insert(1, SystemContentBlock::CachePoint(point));
    }
    blocks
}

/// Where the guardrail intervened, if it did: on the input when it assessed the input.
fn intervened(
    stop_reason: &StopReason,
    trace: Option<&GuardrailTraceAssessment>,
) -> Option<Intervened> {
    let assessed_input = trace
        .and_then(|g| g.input_assessment())
        .is_some_and(|a| !a.is_empty());
    (stop_reason == &StopReason::GuardrailIntervened).then_some(if assessed_input {
        Intervened::Input
    } else {
        Intervened::Output
    })
}

/// Tokens as Bedrock counts them: `inputTokens` leaves out what was read from or written to
/// the prompt cache.
fn usage(usage: Option<&aws_sdk_bedrockruntime::types::TokenUsage>) -> TokenUsage {
    let count = |n: Option<i32>| n.map_or(0, |n| n.max(0) as u64);
    usage.map_or_else(TokenUsage::default, |u| TokenUsage {
        input_tokens: count(Some(u.input_tokens())),
        output_tokens: count(Some(u.output_tokens())),
        cache_read_input_tokens: count(u.cache_read_input_tokens()),
        cache_write_input_tokens: count(u.cache_write_input_tokens()),
    })
}

/// Sets a Converse or ConverseStream request's fields from an assembled call (the two builders
/// have the same setters but no common type).
macro_rules! request {
    ($builder:expr, $call:expr, $guardrail:ident) => {{
        let call = $call;
        let messages = call
            .assembled
            .messages
            .iter()
            .map(|m| {
                Message::builder()
                    .role(match m.role {
                        Role::User => ConversationRole::User,
                        Role::Assistant => ConversationRole::Assistant,
                    })
                    .set_content(Some(
                        m.blocks.iter().map(|b| message_block(b, m.role)).collect(),
                    ))
                    .build()
                    .expect("role and content are set")
            })
            .collect();
        $builder
            .model_id(call.model_id)
            .set_system(Some(system(call.assembled)))
            .set_messages(Some(messages))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(call.max_tokens).unwrap_or(i32::MAX))
                    .temperature(call.temperature)
                    .build(),
            )
            .set_guardrail_config(call.guardrail.map(|g| {
                // The trace says whether the input or the answer was blocked; it stays in memory.
                $guardrail::builder()
                    .guardrail_identifier(&g.id)
                    .guardrail_version(&g.version)
                    .trace(GuardrailTrace::Enabled)
                    .build()
            }))
            .set_request_metadata(Some(call.metadata))
    }};
}

/// A failed call as invoke's error: throttling and timeouts by name, anything else a model error.
fn model_error<E, R>(e: SdkError<E, R>) -> InvokeError
where
    aws_sdk_bedrockruntime::Error: From<SdkError<E, R>>,
{
    if matches!(e, SdkError::TimeoutError(_)) {
        return InvokeError::ModelTimeout;
    }
    match aws_sdk_bedrockruntime::Error::from(e) {
        e if e.code() == Some("ThrottlingException") => InvokeError::ModelThrottled,
        other => InvokeError::Model(Box::new(other)),
    }
}

/// Sends the request and waits at most `timeout` for the reply.
pub async fn call(
    client: &aws_sdk_bedrockruntime::Client,
    call: ModelCall<'_>,
    timeout: Duration,
) -> Result<ModelReply, InvokeError> {
    let request = request!(client.converse(), call, GuardrailConfiguration);
    let out = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| InvokeError::ModelTimeout)?
        .map_err(model_error)?;
    let text = match out.output() {
        Some(Output::Message(message)) => message
            .content()
            .iter()
            .filter_map(|b| b.as_text().ok().map(String::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    let guardrail = intervened(out.stop_reason(), out.trace().and_then(|t| t.guardrail()));
    Ok(ModelReply {
        model_request_id: out.request_id().map(str::to_owned),
        guardrail,
        text: Zeroizing::new(text),
        stop_reason: out.stop_reason().as_str().to_owned(),
        usage: usage(out.usage()),
    })
}

/// A reply as Bedrock streams it (ConverseStream).
pub struct ModelStream {
    /// Bedrock's id for the call.
    pub model_request_id: Option<String>,
    events: EventReceiver<StreamOutput, ConverseStreamOutputError>,
    stop_reason: Option<StopReason>,
}

/// How a streamed reply ended: what `ModelReply` holds besides the text.
pub struct StreamEnd {
    pub stop_reason: String,
    pub usage: TokenUsage,
    pub guardrail: Option<Intervened>,
}

/// The next thing a stream says.
pub enum Streamed {
    Text(String),
    End(StreamEnd),
}

/// Starts a streamed call; waits at most `timeout` for Bedrock to accept it.
pub async fn stream(
    client: &aws_sdk_bedrockruntime::Client,
    call: ModelCall<'_>,
    timeout: Duration,
) -> Result<ModelStream, InvokeError> {
    let request = request!(client.converse_stream(), call, GuardrailStreamConfiguration);
    let out = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| InvokeError::ModelTimeout)?
        .map_err(model_error)?;
    Ok(ModelStream {
        model_request_id: out.request_id().map(str::to_owned),
        events: out.stream,
        stop_reason: None,
    })
}

impl ModelStream {
    /// The next piece of text, or the end (after the metadata event, with the usage). Errors
    /// mid-stream (`modelStreamErrorException`, throttling) are invoke's errors.
    pub async fn next(&mut self) -> Result<Streamed, InvokeError> {
        loop {
            let event = self.events.recv().await.map_err(model_error)?;
            match event {
                Some(StreamOutput::ContentBlockDelta(delta)) => {
                    if let Some(ContentBlockDelta::Text(text)) = delta.delta {
                        return Ok(Streamed::Text(text));
                    }
                }
                Some(StreamOutput::MessageStop(stop)) => self.stop_reason = Some(stop.stop_reason),
                Some(StreamOutput::Metadata(metadata)) => {
                    let stop_reason = self
                        .stop_reason
                        .take()
                        .ok_or(InvokeError::ModelStream("metadata before messageStop"))?;
                    let trace = metadata.trace().and_then(|t| t.guardrail());
                    return Ok(Streamed::End(StreamEnd {
                        guardrail: intervened(&stop_reason, trace),
                        stop_reason: stop_reason.as_str().to_owned(),
                        usage: usage(metadata.usage()),
                    }));
                }
                Some(_) => {}
                None => return Err(InvokeError::ModelStream("no metadata before the end")),
            }
        }
    }
}
