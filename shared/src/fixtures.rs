//! What tests and benchmarks start from (the `fixtures` feature, for dev-dependencies only).

use std::time::SystemTime;

use crate::leak::{LeakAction, LeakReport};
use crate::metadata::RequestMetadata;
use crate::records::{
    Exchange, Part, PartKind, PayloadRecord, RecordMessage, RecordPrompt, Source, TokenUsage,
    timestamp_micros,
};
use crate::template::Role;

/// A record of `tenant`'s request answered by Bedrock as `model_request_id`, made now: the
/// ISV's system block as its placeholder, the user's question, and the answer
/// `answer <model_request_id>`.
pub fn payload_record(tenant: &str, model_request_id: &str) -> PayloadRecord {
    let meta = RequestMetadata {
        tenant_id: tenant.into(),
        principal: Some("user-1".into()),
        template_id: "support".into(),
        template_version: 2,
        request_id: Some(format!("req-{model_request_id}")),
        block_map: "s:I,m0:U".into(),
    };
    let part = |kind, text: &str| Part {
        kind,
        document_id: None,
        text: text.into(),
    };
    let exchange = Exchange {
        source: Source::Invoke,
        model_request_id: model_request_id.into(),
        time: timestamp_micros(SystemTime::now()),
        model_id: "anthropic.claude".into(),
        prompt: RecordPrompt {
            system: vec![part(PartKind::Isv, "[isv:system support@2]")],
            messages: vec![RecordMessage {
                role: Role::User,
                content: vec![part(PartKind::UserInput, "Where is my order?")],
            }],
        },
        output: format!("answer {model_request_id}"),
        stop_reason: Some("end_turn".into()),
        guard: LeakReport {
            action: LeakAction::Passed,
            findings: 0,
            forms: vec![],
        },
        usage: TokenUsage {
            input_tokens: 10,
            output_tokens: 3,
        },
    };
    PayloadRecord::new(meta, exchange)
}
