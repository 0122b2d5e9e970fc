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
            ..TokenUsage::default()
        },
        retrieved: Vec::new(),
    };
    PayloadRecord::new(meta, exchange)
}

/// `n` unit-free vectors of `dimensions` values about `topics` subjects (vector `i` is about
/// subject `i % topics`: its centre plus noise), the same for a given `seed` on every machine: a
/// stand-in for the embeddings of a collection of documents on a few subjects.
pub fn clustered_vectors(seed: u64, n: usize, topics: usize, dimensions: usize) -> Vec<Vec<f32>> {
    // SplitMix64, and roughly normal values as sums of four uniforms.
    let mut state = seed;
    let mut normal = move || {
        (0..4)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
            })
            .sum::<f32>()
            - 2.0
    };
    let centres: Vec<Vec<f32>> = (0..topics)
        .map(|_| (0..dimensions).map(|_| normal()).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % topics]
                .iter()
                .map(|c| c + 0.8 * normal())
                .collect()
        })
        .collect()
}
