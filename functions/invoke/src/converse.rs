//! The Bedrock Converse call: assembled blocks to the SDK's request types, the reply back to text
//! and token counts. ISV blocks become text blocks, user input becomes guardContent, and the
//! request metadata carries ids and the block map only.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseOutput as Output,
    GuardrailConfiguration, GuardrailConverseContentBlock, GuardrailConverseTextBlock,
    GuardrailTrace, InferenceConfiguration, Message, StopReason, SystemContentBlock,
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

/// Sends the request and waits at most `timeout` for the reply.
pub async fn call(
    client: &aws_sdk_bedrockruntime::Client,
    call: ModelCall<'_>,
    timeout: Duration,
) -> Result<ModelReply, InvokeError> {
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
    let request = client
        .converse()
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
            GuardrailConfiguration::builder()
                .guardrail_identifier(&g.id)
                .guardrail_version(&g.version)
                .trace(GuardrailTrace::Enabled)
                .build()
        }))
        .set_request_metadata(Some(call.metadata));
    let out = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| InvokeError::ModelTimeout)?
        .map_err(|e| {
            if matches!(e, aws_sdk_bedrockruntime::error::SdkError::TimeoutError(_)) {
                return InvokeError::ModelTimeout;
            }
            match e.into_service_error() {
                ConverseError::ThrottlingException(_) => InvokeError::ModelThrottled,
                other => InvokeError::Model(Box::new(other.into())),
            }
        })?;
    let text = match out.output() {
        Some(Output::Message(message)) => message
            .content()
            .iter()
            .filter_map(|b| b.as_text().ok().map(String::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    let guardrail = (out.stop_reason() == &StopReason::GuardrailIntervened).then(|| {
        let assessed_input = out
            .trace()
            .and_then(|t| t.guardrail())
            .and_then(|g| g.input_assessment())
            .is_some_and(|a| !a.is_empty());
        if assessed_input {
            Intervened::Input
        } else {
            Intervened::Output
        }
    });
    Ok(ModelReply {
        model_request_id: out.request_id().map(str::to_owned),
        guardrail,
        text: Zeroizing::new(text),
        stop_reason: out.stop_reason().as_str().to_owned(),
        usage: usage(out.usage()),
    })
}
