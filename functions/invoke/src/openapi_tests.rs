//! Keeps openapi.yaml true: its request examples parse, its response example has exactly the
//! response's fields, and its error codes and statuses are exactly the ones the handler produces.

use std::collections::BTreeSet;

use strum::VariantArray as _;

use promptseal::leak::{LeakAction, LeakReport};
use promptseal::records::TokenUsage;
use serde_json::Value;

use crate::api::{self, InvokeResponse, ReplySummary, Usage};
use crate::error::ErrorCode;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn operation(spec: &Value) -> &Value {
    &spec["paths"]["/v1/invoke"]["post"]
}

#[test]
fn request_examples_are_accepted_by_the_handler() {
    let spec = spec();
    let examples = operation(&spec)["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    assert!(examples.len() >= 2);
    let mut fields_used = BTreeSet::new();
    for (name, example) in examples {
        let value = &example["value"];
        fields_used.extend(value.as_object().unwrap().keys().cloned());
        let parsed = api::parse(value.to_string().as_bytes());
        assert!(parsed.is_ok(), "example {name}: {:?}", parsed.err());
    }
    let documented: BTreeSet<String> = spec["components"]["schemas"]["InvokeRequest"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        fields_used, documented,
        "the examples cover every documented field"
    );
}

#[test]
fn the_response_example_has_exactly_the_responses_fields() {
    let spec = spec();
    let example = &operation(&spec)["responses"]["200"]["content"]["application/json"]["example"];
    let actual = serde_json::to_value(InvokeResponse {
        output: "o".into(),
        summary: ReplySummary {
            request_id: "r".into(),
            template_id: "t".into(),
            template_version: 1,
            model_id: "m".into(),
            stop_reason: "end_turn".into(),
            usage: Usage::from(TokenUsage {
                input_tokens: 1,
                output_tokens: 1,
                cache_read_input_tokens: 1,
                cache_write_input_tokens: 0,
            }),
            guard: LeakReport {
                action: LeakAction::Passed,
                findings: 0,
                forms: vec![],
            },
        },
    })
    .unwrap();
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(example), keys(&actual));
    assert_eq!(keys(&example["usage"]), keys(&actual["usage"]));
    assert_eq!(keys(&example["guard"]), keys(&actual["guard"]));
    let required: BTreeSet<String> = spec["components"]["schemas"]["InvokeResponse"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(required, keys(&actual));
}

/// Every code the handler can return is an `ErrorCode` variant (`InvokeError::code` returns one),
/// so listing the variants lists the codes: a new code fails here until openapi.yaml documents it,
/// its status and, where it has one, its Retry-After header.
#[test]
fn documented_error_codes_and_statuses_are_the_handlers() {
    let spec = spec();
    let documented: BTreeSet<&str> = spec["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let produced: BTreeSet<&str> = ErrorCode::VARIANTS.iter().map(|c| c.as_str()).collect();
    assert_eq!(documented, produced);

    let responses = &operation(&spec)["responses"];
    for code in ErrorCode::VARIANTS {
        let status = code.status().as_u16().to_string();
        let response = &responses[&status];
        assert!(
            response.is_object(),
            "{} returns {status}, which is not documented",
            code.as_str()
        );
        if code.sends_retry_after() {
            assert!(
                response["headers"]["Retry-After"].is_object(),
                "{status} documents Retry-After"
            );
        }
    }
    for (status, response) in responses.as_object().unwrap() {
        let Some(example) =
            response["content"]["application/json"]["example"]["error"]["code"].as_str()
        else {
            continue;
        };
        let code = ErrorCode::VARIANTS
            .iter()
            .find(|c| c.as_str() == example)
            .unwrap_or_else(|| panic!("example {example} is no code"));
        assert_eq!(
            &code.status().as_u16().to_string(),
            status,
            "example {example}"
        );
    }
}
